//! Which of a released lockdown's recorded grants come back, and why the others do not.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::plan::Planner;
use super::records::{RevokedGrant, TargetKind};
use super::world::{GrantKey, HrState, ObjectKey, World};
use crate::EmploymentStatus;

/// Why a recorded grant is not restored now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreSkip {
    /// HR shows the person terminated.
    Terminated,
    /// Another lockdown in force holds this grant; it is handed to that lockdown's record so
    /// it comes back when that one is released.
    HeldBy(ObjectKey),
    /// A time-bound grant whose time has run out.
    Expired,
    /// This sync's plan already granted it.
    AlreadyGranted,
}

impl RestoreSkip {
    pub fn describe(&self) -> String {
        match self {
            RestoreSkip::Terminated => "terminated in HR".to_owned(),
            RestoreSkip::HeldBy(key) => format!("lockdown {key} still holds it"),
            RestoreSkip::Expired => "its time-bound grant has expired".to_owned(),
            RestoreSkip::AlreadyGranted => "already granted by this sync".to_owned(),
        }
    }
}

/// The verdict on every recorded grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreDecision {
    pub due: Vec<RevokedGrant>,
    pub skipped: Vec<(RevokedGrant, RestoreSkip)>,
}

/// Restoring waits: HR is unreadable, so a termination cannot be ruled out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HR unavailable, release deferred: {0}")]
pub struct RestoreDeferred(pub String);

/// Decides the restore of `record` (a lockdown's own record; the lockdown itself is released
/// in `world`, so it holds nothing). `granted` is what the same sync already granted.
pub fn plan_restore(
    world: &World,
    record: Vec<RevokedGrant>,
    granted: &BTreeSet<GrantKey>,
    now: DateTime<Utc>,
) -> Result<RestoreDecision, RestoreDeferred> {
    let employees = match &world.hr {
        HrState::Failed(message) => return Err(RestoreDeferred(message.clone())),
        HrState::Snapshot(employees) | HrState::Incomplete { employees, .. } => employees,
    };
    let terminated: BTreeSet<String> = employees
        .iter()
        .filter(|e| e.status == EmploymentStatus::Terminated)
        .map(|e| e.email.to_lowercase())
        .collect();
    let planner = Planner::new(world, now);
    let users: FxHashMap<&str, usize> = world
        .opal
        .users
        .iter()
        .enumerate()
        .map(|(index, user)| (user.id.as_str(), index))
        .collect();
    let targets: FxHashMap<(TargetKind, &str), usize> = world
        .opal
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| ((target.kind, target.id.as_str()), index))
        .collect();
    let mut decision = RestoreDecision::default();
    for grant in record {
        let holder = users
            .get(grant.user_id.as_str())
            .zip(targets.get(&(grant.kind, grant.target_id.as_str())))
            .and_then(|(&user, &target)| planner.lock_holder(user, target));
        let skip = if terminated.contains(&grant.email.to_lowercase()) {
            Some(RestoreSkip::Terminated)
        } else if let Some(holder) = holder {
            Some(RestoreSkip::HeldBy(holder.clone()))
        } else if grant.expiration_date.is_some_and(|at| at <= now) {
            Some(RestoreSkip::Expired)
        } else if granted.contains(&GrantKey::of_revoked(&grant)) {
            Some(RestoreSkip::AlreadyGranted)
        } else {
            None
        };
        match skip {
            Some(skip) => decision.skipped.push((grant, skip)),
            None => decision.due.push(grant),
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::Subject;
    use crate::tests::{base_world, lockdown, now};

    fn revoked(user: &str, email: &str, target: &str) -> RevokedGrant {
        RevokedGrant {
            user_id: user.to_owned(),
            email: email.to_owned(),
            kind: TargetKind::Group,
            target_id: target.to_owned(),
            target_name: target.to_owned(),
            access_level_remote_id: String::new(),
            expiration_date: None,
        }
    }

    fn skipped(decision: &RestoreDecision) -> Vec<(String, RestoreSkip)> {
        decision
            .skipped
            .iter()
            .map(|(grant, skip)| {
                (
                    format!("{} {}", grant.user_id, grant.target_id),
                    skip.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_grant_another_lockdown_holds_by_hris_id_is_handed_over_not_restored() {
        let mut world = base_world();
        let mut releasing = lockdown("first", vec![]);
        releasing.released = true;
        let holder = lockdown("second", vec![Subject::HrisId("E2".to_owned())]);
        let holder_key = holder.key.clone();
        world.lockdowns = vec![releasing, holder];
        let record = vec![
            revoked("u1", "ada@example.com", "g-eng"),
            revoked("u2", "bob@example.com", "g-eng"),
        ];
        let decision = plan_restore(&world, record, &BTreeSet::new(), now()).expect("HR readable");
        assert_eq!(
            decision
                .due
                .iter()
                .map(|g| g.user_id.as_str())
                .collect::<Vec<_>>(),
            ["u1"]
        );
        assert_eq!(
            skipped(&decision),
            [("u2 g-eng".to_owned(), RestoreSkip::HeldBy(holder_key))]
        );
    }

    #[test]
    fn terminated_expired_and_already_granted_grants_are_not_restored_again() {
        let mut world = base_world();
        if let HrState::Snapshot(employees) = &mut world.hr {
            employees[2].status = EmploymentStatus::Terminated;
        }
        let mut expired = revoked("u2", "bob@example.com", "g-sales");
        expired.expiration_date = Some(now() - Duration::minutes(1));
        let mut running = revoked("u2", "bob@example.com", "g-legacy");
        running.expiration_date = Some(now() + Duration::hours(1));
        let regranted = revoked("u1", "ada@example.com", "g-eng");
        let record = vec![
            revoked("u3", "CY@example.com", "g-sales"),
            expired,
            running,
            regranted.clone(),
        ];
        let granted = BTreeSet::from([GrantKey::of_revoked(&regranted)]);
        let decision = plan_restore(&world, record, &granted, now()).expect("HR readable");
        assert_eq!(
            decision
                .due
                .iter()
                .map(|g| g.target_id.as_str())
                .collect::<Vec<_>>(),
            ["g-legacy"]
        );
        assert_eq!(
            skipped(&decision),
            [
                ("u3 g-sales".to_owned(), RestoreSkip::Terminated),
                ("u2 g-sales".to_owned(), RestoreSkip::Expired),
                ("u1 g-eng".to_owned(), RestoreSkip::AlreadyGranted),
            ]
        );
    }

    #[test]
    fn an_unreadable_hr_source_defers_the_restore() {
        let mut world = base_world();
        world.hr = HrState::Failed("BambooHR answered 503".to_owned());
        let record = vec![revoked("u1", "ada@example.com", "g-eng")];
        assert_eq!(
            plan_restore(&world, record, &BTreeSet::new(), now()),
            Err(RestoreDeferred("BambooHR answered 503".to_owned()))
        );
    }
}
