//! The simulated organisation: objects, grants with their indexes, requests, reviews and the
//! audit log, plus the rules every write follows. Handlers and the test-facing state handle both
//! go through here, so HTTP and direct mutation see one consistent model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};

mod events;
mod grants;
mod requests;
mod seed;

use super::SimError;
use super::http::{ApiError, ApiResult};
use super::wire::{
    AccessLevel, RequestConfiguration, ReviewerStage, StageOperator,
    TicketPropagationConfiguration, VisibilityInfo, timestamp,
};

/// Longest grant Opal accepts, in minutes (365.25 days).
pub(crate) const MAX_DURATION_MINUTES: i64 = 525_960;

/// A deterministic UUID-shaped id for an object the fixture left without one.
pub(crate) fn derived_id(kind: &str, key: &str, occurrence: usize) -> String {
    let input = format!("{kind}\u{0}{key}\u{0}{occurrence}");
    let mut bytes = [0u8; 16];
    for (half, offset_basis) in [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142]
        .into_iter()
        .enumerate()
    {
        let mut hash = offset_basis;
        for byte in input.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        bytes[half * 8..half * 8 + 8].copy_from_slice(&hash.to_be_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Which kind of object a grant is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TargetKind {
    Group,
    Resource,
}

impl TargetKind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Resource => "resource",
        }
    }

    fn event_prefix(self) -> &'static str {
        match self {
            Self::Group => "GROUP",
            Self::Resource => "RESOURCE",
        }
    }

    pub(crate) fn id_field(self) -> &'static str {
        match self {
            Self::Group => "group_id",
            Self::Resource => "resource_id",
        }
    }
}

/// The simulator's clock: real time shifted by an offset, or frozen.
#[derive(Clone, Debug, Default)]
pub(crate) struct SimClock {
    frozen: Option<DateTime<Utc>>,
    offset: TimeDelta,
}

impl SimClock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.frozen.unwrap_or_else(|| Utc::now() + self.offset)
    }

    pub(crate) fn freeze(&mut self, at: DateTime<Utc>) {
        self.frozen = Some(at);
    }

    pub(crate) fn advance(&mut self, by: TimeDelta) {
        match &mut self.frozen {
            Some(frozen) => *frozen += by,
            None => self.offset += by,
        }
    }
}

/// `User`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserRec {
    pub user_id: String,
    pub email: String,
    pub full_name: String,
    pub first_name: String,
    pub last_name: String,
    pub position: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hr_idp_status: Option<String>,
    #[serde(skip)]
    pub tag_ids: BTreeSet<String>,
}

/// `Owner`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct OwnerRec {
    pub owner_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_request_escalation_period: Option<i64>,
    pub reviewer_message_channel_id: Option<String>,
    pub source_group_id: Option<String>,
    #[serde(skip)]
    pub user_ids: Vec<String>,
}

/// `Tag`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TagRec {
    pub tag_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub user_creator_id: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `MessageChannel`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ChannelRec {
    pub message_channel_id: String,
    pub third_party_provider: String,
    pub remote_id: String,
    pub name: String,
    pub is_private: bool,
}

/// `Bundle` (the simulator holds no bundle items).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BundleRec {
    pub bundle_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_owner_id: Option<String>,
    pub total_num_items: u64,
    pub total_num_resources: u64,
    pub total_num_groups: u64,
}

/// Settings groups and resources share; flattened into `Group` / `Resource`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AccessSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extensions_duration_in_minutes: Option<i64>,
    pub require_support_ticket: bool,
    pub require_mfa_to_approve: bool,
    pub require_mfa_to_request: bool,
    pub auto_approval: bool,
    pub is_requestable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_template_id: Option<String>,
    pub request_configurations: Vec<RequestConfiguration>,
    pub custom_request_notification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_sensitivity_override: Option<String>,
    #[serde(skip)]
    pub tag_ids: BTreeSet<String>,
    #[serde(skip)]
    pub visibility: VisibilityInfo,
    #[serde(skip)]
    pub reviewer_stages: Vec<ReviewerStage>,
    #[serde(skip)]
    pub message_channel_ids: Vec<String>,
    #[serde(skip)]
    pub access_levels: Vec<AccessLevel>,
}

/// `Group`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct GroupRec {
    pub group_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    pub name: String,
    pub description: String,
    pub group_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_name: Option<String>,
    pub group_leader_user_ids: Vec<String>,
    #[serde(flatten)]
    pub settings: AccessSettings,
}

/// `Resource`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ResourceRec {
    pub resource_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    pub name: String,
    pub description: String,
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_resource_id: Option<String>,
    pub ancestor_resource_ids: Vec<String>,
    pub descendant_resource_ids: Vec<String>,
    pub require_mfa_to_connect: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_propagation: Option<TicketPropagationConfiguration>,
    #[serde(flatten)]
    pub settings: AccessSettings,
}

/// A user's grant on a group or resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub level: AccessLevel,
    pub expiration: Option<DateTime<Utc>>,
    /// Opal's expiry of this grant failed: it stays, showing its end date in the past.
    pub expiry_fails: bool,
}

impl Grant {
    pub(crate) fn new(level: AccessLevel, expiration: Option<DateTime<Utc>>) -> Self {
        Self {
            level,
            expiration,
            expiry_fails: false,
        }
    }

    pub(crate) fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.expiry_fails || self.expiration.is_none_or(|expiry| expiry > now)
    }
}

/// One reviewer of one stage of a request item.
#[derive(Clone, Debug)]
pub(crate) struct ReviewerRec {
    pub user_id: String,
    pub full_name: String,
}

/// One stage of a request item's review.
#[derive(Clone, Debug)]
pub(crate) struct StageRec {
    pub operator: StageOperator,
    pub reviewers: Vec<ReviewerRec>,
}

/// One requested group or resource.
#[derive(Clone, Debug)]
pub(crate) struct RequestItemRec {
    pub kind: TargetKind,
    pub target_id: String,
    pub name: String,
    pub remote_id: Option<String>,
    pub level: AccessLevel,
    pub stages: Vec<StageRec>,
}

/// A comment on a request.
#[derive(Clone, Debug)]
pub(crate) struct CommentRec {
    pub created_at: DateTime<Utc>,
    pub user_id: String,
    pub comment: String,
}

/// An access request.
#[derive(Clone, Debug)]
pub(crate) struct RequestRec {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub requester_id: String,
    pub target_user_id: Option<String>,
    pub target_group_id: Option<String>,
    pub status: String,
    pub reason: String,
    pub duration_minutes: i64,
    pub items: Vec<RequestItemRec>,
    /// `custom_fields_responses` entries.
    pub custom_fields: Vec<Value>,
    pub comments: Vec<CommentRec>,
}

/// `UAR`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UarRec {
    pub uar_id: String,
    pub name: String,
    pub reviewer_assignment_policy: String,
    pub send_reviewer_assignment_notification: bool,
    pub deadline: String,
    pub time_zone: String,
    pub self_review_allowed: bool,
    pub instantly_action_reviews: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uar_scope: Option<Value>,
}

/// `Event`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EventRec {
    pub event_id: String,
    pub actor_user_id: String,
    pub actor_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    pub event_type: String,
    pub created_at: String,
    pub api_token_name: String,
    pub sub_events: Vec<Map<String, Value>>,
    #[serde(skip)]
    pub at: DateTime<Utc>,
    #[serde(skip)]
    pub object_ids: BTreeSet<String>,
}

/// The identity the API token acts as.
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub user_id: String,
    pub name: String,
    pub email: Option<String>,
}

/// A user's access to a resource, merged over the direct grant and every group path.
#[derive(Clone, Debug)]
pub(crate) struct ResourceAccess {
    pub level: AccessLevel,
    pub has_direct_access: bool,
    pub num_access_paths: u32,
    pub expiration: Option<DateTime<Utc>>,
}

/// Grants of one kind, indexed both ways: target → (user, level) and user → (target, level).
#[derive(Clone, Debug, Default)]
pub(crate) struct GrantIndex {
    pub by_target: HashMap<String, BTreeMap<(String, String), Grant>>,
    pub by_user: HashMap<String, BTreeMap<(String, String), ()>>,
}

impl GrantIndex {
    pub(crate) fn get(&self, target: &str, user: &str, level: &str) -> Option<&Grant> {
        self.by_target
            .get(target)?
            .get(&(user.to_owned(), level.to_owned()))
    }

    fn insert(&mut self, target: &str, user: &str, grant: Grant) {
        let level = grant.level.remote_id.clone();
        self.by_user
            .entry(user.to_owned())
            .or_default()
            .insert((target.to_owned(), level.clone()), ());
        self.by_target
            .entry(target.to_owned())
            .or_default()
            .insert((user.to_owned(), level), grant);
    }

    fn remove(&mut self, target: &str, user: &str, level: &str) -> Option<Grant> {
        let grants = self.by_target.get_mut(target)?;
        let removed = grants.remove(&(user.to_owned(), level.to_owned()))?;
        if let Some(targets) = self.by_user.get_mut(user) {
            targets.remove(&(target.to_owned(), level.to_owned()));
        }
        Some(removed)
    }

    /// Active grants a user holds on one target.
    pub(crate) fn user_grants_on(
        &self,
        target: &str,
        user: &str,
        now: DateTime<Utc>,
    ) -> Vec<Grant> {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter(|((grant_target, _), ())| grant_target == target)
            .filter_map(|((_, level), ())| self.get(target, user, level))
            .filter(|grant| grant.active_at(now))
            .cloned()
            .collect()
    }

    /// Makes every grant `user` holds on `target` outlive its end; returns how many.
    pub(crate) fn fail_expiry(&mut self, target: &str, user: &str) -> usize {
        self.by_target
            .get_mut(target)
            .into_iter()
            .flatten()
            .filter(|((holder, _), _)| holder == user)
            .map(|(_, grant)| grant.expiry_fails = true)
            .count()
    }

    /// Every (target, user, grant) triple.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &String, &Grant)> {
        self.by_target.iter().flat_map(|(target, grants)| {
            grants
                .iter()
                .map(move |((user, _), grant)| (target, user, grant))
        })
    }
}

/// What adding a grant did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AddOutcome {
    Created(Grant),
    AlreadyExisted(Grant),
}

/// The whole simulated organisation.
#[derive(Debug)]
pub(crate) struct Org {
    pub clock: SimClock,
    rng: StdRng,
    pub actor: Actor,
    pub users: BTreeMap<String, UserRec>,
    email_index: HashMap<String, String>,
    pub owners: BTreeMap<String, OwnerRec>,
    pub groups: BTreeMap<String, GroupRec>,
    pub resources: BTreeMap<String, ResourceRec>,
    pub tags: BTreeMap<String, TagRec>,
    pub channels: BTreeMap<String, ChannelRec>,
    pub bundles: BTreeMap<String, BundleRec>,
    pub group_grants: GrantIndex,
    pub resource_grants: GrantIndex,
    /// Group → (resource, level) → expiry.
    pub group_resources: HashMap<String, BTreeMap<(String, String), Grant>>,
    /// Resource → (group, level).
    pub resource_groups: HashMap<String, BTreeSet<(String, String)>>,
    pub requests: BTreeMap<String, RequestRec>,
    pub uars: BTreeMap<String, UarRec>,
    /// Keyed by `u64::MAX - sequence` so key order is newest first.
    pub events: BTreeMap<u64, EventRec>,
    event_keys: HashMap<String, u64>,
    next_event_sequence: u64,
}

impl Org {
    /// An organisation with nothing in it, acting as the built-in API identity.
    fn empty(seed: u64) -> Self {
        Self {
            clock: SimClock::default(),
            rng: StdRng::seed_from_u64(seed),
            actor: Actor {
                user_id: derived_id("api-user", "opal-sim", 0),
                name: "Opal API (simulator)".to_owned(),
                email: None,
            },
            users: BTreeMap::new(),
            email_index: HashMap::new(),
            owners: BTreeMap::new(),
            groups: BTreeMap::new(),
            resources: BTreeMap::new(),
            tags: BTreeMap::new(),
            channels: BTreeMap::new(),
            bundles: BTreeMap::new(),
            group_grants: GrantIndex::default(),
            resource_grants: GrantIndex::default(),
            group_resources: HashMap::new(),
            resource_groups: HashMap::new(),
            requests: BTreeMap::new(),
            uars: BTreeMap::new(),
            events: BTreeMap::new(),
            event_keys: HashMap::new(),
            next_event_sequence: 0,
        }
    }

    /// A fresh random id (deterministic for a given seed and call order).
    pub(crate) fn new_id(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn user(&self, user_id: &str) -> ApiResult<&UserRec> {
        self.users
            .get(user_id)
            .ok_or_else(|| ApiError::not_found("user", user_id))
    }

    pub(crate) fn user_by_email(&self, email: &str) -> Option<&UserRec> {
        self.email_index
            .get(&email.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub(crate) fn group(&self, group_id: &str) -> ApiResult<&GroupRec> {
        self.groups
            .get(group_id)
            .ok_or_else(|| ApiError::not_found("group", group_id))
    }

    pub(crate) fn resource(&self, resource_id: &str) -> ApiResult<&ResourceRec> {
        self.resources
            .get(resource_id)
            .ok_or_else(|| ApiError::not_found("resource", resource_id))
    }

    pub(crate) fn owner(&self, owner_id: &str) -> ApiResult<&OwnerRec> {
        self.owners
            .get(owner_id)
            .ok_or_else(|| ApiError::not_found("owner", owner_id))
    }

    pub(crate) fn tag(&self, tag_id: &str) -> ApiResult<&TagRec> {
        self.tags
            .get(tag_id)
            .ok_or_else(|| ApiError::not_found("tag", tag_id))
    }

    /// Name and settings of a group or resource.
    pub(crate) fn target(&self, kind: TargetKind, id: &str) -> ApiResult<(&str, &AccessSettings)> {
        match kind {
            TargetKind::Group => self
                .group(id)
                .map(|group| (group.name.as_str(), &group.settings)),
            TargetKind::Resource => self
                .resource(id)
                .map(|resource| (resource.name.as_str(), &resource.settings)),
        }
    }

    pub(crate) fn settings_mut(
        &mut self,
        kind: TargetKind,
        id: &str,
    ) -> ApiResult<&mut AccessSettings> {
        match kind {
            TargetKind::Group => self
                .groups
                .get_mut(id)
                .map(|group| &mut group.settings)
                .ok_or_else(|| ApiError::not_found("group", id)),
            TargetKind::Resource => self
                .resources
                .get_mut(id)
                .map(|resource| &mut resource.settings)
                .ok_or_else(|| ApiError::not_found("resource", id)),
        }
    }

    pub(crate) fn grants(&self, kind: TargetKind) -> &GrantIndex {
        match kind {
            TargetKind::Group => &self.group_grants,
            TargetKind::Resource => &self.resource_grants,
        }
    }

    fn grants_mut(&mut self, kind: TargetKind) -> &mut GrantIndex {
        match kind {
            TargetKind::Group => &mut self.group_grants,
            TargetKind::Resource => &mut self.resource_grants,
        }
    }

    /// The full access level for a remote id on a target: the default level, a level the target
    /// declares, or — when the target declares none — any level, named after its remote id.
    pub(crate) fn resolve_level(
        &self,
        kind: TargetKind,
        target_id: &str,
        requested: Option<&AccessLevel>,
    ) -> ApiResult<AccessLevel> {
        let (_, settings) = self.target(kind, target_id)?;
        let Some(requested) = requested.filter(|level| !level.remote_id.is_empty()) else {
            return Ok(AccessLevel::default());
        };
        if let Some(declared) = settings
            .access_levels
            .iter()
            .find(|level| level.remote_id == requested.remote_id)
        {
            return Ok(declared.clone());
        }
        if settings.access_levels.is_empty() {
            let name = if requested.name.is_empty() {
                requested.remote_id.clone()
            } else {
                requested.name.clone()
            };
            return Ok(AccessLevel::new(name, requested.remote_id.clone()));
        }
        Err(ApiError::bad_request(format!(
            "access level {:?} does not exist on {} {target_id}",
            requested.remote_id,
            kind.noun()
        )))
    }

    pub(crate) fn set_user_email_index(&mut self, user_id: &str, email: &str) {
        self.email_index
            .insert(email.to_lowercase(), user_id.to_owned());
    }
}

#[cfg(test)]
mod tests;
