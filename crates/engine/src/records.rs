//! Values the engine produces and the custom resources' status records verbatim: what kind a
//! target is, a planned change, and a grant a lockdown revoked. They derive `JsonSchema`
//! because the CRDs embed them (`crd` re-exports them); they carry no Kubernetes types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One change the plan calls for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    /// `Grant` or `Revoke`.
    pub action: ChangeAction,
    /// The user's email.
    pub user: String,
    /// `group/<name>` or `resource/<name>`.
    pub target: String,
    /// The access level's remote ID ("" is Opal's default level).
    #[serde(default)]
    pub access_level: String,
}

/// Whether access is added (`Grant`) or removed (`Revoke`).
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum ChangeAction {
    Grant,
    Revoke,
}

/// One grant a lockdown revoked, with what is needed to restore it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RevokedGrant {
    /// The user's Opal ID.
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// `Group` or `Resource`.
    pub kind: TargetKind,
    /// The group's or resource's Opal ID.
    pub target_id: String,
    /// Its name.
    pub target_name: String,
    /// The access level's remote ID ("" is Opal's default level).
    #[serde(default)]
    pub access_level_remote_id: String,
    /// When the grant would have expired; absent for permanent grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<DateTime<Utc>>,
}

/// `Group` or `Resource`.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum TargetKind {
    Group,
    Resource,
}

/// Opal risk sensitivity, lowest to highest: `None`, `Low`, `Medium`, `High`, `Critical`.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Sensitivity {
    None,
    Low,
    Medium,
    High,
    Critical,
}
