//! The audit log: events and sub-events for every write.

use super::*;

impl Org {
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
}
