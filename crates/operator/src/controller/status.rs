//! Each object's view of the last sync, as status. Pure: the reporters compare the result with
//! the object's current status and patch only on a change.

use chrono::{DateTime, Utc};

use super::sync::{AttributedFailure, SyncView};
use crate::crd::{
    AccessPolicyStatus, BreakerState, BreakerStatus, Condition, ConditionStatus, LockdownPhase,
    LockdownStatus, RoleMappingStatus, condition_types,
};
use crate::engine::{MappingFindings, ObjectKey, SAMPLE_LIMIT};

/// Failures kept in a status.
const FAILURE_LIMIT: usize = 10;

/// Builds conditions, keeping `lastTransitionTime` of those whose status did not change.
pub struct Conditions<'a> {
    previous: &'a [Condition],
    generation: i64,
    now: DateTime<Utc>,
    built: Vec<Condition>,
}

impl<'a> Conditions<'a> {
    pub fn new(previous: &'a [Condition], generation: i64, now: DateTime<Utc>) -> Self {
        Self {
            previous,
            generation,
            now,
            built: Vec::new(),
        }
    }

    pub fn set(&mut self, type_: &str, holds: bool, reason: &str, message: impl Into<String>) {
        let status = if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        self.set_status(type_, status, reason, message.into());
    }

    pub fn set_status(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: String,
    ) {
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or(self.now, |c| c.last_transition_time);
        self.built.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: Some(self.generation),
        });
    }

    pub fn into_vec(self) -> Vec<Condition> {
        self.built
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The Synced condition every kind shares when the sync itself failed or HR is unusable.
fn sync_problem(view: &SyncView) -> Option<(&'static str, String)> {
    if let Some(error) = &view.error {
        return Some((error.reason, error.message.clone()));
    }
    view.hr_error
        .as_ref()
        .map(|message| ("HrisUnavailable", message.clone()))
}

fn failure_message(failures: &[AttributedFailure]) -> (&'static str, String) {
    let rate_limited = failures.iter().all(|f| f.label == "rate_limited");
    let first = &failures[0].failure;
    let reason = if rate_limited {
        "RateLimited"
    } else {
        "PartialSync"
    };
    (
        reason,
        format!(
            "{} operation(s) failed; first: {} on {}: {}",
            failures.len(),
            first.user,
            first.target,
            first.message
        ),
    )
}

/// A RoleMapping's status from the view.
pub fn role_mapping_status(
    view: &SyncView,
    key: &ObjectKey,
    generation: i64,
    paused: bool,
    previous: Option<&RoleMappingStatus>,
    now: DateTime<Utc>,
) -> RoleMappingStatus {
    let findings = view.plan.mappings.get(key).cloned().unwrap_or_default();
    let failures = view
        .mapping_failures
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Conditions::new(previous_conditions, generation, now);
    let drift = findings.to_grant + findings.to_revoke;
    let breaker_held = view.plan.breaker.tripped
        && !view.plan.breaker.approved
        && findings.to_revoke > 0
        && findings.enforced;

    let (ready, ready_reason, ready_message) = match findings.problems.first() {
        Some(problem) => (false, problem.reason(), problem.message()),
        None if drift == 0 => (
            true,
            "Converged",
            "Opal matches the desired grants".to_owned(),
        ),
        None if !findings.enforced => (
            false,
            if paused { "Paused" } else { "ObserveOnly" },
            format!(
                "would grant {} and revoke {}; enforcement is off",
                findings.to_grant, findings.to_revoke
            ),
        ),
        None => (
            false,
            "Pending",
            format!(
                "{} grant(s) and {} revocation(s) outstanding",
                findings.to_grant, findings.to_revoke
            ),
        ),
    };
    conditions.set(condition_types::READY, ready, ready_reason, ready_message);

    let (synced, synced_reason, synced_message) = if paused {
        (
            false,
            "Paused",
            "the opal-operator.io/paused annotation is \"true\"".to_owned(),
        )
    } else if let Some((reason, message)) = sync_problem(view) {
        (false, reason, message)
    } else if !failures.is_empty() {
        let (reason, message) = failure_message(failures);
        (false, reason, message)
    } else if breaker_held {
        (
            false,
            "BlastRadiusExceeded",
            format!(
                "{}; approve plan {} with the opal-operator.io/approve-plan annotation on the AccessPolicy",
                view.plan.breaker.reason, view.plan.revocation_hash
            ),
        )
    } else if view.plan.hr_gate.is_some() && findings.to_revoke > 0 {
        (
            false,
            "HrisUnavailable",
            view.plan.hr_gate.clone().unwrap_or_default(),
        )
    } else {
        (true, "ReconcileSuccess", String::new())
    };
    conditions.set(
        condition_types::SYNCED,
        synced,
        synced_reason,
        synced_message,
    );
    conditions.set(
        condition_types::DRIFTED,
        drift > 0,
        if drift > 0 {
            "DriftDetected"
        } else {
            "NoDrift"
        },
        drift_message(&findings),
    );
    RoleMappingStatus {
        conditions: conditions.into_vec(),
        observed_generation: Some(generation),
        matched_employees: count(findings.matched_employees),
        unmatched_employees: count(findings.unmatched_employees),
        unmatched_sample: findings.unmatched_sample.clone(),
        desired_grants: count(findings.desired_grants),
        actual_grants: count(findings.actual_grants),
        to_grant: count(findings.to_grant),
        to_revoke: count(findings.to_revoke),
        pending_changes: findings
            .pending_sample
            .iter()
            .take(SAMPLE_LIMIT)
            .cloned()
            .collect(),
        last_sync_time: Some(view.finished_at),
        failed_operations: count(failures.len()),
        failures: failures
            .iter()
            .take(FAILURE_LIMIT)
            .map(|f| f.failure.clone())
            .collect(),
    }
}

fn drift_message(findings: &MappingFindings) -> String {
    format!(
        "to grant {}, to revoke {} (desired {}, actual {})",
        findings.to_grant, findings.to_revoke, findings.desired_grants, findings.actual_grants
    )
}

/// An AccessPolicy's status from the view.
pub fn access_policy_status(
    view: &SyncView,
    key: &ObjectKey,
    generation: i64,
    operator_namespace: &str,
    previous: Option<&AccessPolicyStatus>,
    now: DateTime<Utc>,
) -> AccessPolicyStatus {
    let findings = view.plan.policies.get(key).cloned().unwrap_or_default();
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Conditions::new(previous_conditions, generation, now);
    let breaker = &view.plan.breaker;
    let in_operator_namespace = key.namespace == operator_namespace;
    let held = breaker.tripped && !breaker.approved && in_operator_namespace;
    if findings.outside_operator_namespace {
        conditions.set(
            condition_types::READY,
            true,
            "NamespaceScoped",
            format!(
                "outside the operator namespace {operator_namespace}: safety, offboarding and tenancy here are not applied"
            ),
        );
    } else if let Some(problem) = &findings.invalid_offboarding {
        conditions.set(
            condition_types::READY,
            false,
            "InvalidDuration",
            problem.clone(),
        );
    } else if let Some(problem) = &findings.invalid_safety {
        conditions.set(
            condition_types::READY,
            false,
            "InvalidSafety",
            problem.clone(),
        );
    } else {
        conditions.set(
            condition_types::READY,
            !held,
            if held {
                "BlastRadiusExceeded"
            } else {
                "Applied"
            },
            String::new(),
        );
    }
    let (synced, reason, message) = if let Some((reason, message)) = sync_problem(view) {
        (false, reason, message)
    } else if held {
        (
            false,
            "BlastRadiusExceeded",
            format!(
                "{}; {} revocation(s) held; approve plan {} with the opal-operator.io/approve-plan annotation",
                breaker.reason, breaker.revocations, view.plan.revocation_hash
            ),
        )
    } else {
        (true, "ReconcileSuccess", String::new())
    };
    conditions.set(condition_types::SYNCED, synced, reason, message);
    if let (true, Some(degraded)) = (in_operator_namespace, &view.notifications) {
        conditions.set(
            condition_types::NOTIFICATIONS_DEGRADED,
            degraded.is_some(),
            if degraded.is_some() {
                "ChannelFailing"
            } else {
                "ChannelsHealthy"
            },
            degraded.clone().unwrap_or_default(),
        );
    }
    let breaker_status = in_operator_namespace.then(|| BreakerStatus {
        state: if held {
            BreakerState::Tripped
        } else {
            BreakerState::Closed
        },
        held_revocations: if held { count(breaker.revocations) } else { 0 },
        plan_hash: held.then(|| view.plan.revocation_hash.clone()),
        tripped_at: if held { view.breaker_tripped_at } else { None },
        reason: if held {
            breaker.reason.clone()
        } else {
            String::new()
        },
    });
    AccessPolicyStatus {
        conditions: conditions.into_vec(),
        observed_generation: Some(generation),
        governed_mappings: count(findings.governed_mappings),
        governed_targets: count(findings.governed_targets),
        breaker: breaker_status,
    }
}

/// The conditions and reported fields of a Lockdown (the sync loop owns phase and record).
/// The part of a Lockdown's status the Lockdown controller writes (its own field manager);
/// the record and the lifecycle fields have writers of their own in the sync loop.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LockdownReport {
    pub conditions: Vec<Condition>,
    pub observed_generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub failures: Vec<String>,
}

impl LockdownReport {
    /// What `current` shows of these fields.
    pub fn shown_in(current: &LockdownStatus) -> Self {
        Self {
            conditions: current.conditions.clone(),
            observed_generation: current.observed_generation.unwrap_or_default(),
            expires_at: current.expires_at,
            failures: current.failures.clone(),
        }
    }
}

pub fn lockdown_status(
    view: &SyncView,
    key: &ObjectKey,
    generation: i64,
    current: &LockdownStatus,
    now: DateTime<Utc>,
) -> LockdownReport {
    let findings = view.plan.lockdowns.get(key).cloned().unwrap_or_default();
    let failures = view
        .lockdown_failures
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut conditions = Conditions::new(&current.conditions, generation, now);
    let phase = current.phase.unwrap_or(LockdownPhase::Pending);
    let refused_entirely = findings.not_permitted.is_some() && !findings.active;
    let active = phase == LockdownPhase::Active && findings.active;
    let active_message = match phase {
        _ if refused_entirely => findings.not_permitted.clone().unwrap_or_default(),
        LockdownPhase::Active => format!(
            "{} user(s) and {} target(s) locked; {} grant(s) revoked",
            findings.locked_users, findings.locked_targets, current.revoked_count
        ),
        LockdownPhase::Pending => format!("{} revocation(s) outstanding", findings.to_revoke),
        LockdownPhase::Released => {
            format!("released; {} grant(s) restored", current.restored_count)
        }
        LockdownPhase::Failed => current
            .release_failures
            .first()
            .cloned()
            .unwrap_or_default(),
    };
    conditions.set(
        condition_types::ACTIVE,
        active,
        if refused_entirely {
            "NotPermitted"
        } else {
            phase_reason(phase)
        },
        active_message,
    );
    let unresolved = (!findings.unresolved_subjects.is_empty()).then(|| {
        format!(
            "subjects not found in Opal: {}",
            findings.unresolved_subjects.join(", ")
        )
    });
    if let Some(refusal) = &findings.not_permitted {
        conditions.set(
            condition_types::READY,
            false,
            "NotPermitted",
            refusal.clone(),
        );
    } else {
        let ready =
            matches!(phase, LockdownPhase::Active | LockdownPhase::Released) && failures.is_empty();
        conditions.set(
            condition_types::READY,
            ready,
            if ready {
                phase_reason(phase)
            } else {
                "Pending"
            },
            unresolved.clone().unwrap_or_default(),
        );
    }
    let (synced, reason, message) = if let Some(message) = &findings.invalid_duration {
        (false, "InvalidDuration", message.clone())
    } else if let Some((reason, message)) =
        sync_problem(view).filter(|(r, _)| *r != "HrisUnavailable")
    {
        (false, reason, message)
    } else if !failures.is_empty() {
        let (reason, message) = failure_message(failures);
        (false, reason, message)
    } else {
        (true, "ReconcileSuccess", String::new())
    };
    conditions.set(condition_types::SYNCED, synced, reason, message);
    LockdownReport {
        conditions: conditions.into_vec(),
        observed_generation: generation,
        expires_at: findings.expires_at.or(current.expires_at),
        failures: failures
            .iter()
            .take(FAILURE_LIMIT)
            .map(|f| {
                format!(
                    "{} on {}: {}",
                    f.failure.user, f.failure.target, f.failure.message
                )
            })
            .collect(),
    }
}

fn phase_reason(phase: LockdownPhase) -> &'static str {
    match phase {
        LockdownPhase::Pending => "Pending",
        LockdownPhase::Active => "Active",
        LockdownPhase::Released => "Released",
        LockdownPhase::Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;
    use crate::controller::sync::SyncFailure;
    use crate::crd::{ChangeAction, OperationFailure};
    use crate::engine::{BreakerFinding, MappingProblem, Plan};

    fn key() -> ObjectKey {
        ObjectKey::new("team", "engineering")
    }

    fn view_with(findings: MappingFindings) -> SyncView {
        let mut plan = Plan::default();
        plan.mappings.insert(key(), findings);
        SyncView {
            finished_at: Utc::now(),
            fingerprints: BTreeMap::new(),
            plan: Arc::new(plan),
            mapping_failures: BTreeMap::new(),
            lockdown_failures: BTreeMap::new(),
            hr_error: None,
            error: None,
            breaker_tripped_at: None,
            notifications: None,
        }
    }

    fn enforced(to_grant: usize, to_revoke: usize) -> MappingFindings {
        MappingFindings {
            desired_grants: 10,
            actual_grants: 10 - to_grant,
            to_grant,
            to_revoke,
            enforced: true,
            ..MappingFindings::default()
        }
    }

    fn find<'a>(status: &'a RoleMappingStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn a_converged_mapping_is_ready_synced_and_not_drifted() {
        let status = role_mapping_status(
            &view_with(enforced(0, 0)),
            &key(),
            3,
            false,
            None,
            Utc::now(),
        );
        assert_eq!(find(&status, "Ready").status, ConditionStatus::True);
        assert_eq!(find(&status, "Synced").reason, "ReconcileSuccess");
        assert_eq!(find(&status, "Drifted").status, ConditionStatus::False);
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.desired_grants, 10);
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let earlier = Utc::now() - TimeDelta::hours(1);
        let view = view_with(enforced(0, 0));
        let first = role_mapping_status(&view, &key(), 1, false, None, earlier);
        let second = role_mapping_status(&view, &key(), 1, false, Some(&first), Utc::now());
        assert_eq!(find(&second, "Ready").last_transition_time, earlier);
        let drifted = role_mapping_status(
            &view_with(enforced(2, 0)),
            &key(),
            1,
            false,
            Some(&first),
            Utc::now(),
        );
        assert!(find(&drifted, "Ready").last_transition_time > earlier);
        assert_eq!(find(&drifted, "Drifted").status, ConditionStatus::True);
    }

    #[test]
    fn the_reason_says_why_a_mapping_is_not_synced() {
        let paused = role_mapping_status(
            &view_with(enforced(1, 0)),
            &key(),
            1,
            true,
            None,
            Utc::now(),
        );
        assert_eq!(find(&paused, "Synced").reason, "Paused");

        let mut observe = enforced(2, 1);
        observe.enforced = false;
        let observing =
            role_mapping_status(&view_with(observe), &key(), 1, false, None, Utc::now());
        assert_eq!(find(&observing, "Ready").reason, "ObserveOnly");

        let mut broken = enforced(0, 0);
        broken.problems = vec![MappingProblem::TargetNotFound("group Nope".into())];
        let not_found = role_mapping_status(&view_with(broken), &key(), 1, false, None, Utc::now());
        assert_eq!(find(&not_found, "Ready").reason, "TargetNotFound");
        assert!(find(&not_found, "Ready").message.contains("group Nope"));

        let mut failed_view = view_with(enforced(0, 0));
        failed_view.error = Some(SyncFailure {
            reason: "ReconcileError",
            message: "Opal users.list: HTTP 503 after 4 attempt(s): upstream down".into(),
        });
        let failed = role_mapping_status(&failed_view, &key(), 1, false, None, Utc::now());
        assert_eq!(find(&failed, "Synced").reason, "ReconcileError");
        assert!(find(&failed, "Synced").message.contains("HTTP 503"));

        let mut tripped_view = view_with(enforced(0, 5));
        let mut tripped_plan = (*tripped_view.plan).clone();
        tripped_plan.breaker = BreakerFinding {
            revocations: 5,
            governed_grants: 10,
            tripped: true,
            approved: false,
            reason: "5 revocations exceed maxRevocations 1".into(),
        };
        tripped_plan.revocation_hash = "0123abcd".into();
        tripped_view.plan = Arc::new(tripped_plan);
        let tripped = role_mapping_status(&tripped_view, &key(), 1, false, None, Utc::now());
        assert_eq!(find(&tripped, "Synced").reason, "BlastRadiusExceeded");
        assert!(find(&tripped, "Synced").message.contains("0123abcd"));
    }

    #[test]
    fn failed_operations_carry_the_upstream_text() {
        let mut view = view_with(enforced(1, 0));
        let failure = |label| AttributedFailure {
            failure: OperationFailure {
                action: ChangeAction::Grant,
                user: "ada@example.com".into(),
                target: "group/Engineering".into(),
                message: "Opal groups.users.add: HTTP 429 after 5 attempt(s): slow down".into(),
            },
            label,
        };
        view.mapping_failures
            .insert(key(), vec![failure("rate_limited")]);
        let limited = role_mapping_status(&view, &key(), 1, false, None, Utc::now());
        assert_eq!(find(&limited, "Synced").reason, "RateLimited");
        assert!(find(&limited, "Synced").message.contains("slow down"));
        assert_eq!(limited.failed_operations, 1);

        view.mapping_failures.insert(
            key(),
            vec![failure("rate_limited"), failure("server_error")],
        );
        let partial = role_mapping_status(&view, &key(), 1, false, None, Utc::now());
        assert_eq!(find(&partial, "Synced").reason, "PartialSync");
    }

    #[test]
    fn only_operator_namespace_policies_show_the_breaker() {
        let mut view = view_with(enforced(0, 3));
        let mut plan = (*view.plan).clone();
        plan.breaker.tripped = true;
        plan.breaker.revocations = 3;
        plan.revocation_hash = "feedbeef".into();
        plan.policies.insert(
            ObjectKey::new("opal-system", "baseline"),
            Default::default(),
        );
        view.plan = Arc::new(plan);
        let operator = access_policy_status(
            &view,
            &ObjectKey::new("opal-system", "baseline"),
            1,
            "opal-system",
            None,
            Utc::now(),
        );
        let breaker = operator.breaker.expect("breaker shown");
        assert_eq!(breaker.state, BreakerState::Tripped);
        assert_eq!(breaker.plan_hash.as_deref(), Some("feedbeef"));
        assert_eq!(breaker.held_revocations, 3);
        let team = access_policy_status(
            &view,
            &ObjectKey::new("team", "local"),
            1,
            "opal-system",
            None,
            Utc::now(),
        );
        assert!(team.breaker.is_none());
    }
}
