//! The operator namespace's AccessPolicies merged into one (the strictest limit wins), and the
//! tenancy rules that say which namespace may govern or lock which target.

use super::*;

/// Merged from the AccessPolicies of the operator namespace.
#[derive(Default)]
pub(super) struct MergedPolicy {
    pub(super) max_revocations: Option<usize>,
    pub(super) max_revocation_percent: Option<usize>,
    pub(super) min_employees: Option<usize>,
    pub(super) max_shrink_percent: Option<usize>,
    pub(super) protected_emails: FxHashSet<String>,
    pub(super) offboarding: Option<(OffboardingScope, OffboardingTiming, chrono::Duration)>,
    /// Policies whose offboarding delay cannot be parsed, with why: offboarding is held.
    pub(super) invalid_offboarding_delays: FxHashMap<ObjectKey, String>,
    pub(super) approved_hashes: Vec<String>,
}

pub(super) fn merge_policies(world: &World) -> MergedPolicy {
    let mut merged = MergedPolicy::default();
    fn stricter(current: Option<usize>, candidate: Option<i32>) -> Option<usize> {
        let candidate = candidate.and_then(|value| usize::try_from(value).ok());
        match (current, candidate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    for policy in &world.policies {
        if policy.key.namespace != world.operator_namespace {
            continue;
        }
        let spec = &policy.spec;
        if let Some(hash) = &policy.approved_plan_hash {
            merged.approved_hashes.push(hash.clone());
        }
        if let Some(safety) = &spec.safety {
            merged.max_revocations = stricter(merged.max_revocations, safety.max_revocations);
            merged.max_revocation_percent =
                stricter(merged.max_revocation_percent, safety.max_revocation_percent);
            merged
                .protected_emails
                .extend(safety.protected_users.iter().map(|e| e.to_lowercase()));
            if let Some(gate) = &safety.hris_flood_gate {
                let min = gate.min_employees.and_then(|v| usize::try_from(v).ok());
                merged.min_employees = match (merged.min_employees, min) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                merged.max_shrink_percent =
                    stricter(merged.max_shrink_percent, gate.max_shrink_percent);
            }
        }
        if let Some(offboarding) = &spec.offboarding {
            let delay = match offboarding.after.as_deref().map(parse_go_duration) {
                None => chrono::Duration::zero(),
                Some(Ok(delay)) => delay,
                Some(Err(error)) => {
                    merged.invalid_offboarding_delays.insert(
                        policy.key.clone(),
                        format!("offboarding.after: {error}; offboarding revocations are held"),
                    );
                    continue;
                }
            };
            let candidate = (offboarding.revoke, offboarding.when, delay);
            // Several policies: the widest scope and the earliest revocation win.
            merged.offboarding = Some(match merged.offboarding {
                None => candidate,
                Some((scope, timing, existing_delay)) => (
                    if scope == OffboardingScope::All {
                        scope
                    } else {
                        candidate.0
                    },
                    earliest(timing, candidate.1),
                    existing_delay.min(delay),
                ),
            });
        }
    }
    merged
}

fn earliest(a: OffboardingTiming, b: OffboardingTiming) -> OffboardingTiming {
    let rank = |timing| match timing {
        OffboardingTiming::Immediately => 0,
        OffboardingTiming::OnTerminationDate => 1,
        OffboardingTiming::After => 2,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// Tenancy rules from the operator namespace's AccessPolicies.
pub(super) struct TenancyRules<'w> {
    rules: Vec<&'w crate::crd::TenancyRule>,
}

impl<'w> TenancyRules<'w> {
    pub(super) fn new(world: &'w World) -> Self {
        Self {
            rules: world
                .policies
                .iter()
                .filter(|policy| policy.key.namespace == world.operator_namespace)
                .flat_map(|policy| policy.spec.tenancy.iter())
                .collect(),
        }
    }

    pub(super) fn permits(&self, namespace: &str, target: &crate::engine::OpalTarget) -> bool {
        self.matching(namespace, target, false)
    }

    pub(super) fn permits_lockdown(
        &self,
        namespace: &str,
        target: &crate::engine::OpalTarget,
    ) -> bool {
        self.matching(namespace, target, true)
    }

    pub(super) fn matching(
        &self,
        namespace: &str,
        target: &crate::engine::OpalTarget,
        lockdown: bool,
    ) -> bool {
        self.rules.iter().any(|rule| {
            (rule.allow_lockdowns || !lockdown)
                && rule.namespaces.iter().any(|n| n == namespace)
                && (rule.target_ids.contains(&target.id)
                    || rule.target_names.contains(&target.name)
                    || (!rule.target_tags.is_empty()
                        && rule.target_tags.iter().all(|(key, value)| {
                            target
                                .tags
                                .iter()
                                .any(|(k, v)| k == key && (value.is_empty() || v == value))
                        })))
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
