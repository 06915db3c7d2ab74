//! The simulated organisation: objects, grants with their indexes, requests, reviews and the
//! audit log, plus the rules every write follows. Handlers and the test-facing state handle both
//! go through here, so HTTP and direct mutation see one consistent model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};

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
}

impl Grant {
    pub(crate) fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_none_or(|expiry| expiry > now)
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

    /// Expiry of a grant made now for `duration_minutes` (0 = indefinite).
    pub(crate) fn expiry_after(&self, duration_minutes: i64) -> Option<DateTime<Utc>> {
        (duration_minutes > 0).then(|| self.now() + TimeDelta::minutes(duration_minutes))
    }

    /// Adds a grant unless an active one with the same key exists. Expired grants count as absent.
    pub(crate) fn add_grant(
        &mut self,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        level_remote_id: &str,
        expiration: Option<DateTime<Utc>>,
    ) -> ApiResult<AddOutcome> {
        self.user(user_id)?;
        let level = self.resolve_level(
            kind,
            target_id,
            Some(&AccessLevel::new("", level_remote_id)),
        )?;
        let now = self.now();
        if let Some(existing) = self.grants(kind).get(target_id, user_id, level_remote_id)
            && existing.active_at(now)
        {
            return Ok(AddOutcome::AlreadyExisted(existing.clone()));
        }
        let grant = Grant { level, expiration };
        self.grants_mut(kind)
            .insert(target_id, user_id, grant.clone());
        Ok(AddOutcome::Created(grant))
    }

    /// Creates or replaces a grant.
    pub(crate) fn put_grant(
        &mut self,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        grant: Grant,
    ) -> ApiResult<()> {
        self.user(user_id)?;
        self.target(kind, target_id)?;
        self.grants_mut(kind).insert(target_id, user_id, grant);
        Ok(())
    }

    /// Removes an active grant; `None` when there was none.
    pub(crate) fn remove_grant(
        &mut self,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        level_remote_id: &str,
    ) -> Option<Grant> {
        let now = self.now();
        let removed = self
            .grants_mut(kind)
            .remove(target_id, user_id, level_remote_id)?;
        removed.active_at(now).then_some(removed)
    }

    pub(crate) fn link_group_resource(
        &mut self,
        group_id: &str,
        resource_id: &str,
        level: AccessLevel,
        expiration: Option<DateTime<Utc>>,
    ) {
        let remote_id = level.remote_id.clone();
        self.resource_groups
            .entry(resource_id.to_owned())
            .or_default()
            .insert((group_id.to_owned(), remote_id.clone()));
        self.group_resources
            .entry(group_id.to_owned())
            .or_default()
            .insert(
                (resource_id.to_owned(), remote_id),
                Grant { level, expiration },
            );
    }

    /// Every user's access to one resource, keyed by (user, level).
    pub(crate) fn resource_access(
        &self,
        resource_id: &str,
    ) -> BTreeMap<(String, String), ResourceAccess> {
        let now = self.now();
        let mut access: BTreeMap<(String, String), ResourceAccess> = BTreeMap::new();
        if let Some(direct) = self.resource_grants.by_target.get(resource_id) {
            for ((user, level), grant) in direct {
                if grant.active_at(now) {
                    access.insert(
                        (user.clone(), level.clone()),
                        ResourceAccess {
                            level: grant.level.clone(),
                            has_direct_access: true,
                            num_access_paths: 1,
                            expiration: grant.expiration,
                        },
                    );
                }
            }
        }
        for (group_id, level) in self.resource_groups.get(resource_id).into_iter().flatten() {
            let Some(link) = self
                .group_resources
                .get(group_id)
                .and_then(|links| links.get(&(resource_id.to_owned(), level.clone())))
                .filter(|link| link.active_at(now))
            else {
                continue;
            };
            for (user, membership_expiry) in self.active_members(group_id) {
                merge_path(
                    access.entry((user, level.clone())),
                    &link.level,
                    earlier_expiry(membership_expiry, link.expiration),
                );
            }
        }
        access
    }

    /// Every resource one user can reach, keyed by (resource, level).
    pub(crate) fn user_resource_access(
        &self,
        user_id: &str,
    ) -> BTreeMap<(String, String), ResourceAccess> {
        let now = self.now();
        let mut access: BTreeMap<(String, String), ResourceAccess> = BTreeMap::new();
        for ((resource, level), ()) in self
            .resource_grants
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
        {
            if let Some(grant) = self
                .resource_grants
                .get(resource, user_id, level)
                .filter(|grant| grant.active_at(now))
            {
                access.insert(
                    (resource.clone(), level.clone()),
                    ResourceAccess {
                        level: grant.level.clone(),
                        has_direct_access: true,
                        num_access_paths: 1,
                        expiration: grant.expiration,
                    },
                );
            }
        }
        let mut member_of: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
        for ((group, level), ()) in self.group_grants.by_user.get(user_id).into_iter().flatten() {
            if let Some(membership) = self
                .group_grants
                .get(group, user_id, level)
                .filter(|grant| grant.active_at(now))
            {
                member_of
                    .entry(group.clone())
                    .and_modify(|expiry| *expiry = later_expiry(*expiry, membership.expiration))
                    .or_insert(membership.expiration);
            }
        }
        for (group, membership_expiry) in member_of {
            for ((resource, level), link) in self.group_resources.get(&group).into_iter().flatten()
            {
                if !link.active_at(now) {
                    continue;
                }
                merge_path(
                    access.entry((resource.clone(), level.clone())),
                    &link.level,
                    earlier_expiry(membership_expiry, link.expiration),
                );
            }
        }
        access
    }

    /// Records an audit event as the API actor.
    pub(crate) fn record_event(&mut self, event_type: &str, sub_events: Vec<Map<String, Value>>) {
        let actor = self.actor.clone();
        let at = self.now();
        let event_id = self.new_id();
        let mut object_ids = BTreeSet::new();
        for sub_event in &sub_events {
            for (field, value) in sub_event {
                if field.ends_with("_id")
                    && let Some(id) = value.as_str()
                {
                    object_ids.insert(id.to_owned());
                }
            }
        }
        let key = u64::MAX - self.next_event_sequence;
        self.next_event_sequence += 1;
        self.event_keys.insert(event_id.clone(), key);
        self.events.insert(
            key,
            EventRec {
                event_id,
                actor_user_id: actor.user_id.clone(),
                actor_name: actor.name.clone(),
                actor_email: actor.email.clone(),
                event_type: event_type.to_owned(),
                created_at: timestamp(at),
                api_token_name: "opal-sim".to_owned(),
                sub_events,
                at,
                object_ids,
            },
        );
    }

    pub(crate) fn event(&self, event_id: &str) -> ApiResult<&EventRec> {
        self.event_keys
            .get(event_id)
            .and_then(|key| self.events.get(key))
            .ok_or_else(|| ApiError::not_found("event", event_id))
    }

    /// The sub-event describing a grant change.
    pub(crate) fn grant_sub_event(
        &self,
        sub_event_type: &str,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        grant: &Grant,
    ) -> Map<String, Value> {
        let mut sub_event = Map::new();
        sub_event.insert("sub_event_type".into(), sub_event_type.into());
        sub_event.insert(kind.id_field().into(), target_id.into());
        if let Ok((name, _)) = self.target(kind, target_id) {
            sub_event.insert(format!("{}_name", kind.noun()), name.into());
        }
        sub_event.insert("user_id".into(), user_id.into());
        if let Some(user) = self.users.get(user_id) {
            sub_event.insert("user_name".into(), user.full_name.clone().into());
        }
        sub_event.insert(
            "access_level_remote_id".into(),
            grant.level.remote_id.clone().into(),
        );
        sub_event.insert("access_level_name".into(), grant.level.name.clone().into());
        sub_event
    }

    /// Records `GROUP_USER_ADDED`-style events (`<KIND>_USER_<verb>`).
    pub(crate) fn record_grant_event(
        &mut self,
        verb: &str,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        grant: &Grant,
    ) {
        let event_type = format!("{}_USER_{verb}", kind.event_prefix());
        let sub_event = self.grant_sub_event(&event_type, kind, target_id, user_id, grant);
        self.record_event(&event_type, vec![sub_event]);
    }

    /// Records a change to an object's configuration.
    pub(crate) fn record_object_event(&mut self, event_type: &str, field: &str, id: &str) {
        let mut sub_event = Map::new();
        sub_event.insert("sub_event_type".into(), event_type.into());
        sub_event.insert(field.into(), id.into());
        self.record_event(event_type, vec![sub_event]);
    }

    /// A requested item with the review stages its target is configured with.
    pub(crate) fn request_item(
        &self,
        kind: TargetKind,
        target_id: &str,
        level: Option<&AccessLevel>,
    ) -> ApiResult<RequestItemRec> {
        let level = self.resolve_level(kind, target_id, level)?;
        let (name, settings) = self.target(kind, target_id)?;
        let remote_id = match kind {
            TargetKind::Group => self.groups.get(target_id).and_then(|g| g.remote_id.clone()),
            TargetKind::Resource => self
                .resources
                .get(target_id)
                .and_then(|r| r.remote_resource_id.clone()),
        };
        let stages = settings
            .reviewer_stages
            .iter()
            .map(|stage| StageRec {
                operator: stage.operator,
                reviewers: stage
                    .owner_ids
                    .iter()
                    .filter_map(|owner| self.owners.get(owner))
                    .flat_map(|owner| owner.user_ids.iter())
                    .filter_map(|user| self.users.get(user))
                    .map(|user| ReviewerRec {
                        user_id: user.user_id.clone(),
                        full_name: user.full_name.clone(),
                    })
                    .collect(),
            })
            .collect();
        Ok(RequestItemRec {
            kind,
            target_id: target_id.to_owned(),
            name: name.to_owned(),
            remote_id,
            level,
            stages,
        })
    }

    /// Grants what an approved request asked for, with the request's duration.
    pub(crate) fn fulfil_request(
        &mut self,
        request_id: &str,
    ) -> ApiResult<Vec<Map<String, Value>>> {
        let request = self
            .requests
            .get(request_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("request", request_id))?;
        let expiration = self.expiry_after(request.duration_minutes);
        let mut sub_events = Vec::new();
        for item in &request.items {
            match (&request.target_user_id, &request.target_group_id, item.kind) {
                (Some(user), _, kind) => {
                    let now = self.now();
                    let existing = self
                        .grants(kind)
                        .get(&item.target_id, user, &item.level.remote_id)
                        .filter(|grant| grant.active_at(now))
                        .map(|grant| grant.expiration);
                    let expiration = match existing {
                        Some(current) => later_expiry(current, expiration),
                        None => expiration,
                    };
                    let grant = Grant {
                        level: item.level.clone(),
                        expiration,
                    };
                    self.put_grant(kind, &item.target_id, user, grant.clone())?;
                    let sub_event_type = format!("{}_USER_ADDED", kind.event_prefix());
                    sub_events.push(self.grant_sub_event(
                        &sub_event_type,
                        kind,
                        &item.target_id,
                        user,
                        &grant,
                    ));
                }
                (None, Some(group), TargetKind::Resource) => {
                    self.link_group_resource(
                        group,
                        &item.target_id,
                        item.level.clone(),
                        expiration,
                    );
                    let mut sub_event = Map::new();
                    sub_event.insert("sub_event_type".into(), "GROUP_RESOURCE_ADDED".into());
                    sub_event.insert("group_id".into(), group.clone().into());
                    sub_event.insert("resource_id".into(), item.target_id.clone().into());
                    sub_events.push(sub_event);
                }
                // Groups inside groups are not modelled: approving one records the decision only.
                (None, _, TargetKind::Group) | (None, None, TargetKind::Resource) => {}
            }
        }
        Ok(sub_events)
    }

    /// Recomputes every resource's ancestors and descendants from the parent links.
    pub(crate) fn recompute_resource_tree(&mut self) -> Result<(), SimError> {
        let parents: HashMap<String, String> = self
            .resources
            .values()
            .filter_map(|r| Some((r.resource_id.clone(), r.parent_resource_id.clone()?)))
            .collect();
        let mut ancestors: HashMap<String, Vec<String>> = HashMap::new();
        for id in self.resources.keys() {
            let mut chain = Vec::new();
            let mut current = id;
            while let Some(parent) = parents.get(current) {
                if parent == id || chain.len() > parents.len() {
                    return Err(SimError::FixtureInvalid(format!(
                        "resource {id} is its own ancestor"
                    )));
                }
                chain.push(parent.clone());
                current = parent;
            }
            ancestors.insert(id.clone(), chain);
        }
        let mut descendants: HashMap<String, Vec<String>> = HashMap::new();
        for (id, chain) in &ancestors {
            for ancestor in chain {
                descendants
                    .entry(ancestor.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        for (id, resource) in &mut self.resources {
            resource.ancestor_resource_ids = ancestors.remove(id).unwrap_or_default();
            let mut below = descendants.remove(id).unwrap_or_default();
            below.sort();
            resource.descendant_resource_ids = below;
        }
        Ok(())
    }

    /// Users with an active membership of a group, each with the latest expiry over their levels.
    pub(crate) fn active_members(&self, group_id: &str) -> BTreeMap<String, Option<DateTime<Utc>>> {
        let now = self.now();
        let mut members: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
        for ((user, _), grant) in self
            .group_grants
            .by_target
            .get(group_id)
            .into_iter()
            .flatten()
        {
            if grant.active_at(now) {
                members
                    .entry(user.clone())
                    .and_modify(|expiry| *expiry = later_expiry(*expiry, grant.expiration))
                    .or_insert(grant.expiration);
            }
        }
        members
    }

    pub(crate) fn set_user_email_index(&mut self, user_id: &str, email: &str) {
        self.email_index
            .insert(email.to_lowercase(), user_id.to_owned());
    }
}

/// Later of two expiries, where `None` (indefinite) is the latest.
fn later_expiry(
    first: Option<DateTime<Utc>>,
    second: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (first, second) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// Earlier of two expiries, where `None` (indefinite) is the latest.
fn earlier_expiry(
    first: Option<DateTime<Utc>>,
    second: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (first, second) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    }
}

fn merge_path(
    entry: std::collections::btree_map::Entry<'_, (String, String), ResourceAccess>,
    level: &AccessLevel,
    expiration: Option<DateTime<Utc>>,
) {
    entry
        .and_modify(|access| {
            access.num_access_paths += 1;
            access.expiration = later_expiry(access.expiration, expiration);
        })
        .or_insert_with(|| ResourceAccess {
            level: level.clone(),
            has_direct_access: false,
            num_access_paths: 1,
            expiration,
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opal::fixture::{
        FixtureGroup, FixtureGroupResource, FixtureMembership, FixtureResource,
        FixtureResourceGrant, FixtureUser, OrgFixture,
    };

    fn fixture() -> OrgFixture {
        OrgFixture {
            users: vec![
                FixtureUser {
                    email: "a@example.com".into(),
                    ..FixtureUser::default()
                },
                FixtureUser {
                    email: "b@example.com".into(),
                    ..FixtureUser::default()
                },
            ],
            groups: vec![
                FixtureGroup {
                    name: "eng".into(),
                    ..FixtureGroup::default()
                },
                FixtureGroup {
                    name: "ops".into(),
                    ..FixtureGroup::default()
                },
            ],
            resources: vec![FixtureResource {
                name: "db".into(),
                ..FixtureResource::default()
            }],
            memberships: vec![
                FixtureMembership {
                    group: "eng".into(),
                    user: "a@example.com".into(),
                    ..FixtureMembership::default()
                },
                FixtureMembership {
                    group: "ops".into(),
                    user: "a@example.com".into(),
                    ..FixtureMembership::default()
                },
            ],
            resource_grants: vec![FixtureResourceGrant {
                resource: "db".into(),
                user: "a@example.com".into(),
                ..FixtureResourceGrant::default()
            }],
            group_resources: vec![
                FixtureGroupResource {
                    group: "eng".into(),
                    resource: "db".into(),
                    access_level: None,
                },
                FixtureGroupResource {
                    group: "ops".into(),
                    resource: "db".into(),
                    access_level: None,
                },
            ],
            ..OrgFixture::default()
        }
    }

    #[test]
    fn derived_ids_are_stable_uuids() {
        let id = derived_id("user", "a@example.com", 0);
        assert_eq!(id, derived_id("user", "a@example.com", 0));
        assert_ne!(id, derived_id("user", "a@example.com", 1));
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }

    #[test]
    fn access_paths_count_direct_and_every_group() {
        let org = Org::from_fixture(&fixture(), 1).expect("fixture loads");
        let db = derived_id("resource", "db", 0);
        let alice = derived_id("user", "a@example.com", 0);
        let access = org.resource_access(&db);
        let entry = access
            .get(&(alice.clone(), String::new()))
            .expect("alice has access");
        assert!(entry.has_direct_access);
        assert_eq!(entry.num_access_paths, 3);
        let by_user = org.user_resource_access(&alice);
        assert_eq!(
            by_user
                .get(&(db, String::new()))
                .map(|a| a.num_access_paths),
            Some(3)
        );
    }

    #[test]
    fn unknown_reference_is_reported() {
        let mut broken = fixture();
        broken.memberships[0].user = "nobody@example.com".into();
        let err = Org::from_fixture(&broken, 1).expect_err("must fail");
        assert!(err.to_string().contains("nobody@example.com"), "{err}");
    }

    #[test]
    fn expired_grants_are_absent() {
        let mut org = Org::from_fixture(&fixture(), 1).expect("fixture loads");
        let eng = derived_id("group", "eng", 0);
        let bob = derived_id("user", "b@example.com", 0);
        let expiry = org.expiry_after(5);
        let outcome = org
            .add_grant(TargetKind::Group, &eng, &bob, "", expiry)
            .expect("grant");
        assert!(matches!(outcome, AddOutcome::Created(_)));
        assert!(org.active_members(&eng).contains_key(&bob));
        org.clock.advance(TimeDelta::minutes(6));
        assert!(!org.active_members(&eng).contains_key(&bob));
        assert!(
            org.remove_grant(TargetKind::Group, &eng, &bob, "")
                .is_none()
        );
    }
}
