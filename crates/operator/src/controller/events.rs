//! Kubernetes Events on our objects. Publishing never blocks a sync: each Event is sent in
//! the background and a failure is only logged.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes Events as the operator.
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

/// Kubernetes caps an Event note at 1 kB.
const NOTE_LIMIT: usize = 1000;

impl EventSink {
    pub fn new(client: kube::Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "opal-operator".into(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(object, EventType::Normal, reason, action, note);
    }

    pub fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(object, EventType::Warning, reason, action, note);
    }

    fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let reference = object.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note)),
            action: action.to_owned(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::warn!(%error, reason = %event.reason, "cannot publish Event");
            }
        });
    }
}

fn truncate(mut note: String) -> String {
    if note.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}
