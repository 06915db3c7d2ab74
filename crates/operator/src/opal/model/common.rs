//! Objects shared by several Opal endpoints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::enums::{
    MessageChannelProvider, PropagationStatusCode, ReviewerStageOperator, TicketingProvider,
    Visibility,
};
use super::wire;

/// The level at which a principal holds a group or resource. The default level is two empty strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessLevel {
    #[serde(default, deserialize_with = "wire::string")]
    pub access_level_name: String,
    /// Machine identifier of the level (an ARN, a role name, sometimes a number on the wire).
    #[serde(default, deserialize_with = "wire::string")]
    pub access_level_remote_id: String,
}

/// Progress of pushing a grant to the end system. Absent when the grant was synced from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropagationStatus {
    pub status: PropagationStatusCode,
}

/// Who may see a group or resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibilityInfo {
    pub visibility: Visibility,
    /// With `LIMITED`, the groups whose members may see the item.
    #[serde(default, deserialize_with = "wire::or_default")]
    pub visibility_group_ids: Vec<String>,
}

/// One approval stage of a group's or resource's request flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewerStage {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub require_manager_approval: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_admin_approval: Option<bool>,
    /// Required by Opal when sending; `None` only if a response omitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<ReviewerStageOperator>,
    /// Owner IDs reviewing in this stage.
    #[serde(default, deserialize_with = "wire::or_default")]
    pub owner_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_user_ids: Vec<String>,
}

/// Selects which requesters a [`RequestConfiguration`] applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCondition {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub group_ids: Vec<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub role_remote_ids: Vec<String>,
}

/// How requests for a group or resource are handled (approval, durations, reviewers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<RequestCondition>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub allow_requests: bool,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub auto_approval: bool,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub require_mfa_to_request: bool,
    /// Minutes; `-1` means indefinite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_minutes: Option<i64>,
    /// Minutes; `-1` means indefinite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_duration_minutes: Option<i64>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub require_support_ticket: bool,
    /// Minutes; `0` disables extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions_duration_in_minutes: Option<i64>,
    #[serde(
        default,
        deserialize_with = "wire::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_template_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reviewer_stages: Vec<ReviewerStage>,
    /// Configurations are evaluated in ascending priority.
    #[serde(default, deserialize_with = "wire::or_default")]
    pub priority: i64,
}

/// Whether grants and revocations on an item open tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPropagation {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub enabled_on_grant: bool,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub enabled_on_revocation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_provider: Option<TicketingProvider>,
    #[serde(
        default,
        deserialize_with = "wire::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ticket_project_id: Option<String>,
}

/// The last completed sync of an item from its end system.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncTask {
    #[serde(default, deserialize_with = "wire::string")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// A key (and optional value) attached to users, groups and resources.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    pub tag_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub key: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub user_creator_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A chat channel Opal posts to (reviews, audit messages).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageChannel {
    pub message_channel_id: String,
    #[serde(default)]
    pub third_party_provider: Option<MessageChannelProvider>,
    /// The chat system's channel ID, e.g. a Slack channel ID.
    #[serde(default, deserialize_with = "wire::string")]
    pub remote_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub is_private: bool,
}

/// Body of `POST /message-channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateMessageChannel {
    pub third_party_provider: MessageChannelProvider,
    pub remote_id: String,
}

/// Duration and level of a direct grant (body of the add/update user endpoints).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GrantSpec {
    /// Minutes the grant lasts; `0` means indefinite (Opal caps it at 525960).
    pub duration_minutes: i64,
    /// Level to grant; `None` means the default level `""`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level_remote_id: Option<String>,
}

impl GrantSpec {
    /// An indefinite grant at the default access level.
    pub fn indefinite() -> Self {
        Self::default()
    }
}
