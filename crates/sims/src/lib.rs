//! In-process simulators of the external systems the operator talks to, serving their real wire
//! formats over HTTP on loopback. They back the demo, the tests and the benchmarks.

pub mod hris;
pub mod notify;
pub mod opal;

// The operator's own records the simulators produce or read (employees, secret references).
use opal_operator_core::{hris as operator_hris, secret};
