//! The global plan assembled from the per-user outcomes: ordering, the breaker and HR gate
//! verdicts, and every object's findings.

use super::*;

impl Planner<'_> {
    fn operation(&self, user: UserIdx, op: &PlannedOp) -> Operation {
        let target = &self.world.opal.targets[op.target as usize];
        let opal_user = &self.world.opal.users[user as usize];
        Operation {
            action: op.action,
            kind: target.kind,
            target_id: target.id.clone(),
            target_name: target.name.clone(),
            user_id: opal_user.id.clone(),
            user_email: opal_user.email.clone(),
            access_level_remote_id: self.levels[op.level as usize].clone(),
            cause: match op.cause {
                CauseIdx::Mapping(mapping) => {
                    Cause::Mapping(self.mappings[mapping as usize].key.clone())
                }
                CauseIdx::Unwanted => Cause::Unwanted,
                CauseIdx::Offboarding => Cause::Offboarding,
                CauseIdx::Lockdown(lockdown) => {
                    Cause::Lockdown(self.world.lockdowns[lockdown as usize].key.clone())
                }
            },
        }
    }

    /// Assembles the global plan from the per-user outcomes.
    pub fn plan(&self) -> Plan {
        let mut planned: Vec<(UserIdx, PlannedOp)> = Vec::new();
        for &user in &self.users_with_ops {
            planned.extend(
                self.outcomes[user as usize]
                    .ops
                    .iter()
                    .map(|op| (user, *op)),
            );
        }
        // Lockdown revocations first (an incident cannot wait), then grants, then other
        // revocations; within each, by target and user. Sorting on indexes keeps this cheap.
        planned.sort_unstable_by_key(|(user, op)| {
            let phase: u8 = match (op.cause, op.action) {
                (CauseIdx::Lockdown(_), _) => 0,
                (_, ChangeAction::Grant) => 1,
                (_, ChangeAction::Revoke) => 2,
            };
            (phase, op.target, *user, op.level)
        });

        let hr_gate = self.hr_gate();
        let built: Vec<Operation> = planned
            .iter()
            .map(|(user, op)| self.operation(*user, op))
            .collect();
        let subject_to_breaker = |op: &PlannedOp| {
            op.enforced
                && op.action == ChangeAction::Revoke
                && !matches!(op.cause, CauseIdx::Lockdown(_))
        };
        let breaker_governed: Vec<&Operation> = planned
            .iter()
            .zip(&built)
            .filter(|((_, op), _)| subject_to_breaker(op))
            .map(|(_, operation)| operation)
            .collect();
        let revocation_hash = revocation_hash(&breaker_governed);
        let breaker = self.breaker(breaker_governed.len(), &revocation_hash);

        let mappings = self.mapping_findings(&planned, &built);
        let mut operations = Vec::new();
        let mut withheld = Vec::new();
        for ((_, op), operation) in planned.iter().zip(built) {
            let verdict = if !op.enforced {
                Some(Withheld::Observe)
            } else if subject_to_breaker(op) && hr_gate.is_some() {
                Some(Withheld::HrGate)
            } else if subject_to_breaker(op) && breaker.tripped && !breaker.approved {
                Some(Withheld::Breaker)
            } else {
                None
            };
            match verdict {
                Some(reason) => withheld.push((operation, reason)),
                None => operations.push(operation),
            }
        }

        Plan {
            mappings,
            governing: self.governing(),
            policies: self.policy_findings(),
            lockdowns: self.lockdown_findings_with_pending(&planned),
            operations,
            withheld,
            revocation_hash,
            breaker,
            hr_gate,
        }
    }
}
