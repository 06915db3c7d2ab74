//! Everything the planner looks at: HR data, Opal's current access, and the custom resources.
//! Plain data, filled by the controller, `plan`, `run --standalone` or tests.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crd::{AccessPolicySpec, LockdownSpec, RoleMappingSpec, TargetKind};
use crate::hris::Employee;

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

/// A RoleMapping as the planner sees it.
#[derive(Clone, Debug)]
pub struct MappingInput {
    pub key: ObjectKey,
    pub spec: RoleMappingSpec,
    /// Paused mappings behave like `Observe`: their grants are kept but nothing is changed.
    pub paused: bool,
}

/// An AccessPolicy as the planner sees it.
#[derive(Clone, Debug)]
pub struct PolicyInput {
    pub key: ObjectKey,
    pub spec: AccessPolicySpec,
    /// The plan hash a person approved with the `opal-operator.io/approve-plan` annotation.
    pub approved_plan_hash: Option<String>,
}

/// A Lockdown as the planner sees it.
#[derive(Clone, Debug)]
pub struct LockdownInput {
    pub key: ObjectKey,
    pub spec: LockdownSpec,
    /// When the lockdown first became active; `duration` counts from here (or from now when
    /// it has not activated yet).
    pub activated_at: Option<DateTime<Utc>>,
    /// Released (deleted or expired and restored): no longer in force.
    pub released: bool,
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
