//! Each object's view of the last sync, as status, one file per kind. Pure: the reporters
//! compare the result with the object's current status and patch only on a change.

mod access_policy;
mod lockdown;
mod role_mapping;

pub use access_policy::access_policy_status;
pub use lockdown::{LockdownReport, lockdown_status};
pub use role_mapping::role_mapping_status;

use chrono::{DateTime, Utc};

use super::sync::{AttributedFailure, SyncView};
use crate::crd::{Condition, ConditionStatus};

/// Failures kept in a status.
pub(super) const FAILURE_LIMIT: usize = 10;

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

pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The Synced condition every kind shares when the sync itself failed or HR is unusable.
pub(super) fn sync_problem(view: &SyncView) -> Option<(&'static str, String)> {
    if let Some(error) = &view.error {
        return Some((error.reason, error.message.clone()));
    }
    view.hr_error
        .as_ref()
        .map(|message| ("HrisUnavailable", message.clone()))
}

pub(super) fn failure_message(failures: &[AttributedFailure]) -> (&'static str, String) {
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

#[cfg(test)]
mod tests;
