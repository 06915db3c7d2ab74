//! opal-operator: keeps Opal access in line with the HR system, declared as Kubernetes resources.

pub mod crd;
pub mod engine;
pub mod hris;
pub mod notify;
pub mod opal;
pub mod sim;
