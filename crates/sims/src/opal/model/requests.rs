//! Access requests: their items, and fulfilment on approval.

use super::grants::later_expiry;
use super::*;

impl Org {
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
                    let grant = Grant::new(item.level.clone(), expiration);
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
}
