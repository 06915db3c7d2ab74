//! Follows Opal's audit events so a membership changed in Opal between resyncs is re-read and
//! repaired at once, and only on the targets the events name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::leader::Leadership;
use super::sync::{SyncRequest, SyncTrigger};
use crate::crd::TargetKind;
use crate::opal::model::Event;
use crate::opal::{Client, EventFilter};

/// Events are read again this far back: Opal's clock and ours differ, and an event may be
/// listed a little after its `created_at`.
const OVERLAP: TimeDelta = TimeDelta::seconds(10);

/// The groups and resources an event's sub-events name.
pub fn targets_of(event: &Event) -> BTreeSet<(TargetKind, String)> {
    let mut targets = BTreeSet::new();
    for sub_event in &event.sub_events {
        if let Some(id) = sub_event.field_str("group_id") {
            targets.insert((TargetKind::Group, id.to_owned()));
        }
        if let Some(id) = sub_event.field_str("resource_id") {
            targets.insert((TargetKind::Resource, id.to_owned()));
        }
    }
    targets
}

/// Which events are new since the last read, by id (the overlap re-lists some).
#[derive(Default)]
pub struct EventCursor {
    checkpoint: Option<DateTime<Utc>>,
    seen: BTreeMap<String, DateTime<Utc>>,
}

impl EventCursor {
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self {
            checkpoint: Some(at),
            seen: BTreeMap::new(),
        }
    }

    /// Where the next read starts.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.checkpoint.map(|at| at - OVERLAP)
    }

    /// The targets named by events not seen before; moves the checkpoint forward.
    pub fn advance(&mut self, events: &[Event]) -> BTreeSet<(TargetKind, String)> {
        let mut targets = BTreeSet::new();
        for event in events {
            let created = event.created_at.unwrap_or_else(Utc::now);
            if self.seen.insert(event.event_id.clone(), created).is_none() {
                targets.extend(targets_of(event));
            }
            if self.checkpoint.is_none_or(|at| created > at) {
                self.checkpoint = Some(created);
            }
        }
        if let Some(start) = self.start() {
            self.seen.retain(|_, created| *created >= start);
        }
        targets
    }
}

/// Polls the events feed every `poll` while this process leads, asking for a targeted sync of
/// what changed. A failed read is logged and retried at the next poll.
pub async fn follow(opal: Client, trigger: SyncTrigger, leadership: Leadership, poll: Duration) {
    let mut cursor = EventCursor::starting_at(Utc::now());
    loop {
        tokio::time::sleep(poll).await;
        if !leadership.is_leader() {
            // The leader's syncs cover everything until now; start afresh on takeover.
            cursor = EventCursor::starting_at(Utc::now());
            continue;
        }
        let filter = EventFilter {
            start: cursor.start(),
            ..EventFilter::default()
        };
        match opal.list_events(&filter).await {
            Ok(events) => {
                let targets = cursor.advance(&events);
                if !targets.is_empty() {
                    tracing::debug!(targets = targets.len(), "Opal events name changed targets");
                    trigger.request(SyncRequest::Targets { targets });
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read Opal's events feed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, at: DateTime<Utc>, fields: serde_json::Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "event_id": id,
            "actor_user_id": "actor",
            "actor_name": "Actor",
            "event_type": "GROUP_USER_ADDED",
            "created_at": at,
            "sub_events": [fields],
        }))
        .expect("event")
    }

    #[test]
    fn new_events_name_their_targets_once() {
        let start = Utc::now();
        let mut cursor = EventCursor::starting_at(start);
        let first = event(
            "e1",
            start + TimeDelta::seconds(1),
            serde_json::json!({"sub_event_type": "GROUP_USER_ADDED", "group_id": "g1", "user_id": "u1"}),
        );
        let second = event(
            "e2",
            start + TimeDelta::seconds(2),
            serde_json::json!({"sub_event_type": "RESOURCE_USER_REMOVED", "resource_id": "r1", "user_id": "u1"}),
        );
        let targets = cursor.advance(&[first.clone(), second.clone()]);
        assert_eq!(
            targets,
            BTreeSet::from([
                (TargetKind::Group, "g1".to_owned()),
                (TargetKind::Resource, "r1".to_owned())
            ])
        );
        assert_eq!(
            cursor.start(),
            Some(start + TimeDelta::seconds(2) - OVERLAP)
        );
        // Listed again within the overlap: nothing new.
        assert!(cursor.advance(&[first, second]).is_empty());
    }

    #[test]
    fn events_without_targets_name_none() {
        let at = Utc::now();
        let tag_event = event(
            "e3",
            at,
            serde_json::json!({"sub_event_type": "TAG_CREATED", "tag_id": "t1"}),
        );
        assert!(targets_of(&tag_event).is_empty());
    }
}
