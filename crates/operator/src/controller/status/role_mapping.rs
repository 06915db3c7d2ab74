//! A RoleMapping's status: its share of the plan, drift, failures.

use chrono::{DateTime, Utc};

use super::{Conditions, FAILURE_LIMIT, count, failure_message, sync_problem};
use crate::controller::sync::SyncView;
use crate::crd::{RoleMappingStatus, condition_types};
use crate::engine::{MappingFindings, ObjectKey, SAMPLE_LIMIT};

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
