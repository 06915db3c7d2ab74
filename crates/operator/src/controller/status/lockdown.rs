//! The part of a Lockdown's status its controller writes: conditions, expiry, failures.

use chrono::{DateTime, Utc};

use super::{Conditions, FAILURE_LIMIT, failure_message, sync_problem};
use crate::controller::sync::SyncView;
use crate::crd::{Condition, LockdownPhase, LockdownStatus, condition_types};
use crate::engine::ObjectKey;

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
