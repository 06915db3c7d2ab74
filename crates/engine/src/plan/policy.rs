//! The operator namespace's AccessPolicies merged into one (the strictest limit wins), and the
//! tenancy rules that say which namespace may govern or lock which target.

use super::*;
use crate::{OffboardingRules, TenancyGrant};

/// Merged from the AccessPolicies of the operator namespace.
#[derive(Default)]
pub(super) struct MergedPolicy {
    pub(super) max_revocations: Option<usize>,
    pub(super) max_revocation_percent: Option<usize>,
    pub(super) min_employees: Option<usize>,
    pub(super) max_shrink_percent: Option<usize>,
    pub(super) protected_emails: FxHashSet<String>,
    pub(super) offboarding: Option<OffboardingRules>,
    /// Policies whose offboarding section cannot be read, with why: offboarding is held.
    pub(super) invalid_offboarding: FxHashMap<ObjectKey, String>,
    /// Policies with safety limits that cannot be read, with why: the breaker trips.
    pub(super) invalid_safety: BTreeMap<ObjectKey, String>,
    pub(super) approved_hashes: Vec<String>,
}

pub(super) fn merge_policies(world: &World) -> MergedPolicy {
    let mut merged = MergedPolicy::default();
    fn stricter(current: Option<usize>, candidate: Option<usize>) -> Option<usize> {
        match (current, candidate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    for policy in &world.policies {
        if policy.key.namespace != world.operator_namespace {
            continue;
        }
        let rules = &policy.rules;
        if let Some(hash) = &policy.approved_plan_hash {
            merged.approved_hashes.push(hash.clone());
        }
        if let Some(safety) = &rules.safety {
            merged.max_revocations = stricter(merged.max_revocations, safety.max_revocations);
            merged.max_revocation_percent =
                stricter(merged.max_revocation_percent, safety.max_revocation_percent);
            merged
                .protected_emails
                .extend(safety.protected_users.iter().map(|e| e.to_lowercase()));
            merged.min_employees = match (merged.min_employees, safety.min_employees) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            merged.max_shrink_percent =
                stricter(merged.max_shrink_percent, safety.max_shrink_percent);
            if !safety.invalid.is_empty() {
                merged
                    .invalid_safety
                    .insert(policy.key.clone(), safety.invalid.join("; "));
            }
        }
        match &rules.offboarding {
            None => {}
            Some(Err(why)) => {
                merged.invalid_offboarding.insert(
                    policy.key.clone(),
                    format!("{why}; offboarding revocations are held"),
                );
            }
            Some(Ok(candidate)) => {
                // Several policies: the widest scope and the earliest revocation win.
                merged.offboarding = Some(match merged.offboarding {
                    None => *candidate,
                    Some(existing) => OffboardingRules {
                        scope: if existing.scope == OffboardingScope::All {
                            existing.scope
                        } else {
                            candidate.scope
                        },
                        when: earliest(existing.when, candidate.when),
                    },
                });
            }
        }
    }
    merged
}

fn earliest(a: OffboardingWhen, b: OffboardingWhen) -> OffboardingWhen {
    let rank = |when| match when {
        OffboardingWhen::Immediately => (0, chrono::Duration::zero()),
        OffboardingWhen::OnTerminationDate => (1, chrono::Duration::zero()),
        OffboardingWhen::After(delay) => (2, delay),
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// Tenancy rules from the operator namespace's AccessPolicies.
pub(super) struct TenancyRules<'w> {
    rules: Vec<&'w TenancyGrant>,
}

impl<'w> TenancyRules<'w> {
    pub(super) fn new(world: &'w World) -> Self {
        Self {
            rules: world
                .policies
                .iter()
                .filter(|policy| policy.key.namespace == world.operator_namespace)
                .flat_map(|policy| policy.rules.tenancy.iter())
                .collect(),
        }
    }

    pub(super) fn permits(&self, namespace: &str, target: &crate::OpalTarget) -> bool {
        self.matching(namespace, target, false)
    }

    pub(super) fn permits_lockdown(&self, namespace: &str, target: &crate::OpalTarget) -> bool {
        self.matching(namespace, target, true)
    }

    pub(super) fn matching(
        &self,
        namespace: &str,
        target: &crate::OpalTarget,
        lockdown: bool,
    ) -> bool {
        self.rules.iter().any(|rule| {
            rule.permits(
                namespace,
                (&target.id, &target.name, &target.tags),
                lockdown,
            )
        })
    }
}

/// What one Lockdown may lock: everything in the operator namespace, elsewhere only the
/// targets a tenancy rule with `allowLockdowns` permits to its namespace.
pub(super) enum LockReach {
    Everything,
    Only(BTreeSet<TargetIdx>),
}

impl LockReach {
    pub(super) fn of(namespace: &str, world: &World, tenancy: &TenancyRules<'_>) -> Self {
        if namespace == world.operator_namespace {
            return LockReach::Everything;
        }
        LockReach::Only(
            world
                .opal
                .targets
                .iter()
                .enumerate()
                .filter(|(_, target)| tenancy.permits_lockdown(namespace, target))
                .map(|(index, _)| index as TargetIdx)
                .collect(),
        )
    }

    pub(super) fn covers(&self, target: TargetIdx) -> bool {
        match self {
            LockReach::Everything => true,
            LockReach::Only(targets) => targets.contains(&target),
        }
    }

    /// The finding for what was refused, naming what is missing.
    pub(super) fn refusal(
        &self,
        namespace: &str,
        world: &World,
        refused: Vec<String>,
    ) -> Option<String> {
        let rule = format!(
            "a tenancy rule with allowLockdowns in an AccessPolicy of {}",
            world.operator_namespace
        );
        match self {
            LockReach::Only(targets) if targets.is_empty() => Some(format!(
                "namespace {namespace} may not lock anything: no {rule} lists it"
            )),
            _ if refused.is_empty() => None,
            _ => Some(format!(
                "namespace {namespace} may not lock {}: no {rule} permits it",
                refused.join(", ")
            )),
        }
    }
}
