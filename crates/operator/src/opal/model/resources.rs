//! Resources and their grants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::common::{
    AccessLevel, PropagationStatus, RequestConfiguration, SyncTask, TicketPropagation,
};
use super::enums::{ResourceType, RiskSensitivity};
use super::wire;

/// An Opal resource (an AWS role, a database, an Okta app, …).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resource {
    pub resource_id: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub description: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub admin_owner_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_resource_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_resource_name: Option<String>,
    #[serde(default)]
    pub resource_type: Option<ResourceType>,
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
    pub require_mfa_to_connect: Option<bool>,
    #[serde(default)]
    pub auto_approval: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub request_template_id: Option<String>,
    #[serde(default)]
    pub is_requestable: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub parent_resource_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub configuration_template_id: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub request_configurations: Vec<RequestConfiguration>,
    #[serde(default)]
    pub ticket_propagation: Option<TicketPropagation>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub custom_request_notification: Option<String>,
    #[serde(default)]
    pub risk_sensitivity: Option<RiskSensitivity>,
    #[serde(default)]
    pub risk_sensitivity_override: Option<RiskSensitivity>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub ancestor_resource_ids: Vec<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub descendant_resource_ids: Vec<String>,
    #[serde(default)]
    pub last_successful_sync: Option<SyncTask>,
    /// Type-specific identifiers of the resource in its end system, kept as raw JSON.
    #[serde(default)]
    pub remote_info: Option<serde_json::Value>,
}

/// A user's *direct* grant on a resource at one access level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceUser {
    pub resource_id: String,
    pub user_id: String,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub access_level: AccessLevel,
    #[serde(default, deserialize_with = "wire::string")]
    pub full_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub email: String,
    /// `None` means the grant does not expire.
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub expiration_date: Option<DateTime<Utc>>,
}

/// A user's access to a resource, direct or through groups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceAccessUser {
    pub resource_id: String,
    pub user_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub resource_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub description: String,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub access_level: AccessLevel,
    #[serde(default, deserialize_with = "wire::string")]
    pub full_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub email: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub expiration_date: Option<DateTime<Utc>>,
    /// Whether the user holds a direct grant (as opposed to only through groups).
    #[serde(default, deserialize_with = "wire::or_default")]
    pub has_direct_access: bool,
    /// Number of ways (direct and through groups) the user reaches this resource.
    #[serde(default, deserialize_with = "wire::or_default")]
    pub num_access_paths: u32,
    #[serde(default)]
    pub propagation_status: Option<PropagationStatus>,
}

/// One entry of the bulk `PUT /resources`; fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResourceInfo {
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa_to_approve: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa_to_connect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_propagation: Option<TicketPropagation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_request_notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_sensitivity_override: Option<RiskSensitivity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_configurations: Option<Vec<RequestConfiguration>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateResourceInfoList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub resources: Vec<UpdateResourceInfo>,
}
