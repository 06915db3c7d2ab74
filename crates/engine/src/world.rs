//! Everything the planner looks at: HR data, Opal's current access, and the custom resources.
//! Plain data, filled by the controller, `plan`, `run --standalone` or tests.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{RevokedGrant, TargetKind};
use super::rules::{LockEnd, LockdownRules, MappingRules, PolicyRules};
use crate::Employee;

/// Namespace and name of a custom resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One direct grant: a user's access level on a group or resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantKey {
    pub kind: TargetKind,
    pub target_id: String,
    pub user_id: String,
    /// "" is Opal's default level.
    pub access_level_remote_id: String,
}

impl GrantKey {
    pub fn of_revoked(grant: &RevokedGrant) -> Self {
        Self {
            kind: grant.kind,
            target_id: grant.target_id.clone(),
            user_id: grant.user_id.clone(),
            access_level_remote_id: grant.access_level_remote_id.clone(),
        }
    }
}

/// The HR snapshot the plan is computed from, or why there is none.
#[derive(Clone, Debug)]
pub enum HrState {
    Snapshot(Vec<Employee>),
    /// Some records could not be read: grants still flow, revocations are held (a person
    /// missing from a snapshot looks like a departure).
    Incomplete {
        employees: Vec<Employee>,
        reason: String,
    },
    /// The source failed; no grant or revocation may rely on HR data.
    Failed(String),
}

impl HrState {
    /// The employees read, complete or not; none when the source failed.
    pub fn employees(&self) -> &[Employee] {
        match self {
            HrState::Snapshot(employees) | HrState::Incomplete { employees, .. } => employees,
            HrState::Failed(_) => &[],
        }
    }
}

/// An Opal user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpalUser {
    pub id: String,
    pub email: String,
}

/// An Opal group or resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpalTarget {
    pub kind: TargetKind,
    pub id: String,
    pub name: String,
    /// Opal tags as (key, value); a tag without a value has an empty value.
    pub tags: Vec<(String, String)>,
    /// Opal itself derives this target's membership (e.g. an access-rule group): the operator
    /// never grants or revokes on it.
    pub derived_membership: bool,
}

/// A direct grant that exists in Opal. Indirect access (through a group) is not listed: the
/// operator only manages direct grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpalGrant {
    pub kind: TargetKind,
    pub target_id: String,
    pub user_id: String,
    pub access_level_remote_id: String,
    pub access_level_name: String,
    /// Set for time-bound grants such as approved just-in-time requests.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Opal's current state as observed.
#[derive(Clone, Debug, Default)]
pub struct OpalState {
    pub users: Vec<OpalUser>,
    pub targets: Vec<OpalTarget>,
    pub grants: Vec<OpalGrant>,
}

impl OpalState {
    /// Swaps every grant of `user_ids` for `grants` (a fresh read of just those users).
    pub fn replace_user_grants(
        &mut self,
        user_ids: &std::collections::BTreeSet<String>,
        grants: Vec<OpalGrant>,
    ) {
        self.grants
            .retain(|grant| !user_ids.contains(&grant.user_id));
        self.grants
            .extend(grants.into_iter().filter(|g| user_ids.contains(&g.user_id)));
    }

    /// Swaps every grant on `targets` (kind and id) for `grants` (a fresh read of them).
    pub fn replace_target_grants(
        &mut self,
        targets: &std::collections::BTreeSet<(TargetKind, String)>,
        grants: Vec<OpalGrant>,
    ) {
        let on_targets =
            |grant: &OpalGrant| targets.contains(&(grant.kind, grant.target_id.clone()));
        self.grants.retain(|grant| !on_targets(grant));
        self.grants.extend(grants.into_iter().filter(on_targets));
    }
}

/// A RoleMapping as the planner sees it.
#[derive(Clone, Debug)]
pub struct MappingInput {
    pub key: ObjectKey,
    pub rules: MappingRules,
    /// Paused mappings behave like `Observe`: their grants are kept but nothing is changed.
    pub paused: bool,
    /// Deletion has been requested (the object waits on a finalizer).
    pub deleting: bool,
}

impl MappingInput {
    /// A mapping being deleted that [`MappingRules::revokes_on_delete`] retires: it keeps
    /// governing its targets but desires nobody, so the plan revokes exactly the grants no
    /// other mapping desires (exceptions, the breaker and the HR gate still apply).
    pub fn retiring(&self) -> bool {
        self.deleting && self.rules.revokes_on_delete()
    }
}

/// An AccessPolicy as the planner sees it.
#[derive(Clone, Debug)]
pub struct PolicyInput {
    pub key: ObjectKey,
    pub rules: PolicyRules,
    /// The plan hash a person approved with the `opal-operator.io/approve-plan` annotation.
    pub approved_plan_hash: Option<String>,
}

/// A Lockdown as the planner sees it.
#[derive(Clone, Debug)]
pub struct LockdownInput {
    pub key: ObjectKey,
    pub rules: LockdownRules,
    /// When the lockdown first became active; a duration counts from here (or from now when
    /// it has not activated yet).
    pub activated_at: Option<DateTime<Utc>>,
    /// Its status says `Released`: the release (and restore) is done.
    pub released: bool,
    /// Deletion has been requested; the lockdown waits on its finalizer for release.
    pub deleting: bool,
}

impl LockdownInput {
    /// When the lockdown ends: at its time, or its duration counted from activation (from
    /// `now` while it has not activated). An end that cannot be read is an error, never
    /// "no end".
    pub fn expires_at(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
        match &self.rules.end {
            LockEnd::Never => Ok(None),
            LockEnd::At(at) => Ok(Some(*at)),
            LockEnd::After(duration) => Ok(Some(self.activated_at.unwrap_or(now) + *duration)),
            LockEnd::Invalid(why) => Err(why.clone()),
        }
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        matches!(self.expires_at(now), Ok(Some(at)) if at <= now)
    }

    /// In force: revokes and keeps its subjects out. Not once released, deleted or expired, nor
    /// with an end that cannot be read.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        !self.released
            && !self.deleting
            && matches!(self.expires_at(now), Ok(end) if end.is_none_or(|at| now < at))
    }

    /// Due for release now: deleted or expired, and not released yet.
    pub fn release_due(&self, now: DateTime<Utc>) -> bool {
        !self.released && (self.deleting || self.expired(now))
    }
}

/// Everything one plan is computed from.
#[derive(Clone, Debug)]
pub struct World {
    pub hr: HrState,
    /// Employee count of the last snapshot that passed the flood gate, for `maxShrinkPercent`.
    pub last_good_employee_count: Option<usize>,
    pub opal: OpalState,
    pub mappings: Vec<MappingInput>,
    pub policies: Vec<PolicyInput>,
    pub lockdowns: Vec<LockdownInput>,
    /// Only AccessPolicies in this namespace may grant tenancy.
    pub operator_namespace: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn grant(kind: TargetKind, target: &str, user: &str) -> OpalGrant {
        OpalGrant {
            kind,
            target_id: target.into(),
            user_id: user.into(),
            access_level_remote_id: String::new(),
            access_level_name: String::new(),
            expires_at: None,
        }
    }

    fn state() -> OpalState {
        OpalState {
            grants: vec![
                grant(TargetKind::Group, "g1", "u1"),
                grant(TargetKind::Group, "g1", "u2"),
                grant(TargetKind::Resource, "r1", "u1"),
                grant(TargetKind::Group, "g2", "u2"),
            ],
            ..OpalState::default()
        }
    }

    #[test]
    fn a_fresh_read_of_users_replaces_only_their_grants() {
        let mut opal = state();
        let users = BTreeSet::from(["u1".to_owned()]);
        opal.replace_user_grants(
            &users,
            vec![
                grant(TargetKind::Group, "g2", "u1"),
                grant(TargetKind::Group, "g9", "u3"),
            ],
        );
        let mut left: Vec<_> = opal
            .grants
            .iter()
            .map(|g| (g.target_id.as_str(), g.user_id.as_str()))
            .collect();
        left.sort();
        // u1 now holds exactly g2; u2 untouched; u3 was not read, so it is not added.
        assert_eq!(left, vec![("g1", "u2"), ("g2", "u1"), ("g2", "u2")]);
    }

    #[test]
    fn a_fresh_read_of_targets_replaces_only_their_members() {
        let mut opal = state();
        let targets = BTreeSet::from([(TargetKind::Group, "g1".to_owned())]);
        opal.replace_target_grants(
            &targets,
            vec![
                grant(TargetKind::Group, "g1", "u3"),
                grant(TargetKind::Resource, "g1", "u4"),
            ],
        );
        let mut left: Vec<_> = opal
            .grants
            .iter()
            .map(|g| (g.kind, g.target_id.as_str(), g.user_id.as_str()))
            .collect();
        left.sort();
        // A resource that happens to share the id is another target and stays out.
        assert_eq!(
            left,
            vec![
                (TargetKind::Group, "g1", "u3"),
                (TargetKind::Group, "g2", "u2"),
                (TargetKind::Resource, "r1", "u1"),
            ]
        );
    }
}
