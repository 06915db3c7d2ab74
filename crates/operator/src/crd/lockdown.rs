//! `Lockdown`: incident suspension of users, groups or resources.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AccessTarget, Condition, TargetRef, optional_enum};
use crate::engine::RevokedGrant;

/// Suspends access during an incident. While active it outranks every RoleMapping: a locked
/// user is never re-granted. No circuit breaker applies. On expiry or deletion the revoked
/// access is restored when `restoreOnRelease` is true.
///
/// Tenancy: a Lockdown in the operator namespace may lock anyone and anything. Elsewhere it is
/// honoured only on the targets an operator-namespace AccessPolicy tenancy rule with
/// `allowLockdowns` permits to its namespace (a locked user loses only their grants there);
/// anything else revokes nothing and reports `Ready=False`, reason `NotPermitted`.
///
/// The operator keeps what it revoked in a Secret in its own namespace, which only it writes,
/// and restores from that record alone.
// Each `printcolumn(...)` repeats the same keys, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "opal-operator.io",
    version = "v1alpha1",
    kind = "Lockdown",
    plural = "lockdowns",
    shortname = "ld",
    category = "opal",
    namespaced,
    status = "LockdownStatus",
    doc = "Incident suspension: revokes the subjects' Opal access at once and restores it on release.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Revoked",
        type_ = "integer",
        json_path = ".status.revokedCount"
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Incident", type_ = "string", json_path = ".spec.incident"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.expiresAt) != has(self.duration)").message("exactly one of expiresAt or duration must be set"))]
pub struct LockdownSpec {
    /// Who or what is locked down.
    #[schemars(length(min = 1, max = 100))]
    pub subjects: Vec<LockdownSubject>,
    /// Which of a locked user's grants are revoked; defaults to all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<LockdownScope>,
    /// Users (by email) who keep their access to locked groups and resources.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 254)))]
    pub break_glass: Vec<String>,
    /// Why; recorded in Events, notifications and the audit trail.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// The incident this belongs to, e.g. a ticket key or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub incident: Option<String>,
    /// When the lockdown ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the lockdown lasts from activation, as a Go duration such as `4h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("duration must be a positive duration such as 4h or 30m"))]
    pub duration: Option<String>,
    /// Whether revoked access is restored on expiry or deletion (default true).
    #[serde(default = "default_true")]
    pub restore_on_release: bool,
    /// Notification channels told when the lockdown activates and is released.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(max = 253)))]
    pub notify: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// One subject: exactly one of `email`, `opalUserId`, `hrisId` (users), `group` or `resource`
/// (everyone's direct access to it is revoked, except break-glass users).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.email) ? 1 : 0) + (has(self.opalUserId) ? 1 : 0) + (has(self.hrisId) ? 1 : 0) + (has(self.group) ? 1 : 0) + (has(self.resource) ? 1 : 0) == 1").message("exactly one of email, opalUserId, hrisId, group or resource must be set"))]
pub struct LockdownSubject {
    /// A user's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 254))]
    pub email: Option<String>,
    /// A user's Opal ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub opal_user_id: Option<String>,
    /// A user's employee ID in the HR system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub hris_id: Option<String>,
    /// An Opal group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<TargetRef>,
    /// An Opal resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<TargetRef>,
}

/// Which grants a user lockdown revokes. `targets` is required exactly when `mode` is `Targets`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Targets' ? size(self.targets) > 0 : size(self.targets) == 0").message("targets must be non-empty when mode is Targets, and empty when mode is All"))]
pub struct LockdownScope {
    /// `All` (default): every Opal grant; `Targets`: only the listed targets.
    #[serde(default)]
    pub mode: LockdownScopeMode,
    /// The groups and resources to revoke when `mode` is `Targets`.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub targets: Vec<AccessTarget>,
}

/// `All` (default) or `Targets`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LockdownScopeMode {
    #[default]
    All,
    Targets,
}

/// Lifecycle phase: `Pending`, `Active`, `Released` or `Failed`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockdownPhase {
    Pending,
    Active,
    Released,
    Failed,
}

/// What the lockdown revoked and restored.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LockdownStatus {
    /// Current observations: `Ready`, `Synced` and `Active`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<LockdownPhase>")]
    pub phase: Option<LockdownPhase>,
    /// When every matching grant had been revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    /// When the lockdown ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
    /// Milliseconds from creation to the last revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_lockdown_ms: Option<i64>,
    /// Grants revoked.
    #[serde(default)]
    pub revoked_count: i32,
    /// Grants restored on release.
    #[serde(default)]
    pub restored_count: i32,
    /// The first revoked grants, for people to read. Restores never read this list: the
    /// authoritative record is the operator's own, in the operator namespace.
    #[serde(default)]
    pub revoked: Vec<RevokedGrant>,
    /// Whether `revoked` lists every revoked grant.
    #[serde(default)]
    pub record_complete: bool,
    /// Revocations that failed, with the upstream error text.
    #[serde(default)]
    pub failures: Vec<String>,
    /// Why the last release failed (the finalizer stays and the release is retried); empty
    /// once released.
    #[serde(default)]
    pub release_failures: Vec<String>,
}
