//! Follows Opal's audit events so a membership changed in Opal between resyncs is re-read and
//! repaired at once, and only on the targets the events name.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::leader::Leadership;
use super::sync::{SyncRequest, SyncTrigger};
use crate::crd::TargetKind;
use crate::opal::model::Event;
use crate::opal::{Client, EventFilter};

/// Events are read again this far back: Opal's clock and ours differ, and an event may be
/// listed a little after its `created_at`.
const OVERLAP: TimeDelta = TimeDelta::seconds(10);

/// How long the operator's own writes are remembered, to tell their audit events apart.
const OWN_WRITE_MEMORY: Duration = Duration::from_secs(600);

/// Memberships the operator itself changed recently. Their audit events need no re-read:
/// without this, every sync that changes something would be followed by a second one.
#[derive(Clone, Default)]
pub struct OwnWrites {
    recent: Arc<Mutex<VecDeque<OwnWrite>>>,
    /// When the last full read of Opal began: older events are already reflected in it.
    full_read_at: Arc<Mutex<Option<DateTime<Utc>>>>,
}

/// When, on which target (kind and id), for which user, whether added (`true`) or removed.
type OwnWrite = (Instant, TargetKind, String, String, bool);

impl OwnWrites {
    /// Notes that the operator added (`added`) or removed `user`'s membership of a target.
    pub fn record(&self, kind: TargetKind, target_id: &str, user_id: &str, added: bool) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        recent.push_back((
            Instant::now(),
            kind,
            target_id.to_owned(),
            user_id.to_owned(),
            added,
        ));
        while recent
            .front()
            .is_some_and(|(at, ..)| at.elapsed() > OWN_WRITE_MEMORY)
        {
            recent.pop_front();
        }
    }

    /// Notes that a full read of Opal began at `at`.
    pub fn full_read(&self, at: DateTime<Utc>) {
        *self
            .full_read_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(at);
    }

    fn covered_by_full_read(&self, created: DateTime<Utc>) -> bool {
        self.full_read_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|at| created < at)
    }

    fn contains(&self, kind: TargetKind, target_id: &str, user_id: &str, added: bool) -> bool {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        recent.iter().any(|(at, k, t, u, a)| {
            *k == kind
                && t == target_id
                && u == user_id
                && *a == added
                && at.elapsed() <= OWN_WRITE_MEMORY
        })
    }
}

/// The groups and resources an event's sub-events name, leaving out the memberships the
/// operator itself changed.
pub fn targets_of(event: &Event, own: &OwnWrites) -> BTreeSet<(TargetKind, String)> {
    let mut targets = BTreeSet::new();
    for sub_event in &event.sub_events {
        let named = [
            (TargetKind::Group, sub_event.field_str("group_id")),
            (TargetKind::Resource, sub_event.field_str("resource_id")),
        ];
        for (kind, id) in named {
            let Some(id) = id else { continue };
            // Only an addition or removal can be the operator's; anything else is someone's.
            let added = match sub_event.sub_event_type.as_str() {
                t if t.ends_with("_USER_ADDED") => Some(true),
                t if t.ends_with("_USER_REMOVED") => Some(false),
                _ => None,
            };
            let ours = match (sub_event.field_str("user_id"), added) {
                (Some(user), Some(added)) => own.contains(kind, id, user, added),
                _ => false,
            };
            if !ours {
                targets.insert((kind, id.to_owned()));
            }
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
    pub fn advance(&mut self, events: &[Event], own: &OwnWrites) -> BTreeSet<(TargetKind, String)> {
        let mut targets = BTreeSet::new();
        for event in events {
            let created = event.created_at.unwrap_or_else(Utc::now);
            if self.seen.insert(event.event_id.clone(), created).is_none()
                && !own.covered_by_full_read(created)
            {
                targets.extend(targets_of(event, own));
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
pub async fn follow(
    opal: Client,
    trigger: SyncTrigger,
    leadership: Leadership,
    own: OwnWrites,
    poll: Duration,
) {
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
                let targets = cursor.advance(&events, &own);
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
        let own = OwnWrites::default();
        let targets = cursor.advance(&[first.clone(), second.clone()], &own);
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
        assert!(cursor.advance(&[first, second], &own).is_empty());
    }

    #[test]
    fn events_without_targets_name_none() {
        let at = Utc::now();
        let tag_event = event(
            "e3",
            at,
            serde_json::json!({"sub_event_type": "TAG_CREATED", "tag_id": "t1"}),
        );
        assert!(targets_of(&tag_event, &OwnWrites::default()).is_empty());
    }

    #[test]
    fn events_older_than_the_last_full_read_are_covered_by_it() {
        let start = Utc::now();
        let mut cursor = EventCursor::starting_at(start);
        let own = OwnWrites::default();
        own.full_read(start + TimeDelta::seconds(5));
        let before = event(
            "e7",
            start + TimeDelta::seconds(1),
            serde_json::json!({"sub_event_type": "GROUP_USER_ADDED", "group_id": "g1", "user_id": "u1"}),
        );
        let after = event(
            "e8",
            start + TimeDelta::seconds(6),
            serde_json::json!({"sub_event_type": "GROUP_USER_ADDED", "group_id": "g2", "user_id": "u1"}),
        );
        assert_eq!(
            cursor.advance(&[before, after], &own),
            BTreeSet::from([(TargetKind::Group, "g2".to_owned())])
        );
    }

    #[test]
    fn the_operators_own_changes_are_not_read_again() {
        let own = OwnWrites::default();
        own.record(TargetKind::Group, "g1", "u1", true);
        let ours = event(
            "e4",
            Utc::now(),
            serde_json::json!({"sub_event_type": "GROUP_USER_ADDED", "group_id": "g1", "user_id": "u1"}),
        );
        assert!(targets_of(&ours, &own).is_empty());
        let someone_else = event(
            "e5",
            Utc::now(),
            serde_json::json!({"sub_event_type": "GROUP_USER_ADDED", "group_id": "g1", "user_id": "u2"}),
        );
        assert_eq!(
            targets_of(&someone_else, &own),
            BTreeSet::from([(TargetKind::Group, "g1".to_owned())])
        );
        // Someone removing what the operator added is not the operator's change.
        let removed = event(
            "e6",
            Utc::now(),
            serde_json::json!({"sub_event_type": "GROUP_USER_REMOVED", "group_id": "g1", "user_id": "u1"}),
        );
        assert_eq!(
            targets_of(&removed, &own),
            BTreeSet::from([(TargetKind::Group, "g1".to_owned())])
        );
    }
}
