//! The pure reconcile engine: `plan(&World, now) -> Plan`. No I/O and no clock reads here;
//! the controller, the CLI and the tests fill the [`World`] and act on the [`Plan`].

mod duration;
mod plan;
mod selector;
mod world;

pub use duration::{DurationError, parse_go_duration};
pub use plan::{
    BreakerFinding, Cause, LockdownFindings, MappingFindings, MappingProblem, Operation, Plan,
    Planner, PolicyFindings, SAMPLE_LIMIT, Withheld, plan,
};
pub use selector::{CompiledSelector, SelectorError};
pub use world::{
    HrState, LockdownInput, MappingInput, ObjectKey, OpalGrant, OpalState, OpalTarget, OpalUser,
    PolicyInput, World,
};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
