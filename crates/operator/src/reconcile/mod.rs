//! The I/O steps of a sync around the pure engine: [`observe_opal`] reads what Opal holds into
//! the engine's [`OpalState`](crate::engine::OpalState), and the [`Executor`] makes a plan's
//! operations in Opal. Both the in-cluster controller and the standalone loop use them.

mod apply;
mod observe;

pub use apply::{ExecutionReport, Executor, OperationOutcome};
pub use observe::{ObservationScope, observe_opal, observe_target_grants, observe_user_grants};
