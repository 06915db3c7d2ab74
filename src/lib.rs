//! opal-operator: keeps Opal access in line with the HR system, declared as Kubernetes resources.
//!
//! The workspace's crates meet here: the pure engine, the operator library and the simulators,
//! under one path (`opal_operator::engine`, `opal_operator::crd`, `opal_operator::sim`, ...),
//! plus the demo, which is the only code besides the tests that runs the operator against the
//! simulators.

pub use opal_operator_core::*;
pub use opal_sims as sim;

pub mod demo;
