//! User access reviews (UARs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::enums::{
    GroupType, ResourceType, ReviewerAssignmentPolicy, UarFilterOperator, UarGroupVisibility,
};
use super::wire;

/// An access review campaign. Opal exposes no status or decisions for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Uar {
    pub uar_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reviewer_assignment_policy: Option<ReviewerAssignmentPolicy>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub send_reviewer_assignment_notification: bool,
    #[serde(default, deserialize_with = "wire::string")]
    pub time_zone: String,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub self_review_allowed: bool,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub instantly_action_reviews: bool,
    #[serde(default)]
    pub uar_scope: Option<UarScope>,
}

/// Body of `POST /uar`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateUar {
    pub name: String,
    pub deadline: DateTime<Utc>,
    pub reviewer_assignment_policy: ReviewerAssignmentPolicy,
    pub send_reviewer_assignment_notification: bool,
    /// IANA time zone for the deadline and the exported report.
    pub time_zone: String,
    pub self_review_allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instantly_action_reviews: Option<bool>,
    /// Reminder offsets as Opal expects them (e.g. `[7, 3, 1, 0]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reminder_schedule: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_include_manager: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uar_scope: Option<UarScope>,
}

/// What an access review covers; an item is in scope when it matches the filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UarScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_visibility: Option<UarGroupVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_operator: Option<UarFilterOperator>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entities: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub apps: Vec<String>,
    /// Owner IDs.
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub admins: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group_types: Vec<GroupType>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_types: Vec<ResourceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_group_bindings: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<TagFilter>,
    #[serde(
        default,
        deserialize_with = "wire::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
}

/// A tag key, optionally with a value, used as a scope filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilter {
    #[serde(default, deserialize_with = "wire::string")]
    pub key: String,
    #[serde(
        default,
        deserialize_with = "wire::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<String>,
}
