//! Grants: adding, replacing and removing them, resource access merged over every group path,
//! and the resource tree that access follows.

use super::*;

impl Org {
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
        let grant = Grant::new(level, expiration);
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
                Grant::new(level, expiration),
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
}

/// Later of two expiries, where `None` (indefinite) is the latest.
pub(super) fn later_expiry(
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
