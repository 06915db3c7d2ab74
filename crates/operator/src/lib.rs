//! The opal-operator library: the custom resources, the controllers that carry the engine's
//! decisions into Opal and Kubernetes, and the clients of every external system. The decisions
//! themselves are in `opal_engine`, re-exported here as [`engine`].

pub use opal_engine as engine;

pub mod config;
pub mod controller;
pub mod crd;
pub mod hris;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod notify;
pub mod opal;
pub mod reconcile;
pub mod report;
pub mod secret;
pub mod standalone;
pub mod telemetry;
pub mod webhooks;
