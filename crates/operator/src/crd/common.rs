//! Types shared by the four custom resources: target references, employee selectors and
//! status conditions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// A reference to one Opal group or resource, by its display name or its Opal ID.
/// Exactly one of `name` and `id` must be set.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.id)").message("exactly one of name or id must be set"))]
pub struct TargetRef {
    /// The object's name as shown in Opal. Names must be unique among objects of the same kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub name: Option<String>,
    /// The object's Opal ID (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub id: Option<String>,
}

/// An access level (role) on an Opal group or resource, by remote ID or display name.
/// Exactly one of `remoteId` and `name` must be set. Opal's default access level has an empty
/// remote ID, so `remoteId: ""` names it explicitly.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.remoteId) != has(self.name)").message("exactly one of remoteId or name must be set"))]
pub struct AccessLevelRef {
    /// The access level's identifier in the end system, e.g. an IAM role ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub remote_id: Option<String>,
    /// The access level's display name in Opal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub name: Option<String>,
}

/// One Opal group or resource, optionally at a given access level. Exactly one of `group` and
/// `resource` must be set.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.group) != has(self.resource)").message("exactly one of group or resource must be set"))]
pub struct AccessTarget {
    /// An Opal group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<TargetRef>,
    /// An Opal resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<TargetRef>,
    /// The access level to grant or match. When omitted, Opal's default level (remote ID "") is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<AccessLevelRef>,
}

/// Selects employees by their HR attributes. At least one of `matchLabels` and
/// `matchExpressions` must be non-empty; all given requirements must hold (AND).
///
/// Attribute keys: `id`, `email`, `department`, `title`, `location`, `costCenter`,
/// `employmentType`, `managerId`, `managerEmail`, `status`, or `custom.<field>` for a custom
/// HR field.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.matchLabels) > 0 || size(self.matchExpressions) > 0").message("selector must have at least one matchLabels entry or matchExpressions requirement"))]
pub struct EmployeeSelector {
    /// Attribute equality requirements: every listed attribute must equal the given value
    /// (case-insensitive).
    #[serde(default)]
    #[schemars(extend("maxProperties" = 32))]
    #[x_kube(validation = Rule::new("self.all(k, k in ['id', 'email', 'department', 'title', 'location', 'costCenter', 'employmentType', 'managerId', 'managerEmail', 'status'] || (k.startsWith('custom.') && size(k) > 7))").message("unknown attribute key: use id, email, department, title, location, costCenter, employmentType, managerId, managerEmail, status or custom.<field>"))]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements on attributes.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub match_expressions: Vec<AttributeRequirement>,
}

/// A requirement on one employee attribute. `In` and `NotIn` need at least one value,
/// `Exists` and `DoesNotExist` take none, and `Matches` takes exactly one regular expression.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : true").message("operators In and NotIn require at least one value"))]
#[x_kube(validation = Rule::new("self.operator in ['Exists', 'DoesNotExist'] ? size(self.values) == 0 : true").message("operators Exists and DoesNotExist take no values"))]
#[x_kube(validation = Rule::new("self.operator == 'Matches' ? size(self.values) == 1 : true").message("operator Matches takes exactly one regular expression"))]
pub struct AttributeRequirement {
    /// The attribute key (see the selector's description for the known keys).
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self in ['id', 'email', 'department', 'title', 'location', 'costCenter', 'employmentType', 'managerId', 'managerEmail', 'status'] || (self.startsWith('custom.') && size(self) > 7)").message("unknown attribute key: use id, email, department, title, location, costCenter, employmentType, managerId, managerEmail, status or custom.<field>"))]
    pub key: String,
    /// How the attribute is compared with the values.
    pub operator: SelectorOperator,
    /// The values to compare with (case-insensitive), or one regular expression for `Matches`.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(max = 1024)))]
    pub values: Vec<String>,
}

/// Operator of an attribute requirement: `In`, `NotIn`, `Exists`, `DoesNotExist` or `Matches`
/// (the attribute matches a regular expression, anchored at both ends).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Matches,
}

/// Whether a condition holds: `True`, `False` or `Unknown`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One observation of the object's state, following the Kubernetes condition conventions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type in CamelCase, e.g. `Ready`, `Synced` or `Drifted`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// A CamelCase reason for the last transition, e.g. `ReconcileSuccess` or `BlastRadiusExceeded`.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// Human-readable detail; carries the upstream error text when something failed.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

/// Condition types used across the four kinds.
pub mod condition_types {
    /// The desired state is realised.
    pub const READY: &str = "Ready";
    /// The last reconcile completed.
    pub const SYNCED: &str = "Synced";
    /// Opal differs from the desired state.
    pub const DRIFTED: &str = "Drifted";
    /// A lockdown is in force.
    pub const ACTIVE: &str = "Active";
    /// A notification channel is failing; access changes still proceed.
    pub const NOTIFICATIONS_DEGRADED: &str = "NotificationsDegraded";
}

/// Annotations the operator reads on any of its custom resources.
pub mod annotations {
    /// `"true"` pauses reconciliation of the object (`Synced=False`, reason `Paused`).
    pub const PAUSED: &str = "opal-operator.io/paused";
    /// Approves the revocations of exactly one tripped plan, by its hash (AccessPolicy).
    pub const APPROVE_PLAN: &str = "opal-operator.io/approve-plan";
    /// Any new value triggers a review campaign now (ReviewSchedule).
    pub const RUN_NOW: &str = "opal-operator.io/run-now";
}

/// Enforcement mode: `Enforce` (default) changes Opal; `Observe` only reports drift and emits
/// "would grant" / "would revoke" Events.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Enforcement {
    #[default]
    Enforce,
    Observe,
}

/// Schema of an optional enum field: the enum's values plus `nullable`. The generated default
/// lists `null` among the enum values, which `kubectl explain` shows as `<no value>`.
pub(crate) fn optional_enum<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<T>();
    schema.insert("nullable".to_owned(), true.into());
    schema
}
