//! The reconcile engine. `plan(&World, now) -> Plan` is pure: no I/O and no clock reads. The
//! two I/O edges sit beside it: [`observe_opal`] fills the Opal part of a [`World`] and the
//! [`Executor`] applies a [`Plan`]'s operations.

mod duration;
mod executor;
mod observe;
mod plan;
mod restore;
mod selector;
mod world;

pub use duration::{DurationError, parse_go_duration};
pub use executor::{ExecutionReport, Executor, OperationOutcome};
pub use observe::{ObservationScope, observe_opal, observe_target_grants, observe_user_grants};
pub use plan::{
    BreakerFinding, Cause, LockdownFindings, MappingFindings, MappingProblem, Operation, Plan,
    Planner, PolicyFindings, SAMPLE_LIMIT, Withheld, plan,
};
pub use restore::{RestoreDecision, RestoreDeferred, RestoreSkip, plan_restore};
pub use selector::{CompiledSelector, SelectorError};
pub use world::{
    GrantKey, HrState, LockdownInput, MappingInput, ObjectKey, OpalGrant, OpalState, OpalTarget,
    OpalUser, PolicyInput, World,
};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tenancy_tests;
#[cfg(test)]
mod tests;
