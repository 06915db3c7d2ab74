//! opal-operator: keeps Opal access in line with the HR system, declared as Kubernetes resources.

pub mod config;
pub mod controller;
pub mod crd;
pub mod demo;
pub mod engine;
pub mod hris;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod notify;
pub mod opal;
pub mod reconcile;
pub mod report;
pub mod secret;
pub mod sim;
pub mod standalone;
pub mod telemetry;
pub mod webhooks;
