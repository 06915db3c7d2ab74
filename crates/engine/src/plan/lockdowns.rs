//! Lockdowns in the plan: who and what each one locks, and what it still has to revoke.

use super::*;

#[derive(Default)]
pub(super) struct Locks {
    /// Users locked out of everything, with the lockdown that locks them.
    pub(super) users_all: FxHashMap<UserIdx, u32>,
    /// Users locked out of some targets.
    pub(super) users_targets: FxHashMap<UserIdx, Vec<(TargetIdx, u32)>>,
    /// Targets whose direct grants are revoked, with their break-glass users.
    pub(super) targets: FxHashMap<TargetIdx, (u32, FxHashSet<UserIdx>)>,
}

impl Locks {
    pub(super) fn lock_for(&self, user: UserIdx, target: TargetIdx) -> Option<u32> {
        if let Some(lockdown) = self.users_all.get(&user) {
            return Some(*lockdown);
        }
        if let Some(locked) = self.users_targets.get(&user)
            && let Some((_, lockdown)) = locked.iter().find(|(t, _)| *t == target)
        {
            return Some(*lockdown);
        }
        match self.targets.get(&target) {
            Some((lockdown, break_glass)) if !break_glass.contains(&user) => Some(*lockdown),
            _ => None,
        }
    }
}

impl Planner<'_> {
    pub(super) fn prepare_lockdowns(
        &mut self,
        user_by_id: &FxHashMap<&str, UserIdx>,
        resolver: &TargetResolver<'_>,
        tenancy: &TenancyRules<'_>,
    ) {
        for (index, input) in self.world.lockdowns.iter().enumerate() {
            let rules = &input.rules;
            let mut findings = LockdownFindings {
                unresolved_subjects: rules.invalid.clone(),
                ..LockdownFindings::default()
            };
            let reach = LockReach::of(&input.key.namespace, self.world, tenancy);
            let mut refused: Vec<String> = Vec::new();
            match input.expires_at(self.now) {
                Ok(expires_at) => findings.expires_at = expires_at,
                Err(error) => findings.invalid_duration = Some(error),
            }
            findings.active = input.in_force(self.now);
            findings.release_due = input.release_due(self.now);
            let lockdown = index as u32;
            let scope_targets: Option<Vec<TargetIdx>> = match &rules.scope {
                LockScope::Targets(targets) => Some(
                    targets
                        .iter()
                        .filter_map(|target| match resolver.resolve(target) {
                            Ok(target) if reach.covers(target) => Some(target),
                            Ok(target) => {
                                refused.push(resolver.describe(target));
                                None
                            }
                            Err(problem) => {
                                findings.unresolved_subjects.push(problem.message());
                                None
                            }
                        })
                        .collect(),
                ),
                // Outside the operator namespace "everything" means every target it may lock.
                LockScope::Everything => match &reach {
                    LockReach::Everything => None,
                    LockReach::Only(targets) => Some(targets.iter().copied().collect()),
                },
            };
            let break_glass: FxHashSet<UserIdx> = rules
                .break_glass
                .iter()
                .filter_map(|email| self.user_by_email.get(&email.to_lowercase()).copied())
                .collect();
            for subject in &rules.subjects {
                let (user, missing) = match subject {
                    Subject::Target(target) => {
                        match resolver.resolve(target) {
                            Ok(target) if !reach.covers(target) => {
                                refused.push(resolver.describe(target))
                            }
                            Ok(target) => {
                                findings.locked_targets += 1;
                                if findings.active {
                                    self.locks
                                        .targets
                                        .insert(target, (lockdown, break_glass.clone()));
                                }
                            }
                            Err(problem) => findings.unresolved_subjects.push(problem.message()),
                        }
                        continue;
                    }
                    Subject::Email(email) => (
                        self.user_by_email.get(&email.to_lowercase()).copied(),
                        format!("user {email} has no Opal account"),
                    ),
                    Subject::OpalUserId(id) => (
                        user_by_id.get(id.as_str()).copied(),
                        format!("Opal user {id} does not exist"),
                    ),
                    Subject::HrisId(hris_id) => (
                        self.employee_index
                            .get(hris_id)
                            .map(|&index| self.employee(index))
                            .and_then(|employee| {
                                self.user_by_email
                                    .get(&employee.email.to_lowercase())
                                    .copied()
                            }),
                        format!("HR employee {hris_id} has no Opal account"),
                    ),
                };
                let Some(user) = user else {
                    findings.unresolved_subjects.push(missing);
                    continue;
                };
                if scope_targets.as_ref().is_some_and(Vec::is_empty) {
                    // Nothing this namespace may lock: the user keeps everything.
                    continue;
                }
                findings.locked_users += 1;
                if !findings.active {
                    continue;
                }
                match &scope_targets {
                    None => {
                        self.locks.users_all.insert(user, lockdown);
                    }
                    Some(targets) => self
                        .locks
                        .users_targets
                        .entry(user)
                        .or_default()
                        .extend(targets.iter().map(|&target| (target, lockdown))),
                }
            }
            findings.not_permitted = reach.refusal(&input.key.namespace, self.world, refused);
            if findings.not_permitted.is_some()
                && findings.locked_users == 0
                && findings.locked_targets == 0
            {
                // Nothing it may lock: never reported as in force.
                findings.active = false;
            }
            self.lockdown_findings.push((input.key.clone(), findings));
        }
    }

    pub(super) fn lockdown_findings_with_pending(
        &self,
        planned: &[(UserIdx, PlannedOp)],
    ) -> BTreeMap<ObjectKey, LockdownFindings> {
        let mut findings: Vec<(ObjectKey, LockdownFindings)> = self.lockdown_findings.clone();
        for (_, op) in planned {
            if let CauseIdx::Lockdown(lockdown) = op.cause {
                findings[lockdown as usize].1.to_revoke += 1;
            }
        }
        findings.into_iter().collect()
    }
}
