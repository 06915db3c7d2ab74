//! Serde types for the parts of Opal's wire format that fixtures share with request bodies.
//! Field names are exactly the spec's; they are written here from the spec, independently of the
//! operator's client.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// An access level (role) on a group or resource. The default level is both fields empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLevel {
    /// Display name (`access_level_name` on the wire).
    #[serde(default)]
    pub name: String,
    /// End-system identifier (`access_level_remote_id` on the wire).
    #[serde(default)]
    pub remote_id: String,
}

impl AccessLevel {
    /// A level with the given name and remote id.
    pub fn new(name: impl Into<String>, remote_id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            remote_id: remote_id.into(),
        }
    }
}

/// `VisibilityTypeEnum`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Visibility {
    /// Visible to everyone in the organisation.
    #[default]
    Global,
    /// Visible only to members of `visibility_group_ids`.
    Limited,
}

/// `VisibilityInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibilityInfo {
    /// Who can see the object.
    pub visibility: Visibility,
    /// Groups whose members can see a `LIMITED` object.
    #[serde(default)]
    pub visibility_group_ids: Vec<String>,
}

/// `AND` / `OR` between the reviewers of a stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageOperator {
    /// Every reviewer must approve.
    #[default]
    And,
    /// One reviewer suffices.
    Or,
}

/// `ReviewerStage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewerStage {
    /// The requester's manager must approve.
    pub require_manager_approval: bool,
    /// An admin of the object must approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_admin_approval: Option<bool>,
    /// How the reviewers of this stage combine.
    pub operator: StageOperator,
    /// Owners whose users review (in fixtures: owner ids or names).
    pub owner_ids: Vec<String>,
    /// Service users that review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_user_ids: Option<Vec<String>>,
}

/// `Condition` of a request configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCondition {
    /// Applies to requesters in these groups (in fixtures: group ids or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_ids: Option<Vec<String>>,
    /// Applies to requests for these access levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_remote_ids: Option<Vec<String>>,
}

/// `RequestConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestConfiguration {
    /// When this configuration applies; absent for the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<RequestCondition>,
    /// Whether users can request the object.
    pub allow_requests: bool,
    /// Whether requests are approved without review.
    pub auto_approval: bool,
    /// Whether requesting needs MFA.
    pub require_mfa_to_request: bool,
    /// Longest grant a request may ask for, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_minutes: Option<i64>,
    /// Suggested grant duration, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_duration_minutes: Option<i64>,
    /// Whether a support ticket is needed.
    pub require_support_ticket: bool,
    /// Extension length in minutes; 0 disables extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions_duration_in_minutes: Option<i64>,
    /// Request template applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_template_id: Option<String>,
    /// Review stages of this configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_stages: Option<Vec<ReviewerStage>>,
    /// Evaluation order, ascending.
    pub priority: i64,
}

/// `TicketPropagationConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPropagationConfiguration {
    /// Open a ticket when access is granted.
    pub enabled_on_grant: bool,
    /// Open a ticket when access is revoked.
    pub enabled_on_revocation: bool,
    /// `TicketingProviderEnum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_provider: Option<String>,
    /// Project the tickets go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_project_id: Option<String>,
}

/// `GroupAccessLevel` / `ResourceAccessLevel` as they appear in responses.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WireAccessLevel {
    pub access_level_name: String,
    pub access_level_remote_id: String,
}

impl From<&AccessLevel> for WireAccessLevel {
    fn from(level: &AccessLevel) -> Self {
        Self {
            access_level_name: level.name.clone(),
            access_level_remote_id: level.remote_id.clone(),
        }
    }
}

/// `PropagationStatus`: the simulator pushes nothing anywhere, so every grant reads as propagated.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PropagationStatus {
    pub status: &'static str,
}

pub(crate) const PROPAGATED: PropagationStatus = PropagationStatus { status: "SUCCESS" };

/// Timestamps the way Opal's examples show them: RFC 3339, milliseconds, `Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// For nullable fields that may be absent (unchanged) or `null` (cleared).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `UserHrIdpStatusEnum` values, for validating fixtures.
pub(crate) const HR_IDP_STATUSES: [&str; 5] = [
    "ACTIVE",
    "SUSPENDED",
    "DEPROVISIONED",
    "DELETED",
    "NOT_FOUND",
];

/// `RequestStatusEnum` values.
pub(crate) const REQUEST_STATUSES: [&str; 4] = ["PENDING", "APPROVED", "DENIED", "CANCELED"];

/// `UARReviewerAssignmentPolicyEnum` values.
pub(crate) const UAR_ASSIGNMENT_POLICIES: [&str; 6] = [
    "MANUALLY",
    "BY_OWNING_TEAM_ADMIN",
    "BY_OWNING_TEAM_ADMIN_ALL",
    "BY_MANAGER",
    "BY_APPROVERS",
    "BY_APPROVERS_ALL",
];
