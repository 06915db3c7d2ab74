//! Verdicts and findings the plan reports: the HR flood gate, the revocation breaker, and what
//! each RoleMapping and AccessPolicy shows in status.

use super::*;

impl Planner<'_> {
    /// The HR flood gate's verdict on the current snapshot.
    pub(super) fn hr_gate(&self) -> Option<String> {
        if let Some(reason) = &self.hr_failed {
            return Some(format!("HR snapshot unavailable: {reason}"));
        }
        if let Some(reason) = &self.hr_incomplete {
            return Some(format!("HR snapshot incomplete: {reason}"));
        }
        let count = self.employee_count;
        if count == 0 {
            return Some("HR snapshot is empty".to_owned());
        }
        if let Some(minimum) = self.policy.min_employees
            && count < minimum
        {
            return Some(format!(
                "HR snapshot has {count} employees, fewer than minEmployees {minimum}"
            ));
        }
        if let (Some(limit), Some(last)) = (
            self.policy.max_shrink_percent,
            self.world.last_good_employee_count,
        ) && last > 0
            && count < last
            && (last - count) * 100 > limit * last
        {
            return Some(format!(
                "HR snapshot shrank from {last} to {count} employees, more than maxShrinkPercent {limit}%"
            ));
        }
        None
    }

    pub(super) fn breaker(&self, revocations: usize, hash: &str) -> BreakerFinding {
        let mut reasons = Vec::new();
        if let Some(limit) = self.policy.max_revocations
            && revocations > limit
        {
            reasons.push(format!(
                "{revocations} revocations exceed maxRevocations {limit}"
            ));
        }
        if let Some(percent) = self.policy.max_revocation_percent
            && revocations > 0
            && revocations * 100 > percent * self.governed_grants.max(1)
        {
            reasons.push(format!(
                "{revocations} of {} governed grants exceed maxRevocationPercent {percent}%",
                self.governed_grants
            ));
        }
        for (key, why) in &self.policy.invalid_safety {
            reasons.push(format!(
                "AccessPolicy {key} has safety limits that cannot be used ({why})"
            ));
        }
        let tripped = !reasons.is_empty();
        BreakerFinding {
            revocations,
            governed_grants: self.governed_grants,
            tripped,
            approved: tripped && self.policy.approved_hashes.iter().any(|h| h == hash),
            reason: reasons.join("; "),
        }
    }

    pub(super) fn mapping_findings(
        &self,
        planned: &[(UserIdx, PlannedOp)],
        built: &[Operation],
    ) -> BTreeMap<ObjectKey, MappingFindings> {
        let mut findings: Vec<MappingFindings> = self
            .mappings
            .iter()
            .enumerate()
            .map(|(index, mapping)| {
                let totals = &self.totals[index];
                let unmatched = &self.unmatched[index];
                MappingFindings {
                    matched_employees: self.matched[index],
                    unmatched_employees: unmatched.len(),
                    unmatched_sample: unmatched
                        .iter()
                        .take(SAMPLE_LIMIT)
                        .map(|&employee| self.employee(employee).email.clone())
                        .collect(),
                    desired_grants: totals.desired,
                    actual_grants: totals.actual,
                    to_grant: totals.to_grant,
                    to_revoke: totals.to_revoke,
                    pending_sample: Vec::new(),
                    problems: mapping.problems.clone(),
                    enforced: mapping.enforced,
                }
            })
            .collect();
        for ((_, op), operation) in planned.iter().zip(built) {
            let concerned: &[MappingIdx] = match &op.cause {
                CauseIdx::Mapping(mapping) => std::slice::from_ref(mapping),
                CauseIdx::Unwanted | CauseIdx::Offboarding => {
                    &self.governance[op.target as usize].mappings
                }
                CauseIdx::Lockdown(_) => &[],
            };
            for &mapping in concerned {
                let sample = &mut findings[mapping as usize].pending_sample;
                if sample.len() < SAMPLE_LIMIT {
                    sample.push(PendingChange {
                        action: operation.action,
                        user: operation.user_email.clone(),
                        target: operation.target_label(),
                        access_level: operation.access_level_remote_id.clone(),
                    });
                }
            }
        }
        self.mappings
            .iter()
            .map(|mapping| mapping.key.clone())
            .zip(findings)
            .collect()
    }

    pub(super) fn governing(&self) -> BTreeMap<(TargetKind, String), Vec<ObjectKey>> {
        self.governance
            .iter()
            .zip(&self.world.opal.targets)
            .filter(|(governance, _)| !governance.mappings.is_empty())
            .map(|(governance, target)| {
                let keys = governance
                    .mappings
                    .iter()
                    .map(|&mapping| self.mappings[mapping as usize].key.clone())
                    .collect();
                ((target.kind, target.id.clone()), keys)
            })
            .collect()
    }

    pub(super) fn policy_findings(&self) -> BTreeMap<ObjectKey, PolicyFindings> {
        self.world
            .policies
            .iter()
            .map(|policy| {
                let namespace = &policy.key.namespace;
                let in_namespace: Vec<&CompiledMapping> = self
                    .mappings
                    .iter()
                    .filter(|mapping| &mapping.key.namespace == namespace)
                    .collect();
                let targets: FxHashSet<TargetIdx> = in_namespace
                    .iter()
                    .flat_map(|mapping| mapping.grants.iter().map(|(target, _)| *target))
                    .collect();
                (
                    policy.key.clone(),
                    PolicyFindings {
                        governed_mappings: in_namespace.len(),
                        governed_targets: targets.len(),
                        outside_operator_namespace: *namespace != self.world.operator_namespace,
                        invalid_offboarding: self
                            .policy
                            .invalid_offboarding
                            .get(&policy.key)
                            .cloned(),
                        invalid_safety: self.policy.invalid_safety.get(&policy.key).cloned(),
                    },
                )
            })
            .collect()
    }
}
