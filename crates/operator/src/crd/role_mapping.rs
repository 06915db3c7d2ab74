//! `RoleMapping`: birthright access in Opal computed from HR attributes.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AccessTarget, Condition, EmployeeSelector, Enforcement};
use crate::engine::{ChangeAction, PendingChange};

/// Grants Opal groups and resources to every active employee the selector matches.
///
/// Desired access is the union over all RoleMappings, so two mappings on one target never
/// fight. A mapping governs only targets its namespace is permitted to govern by an
/// AccessPolicy `tenancy` rule; otherwise it grants nothing and reports why.
// Each `printcolumn(...)` repeats the same keys, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "opal-operator.io",
    version = "v1alpha1",
    kind = "RoleMapping",
    plural = "rolemappings",
    shortname = "rm",
    category = "opal",
    namespaced,
    status = "RoleMappingStatus",
    doc = "Birthright access: which Opal groups and resources employees get from their HR attributes.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.enforcement"),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.matchedEmployees"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredGrants"
    ),
    printcolumn(name = "To-Grant", type_ = "integer", json_path = ".status.toGrant"),
    printcolumn(name = "To-Revoke", type_ = "integer", json_path = ".status.toRevoke"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Synced")].reason"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RoleMappingSpec {
    /// Which employees this mapping applies to. Only active employees match: HR status active
    /// and start date reached (or within `preStartDays`).
    pub selector: EmployeeSelector,
    /// Grant access this many days before an employee's start date (0 = on the start date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 90))]
    pub pre_start_days: Option<i32>,
    /// The Opal groups and resources every matched employee should have.
    #[schemars(length(min = 1, max = 200))]
    pub grants: Vec<AccessTarget>,
    /// `Authoritative` (default): on the targets this mapping governs, remove grants nobody
    /// desires, except exemptions (time-bound grants such as approved just-in-time access,
    /// protected users, access Opal derives through access rules or groups, and `exceptions`).
    /// `Additive`: only add grants, never remove.
    #[serde(default)]
    pub membership: MembershipMode,
    /// `Enforce` (default) changes Opal; `Observe` reports drift and changes nothing.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Email addresses of users whose existing grants on the governed targets are never removed
    /// by this mapping.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 254)))]
    pub exceptions: Vec<String>,
    /// When true, deleting this mapping revokes the grants only it desired (a finalizer does the
    /// work). When false (default), deleting the mapping leaves Opal as it is.
    #[serde(default)]
    pub revoke_on_delete: bool,
}

/// How a mapping treats grants on its targets that no mapping desires: `Authoritative`
/// (default) removes them, `Additive` leaves them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MembershipMode {
    #[default]
    Authoritative,
    Additive,
}

/// What the operator last observed and did for this mapping.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleMappingStatus {
    /// Current observations: `Ready`, `Synced` and `Drifted`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Active employees the selector matches.
    #[serde(default)]
    pub matched_employees: i32,
    /// Matched employees with no Opal user of the same email.
    #[serde(default)]
    pub unmatched_employees: i32,
    /// A bounded sample of the unmatched employees' emails.
    #[serde(default)]
    pub unmatched_sample: Vec<String>,
    /// Grants this mapping desires.
    #[serde(default)]
    pub desired_grants: i32,
    /// Desired grants that exist in Opal.
    #[serde(default)]
    pub actual_grants: i32,
    /// Grants to add.
    #[serde(default)]
    pub to_grant: i32,
    /// Grants to remove.
    #[serde(default)]
    pub to_revoke: i32,
    /// A bounded sample of the pending changes.
    #[serde(default)]
    pub pending_changes: Vec<PendingChange>,
    /// When the last reconcile of this mapping completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<DateTime<Utc>>,
    /// Operations that failed in the last reconcile.
    #[serde(default)]
    pub failed_operations: i32,
    /// A bounded sample of the failures, with the upstream error text.
    #[serde(default)]
    pub failures: Vec<OperationFailure>,
}

/// One operation that failed, with the error Opal returned.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OperationFailure {
    /// `Grant` or `Revoke`.
    pub action: ChangeAction,
    /// The user's email.
    pub user: String,
    /// `group/<name>` or `resource/<name>`.
    pub target: String,
    /// The upstream error text.
    pub message: String,
}
