//! Access requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::enums::{
    ApprovalLevel, CustomFieldType, RequestStatus, ReviewerDecision, ReviewerStageOperator,
};
use super::wire;

/// An access request made in Opal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Request {
    pub id: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::string")]
    pub requester_id: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub target_user_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub target_group_id: Option<String>,
    pub status: RequestStatus,
    #[serde(default, deserialize_with = "wire::string")]
    pub reason: String,
    /// Minutes requested; `-1` (or absent) means indefinite.
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub requested_items_list: Vec<RequestedItem>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub custom_fields_responses: Vec<CustomFieldResponse>,
    #[serde(default)]
    pub reviewer_stages: Option<RequestReviewerStages>,
}

/// One group or resource (at a level) asked for in a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RequestedItem {
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub resource_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub access_level_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub access_level_remote_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub remote_name: Option<String>,
}

/// Answer to a custom field of the request template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomFieldResponse {
    #[serde(default, deserialize_with = "wire::string")]
    pub field_name: String,
    #[serde(default)]
    pub field_type: Option<CustomFieldType>,
    pub field_value: CustomFieldValue,
}

/// A custom field answer is text or a boolean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CustomFieldValue {
    Bool(bool),
    Text(String),
}

/// Review progress of a request: per-item stages, or a message when Opal could not compute them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RequestReviewerStages {
    Items(Vec<ItemReviewerStages>),
    Unavailable(String),
}

/// Review stages of one requested item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemReviewerStages {
    #[serde(default, deserialize_with = "wire::string")]
    pub item_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub item_name: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub access_level_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub access_level_remote_id: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub stages: Vec<RequestStage>,
}

/// One stage of a request's review.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestStage {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub stage: i64,
    #[serde(default)]
    pub operator: Option<ReviewerStageOperator>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub reviewers: Vec<RequestReviewer>,
}

/// A reviewer and their decision in one stage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestReviewer {
    #[serde(default, deserialize_with = "wire::string")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub full_name: Option<String>,
    pub status: ReviewerDecision,
}

/// A comment on a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestComment {
    #[serde(default, deserialize_with = "wire::string")]
    pub request_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub user_id: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub user_full_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub user_email: Option<String>,
    #[serde(default, deserialize_with = "wire::string")]
    pub comment: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
}

/// Body of `POST /requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateRequest {
    pub reason: String,
    /// Minutes; `-1` asks for indefinite access.
    pub duration_minutes: i64,
    /// Resources asked for; Opal wants the list even when empty.
    pub resources: Vec<RequestedTarget>,
    /// Groups asked for; Opal wants the list even when empty.
    pub groups: Vec<RequestedTarget>,
    /// Whom the access is for (at most one of user and group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_ticket: Option<SupportTicket>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_metadata: Vec<RequestCustomMetadata>,
}

/// A group or resource in a new request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestedTarget {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level_remote_id: Option<String>,
}

/// A ticket backing a new request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportTicket {
    pub ticketing_provider: String,
    pub remote_id: String,
    pub identifier: String,
    pub url: String,
}

/// Custom field value sent with a new request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCustomMetadata {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: CustomFieldType,
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreatedRequest {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ApproveBody<'a> {
    pub level: &'a ApprovalLevel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DenyBody<'a> {
    pub comment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'a ApprovalLevel>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CommentBody<'a> {
    pub comment: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestEnvelope {
    pub request: Request,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestCommentList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub comments: Vec<RequestComment>,
}
