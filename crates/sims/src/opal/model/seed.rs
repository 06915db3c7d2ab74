//! Builds an [`Org`] from a fixture: ids are taken or derived, every reference is resolved by id
//! or natural key, and enum values and shapes are checked before the simulator starts.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use super::super::SimError;
use super::super::fixture::{FixtureAccessSettings, FixtureExpiry, FixtureRequest, OrgFixture};
use super::super::wire::{
    AccessLevel, HR_IDP_STATUSES, REQUEST_STATUSES, ReviewerStage, UAR_ASSIGNMENT_POLICIES,
    timestamp,
};
use super::{
    AccessSettings, Actor, BundleRec, ChannelRec, Grant, GroupRec, Org, OwnerRec, RequestRec,
    ResourceRec, TagRec, TargetKind, UarRec, UserRec, derived_id,
};

/// Ids of one kind of object, findable by id or natural key.
#[derive(Default)]
struct Names {
    ids: BTreeSet<String>,
    keys: HashMap<String, Vec<String>>,
}

impl Names {
    fn add(&mut self, id: &str, keys: &[String]) -> Result<(), SimError> {
        if !self.ids.insert(id.to_owned()) {
            return Err(SimError::FixtureInvalid(format!("duplicate id {id}")));
        }
        for key in keys {
            let ids = self.keys.entry(key.clone()).or_default();
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
        Ok(())
    }

    fn resolve(&self, kind: &'static str, reference: &str) -> Result<String, SimError> {
        if self.ids.contains(reference) {
            return Ok(reference.to_owned());
        }
        match self.keys.get(reference).map(Vec::as_slice) {
            Some([id]) => Ok(id.clone()),
            Some(_) => Err(SimError::FixtureReference {
                kind,
                reference: format!("{reference} (ambiguous)"),
            }),
            None => Err(SimError::FixtureReference {
                kind,
                reference: reference.to_owned(),
            }),
        }
    }

    fn resolve_all(&self, kind: &'static str, refs: &[String]) -> Result<Vec<String>, SimError> {
        refs.iter()
            .map(|reference| self.resolve(kind, reference))
            .collect()
    }

    fn resolve_optional(
        &self,
        kind: &'static str,
        reference: Option<&String>,
    ) -> Result<Option<String>, SimError> {
        reference
            .map(|reference| self.resolve(kind, reference))
            .transpose()
    }
}

fn invalid(err: super::super::http::ApiError) -> SimError {
    SimError::FixtureInvalid(err.message)
}

/// State kept while a fixture is loaded.
struct Seeder<'f> {
    fixture: &'f OrgFixture,
    start: DateTime<Utc>,
    /// Occurrences of each natural key, so objects sharing a name get distinct derived ids.
    seen: HashMap<String, usize>,
    tags: Names,
    channels: Names,
    users: Names,
    apps: Names,
    groups: Names,
    owners: Names,
    resources: Names,
}

impl Org {
    /// Builds the organisation a fixture describes, checking every reference.
    pub(crate) fn from_fixture(fixture: &OrgFixture, seed: u64) -> Result<Self, SimError> {
        let mut org = Self::empty(seed);
        let mut seeder = Seeder {
            fixture,
            start: org.now(),
            seen: HashMap::new(),
            tags: Names::default(),
            channels: Names::default(),
            users: Names::default(),
            apps: Names::default(),
            groups: Names::default(),
            owners: Names::default(),
            resources: Names::default(),
        };
        seeder.tags(&mut org)?;
        seeder.channels(&mut org)?;
        seeder.users(&mut org)?;
        seeder.apps()?;
        // Group ids come before owners: owners, visibility and conditions may name groups.
        let group_ids = seeder.group_ids()?;
        seeder.owners(&mut org)?;
        seeder.groups(&mut org, group_ids)?;
        seeder.resources(&mut org)?;
        seeder.grants(&mut org)?;
        seeder.requests(&mut org)?;
        seeder.uars(&mut org)?;
        seeder.bundles(&mut org)?;
        Ok(org)
    }
}

impl Seeder<'_> {
    /// The fixture's id, or one derived from the natural key.
    fn id(&mut self, given: Option<&String>, kind: &str, key: &str) -> String {
        let occurrence = self.seen.entry(format!("{kind}\u{0}{key}")).or_insert(0);
        let id = given
            .cloned()
            .unwrap_or_else(|| derived_id(kind, key, *occurrence));
        *occurrence += 1;
        id
    }

    fn expiry(&self, expiry: &FixtureExpiry) -> Option<DateTime<Utc>> {
        expiry.expiration_date.or_else(|| {
            expiry
                .expires_in_minutes
                .map(|minutes| self.start + TimeDelta::minutes(minutes))
        })
    }

    fn tags(&mut self, org: &mut Org) -> Result<(), SimError> {
        for tag in &self.fixture.tags {
            let natural = match &tag.value {
                Some(value) => format!("{}:{value}", tag.key),
                None => tag.key.clone(),
            };
            let id = self.id(tag.id.as_ref(), "tag", &natural);
            self.tags.add(&id, &[natural])?;
            org.tags.insert(
                id.clone(),
                TagRec {
                    tag_id: id,
                    created_at: timestamp(self.start),
                    updated_at: timestamp(self.start),
                    user_creator_id: org.actor.user_id.clone(),
                    key: tag.key.clone(),
                    value: tag.value.clone(),
                },
            );
        }
        Ok(())
    }

    fn channels(&mut self, org: &mut Org) -> Result<(), SimError> {
        for channel in &self.fixture.message_channels {
            let id = self.id(channel.id.as_ref(), "message-channel", &channel.remote_id);
            let mut keys = vec![channel.remote_id.clone()];
            keys.extend(channel.name.clone());
            self.channels.add(&id, &keys)?;
            org.channels.insert(
                id.clone(),
                ChannelRec {
                    message_channel_id: id,
                    third_party_provider: channel.third_party_provider.clone(),
                    remote_id: channel.remote_id.clone(),
                    name: channel
                        .name
                        .clone()
                        .unwrap_or_else(|| channel.remote_id.clone()),
                    is_private: channel.is_private,
                },
            );
        }
        Ok(())
    }

    fn users(&mut self, org: &mut Org) -> Result<(), SimError> {
        for user in &self.fixture.users {
            let email_key = user.email.to_lowercase();
            let id = self.id(user.id.as_ref(), "user", &email_key);
            if org.email_index.contains_key(&email_key) {
                return Err(SimError::FixtureInvalid(format!(
                    "duplicate user email {}",
                    user.email
                )));
            }
            if let Some(status) = &user.hr_idp_status
                && !HR_IDP_STATUSES.contains(&status.as_str())
            {
                return Err(SimError::FixtureInvalid(format!(
                    "user {}: unknown hr_idp_status {status}",
                    user.email
                )));
            }
            self.users
                .add(&id, &[user.email.clone(), email_key.clone()])?;
            org.email_index.insert(email_key, id.clone());
            let full_name = user.full_name.clone().unwrap_or_else(|| {
                format!("{} {}", user.first_name, user.last_name)
                    .trim()
                    .to_owned()
            });
            org.users.insert(
                id.clone(),
                UserRec {
                    user_id: id,
                    email: user.email.clone(),
                    full_name,
                    first_name: user.first_name.clone(),
                    last_name: user.last_name.clone(),
                    position: user.position.clone(),
                    hr_idp_status: user.hr_idp_status.clone(),
                    tag_ids: self
                        .tags
                        .resolve_all("tag", &user.tags)?
                        .into_iter()
                        .collect(),
                },
            );
        }
        if let Some(api_user) = &self.fixture.api_user {
            let id = self.users.resolve("user", api_user)?;
            if let Some(user) = org.users.get(&id) {
                org.actor = Actor {
                    user_id: id,
                    name: user.full_name.clone(),
                    email: Some(user.email.clone()),
                };
            }
        }
        Ok(())
    }

    fn apps(&mut self) -> Result<(), SimError> {
        for app in &self.fixture.apps {
            let id = self.id(app.id.as_ref(), "app", &app.name);
            self.apps.add(&id, std::slice::from_ref(&app.name))?;
        }
        Ok(())
    }

    fn group_ids(&mut self) -> Result<Vec<String>, SimError> {
        let mut ids = Vec::with_capacity(self.fixture.groups.len());
        for group in &self.fixture.groups {
            let id = self.id(group.id.as_ref(), "group", &group.name);
            self.groups.add(&id, std::slice::from_ref(&group.name))?;
            ids.push(id);
        }
        Ok(ids)
    }

    fn owners(&mut self, org: &mut Org) -> Result<(), SimError> {
        for owner in &self.fixture.owners {
            let id = self.id(owner.id.as_ref(), "owner", &owner.name);
            self.owners.add(&id, std::slice::from_ref(&owner.name))?;
            org.owners.insert(
                id.clone(),
                OwnerRec {
                    owner_id: id,
                    name: owner.name.clone(),
                    description: owner.description.clone(),
                    access_request_escalation_period: owner.access_request_escalation_period,
                    reviewer_message_channel_id: self.channels.resolve_optional(
                        "message channel",
                        owner.reviewer_message_channel.as_ref(),
                    )?,
                    source_group_id: self
                        .groups
                        .resolve_optional("group", owner.source_group.as_ref())?,
                    user_ids: self.users.resolve_all("user", &owner.users)?,
                },
            );
        }
        Ok(())
    }

    fn groups(&mut self, org: &mut Org, ids: Vec<String>) -> Result<(), SimError> {
        for (group, id) in self.fixture.groups.iter().zip(ids) {
            let settings = self.settings(&group.settings, &format!("group {}", group.name))?;
            org.groups.insert(
                id.clone(),
                GroupRec {
                    group_id: id,
                    app_id: self.apps.resolve_optional("app", group.app.as_ref())?,
                    name: group.name.clone(),
                    description: group.description.clone(),
                    group_type: group.group_type.clone(),
                    remote_id: group.remote_id.clone(),
                    remote_name: group.remote_name.clone(),
                    group_leader_user_ids: self.users.resolve_all("user", &group.group_leaders)?,
                    settings,
                },
            );
        }
        Ok(())
    }

    fn resources(&mut self, org: &mut Org) -> Result<(), SimError> {
        let mut ids = Vec::with_capacity(self.fixture.resources.len());
        for resource in &self.fixture.resources {
            let id = self.id(resource.id.as_ref(), "resource", &resource.name);
            self.resources
                .add(&id, std::slice::from_ref(&resource.name))?;
            ids.push(id);
        }
        for (resource, id) in self.fixture.resources.iter().zip(ids) {
            let settings =
                self.settings(&resource.settings, &format!("resource {}", resource.name))?;
            org.resources.insert(
                id.clone(),
                ResourceRec {
                    resource_id: id,
                    app_id: self.apps.resolve_optional("app", resource.app.as_ref())?,
                    name: resource.name.clone(),
                    description: resource.description.clone(),
                    resource_type: resource.resource_type.clone(),
                    remote_resource_id: resource.remote_resource_id.clone(),
                    remote_resource_name: resource.remote_resource_name.clone(),
                    parent_resource_id: self
                        .resources
                        .resolve_optional("resource", resource.parent_resource.as_ref())?,
                    ancestor_resource_ids: Vec::new(),
                    descendant_resource_ids: Vec::new(),
                    require_mfa_to_connect: resource.require_mfa_to_connect,
                    ticket_propagation: resource.ticket_propagation.clone(),
                    settings,
                },
            );
        }
        org.recompute_resource_tree()
    }

    fn grants(&self, org: &mut Org) -> Result<(), SimError> {
        for membership in &self.fixture.memberships {
            let group = self.groups.resolve("group", &membership.group)?;
            let user = self.users.resolve("user", &membership.user)?;
            let level = org
                .resolve_level(TargetKind::Group, &group, membership.access_level.as_ref())
                .map_err(invalid)?;
            let expiration = self.expiry(&membership.expiry);
            org.group_grants
                .insert(&group, &user, Grant::new(level, expiration));
        }
        for grant in &self.fixture.resource_grants {
            let resource = self.resources.resolve("resource", &grant.resource)?;
            let user = self.users.resolve("user", &grant.user)?;
            let level = org
                .resolve_level(TargetKind::Resource, &resource, grant.access_level.as_ref())
                .map_err(invalid)?;
            let expiration = self.expiry(&grant.expiry);
            org.resource_grants
                .insert(&resource, &user, Grant::new(level, expiration));
        }
        for link in &self.fixture.group_resources {
            let group = self.groups.resolve("group", &link.group)?;
            let resource = self.resources.resolve("resource", &link.resource)?;
            let level = org
                .resolve_level(TargetKind::Resource, &resource, link.access_level.as_ref())
                .map_err(invalid)?;
            org.link_group_resource(&group, &resource, level, None);
        }
        Ok(())
    }

    fn requests(&mut self, org: &mut Org) -> Result<(), SimError> {
        for (index, request) in self.fixture.requests.iter().enumerate() {
            let id = self.id(request.id.as_ref(), "request", &index.to_string());
            let record = self.request(org, index, id.clone(), request)?;
            org.requests.insert(id, record);
        }
        Ok(())
    }

    fn request(
        &self,
        org: &Org,
        index: usize,
        id: String,
        request: &FixtureRequest,
    ) -> Result<RequestRec, SimError> {
        if !REQUEST_STATUSES.contains(&request.status.as_str()) {
            return Err(SimError::FixtureInvalid(format!(
                "request {index}: unknown status {}",
                request.status
            )));
        }
        let requester_id = self.users.resolve("user", &request.requester)?;
        let target_group_id = self
            .groups
            .resolve_optional("group", request.target_group.as_ref())?;
        let target_user_id = match (&request.target_user, &target_group_id) {
            (Some(user), _) => Some(self.users.resolve("user", user)?),
            (None, Some(_)) => None,
            (None, None) => Some(requester_id.clone()),
        };
        let mut items = Vec::new();
        for item in &request.items {
            let (kind, target) = match (&item.group, &item.resource) {
                (Some(group), None) => (TargetKind::Group, self.groups.resolve("group", group)?),
                (None, Some(resource)) => (
                    TargetKind::Resource,
                    self.resources.resolve("resource", resource)?,
                ),
                _ => {
                    return Err(SimError::FixtureInvalid(format!(
                        "request {index}: each item names exactly one of group and resource"
                    )));
                }
            };
            let level =
                AccessLevel::new("", item.access_level_remote_id.clone().unwrap_or_default());
            items.push(
                org.request_item(kind, &target, Some(&level))
                    .map_err(invalid)?,
            );
        }
        let created_at = request.created_at.unwrap_or(self.start);
        Ok(RequestRec {
            id,
            created_at,
            updated_at: created_at,
            requester_id,
            target_user_id,
            target_group_id,
            status: request.status.clone(),
            reason: request.reason.clone(),
            duration_minutes: request.duration_minutes,
            items,
            custom_fields: Vec::new(),
            comments: Vec::new(),
        })
    }

    fn uars(&mut self, org: &mut Org) -> Result<(), SimError> {
        for uar in &self.fixture.uars {
            if !UAR_ASSIGNMENT_POLICIES.contains(&uar.reviewer_assignment_policy.as_str()) {
                return Err(SimError::FixtureInvalid(format!(
                    "uar {}: unknown reviewer_assignment_policy {}",
                    uar.name, uar.reviewer_assignment_policy
                )));
            }
            let id = self.id(uar.id.as_ref(), "uar", &uar.name);
            org.uars.insert(
                id.clone(),
                UarRec {
                    uar_id: id,
                    name: uar.name.clone(),
                    reviewer_assignment_policy: uar.reviewer_assignment_policy.clone(),
                    send_reviewer_assignment_notification: uar
                        .send_reviewer_assignment_notification,
                    deadline: timestamp(uar.deadline),
                    time_zone: uar.time_zone.clone(),
                    self_review_allowed: uar.self_review_allowed,
                    instantly_action_reviews: uar.instantly_action_reviews,
                    uar_scope: None,
                },
            );
        }
        Ok(())
    }

    fn bundles(&mut self, org: &mut Org) -> Result<(), SimError> {
        for bundle in &self.fixture.bundles {
            let id = self.id(bundle.id.as_ref(), "bundle", &bundle.name);
            org.bundles.insert(
                id.clone(),
                BundleRec {
                    bundle_id: id,
                    name: bundle.name.clone(),
                    description: bundle.description.clone(),
                    created_at: timestamp(self.start),
                    updated_at: timestamp(self.start),
                    admin_owner_id: self
                        .owners
                        .resolve_optional("owner", bundle.admin_owner.as_ref())?,
                    total_num_items: 0,
                    total_num_resources: 0,
                    total_num_groups: 0,
                },
            );
        }
        Ok(())
    }

    fn stages(&self, stages: &[ReviewerStage]) -> Result<Vec<ReviewerStage>, SimError> {
        stages
            .iter()
            .map(|stage| {
                Ok(ReviewerStage {
                    owner_ids: self.owners.resolve_all("owner", &stage.owner_ids)?,
                    ..stage.clone()
                })
            })
            .collect()
    }

    /// Shared group/resource settings with their references resolved.
    fn settings(
        &self,
        settings: &FixtureAccessSettings,
        what: &str,
    ) -> Result<AccessSettings, SimError> {
        let mut visibility = settings.visibility.clone().unwrap_or_default();
        visibility.visibility_group_ids = self
            .groups
            .resolve_all("group", &visibility.visibility_group_ids)?;
        let mut request_configurations = Vec::new();
        for configuration in &settings.request_configurations {
            let mut configuration = configuration.clone();
            if let Some(stages) = &configuration.reviewer_stages {
                configuration.reviewer_stages = Some(self.stages(stages)?);
            }
            if let Some(condition) = &mut configuration.condition
                && let Some(groups) = &condition.group_ids
            {
                condition.group_ids = Some(self.groups.resolve_all("group", groups)?);
            }
            request_configurations.push(configuration);
        }
        if settings
            .custom_request_notification
            .as_ref()
            .is_some_and(|text| text.chars().count() > 800)
        {
            return Err(SimError::FixtureInvalid(format!(
                "{what}: custom_request_notification is longer than 800 characters"
            )));
        }
        Ok(AccessSettings {
            admin_owner_id: self
                .owners
                .resolve_optional("owner", settings.admin_owner.as_ref())?,
            max_duration: settings.max_duration,
            recommended_duration: settings.recommended_duration,
            extensions_duration_in_minutes: settings.extensions_duration_in_minutes,
            require_support_ticket: settings.require_support_ticket,
            require_mfa_to_approve: settings.require_mfa_to_approve,
            require_mfa_to_request: settings.require_mfa_to_request,
            auto_approval: settings.auto_approval,
            is_requestable: settings.is_requestable,
            configuration_template_id: None,
            request_template_id: None,
            request_configurations,
            custom_request_notification: settings.custom_request_notification.clone(),
            risk_sensitivity_override: settings.risk_sensitivity_override.clone(),
            tag_ids: self
                .tags
                .resolve_all("tag", &settings.tags)?
                .into_iter()
                .collect(),
            visibility,
            reviewer_stages: self.stages(&settings.reviewer_stages)?,
            message_channel_ids: self
                .channels
                .resolve_all("message channel", &settings.message_channels)?,
            access_levels: settings.access_levels.clone(),
        })
    }
}
