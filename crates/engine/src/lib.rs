//! The reconcile engine. `plan(&World, now) -> Plan` is pure: no I/O and no clock reads. Reading
//! Opal into a [`World`] and applying a [`Plan`] live in the operator's `reconcile` module; the
//! custom resources become [`MappingRules`], [`PolicyRules`] and [`LockdownRules`] in its `crd`
//! module. This crate depends on no Kubernetes, HTTP or async runtime crate, so the compiler
//! keeps it that way.

mod duration;
mod employee;
mod plan;
mod records;
mod requests;
mod restore;
mod rules;
mod selector;
mod world;

pub use duration::{DurationError, GoDuration, parse_go_duration};
pub use employee::{Employee, EmploymentStatus};
pub use plan::{
    BreakerFinding, Cause, LockdownFindings, MappingFindings, MappingProblem, Operation, Plan,
    Planner, PolicyFindings, SAMPLE_LIMIT, Withheld, plan,
};
pub use records::{ChangeAction, PendingChange, RevokedGrant, Sensitivity, TargetKind};
pub use requests::{
    ApprovedWindow, BusinessWindow, HeldGrant, OnCallAnswer, OnCallCondition, PolicyRequestRules,
    RequestConditions, RequestDecision, RequestFacts, RequestRule, RequestVerdict, RequestedTarget,
    RouteAnswer, RouteEscalation, RouteJudgment, RoutePlan, WindowStep, approved_window,
    decide_request, escalation_due, judge_route_answer, lockdowns_on_request, route_expired,
    window_step, window_step_due,
};
pub use restore::{RestoreDecision, RestoreDeferred, RestoreSkip, plan_restore};
pub use rules::{
    Enforcement, GrantRule, LevelRef, LockEnd, LockScope, LockdownRules, MappingRules, Membership,
    OffboardingRules, OffboardingScope, OffboardingWhen, PolicyRules, SafetyRules, Subject, Target,
    TargetRef, TenancyGrant,
};
pub use selector::{CompiledSelector, Requirement, SelectorError};
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
