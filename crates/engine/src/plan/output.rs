//! What a plan says: the operations, what is held back and why, and each object's findings.

use super::*;

/// How many pending changes and unmatched emails a finding keeps.
pub const SAMPLE_LIMIT: usize = 20;

/// Why a change is due.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A RoleMapping desires the grant.
    Mapping(ObjectKey),
    /// An authoritative target holds a grant nobody desires.
    Unwanted,
    /// The user was terminated and offboarding is due.
    Offboarding,
    /// A Lockdown is in force.
    Lockdown(ObjectKey),
}

/// One call the executor makes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub action: ChangeAction,
    pub kind: TargetKind,
    pub target_id: String,
    pub target_name: String,
    pub user_id: String,
    pub user_email: String,
    pub access_level_remote_id: String,
    pub cause: Cause,
}

impl Operation {
    pub fn grant_key(&self) -> crate::GrantKey {
        crate::GrantKey {
            kind: self.kind,
            target_id: self.target_id.clone(),
            user_id: self.user_id.clone(),
            access_level_remote_id: self.access_level_remote_id.clone(),
        }
    }

    /// `group/<name>` or `resource/<name>`.
    pub fn target_label(&self) -> String {
        let kind = match self.kind {
            TargetKind::Group => "group",
            TargetKind::Resource => "resource",
        };
        format!("{kind}/{}", self.target_name)
    }
}

/// Why an operation the plan computed is not executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Withheld {
    /// Only Observe-mode or paused mappings call for it.
    Observe,
    /// The revocation breaker tripped and this plan is not approved.
    Breaker,
    /// The HR flood gate blocks revocations.
    HrGate,
}

/// A problem with one RoleMapping; each has a stable CamelCase reason for conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingProblem {
    /// A part of the spec that cannot be read (the apiserver's validation normally rejects it;
    /// manifests read from files skipped that).
    InvalidSpec(String),
    InvalidSelector(String),
    TargetNotFound(String),
    TargetAmbiguous(String),
    TargetNotPermitted(String),
    TargetDerived(String),
    AccessLevelNotFound {
        target: String,
        level: String,
    },
}

impl MappingProblem {
    pub fn reason(&self) -> &'static str {
        match self {
            MappingProblem::InvalidSpec(_) => "InvalidSpec",
            MappingProblem::InvalidSelector(_) => "InvalidSelector",
            MappingProblem::TargetNotFound(_) => "TargetNotFound",
            MappingProblem::TargetAmbiguous(_) => "TargetAmbiguous",
            MappingProblem::TargetNotPermitted(_) => "TargetNotPermitted",
            MappingProblem::TargetDerived(_) => "TargetDerived",
            MappingProblem::AccessLevelNotFound { .. } => "AccessLevelNotFound",
        }
    }

    pub fn message(&self) -> String {
        match self {
            MappingProblem::InvalidSpec(message) | MappingProblem::InvalidSelector(message) => {
                message.clone()
            }
            MappingProblem::TargetNotFound(target) => format!("{target} does not exist in Opal"),
            MappingProblem::TargetAmbiguous(target) => {
                format!("{target} names more than one Opal object; reference it by id")
            }
            MappingProblem::TargetNotPermitted(target) => {
                format!("no AccessPolicy tenancy rule permits this namespace to govern {target}")
            }
            MappingProblem::TargetDerived(target) => {
                format!("{target} has membership Opal derives (access rule); it cannot be granted")
            }
            MappingProblem::AccessLevelNotFound { target, level } => format!(
                "access level named {level:?} is not seen on {target}; reference it by remoteId"
            ),
        }
    }
}

/// What a RoleMapping's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingFindings {
    pub matched_employees: usize,
    pub unmatched_employees: usize,
    pub unmatched_sample: Vec<String>,
    pub desired_grants: usize,
    pub actual_grants: usize,
    pub to_grant: usize,
    pub to_revoke: usize,
    pub pending_sample: Vec<PendingChange>,
    pub problems: Vec<MappingProblem>,
    /// Enforce mode and not paused.
    pub enforced: bool,
}

/// What an AccessPolicy's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFindings {
    /// RoleMappings in the policy's namespace.
    pub governed_mappings: usize,
    /// Targets those mappings may govern.
    pub governed_targets: usize,
    /// The policy sits outside the operator namespace, so only its own namespace's view is
    /// reported; its safety, offboarding and tenancy settings are not applied.
    pub outside_operator_namespace: bool,
    /// Why its offboarding section cannot be used; every offboarding revocation is held
    /// meanwhile (the apiserver's CEL normally rejects such a value, `plan` and
    /// `run --standalone` read files that skipped it).
    pub invalid_offboarding: Option<String>,
    /// Why some of its safety limits cannot be used; the breaker trips until it is fixed.
    pub invalid_safety: Option<String>,
}

/// What a Lockdown's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockdownFindings {
    pub active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub locked_users: usize,
    pub locked_targets: usize,
    pub unresolved_subjects: Vec<String>,
    /// Revocations this lockdown still needs.
    pub to_revoke: usize,
    /// Set when its end (`duration`) cannot be read (the schema normally prevents it).
    pub invalid_duration: Option<String>,
    /// Deleted or expired and not released yet: the controller releases it (and restores what
    /// it revoked) in this sync.
    pub release_due: bool,
    /// What the lockdown's namespace may not lock, when it names any such thing; those
    /// subjects revoke nothing.
    pub not_permitted: Option<String>,
}

/// The revocation circuit breaker's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerFinding {
    /// Revocations subject to the breaker (lockdowns are not).
    pub revocations: usize,
    /// Direct grants on governed targets, the base of `maxRevocationPercent`.
    pub governed_grants: usize,
    pub tripped: bool,
    pub approved: bool,
    /// Which limit tripped, for the condition message.
    pub reason: String,
}

/// The plan: what to do, what is held back and why, and what each object's status shows.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Lockdown revocations first, then grants, then other revocations; each group ordered by
    /// target and user as they appear in the observed Opal state.
    pub operations: Vec<Operation>,
    pub withheld: Vec<(Operation, Withheld)>,
    /// SHA-256 over the breaker-governed revocations; a person approves exactly this plan.
    pub revocation_hash: String,
    pub breaker: BreakerFinding,
    /// Why the HR flood gate blocks revocations, if it does.
    pub hr_gate: Option<String>,
    pub mappings: BTreeMap<ObjectKey, MappingFindings>,
    pub policies: BTreeMap<ObjectKey, PolicyFindings>,
    pub lockdowns: BTreeMap<ObjectKey, LockdownFindings>,
    /// The RoleMappings permitted to govern each target (kind and Opal id) that any governs.
    pub governing: BTreeMap<(TargetKind, String), Vec<ObjectKey>>,
}

impl Plan {
    /// The objects an operation is reported on: the mapping or lockdown that causes it, or,
    /// for revocations no single mapping causes, every mapping permitted to govern the target
    /// (a mapping that merely names a target it may not govern hears nothing of it).
    pub fn owners_of(&self, op: &Operation) -> Vec<ObjectKey> {
        match &op.cause {
            Cause::Mapping(key) | Cause::Lockdown(key) => vec![key.clone()],
            Cause::Unwanted | Cause::Offboarding => self
                .governing
                .get(&(op.kind, op.target_id.clone()))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// True when Opal already matches every mapping, including what Observe-mode mappings
    /// only report: nothing to do and nothing held back. (A sync has done all it may when
    /// `operations` is empty.)
    pub fn is_converged(&self) -> bool {
        self.operations.is_empty() && self.withheld.is_empty()
    }
}

/// Stable hash of a set of revocations, independent of their order.
pub(super) fn revocation_hash(revocations: &[&Operation]) -> String {
    let mut lines: Vec<String> = revocations
        .iter()
        .map(|op| {
            format!(
                "{}\t{}\t{}\t{}",
                op.target_label(),
                op.target_id,
                op.user_id,
                op.access_level_remote_id
            )
        })
        .collect();
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
