//! Groups and their members.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::common::{AccessLevel, PropagationStatus, RequestConfiguration, SyncTask};
use super::enums::{GroupType, RiskSensitivity};
use super::wire;

/// An Opal group (an Okta group, a GitHub team, an Opal-native group, …).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Group {
    pub group_id: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub description: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub admin_owner_id: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub group_leader_user_ids: Vec<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_name: Option<String>,
    #[serde(default)]
    pub group_type: Option<GroupType>,
    /// Legacy maximum request duration in minutes (`-1` indefinite).
    #[serde(default)]
    pub max_duration: Option<i64>,
    #[serde(default)]
    pub recommended_duration: Option<i64>,
    #[serde(default)]
    pub extensions_duration_in_minutes: Option<i64>,
    #[serde(default)]
    pub require_support_ticket: Option<bool>,
    #[serde(default)]
    pub require_mfa_to_approve: Option<bool>,
    #[serde(default)]
    pub require_mfa_to_request: Option<bool>,
    #[serde(default)]
    pub auto_approval: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub request_template_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub configuration_template_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub group_binding_id: Option<String>,
    #[serde(default)]
    pub is_requestable: Option<bool>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub request_configurations: Vec<RequestConfiguration>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub custom_request_notification: Option<String>,
    #[serde(default)]
    pub risk_sensitivity: Option<RiskSensitivity>,
    #[serde(default)]
    pub risk_sensitivity_override: Option<RiskSensitivity>,
    #[serde(default)]
    pub last_successful_sync: Option<SyncTask>,
    /// Type-specific identifiers of the group in its end system, kept as raw JSON.
    #[serde(default)]
    pub remote_info: Option<serde_json::Value>,
}

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupUser {
    pub group_id: String,
    pub user_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub group_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub description: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub full_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub email: String,
    /// `null` on the wire is read as the default level.
    #[serde(default, deserialize_with = "wire::or_default")]
    pub access_level: AccessLevel,
    /// `None` means the membership does not expire.
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub expiration_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub propagation_status: Option<PropagationStatus>,
}

/// A resource that members of a group get through the group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupResource {
    pub group_id: String,
    pub resource_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub group_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub resource_name: String,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub access_level: AccessLevel,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub expiration_date: Option<DateTime<Utc>>,
}

/// One entry of the bulk `PUT /groups`; fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateGroupInfo {
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa_to_approve: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_leader_user_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_configurations: Option<Vec<RequestConfiguration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_request_notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_sensitivity_override: Option<RiskSensitivity>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateGroupInfoList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub groups: Vec<UpdateGroupInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupResourceList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub group_resources: Vec<GroupResource>,
}
