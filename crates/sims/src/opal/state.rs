//! Direct access to the simulated organisation for tests: read snapshots and inject drift
//! without HTTP. Nothing here is counted as a call, and mutations record no audit events unless
//! [`SimState::record_event`] is used.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::SimError;
use super::fixture::FixtureUser;
use super::http::ApiError;
use super::model::{Grant, Org, RequestRec, TargetKind, UserRec};
use super::wire::{
    AccessLevel, HR_IDP_STATUSES, RequestConfiguration, ReviewerStage, VisibilityInfo,
};

/// A group or resource, by id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantTarget {
    /// A group id.
    Group(String),
    /// A resource id.
    Resource(String),
}

impl GrantTarget {
    fn split(&self) -> (TargetKind, &str) {
        match self {
            Self::Group(id) => (TargetKind::Group, id),
            Self::Resource(id) => (TargetKind::Resource, id),
        }
    }

    fn from_parts(kind: TargetKind, id: &str) -> Self {
        match kind {
            TargetKind::Group => Self::Group(id.to_owned()),
            TargetKind::Resource => Self::Resource(id.to_owned()),
        }
    }
}

/// One active direct grant (a group membership or a direct resource grant).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantSnapshot {
    /// What the grant is on.
    pub target: GrantTarget,
    /// Who holds it.
    pub user_id: String,
    /// At which level.
    pub access_level: AccessLevel,
    /// When it ends; `None` is indefinite.
    pub expiration_date: Option<DateTime<Utc>>,
}

/// A user's effective access to a resource, direct and through groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessSnapshot {
    /// Who.
    pub user_id: String,
    /// At which level.
    pub access_level: AccessLevel,
    /// Whether a direct grant exists at this level.
    pub has_direct_access: bool,
    /// Direct grant plus groups granting it.
    pub num_access_paths: u32,
}

/// A user as Opal knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Opal id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Job title.
    pub position: String,
    /// `UserHrIdpStatusEnum` value.
    pub hr_idp_status: Option<String>,
}

impl From<&UserRec> for SimUser {
    fn from(user: &UserRec) -> Self {
        Self {
            user_id: user.user_id.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            position: user.position.clone(),
            hr_idp_status: user.hr_idp_status.clone(),
        }
    }
}

/// An audit event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSnapshot {
    /// Event id.
    pub event_id: String,
    /// Event type, e.g. `GROUP_USER_ADDED`.
    pub event_type: String,
    /// Who acted.
    pub actor_user_id: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Every id named in the sub-events (what `object_filter` matches).
    pub object_ids: Vec<String>,
    /// The sub-events as served.
    pub sub_events: Vec<Map<String, Value>>,
}

/// One requested object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedItem {
    /// The group or resource.
    pub target: GrantTarget,
    /// Requested level.
    pub access_level: AccessLevel,
}

/// An access request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSnapshot {
    /// Request id.
    pub id: String,
    /// `RequestStatusEnum` value.
    pub status: String,
    /// Who asked.
    pub requester_id: String,
    /// Who would get access.
    pub target_user_id: Option<String>,
    /// Group that would get access.
    pub target_group_id: Option<String>,
    /// Justification.
    pub reason: String,
    /// Minutes; -1 indefinite.
    pub duration_minutes: i64,
    /// What is requested.
    pub items: Vec<RequestedItem>,
}

impl From<&RequestRec> for RequestSnapshot {
    fn from(request: &RequestRec) -> Self {
        Self {
            id: request.id.clone(),
            status: request.status.clone(),
            requester_id: request.requester_id.clone(),
            target_user_id: request.target_user_id.clone(),
            target_group_id: request.target_group_id.clone(),
            reason: request.reason.clone(),
            duration_minutes: request.duration_minutes,
            items: request
                .items
                .iter()
                .map(|item| RequestedItem {
                    target: GrantTarget::from_parts(item.kind, &item.target_id),
                    access_level: item.level.clone(),
                })
                .collect(),
        }
    }
}

/// A request to inject as if someone had made it in Opal's UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    /// Who asks.
    pub requester_id: String,
    /// Who would get access; the requester when `None`.
    pub target_user_id: Option<String>,
    /// Justification.
    pub reason: String,
    /// Minutes; -1 indefinite.
    pub duration_minutes: i64,
    /// What is requested: target and access level remote id (`""` = default level).
    pub items: Vec<(GrantTarget, String)>,
}

fn rejected(err: ApiError) -> SimError {
    SimError::Rejected(err.message)
}

/// Handle on the simulated organisation.
#[derive(Clone, Debug)]
pub struct SimState {
    org: Arc<Mutex<Org>>,
}

impl SimState {
    pub(crate) fn new(org: Arc<Mutex<Org>>) -> Self {
        Self { org }
    }

    fn lock(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    /// Stops the clock at `at` (grant expiry and timestamps follow it).
    pub fn freeze_clock(&self, at: DateTime<Utc>) {
        self.lock().clock.freeze(at);
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance_clock(&self, by: TimeDelta) {
        self.lock().clock.advance(by);
    }

    /// Id of the identity the API token acts as.
    pub fn actor_user_id(&self) -> String {
        self.lock().actor.user_id.clone()
    }

    /// Every user, in id order.
    pub fn users(&self) -> Vec<SimUser> {
        self.lock().users.values().map(SimUser::from).collect()
    }

    /// One user.
    pub fn user(&self, user_id: &str) -> Option<SimUser> {
        self.lock().users.get(user_id).map(SimUser::from)
    }

    /// One user, by email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<SimUser> {
        self.lock().user_by_email(email).map(SimUser::from)
    }

    /// Id of the group with this name (the first, in id order, if several share it).
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.lock()
            .groups
            .values()
            .find(|group| group.name == name)
            .map(|group| group.group_id.clone())
    }

    /// Id of the resource with this name (the first, in id order, if several share it).
    pub fn resource_id(&self, name: &str) -> Option<String> {
        self.lock()
            .resources
            .values()
            .find(|resource| resource.name == name)
            .map(|resource| resource.resource_id.clone())
    }

    /// Id of the owner with this name.
    pub fn owner_id(&self, name: &str) -> Option<String> {
        self.lock()
            .owners
            .values()
            .find(|owner| owner.name == name)
            .map(|owner| owner.owner_id.clone())
    }

    /// A group as `GET /groups/{group_id}` serves it.
    pub fn group(&self, group_id: &str) -> Option<Value> {
        let org = self.lock();
        org.groups
            .get(group_id)
            .and_then(|group| serde_json::to_value(group).ok())
    }

    /// A resource as `GET /resources/{resource_id}` serves it.
    pub fn resource(&self, resource_id: &str) -> Option<Value> {
        let org = self.lock();
        org.resources
            .get(resource_id)
            .and_then(|resource| serde_json::to_value(resource).ok())
    }

    /// Visibility of a group or resource.
    pub fn visibility(&self, target: &GrantTarget) -> Option<VisibilityInfo> {
        let (kind, id) = target.split();
        let org = self.lock();
        org.target(kind, id)
            .ok()
            .map(|(_, settings)| settings.visibility.clone())
    }

    /// Reviewer stages of a group or resource.
    pub fn reviewer_stages(&self, target: &GrantTarget) -> Option<Vec<ReviewerStage>> {
        let (kind, id) = target.split();
        let org = self.lock();
        org.target(kind, id)
            .ok()
            .map(|(_, settings)| settings.reviewer_stages.clone())
    }

    fn snapshots(org: &Org, kind: TargetKind, target_id: &str) -> Vec<GrantSnapshot> {
        let now = org.now();
        org.grants(kind)
            .by_target
            .get(target_id)
            .into_iter()
            .flatten()
            .filter(|(_, grant)| grant.active_at(now))
            .map(|((user, _), grant)| GrantSnapshot {
                target: GrantTarget::from_parts(kind, target_id),
                user_id: user.clone(),
                access_level: grant.level.clone(),
                expiration_date: grant.expiration,
            })
            .collect()
    }

    /// Active memberships of a group, in (user, level) order.
    pub fn group_members(&self, group_id: &str) -> Vec<GrantSnapshot> {
        Self::snapshots(&self.lock(), TargetKind::Group, group_id)
    }

    /// Active direct grants on a resource, in (user, level) order.
    pub fn resource_direct_users(&self, resource_id: &str) -> Vec<GrantSnapshot> {
        Self::snapshots(&self.lock(), TargetKind::Resource, resource_id)
    }

    /// Everyone who can reach a resource, directly or through groups.
    pub fn resource_access(&self, resource_id: &str) -> Vec<AccessSnapshot> {
        self.lock()
            .resource_access(resource_id)
            .into_iter()
            .map(|((user_id, _), access)| AccessSnapshot {
                user_id,
                access_level: access.level,
                has_direct_access: access.has_direct_access,
                num_access_paths: access.num_access_paths,
            })
            .collect()
    }

    /// Every active direct grant one user holds.
    pub fn user_grants(&self, user_id: &str) -> Vec<GrantSnapshot> {
        self.all_grants()
            .into_iter()
            .filter(|grant| grant.user_id == user_id)
            .collect()
    }

    /// Every active direct grant in the organisation, sorted.
    pub fn all_grants(&self) -> Vec<GrantSnapshot> {
        let org = self.lock();
        let now = org.now();
        let mut grants: Vec<GrantSnapshot> = [TargetKind::Group, TargetKind::Resource]
            .into_iter()
            .flat_map(|kind| {
                org.grants(kind)
                    .iter()
                    .filter(move |(_, _, grant)| grant.active_at(now))
                    .map(move |(target, user, grant)| GrantSnapshot {
                        target: GrantTarget::from_parts(kind, target),
                        user_id: user.clone(),
                        access_level: grant.level.clone(),
                        expiration_date: grant.expiration,
                    })
            })
            .collect();
        grants.sort();
        grants
    }

    /// Audit events, newest first.
    pub fn events(&self) -> Vec<EventSnapshot> {
        self.lock()
            .events
            .values()
            .map(|event| EventSnapshot {
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                actor_user_id: event.actor_user_id.clone(),
                created_at: event.at,
                object_ids: event.object_ids.iter().cloned().collect(),
                sub_events: event.sub_events.clone(),
            })
            .collect()
    }

    /// Every request, in id order.
    pub fn requests(&self) -> Vec<RequestSnapshot> {
        self.lock()
            .requests
            .values()
            .map(RequestSnapshot::from)
            .collect()
    }

    /// One request.
    pub fn request(&self, request_id: &str) -> Option<RequestSnapshot> {
        self.lock()
            .requests
            .get(request_id)
            .map(RequestSnapshot::from)
    }

    /// Adds or replaces a membership. The level's name may be empty when the group declares it.
    pub fn add_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        access_level: AccessLevel,
        expiration_date: Option<DateTime<Utc>>,
    ) -> Result<(), SimError> {
        self.put(
            TargetKind::Group,
            group_id,
            user_id,
            access_level,
            expiration_date,
        )
    }

    /// Removes a membership; false when there was none.
    pub fn remove_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        level_remote_id: &str,
    ) -> bool {
        self.lock()
            .remove_grant(TargetKind::Group, group_id, user_id, level_remote_id)
            .is_some()
    }

    /// Makes the user's memberships of the group outlive their end, as when Opal's expiry
    /// fails to propagate: they stay listed with their past `expiration_date` until removed.
    /// Returns how many there were.
    pub fn fail_group_expiry(&self, group_id: &str, user_id: &str) -> usize {
        self.lock().group_grants.fail_expiry(group_id, user_id)
    }

    /// [`SimState::fail_group_expiry`] for a user's direct grants on a resource.
    pub fn fail_resource_expiry(&self, resource_id: &str, user_id: &str) -> usize {
        self.lock()
            .resource_grants
            .fail_expiry(resource_id, user_id)
    }

    /// Adds or replaces a direct resource grant.
    pub fn add_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        access_level: AccessLevel,
        expiration_date: Option<DateTime<Utc>>,
    ) -> Result<(), SimError> {
        self.put(
            TargetKind::Resource,
            resource_id,
            user_id,
            access_level,
            expiration_date,
        )
    }

    /// Removes a direct resource grant; false when there was none.
    pub fn remove_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        level_remote_id: &str,
    ) -> bool {
        self.lock()
            .remove_grant(TargetKind::Resource, resource_id, user_id, level_remote_id)
            .is_some()
    }

    fn put(
        &self,
        kind: TargetKind,
        target_id: &str,
        user_id: &str,
        access_level: AccessLevel,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<(), SimError> {
        let mut org = self.lock();
        let level = org
            .resolve_level(kind, target_id, Some(&access_level))
            .map_err(rejected)?;
        org.put_grant(kind, target_id, user_id, Grant::new(level, expiration))
            .map_err(rejected)
    }

    /// Grants a resource to a group, so its members reach the resource indirectly.
    pub fn link_group_resource(
        &self,
        group_id: &str,
        resource_id: &str,
        level_remote_id: &str,
    ) -> Result<(), SimError> {
        let mut org = self.lock();
        org.group(group_id).map_err(rejected)?;
        let level = org
            .resolve_level(
                TargetKind::Resource,
                resource_id,
                Some(&AccessLevel::new("", level_remote_id)),
            )
            .map_err(rejected)?;
        org.link_group_resource(group_id, resource_id, level, None);
        Ok(())
    }

    /// Sets (or clears) a user's HR/IdP status.
    pub fn set_user_hr_status(&self, user_id: &str, status: Option<&str>) -> Result<(), SimError> {
        if let Some(status) = status
            && !HR_IDP_STATUSES.contains(&status)
        {
            return Err(SimError::Rejected(format!(
                "unknown hr_idp_status {status}"
            )));
        }
        let mut org = self.lock();
        let user = org
            .users
            .get_mut(user_id)
            .ok_or_else(|| SimError::Rejected(format!("user {user_id} not found")))?;
        user.hr_idp_status = status.map(str::to_owned);
        Ok(())
    }

    /// Adds a user (as an IdP sync would); returns its id. Tags are referenced by id or
    /// `key:value`.
    pub fn add_user(&self, user: FixtureUser) -> Result<String, SimError> {
        let mut org = self.lock();
        if org.user_by_email(&user.email).is_some() {
            return Err(SimError::Rejected(format!(
                "a user with email {} exists",
                user.email
            )));
        }
        let user_id = match user.id {
            Some(id) => id,
            None => org.new_id(),
        };
        if org.users.contains_key(&user_id) {
            return Err(SimError::Rejected(format!("user {user_id} exists")));
        }
        let tag_ids = user
            .tags
            .iter()
            .map(|reference| {
                org.tags
                    .values()
                    .find(|tag| {
                        let natural = match &tag.value {
                            Some(value) => format!("{}:{value}", tag.key),
                            None => tag.key.clone(),
                        };
                        tag.tag_id == *reference || natural == *reference
                    })
                    .map(|tag| tag.tag_id.clone())
                    .ok_or_else(|| SimError::Rejected(format!("tag {reference} not found")))
            })
            .collect::<Result<_, _>>()?;
        let full_name = user.full_name.unwrap_or_else(|| {
            format!("{} {}", user.first_name, user.last_name)
                .trim()
                .to_owned()
        });
        org.set_user_email_index(&user_id, &user.email);
        org.users.insert(
            user_id.clone(),
            UserRec {
                user_id: user_id.clone(),
                email: user.email,
                full_name,
                first_name: user.first_name,
                last_name: user.last_name,
                position: user.position,
                hr_idp_status: user.hr_idp_status,
                tag_ids,
            },
        );
        Ok(user_id)
    }

    /// Adds a pending request as if made in Opal's UI; returns its id.
    pub fn add_pending_request(&self, request: NewRequest) -> Result<String, SimError> {
        let mut org = self.lock();
        org.user(&request.requester_id).map_err(rejected)?;
        let target_user_id = request
            .target_user_id
            .unwrap_or_else(|| request.requester_id.clone());
        org.user(&target_user_id).map_err(rejected)?;
        let items = request
            .items
            .iter()
            .map(|(target, level)| {
                let (kind, id) = target.split();
                org.request_item(kind, id, Some(&AccessLevel::new("", level.clone())))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(rejected)?;
        let now = org.now();
        let id = org.new_id();
        org.requests.insert(
            id.clone(),
            RequestRec {
                id: id.clone(),
                created_at: now,
                updated_at: now,
                requester_id: request.requester_id,
                target_user_id: Some(target_user_id),
                target_group_id: None,
                status: "PENDING".to_owned(),
                reason: request.reason,
                duration_minutes: request.duration_minutes,
                items,
                custom_fields: Vec::new(),
                comments: Vec::new(),
            },
        );
        Ok(id)
    }

    fn change_settings(
        &self,
        target: &GrantTarget,
        change: impl FnOnce(&mut super::model::AccessSettings),
    ) -> Result<(), SimError> {
        let (kind, id) = target.split();
        let mut org = self.lock();
        change(org.settings_mut(kind, id).map_err(rejected)?);
        Ok(())
    }

    /// Replaces the admin owner of a group or resource.
    pub fn set_admin_owner(&self, target: &GrantTarget, owner_id: &str) -> Result<(), SimError> {
        self.lock().owner(owner_id).map_err(rejected)?;
        self.change_settings(target, |settings| {
            settings.admin_owner_id = Some(owner_id.to_owned());
        })
    }

    /// Replaces the visibility of a group or resource.
    pub fn set_visibility(
        &self,
        target: &GrantTarget,
        visibility: VisibilityInfo,
    ) -> Result<(), SimError> {
        self.change_settings(target, |settings| settings.visibility = visibility)
    }

    /// Replaces the reviewer stages of a group or resource.
    pub fn set_reviewer_stages(
        &self,
        target: &GrantTarget,
        stages: Vec<ReviewerStage>,
    ) -> Result<(), SimError> {
        self.change_settings(target, |settings| settings.reviewer_stages = stages)
    }

    /// Replaces the request configurations of a group or resource.
    pub fn set_request_configurations(
        &self,
        target: &GrantTarget,
        configurations: Vec<RequestConfiguration>,
    ) -> Result<(), SimError> {
        self.change_settings(target, |settings| {
            settings.request_configurations = configurations;
        })
    }

    /// Records an audit event as the API actor, e.g. to mirror drift injected above in the
    /// events feed. `fields` become one sub-event (its `sub_event_type` is the event type).
    pub fn record_event(&self, event_type: &str, fields: Map<String, Value>) {
        let mut sub_event = Map::new();
        sub_event.insert("sub_event_type".into(), event_type.into());
        sub_event.extend(fields);
        self.lock().record_event(event_type, vec![sub_event]);
    }
}
