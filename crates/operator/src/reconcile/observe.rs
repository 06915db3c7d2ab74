//! Reads the Opal state a plan needs: every user, group and resource with its tags, the direct
//! grants on targets the custom resources name, and every grant of users a lockdown or an
//! `All` offboarding may have to strip.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};

use crate::engine::{
    HrState, LockScope, LockdownInput, MappingInput, OpalGrant, OpalState, OpalTarget, OpalUser,
    Subject, Target, TargetKind, TargetRef,
};
use crate::opal::model::{GroupType, GroupUser, ResourceAccessUser};
use crate::opal::{Client, GroupFilter, OpalError, ResourceFilter};

/// Which targets and users need their grants read.
#[derive(Clone, Debug, Default)]
pub struct ObservationScope {
    targets: BTreeSet<(TargetKind, TargetKey)>,
    user_emails: BTreeSet<String>,
    user_ids: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TargetKey {
    Name(String),
    Id(String),
}

impl ObservationScope {
    /// Targets named by the mappings and lockdowns, and users a lockdown names or whose every
    /// grant offboarding revokes (`users_losing_everything`, by email).
    pub fn new(
        mappings: &[MappingInput],
        lockdowns: &[LockdownInput],
        hr: &HrState,
        users_losing_everything: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut scope = Self::default();
        for mapping in mappings {
            for grant in &mapping.rules.grants {
                scope.add_target(&grant.target);
            }
        }
        for lockdown in lockdowns {
            for subject in &lockdown.rules.subjects {
                match subject {
                    Subject::Target(target) => scope.add_target(target),
                    Subject::Email(email) => {
                        scope.user_emails.insert(email.to_lowercase());
                    }
                    Subject::OpalUserId(id) => {
                        scope.user_ids.insert(id.clone());
                    }
                    // Through HR to the email: without it an HR-id lockdown would never
                    // see (and so never revoke) grants on targets no mapping names.
                    Subject::HrisId(hris_id) => scope.user_emails.extend(
                        hr.employees()
                            .iter()
                            .filter(|employee| employee.id == *hris_id)
                            .map(|employee| employee.email.to_lowercase()),
                    ),
                }
            }
            if let LockScope::Targets(targets) = &lockdown.rules.scope {
                for target in targets {
                    scope.add_target(target);
                }
            }
        }
        scope.user_emails.extend(
            users_losing_everything
                .into_iter()
                .map(|email| email.to_lowercase()),
        );
        scope
    }

    fn add_target(&mut self, target: &Target) {
        let key = match &target.by {
            TargetRef::Id(id) => TargetKey::Id(id.clone()),
            TargetRef::Name(name) => TargetKey::Name(name.clone()),
        };
        self.targets.insert((target.kind, key));
    }

    fn wants(&self, target: &OpalTarget) -> bool {
        self.targets
            .contains(&(target.kind, TargetKey::Id(target.id.clone())))
            || self
                .targets
                .contains(&(target.kind, TargetKey::Name(target.name.clone())))
    }
}

/// Reads Opal through `client`, `concurrency` listings at a time (the client's own limiter
/// still applies).
pub async fn observe_opal(
    client: &Client,
    scope: &ObservationScope,
    concurrency: usize,
) -> Result<OpalState, OpalError> {
    let concurrency = concurrency.max(1);
    let (all_groups, all_resources) = (GroupFilter::default(), ResourceFilter::default());
    let (users, groups, resources, tags) = futures::try_join!(
        client.list_users(),
        client.list_groups(&all_groups),
        client.list_resources(&all_resources),
        client.list_tags(),
    )?;

    // Tags per target: one filtered listing per tag rather than one tag call per target.
    let tagged: Vec<(String, String, Vec<String>, Vec<String>)> = stream::iter(tags)
        .map(|tag| async move {
            let groups_with_tag = GroupFilter {
                tag_ids: vec![tag.tag_id.clone()],
                ..GroupFilter::default()
            };
            let resources_with_tag = ResourceFilter {
                tag_ids: vec![tag.tag_id.clone()],
                ..ResourceFilter::default()
            };
            let (groups, resources) = futures::try_join!(
                client.list_groups(&groups_with_tag),
                client.list_resources(&resources_with_tag),
            )?;
            Ok::<_, OpalError>((
                tag.key,
                tag.value.unwrap_or_default(),
                groups.into_iter().map(|g| g.group_id).collect(),
                resources.into_iter().map(|r| r.resource_id).collect(),
            ))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let mut tags_of: BTreeMap<(TargetKind, String), Vec<(String, String)>> = BTreeMap::new();
    for (key, value, group_ids, resource_ids) in tagged {
        for id in group_ids {
            tags_of
                .entry((TargetKind::Group, id))
                .or_default()
                .push((key.clone(), value.clone()));
        }
        for id in resource_ids {
            tags_of
                .entry((TargetKind::Resource, id))
                .or_default()
                .push((key.clone(), value.clone()));
        }
    }

    let mut targets: Vec<OpalTarget> = groups
        .into_iter()
        .map(|group| OpalTarget {
            kind: TargetKind::Group,
            derived_membership: group.group_type == Some(GroupType::OpalAccessRule),
            id: group.group_id,
            name: group.name,
            tags: Vec::new(),
        })
        .chain(resources.into_iter().map(|resource| OpalTarget {
            kind: TargetKind::Resource,
            id: resource.resource_id,
            name: resource.name,
            tags: Vec::new(),
            derived_membership: false,
        }))
        .collect();
    for target in &mut targets {
        if let Some(tags) = tags_of.remove(&(target.kind, target.id.clone())) {
            target.tags = tags;
        }
    }

    // Owned items: futures over borrowed stream items are not `Send` for the compiler when
    // the caller is spawned.
    let wanted: Vec<OpalTarget> = targets.iter().filter(|t| scope.wants(t)).cloned().collect();
    let per_target: Vec<Vec<OpalGrant>> = stream::iter(wanted)
        .map(|target| async move { target_grants(client, &target).await })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;

    let users_of_interest: Vec<String> = users
        .iter()
        .filter(|user| {
            scope.user_ids.contains(&user.user_id)
                || scope.user_emails.contains(&user.email.to_lowercase())
        })
        .map(|user| user.user_id.clone())
        .collect();
    let per_user: Vec<Vec<OpalGrant>> = stream::iter(users_of_interest)
        .map(|user_id| async move { user_grants(client, &user_id).await })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;

    let mut seen = BTreeSet::new();
    let grants = per_target
        .into_iter()
        .chain(per_user)
        .flatten()
        .filter(|grant| {
            seen.insert((
                grant.kind,
                grant.target_id.clone(),
                grant.user_id.clone(),
                grant.access_level_remote_id.clone(),
            ))
        })
        .collect();
    Ok(OpalState {
        users: users
            .into_iter()
            .map(|user| OpalUser {
                id: user.user_id,
                email: user.email,
            })
            .collect(),
        targets,
        grants,
    })
}

/// Reads every direct grant of `user_ids` through the users' own group and resource listings
/// (two calls per user): what a targeted sync needs for people whose HR record or lockdown
/// just changed.
pub async fn observe_user_grants(
    client: &Client,
    user_ids: &BTreeSet<String>,
    concurrency: usize,
) -> Result<Vec<OpalGrant>, OpalError> {
    let per_user: Vec<Vec<OpalGrant>> = stream::iter(user_ids.iter().cloned())
        .map(|user_id| async move { user_grants(client, &user_id).await })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(per_user.into_iter().flatten().collect())
}

/// Reads the direct grants on `targets` (one listing each): what a targeted sync needs for
/// targets Opal's events feed says changed.
pub async fn observe_target_grants(
    client: &Client,
    targets: Vec<OpalTarget>,
    concurrency: usize,
) -> Result<Vec<OpalGrant>, OpalError> {
    let per_target: Vec<Vec<OpalGrant>> = stream::iter(targets)
        .map(|target| async move { target_grants(client, &target).await })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(per_target.into_iter().flatten().collect())
}

async fn target_grants(client: &Client, target: &OpalTarget) -> Result<Vec<OpalGrant>, OpalError> {
    Ok(match target.kind {
        TargetKind::Group => client
            .list_group_users(&target.id)
            .await?
            .into_iter()
            .map(group_grant)
            .collect(),
        TargetKind::Resource => client
            .list_resource_users(&target.id)
            .await?
            .into_iter()
            .filter_map(direct_resource_grant)
            .collect(),
    })
}

async fn user_grants(client: &Client, user_id: &str) -> Result<Vec<OpalGrant>, OpalError> {
    let (groups, resources) = futures::try_join!(
        client.list_user_groups(user_id),
        client.list_user_resources(user_id, true),
    )?;
    Ok(groups
        .into_iter()
        .map(group_grant)
        .chain(resources.into_iter().filter_map(direct_resource_grant))
        .collect())
}

fn group_grant(member: GroupUser) -> OpalGrant {
    OpalGrant {
        kind: TargetKind::Group,
        target_id: member.group_id,
        user_id: member.user_id,
        access_level_remote_id: member.access_level.access_level_remote_id,
        access_level_name: member.access_level.access_level_name,
        expires_at: member.expiration_date,
    }
}

/// Access through a group is Opal's to manage; only direct grants are the operator's.
fn direct_resource_grant(access: ResourceAccessUser) -> Option<OpalGrant> {
    access.has_direct_access.then_some(OpalGrant {
        kind: TargetKind::Resource,
        target_id: access.resource_id,
        user_id: access.user_id,
        access_level_remote_id: access.access_level.access_level_remote_id,
        access_level_name: access.access_level.access_level_name,
        expires_at: access.expiration_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Employee, LockdownRules, ObjectKey};

    #[test]
    fn a_lockdown_by_hr_id_reads_every_grant_of_that_person() {
        let ada: Employee = serde_json::from_value(serde_json::json!({
            "id": "E1", "email": "Ada@Example.com", "status": "Active"
        }))
        .expect("employee");
        let lockdown = LockdownInput {
            key: ObjectKey::new("ns", "ld"),
            rules: LockdownRules {
                subjects: vec![Subject::HrisId("E1".into()), Subject::HrisId("E404".into())],
                ..LockdownRules::default()
            },
            activated_at: None,
            released: false,
            deleting: false,
        };
        let hr = HrState::Snapshot(vec![ada]);
        let scope = ObservationScope::new(&[], std::slice::from_ref(&lockdown), &hr, Vec::new());
        assert_eq!(
            scope.user_emails,
            BTreeSet::from(["ada@example.com".to_owned()])
        );
        let blind = ObservationScope::new(&[], &[lockdown], &HrState::Failed("down".into()), []);
        assert!(blind.user_emails.is_empty());
    }
}
