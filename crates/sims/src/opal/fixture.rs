//! The organisation a simulator starts with, read from YAML or JSON (see the module documentation
//! of [`crate::opal`] for the format) or generated for benchmarks.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::SimError;
use super::wire::{
    AccessLevel, RequestConfiguration, ReviewerStage, TicketPropagationConfiguration,
    VisibilityInfo,
};

/// A whole organisation. Every list may be empty; references between objects take an id or the
/// object's natural key (user email, owner/app/group/resource/bundle name, tag `key:value` or
/// `key`, message channel remote id).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgFixture {
    /// The user the API token belongs to (actor of audit events, default requester). When absent
    /// a service identity that is not listed among the users acts.
    pub api_user: Option<String>,
    /// People known to Opal.
    pub users: Vec<FixtureUser>,
    /// Owners (teams of admins/reviewers).
    pub owners: Vec<FixtureOwner>,
    /// Connected apps.
    pub apps: Vec<FixtureApp>,
    /// Tags.
    pub tags: Vec<FixtureTag>,
    /// Slack channels known to Opal.
    pub message_channels: Vec<FixtureMessageChannel>,
    /// Groups.
    pub groups: Vec<FixtureGroup>,
    /// Resources.
    pub resources: Vec<FixtureResource>,
    /// Users' group memberships.
    pub memberships: Vec<FixtureMembership>,
    /// Users' direct resource grants.
    pub resource_grants: Vec<FixtureResourceGrant>,
    /// Resources granted to groups (members get indirect access).
    pub group_resources: Vec<FixtureGroupResource>,
    /// Access requests.
    pub requests: Vec<FixtureRequest>,
    /// User access reviews.
    pub uars: Vec<FixtureUar>,
    /// Bundles.
    pub bundles: Vec<FixtureBundle>,
}

/// A user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureUser {
    /// Opal user id; derived from the email when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Email (unique, case-insensitive).
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
    /// Full name; "first last" when absent.
    #[serde(default)]
    pub full_name: Option<String>,
    /// Job title.
    #[serde(default)]
    pub position: String,
    /// `UserHrIdpStatusEnum` value.
    #[serde(default)]
    pub hr_idp_status: Option<String>,
    /// Tags applied to the user.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An owner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOwner {
    /// Owner id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Member users in escalation order.
    #[serde(default)]
    pub users: Vec<String>,
    /// Minutes before a request escalates to the next user.
    #[serde(default)]
    pub access_request_escalation_period: Option<i64>,
    /// Channel reviewers are notified in.
    #[serde(default)]
    pub reviewer_message_channel: Option<String>,
    /// Group whose members are the owner's users.
    #[serde(default)]
    pub source_group: Option<String>,
}

/// An app (connection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureApp {
    /// App id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// `AppTypeEnum` value.
    #[serde(default = "default_app_type")]
    pub app_type: String,
}

fn default_app_type() -> String {
    "CUSTOM".to_owned()
}

/// A tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureTag {
    /// Tag id; derived from key and value when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A message channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureMessageChannel {
    /// Channel id; derived from the remote id when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider's channel id (e.g. Slack `C0123`).
    pub remote_id: String,
    /// Channel name.
    #[serde(default)]
    pub name: Option<String>,
    /// Private channel.
    #[serde(default)]
    pub is_private: bool,
    /// `MessageChannelProviderEnum` value.
    #[serde(default = "default_channel_provider")]
    pub third_party_provider: String,
}

fn default_channel_provider() -> String {
    "SLACK".to_owned()
}

/// Settings groups and resources share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixtureAccessSettings {
    /// Owner that administers the object.
    #[serde(default)]
    pub admin_owner: Option<String>,
    /// Tags applied.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Visibility (group refs in `visibility_group_ids`).
    #[serde(default)]
    pub visibility: Option<VisibilityInfo>,
    /// Stages served by `GET .../reviewer-stages` (owner refs in `owner_ids`).
    #[serde(default)]
    pub reviewer_stages: Vec<ReviewerStage>,
    /// Request configurations (owner refs in stages, group refs in conditions).
    #[serde(default)]
    pub request_configurations: Vec<RequestConfiguration>,
    /// Access levels a grant may use besides the default one; when empty any level is accepted.
    #[serde(default)]
    pub access_levels: Vec<AccessLevel>,
    /// Message channels linked.
    #[serde(default)]
    pub message_channels: Vec<String>,
    /// Legacy maximum duration in minutes.
    #[serde(default)]
    pub max_duration: Option<i64>,
    /// Legacy recommended duration in minutes.
    #[serde(default)]
    pub recommended_duration: Option<i64>,
    /// Extension length in minutes.
    #[serde(default)]
    pub extensions_duration_in_minutes: Option<i64>,
    /// MFA needed to approve.
    #[serde(default)]
    pub require_mfa_to_approve: bool,
    /// MFA needed to request.
    #[serde(default)]
    pub require_mfa_to_request: bool,
    /// Support ticket needed.
    #[serde(default)]
    pub require_support_ticket: bool,
    /// Requests approve themselves.
    #[serde(default)]
    pub auto_approval: bool,
    /// Users may request it.
    #[serde(default = "yes")]
    pub is_requestable: bool,
    /// `RiskSensitivityEnum` override.
    #[serde(default)]
    pub risk_sensitivity_override: Option<String>,
    /// Text shown to requesters.
    #[serde(default)]
    pub custom_request_notification: Option<String>,
}

fn yes() -> bool {
    true
}

/// A group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixtureGroup {
    /// Group id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `GroupTypeEnum` value.
    #[serde(default = "default_group_type")]
    pub group_type: String,
    /// App the group belongs to.
    #[serde(default)]
    pub app: Option<String>,
    /// End-system id.
    #[serde(default)]
    pub remote_id: Option<String>,
    /// End-system name.
    #[serde(default)]
    pub remote_name: Option<String>,
    /// Users listed as group leaders.
    #[serde(default)]
    pub group_leaders: Vec<String>,
    /// Shared settings.
    #[serde(default, flatten)]
    pub settings: FixtureAccessSettings,
}

fn default_group_type() -> String {
    "OPAL_GROUP".to_owned()
}

/// A resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixtureResource {
    /// Resource id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `ResourceTypeEnum` value.
    #[serde(default = "default_resource_type")]
    pub resource_type: String,
    /// App the resource belongs to.
    #[serde(default)]
    pub app: Option<String>,
    /// End-system id.
    #[serde(default)]
    pub remote_resource_id: Option<String>,
    /// End-system name.
    #[serde(default)]
    pub remote_resource_name: Option<String>,
    /// Parent resource.
    #[serde(default)]
    pub parent_resource: Option<String>,
    /// MFA needed to connect.
    #[serde(default)]
    pub require_mfa_to_connect: bool,
    /// Ticket propagation.
    #[serde(default)]
    pub ticket_propagation: Option<TicketPropagationConfiguration>,
    /// Shared settings.
    #[serde(default, flatten)]
    pub settings: FixtureAccessSettings,
}

fn default_resource_type() -> String {
    "CUSTOM".to_owned()
}

/// How long a seeded grant lasts: an absolute `expiration_date` or `expires_in_minutes` from the
/// simulator's start; neither means indefinite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FixtureExpiry {
    /// Absolute expiry.
    #[serde(default)]
    pub expiration_date: Option<DateTime<Utc>>,
    /// Expiry relative to the start.
    #[serde(default)]
    pub expires_in_minutes: Option<i64>,
}

/// A user's membership of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FixtureMembership {
    /// Group.
    pub group: String,
    /// User.
    pub user: String,
    /// Level; the default level when absent. The name may be left out when the group declares
    /// the level.
    #[serde(default)]
    pub access_level: Option<AccessLevel>,
    /// Expiry.
    #[serde(default, flatten)]
    pub expiry: FixtureExpiry,
}

/// A user's direct grant on a resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FixtureResourceGrant {
    /// Resource.
    pub resource: String,
    /// User.
    pub user: String,
    /// Level; the default level when absent.
    #[serde(default)]
    pub access_level: Option<AccessLevel>,
    /// Expiry.
    #[serde(default, flatten)]
    pub expiry: FixtureExpiry,
}

/// A resource granted to a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureGroupResource {
    /// Group.
    pub group: String,
    /// Resource.
    pub resource: String,
    /// Level on the resource; the default level when absent.
    #[serde(default)]
    pub access_level: Option<AccessLevel>,
}

/// One item of an access request: exactly one of `group` and `resource`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequestItem {
    /// Requested group.
    #[serde(default)]
    pub group: Option<String>,
    /// Requested resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Requested level.
    #[serde(default)]
    pub access_level_remote_id: Option<String>,
}

/// An access request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// Request id; derived from the position in the list when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Who asked.
    pub requester: String,
    /// Who would get the access; the requester when neither target is given.
    #[serde(default)]
    pub target_user: Option<String>,
    /// Group that would get the access.
    #[serde(default)]
    pub target_group: Option<String>,
    /// `RequestStatusEnum` value.
    #[serde(default = "default_request_status")]
    pub status: String,
    /// Justification.
    #[serde(default)]
    pub reason: String,
    /// Requested duration in minutes; -1 for indefinite.
    #[serde(default = "default_request_duration")]
    pub duration_minutes: i64,
    /// Creation time; the simulator's start when absent.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// What is requested.
    #[serde(default)]
    pub items: Vec<FixtureRequestItem>,
}

fn default_request_status() -> String {
    "PENDING".to_owned()
}

fn default_request_duration() -> i64 {
    60
}

/// A user access review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureUar {
    /// Review id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Deadline.
    pub deadline: DateTime<Utc>,
    /// `UARReviewerAssignmentPolicyEnum` value.
    #[serde(default = "default_assignment_policy")]
    pub reviewer_assignment_policy: String,
    /// Notify reviewers when assigned.
    #[serde(default)]
    pub send_reviewer_assignment_notification: bool,
    /// IANA time zone of the deadline.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Reviewers may review their own access.
    #[serde(default)]
    pub self_review_allowed: bool,
    /// Act on decisions immediately.
    #[serde(default)]
    pub instantly_action_reviews: bool,
}

fn default_assignment_policy() -> String {
    "BY_OWNING_TEAM_ADMIN".to_owned()
}

fn default_time_zone() -> String {
    "America/Los_Angeles".to_owned()
}

/// A bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureBundle {
    /// Bundle id; derived from the name when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Owner administering it.
    #[serde(default)]
    pub admin_owner: Option<String>,
}

// Programmatic defaults match the ones serde fills in, so a fixture built in code behaves like
// the same fixture written in YAML.

impl Default for FixtureApp {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            app_type: default_app_type(),
        }
    }
}

impl Default for FixtureMessageChannel {
    fn default() -> Self {
        Self {
            id: None,
            remote_id: String::new(),
            name: None,
            is_private: false,
            third_party_provider: default_channel_provider(),
        }
    }
}

impl Default for FixtureAccessSettings {
    fn default() -> Self {
        Self {
            admin_owner: None,
            tags: Vec::new(),
            visibility: None,
            reviewer_stages: Vec::new(),
            request_configurations: Vec::new(),
            access_levels: Vec::new(),
            message_channels: Vec::new(),
            max_duration: None,
            recommended_duration: None,
            extensions_duration_in_minutes: None,
            require_mfa_to_approve: false,
            require_mfa_to_request: false,
            require_support_ticket: false,
            auto_approval: false,
            is_requestable: yes(),
            risk_sensitivity_override: None,
            custom_request_notification: None,
        }
    }
}

impl Default for FixtureGroup {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            description: String::new(),
            group_type: default_group_type(),
            app: None,
            remote_id: None,
            remote_name: None,
            group_leaders: Vec::new(),
            settings: FixtureAccessSettings::default(),
        }
    }
}

impl Default for FixtureResource {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            description: String::new(),
            resource_type: default_resource_type(),
            app: None,
            remote_resource_id: None,
            remote_resource_name: None,
            parent_resource: None,
            require_mfa_to_connect: false,
            ticket_propagation: None,
            settings: FixtureAccessSettings::default(),
        }
    }
}

impl Default for FixtureRequest {
    fn default() -> Self {
        Self {
            id: None,
            requester: String::new(),
            target_user: None,
            target_group: None,
            status: default_request_status(),
            reason: String::new(),
            duration_minutes: default_request_duration(),
            created_at: None,
            items: Vec::new(),
        }
    }
}

const FIRST_NAMES: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Linus",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie",
];
const POSITIONS: [&str; 6] = [
    "Software Engineer",
    "Site Reliability Engineer",
    "Account Executive",
    "Data Analyst",
    "Product Manager",
    "Recruiter",
];

impl OrgFixture {
    /// Reads a fixture file: JSON when the name ends in `.json`, YAML otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SimError::FixtureRead {
            path: path.display().to_string(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_yaml_str(&text)
        }
    }

    /// Parses a YAML fixture.
    pub fn from_yaml_str(text: &str) -> Result<Self, SimError> {
        serde_yaml::from_str(text).map_err(|err| SimError::FixtureParse(err.to_string()))
    }

    /// Parses a JSON fixture.
    pub fn from_json_str(text: &str) -> Result<Self, SimError> {
        serde_json::from_str(text).map_err(|err| SimError::FixtureParse(err.to_string()))
    }

    /// A deterministic organisation of the given size: one security owner, an Okta app and an AWS
    /// app, `users` people, `groups` Okta groups, `resources` AWS roles (every other one with two
    /// access levels), each user in `memberships_per_user` distinct random groups, and group `i`
    /// granting resource `i mod resources` so members have indirect resource access.
    pub fn synthetic(
        users: usize,
        groups: usize,
        resources: usize,
        memberships_per_user: usize,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let owner_id = super::model::derived_id("owner", "Security", 0);
        let okta_id = super::model::derived_id("app", "Okta", 0);
        let aws_id = super::model::derived_id("app", "AWS", 0);
        let mut fixture = Self {
            owners: vec![FixtureOwner {
                id: Some(owner_id.clone()),
                name: "Security".to_owned(),
                description: Some("Security team".to_owned()),
                ..FixtureOwner::default()
            }],
            apps: vec![
                FixtureApp {
                    id: Some(okta_id.clone()),
                    name: "Okta".to_owned(),
                    app_type: "OKTA_DIRECTORY".to_owned(),
                },
                FixtureApp {
                    id: Some(aws_id.clone()),
                    name: "AWS".to_owned(),
                    app_type: "AWS".to_owned(),
                },
            ],
            ..Self::default()
        };
        let user_ids: Vec<String> = (0..users)
            .map(|index| {
                let email = format!("user{index:06}@example.com");
                let id = super::model::derived_id("user", &email, 0);
                let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
                let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
                fixture.users.push(FixtureUser {
                    id: Some(id.clone()),
                    email,
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    full_name: None,
                    position: POSITIONS[rng.random_range(0..POSITIONS.len())].to_owned(),
                    hr_idp_status: Some("ACTIVE".to_owned()),
                    tags: Vec::new(),
                });
                id
            })
            .collect();
        let settings = FixtureAccessSettings {
            admin_owner: Some(owner_id.clone()),
            ..FixtureAccessSettings::default()
        };
        let group_ids: Vec<String> = (0..groups)
            .map(|index| {
                let name = format!("group-{index:05}");
                let id = super::model::derived_id("group", &name, 0);
                fixture.groups.push(FixtureGroup {
                    id: Some(id.clone()),
                    remote_id: Some(format!("00g{index:017}")),
                    remote_name: Some(name.clone()),
                    name,
                    description: String::new(),
                    group_type: "OKTA_GROUP".to_owned(),
                    app: Some(okta_id.clone()),
                    group_leaders: Vec::new(),
                    settings: settings.clone(),
                });
                id
            })
            .collect();
        let resource_ids: Vec<String> = (0..resources)
            .map(|index| {
                let name = format!("role-{index:05}");
                let id = super::model::derived_id("resource", &name, 0);
                let arn = format!("arn:aws:iam::123456789012:role/{name}");
                let mut resource_settings = settings.clone();
                if index % 2 == 1 {
                    resource_settings.access_levels = vec![
                        AccessLevel::new("ReadOnly", format!("{arn}/read")),
                        AccessLevel::new("Admin", format!("{arn}/admin")),
                    ];
                }
                fixture.resources.push(FixtureResource {
                    id: Some(id.clone()),
                    name,
                    description: String::new(),
                    resource_type: "AWS_IAM_ROLE".to_owned(),
                    app: Some(aws_id.clone()),
                    remote_resource_id: Some(arn),
                    remote_resource_name: None,
                    parent_resource: None,
                    require_mfa_to_connect: false,
                    ticket_propagation: None,
                    settings: resource_settings,
                });
                id
            })
            .collect();
        let per_user = memberships_per_user.min(group_ids.len());
        for user_id in &user_ids {
            let chosen: BTreeSet<usize> = sample(&mut rng, group_ids.len(), per_user)
                .into_iter()
                .collect();
            for group_index in chosen {
                fixture.memberships.push(FixtureMembership {
                    group: group_ids[group_index].clone(),
                    user: user_id.clone(),
                    access_level: None,
                    expiry: FixtureExpiry::default(),
                });
            }
        }
        if !resource_ids.is_empty() {
            for (index, group_id) in group_ids.iter().enumerate() {
                fixture.group_resources.push(FixtureGroupResource {
                    group: group_id.clone(),
                    resource: resource_ids[index % resource_ids.len()].clone(),
                    access_level: None,
                });
            }
        }
        fixture
    }
}
