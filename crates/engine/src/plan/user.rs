//! One Opal user's outcome: which mappings select their employees, whether offboarding is
//! due, and desired against actual grants.

use super::*;

impl Planner<'_> {
    /// Mappings whose selector matches `employee` while it is eligible for birthright access.
    pub(super) fn matching_mappings(&self, employee: &Employee) -> Vec<MappingIdx> {
        let terminated_but_not_due =
            employee.status == EmploymentStatus::Terminated && !self.offboarding_due(employee);
        if employee.status != EmploymentStatus::Active && !terminated_but_not_due {
            return Vec::new();
        }
        let mut candidates: Vec<MappingIdx> = self.unhinted.clone();
        for (key, by_value) in &self.hinted {
            if let Some(value) = employee.attribute(key)
                && let Some(mappings) = by_value.get(&value.to_lowercase())
            {
                candidates.extend_from_slice(mappings);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|&index| {
            let mapping = &self.mappings[index as usize];
            let started = employee.start_date.is_none_or(|start| {
                start - chrono::Duration::days(mapping.pre_start_days) <= self.today
            });
            started
                && mapping
                    .selector
                    .as_ref()
                    .is_some_and(|selector| selector.matches(employee))
        });
        candidates
    }

    pub(super) fn offboarding_due(&self, employee: &Employee) -> bool {
        if employee.status != EmploymentStatus::Terminated {
            return false;
        }
        if !self.policy.invalid_offboarding.is_empty() {
            // An offboarding rule nobody can read is no reason to revoke at once: hold until
            // it is fixed.
            return false;
        }
        let Some(offboarding) = &self.policy.offboarding else {
            return true;
        };
        let Some(date) = employee.termination_date else {
            return true;
        };
        let start_of_day = date.and_time(chrono::NaiveTime::MIN).and_utc();
        match offboarding.when {
            OffboardingWhen::Immediately => true,
            OffboardingWhen::OnTerminationDate => self.now >= start_of_day,
            OffboardingWhen::After(delay) => self.now >= start_of_day + delay,
        }
    }

    /// Desired versus actual for one Opal user.
    pub(super) fn user_outcome(&self, user: UserIdx) -> UserOutcome {
        let mut outcome = UserOutcome::default();
        let employees = &self.employees_of_user[user as usize];
        let mut desired: FxHashMap<(TargetIdx, LevelIdx), Vec<MappingIdx>> = FxHashMap::default();
        for &employee in employees {
            for &mapping in &self.employee_matches[employee] {
                for &(target, level) in &self.mappings[mapping as usize].grants {
                    if self.locks.lock_for(user, target).is_some() {
                        continue;
                    }
                    let contributors = desired.entry((target, level)).or_default();
                    if !contributors.contains(&mapping) {
                        contributors.push(mapping);
                    }
                }
            }
        }
        let mut counts: FxHashMap<MappingIdx, MappingCounts> = FxHashMap::default();
        let actual = &self.grants_by_user[user as usize];
        let held: FxHashSet<(TargetIdx, LevelIdx)> =
            actual.iter().map(|&(t, l, _)| (t, l)).collect();

        for (&(target, level), contributors) in &desired {
            let present = held.contains(&(target, level));
            for &mapping in contributors {
                let entry = counts.entry(mapping).or_default();
                entry.desired += 1;
                if present {
                    entry.actual += 1;
                } else {
                    entry.to_grant += 1;
                }
            }
            if !present {
                let enforcing = contributors
                    .iter()
                    .copied()
                    .find(|&m| self.mappings[m as usize].enforced);
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Grant,
                    target,
                    level,
                    cause: CauseIdx::Mapping(enforcing.unwrap_or(contributors[0])),
                    enforced: enforcing.is_some(),
                });
            }
        }

        let offboarding = self.hr_failed.is_none()
            && !employees.is_empty()
            && employees
                .iter()
                .all(|&e| self.offboarding_due(self.employee(e)))
            && self.policy.offboarding.is_some();
        let offboard_all = self
            .policy
            .offboarding
            .is_some_and(|o| o.scope == OffboardingScope::All);
        let protected = self.protected_users.contains(&user);
        for &(target, level, time_bound) in actual {
            if let Some(lockdown) = self.locks.lock_for(user, target) {
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Revoke,
                    target,
                    level,
                    cause: CauseIdx::Lockdown(lockdown),
                    enforced: true,
                });
                continue;
            }
            if desired.contains_key(&(target, level)) || self.hr_failed.is_some() || protected {
                continue;
            }
            let governance = &self.governance[target as usize];
            let derived = self.world.opal.targets[target as usize].derived_membership;
            let op = if offboarding && !derived && (offboard_all || !governance.mappings.is_empty())
            {
                Some((CauseIdx::Offboarding, true))
            } else if governance.authoritative
                && !time_bound
                && !governance.exceptions.contains(&user)
            {
                Some((CauseIdx::Unwanted, governance.enforced))
            } else {
                None
            };
            if let Some((cause, enforced)) = op {
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Revoke,
                    target,
                    level,
                    cause,
                    enforced,
                });
                for &mapping in &governance.mappings {
                    if self.mappings[mapping as usize].authoritative
                        || cause == CauseIdx::Offboarding
                    {
                        counts.entry(mapping).or_default().to_revoke += 1;
                    }
                }
            }
        }
        outcome.counts = counts.into_iter().collect();
        outcome
    }
}
