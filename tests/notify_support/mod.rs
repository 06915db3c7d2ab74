//! Helpers shared by the `notify_*` integration tests: sample notifications, channel registries
//! whose credentials come from files, an outbox with fast retries, and awaiting delivery
//! reports with a bounded wait.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use opal_operator::notify::{
    AccessChange, AccessTarget, ChannelRegistry, DeliveryReport, Event, NoopMetrics, Notification,
    NotifyConfig, NotifyMetrics, ObjectRef, Outbox, Person,
};
use opal_operator::secret::NoKubeSecrets;
use tokio::sync::broadcast;

/// Longest a test waits for a delivery report.
pub const REPORT_WAIT: Duration = Duration::from_secs(30);

pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0)
        .single()
        .expect("time")
}

pub fn lockdown_ref(name: &str) -> ObjectRef {
    ObjectRef::new("Lockdown", "secops", name).with_uid(format!("uid-{name}"))
}

pub fn lockdown_activated(name: &str) -> Notification {
    Notification::new(
        Event::LockdownActivated {
            lockdown: lockdown_ref(name),
            subjects: vec!["eve@example.com".into()],
            reason: "impossible travel".into(),
            incident: Some("INC-4711".into()),
            revoked: vec![
                AccessChange::new(
                    Person::new("eve@example.com").named("Eve Adams"),
                    AccessTarget::group("prod-admins").with_level("admin"),
                ),
                AccessChange::new(
                    Person::new("eve@example.com").named("Eve Adams"),
                    AccessTarget::resource("billing-db"),
                ),
            ],
            expires_at: Some(at(59)),
        },
        at(1),
    )
    .with_link("Opal user", "https://app.opal.dev/users/eve")
}

pub fn lockdown_released(name: &str) -> Notification {
    Notification::new(
        Event::LockdownReleased {
            lockdown: lockdown_ref(name),
            reason: "incident closed".into(),
            restored: vec![AccessChange::new(
                Person::new("eve@example.com"),
                AccessTarget::group("prod-admins"),
            )],
        },
        at(30),
    )
}

pub fn offboarded(email: &str) -> Notification {
    Notification::new(
        Event::Offboarded {
            person: Person::new(email).named("Bob Stone"),
            policy: ObjectRef::new("AccessPolicy", "hr", "offboarding"),
            termination_date: chrono::NaiveDate::from_ymd_opt(2026, 2, 28),
            revoked: vec![
                AccessTarget::group("engineering"),
                AccessTarget::resource("github-org").with_level("member"),
            ],
        },
        at(5),
    )
    .with_link("HR record", "https://hr.example.com/people/42")
}

pub fn review_launched(id: &str) -> Notification {
    Notification::new(
        Event::ReviewLaunched {
            schedule: ObjectRef::new("ReviewSchedule", "grc", "quarterly"),
            review_id: id.into(),
            review_name: "Q1 access review".into(),
            deadline: at(45),
            reviewers: vec![Person::new("mgr@example.com").named("Mia Manager")],
        },
        at(2),
    )
}

pub fn review_overdue(id: &str) -> Notification {
    Notification::new(
        Event::ReviewOverdue {
            schedule: ObjectRef::new("ReviewSchedule", "grc", "quarterly"),
            review_id: id.into(),
            review_name: "Q1 access review".into(),
            deadline: at(45),
            escalated_to: vec![Person::new("director@example.com").named("Dora Director")],
        },
        at(50),
    )
}

/// Credentials written to files in a temporary directory, referenced by `{file: ...}`.
pub struct SecretFiles {
    dir: tempfile::TempDir,
}

impl SecretFiles {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `value` (with a trailing newline, as mounted Secrets often have) and returns the
    /// YAML reference to it.
    pub fn reference(&self, name: &str, value: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        format!("{{file: {}}}", path.display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Fast retries so tests do not wait long; generous attempts.
pub const FAST_OUTBOX: &str = "outbox:\n  queueCapacity: 100\n  requestTimeoutMs: 5000\n  connectTimeoutMs: 2000\n  retry:\n    maxAttempts: 6\n    initialBackoffMs: 20\n    maxBackoffMs: 200\n    maxTotalDelayMs: 20000\n";

pub fn config(yaml: &str) -> NotifyConfig {
    serde_yaml::from_str(yaml).unwrap_or_else(|err| panic!("config: {err}\n{yaml}"))
}

pub async fn registry(yaml: &str) -> ChannelRegistry {
    ChannelRegistry::from_config(&config(yaml), &NoKubeSecrets)
        .await
        .expect("registry")
}

pub async fn outbox(yaml: &str) -> Outbox {
    outbox_with(yaml, Arc::new(NoopMetrics)).await
}

pub async fn outbox_with(yaml: &str, metrics: Arc<dyn NotifyMetrics>) -> Outbox {
    Outbox::start(&registry(yaml).await, metrics)
}

/// Waits for the next report of `key` on `channel`.
pub async fn report_for(
    reports: &mut broadcast::Receiver<DeliveryReport>,
    channel: &str,
    key: &str,
) -> DeliveryReport {
    let wait = async {
        loop {
            match reports.recv().await {
                Ok(report) if report.channel == channel && report.idempotency_key == key => {
                    return report;
                }
                Ok(_) => {}
                Err(err) => panic!("report stream ended: {err}"),
            }
        }
    };
    tokio::time::timeout(REPORT_WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no report for {key} on {channel} within {REPORT_WAIT:?}"))
}

/// Enqueues and waits for the report.
pub async fn deliver(outbox: &Outbox, channel: &str, notification: Notification) -> DeliveryReport {
    let mut reports = outbox.subscribe();
    let key = notification.idempotency_key().to_owned();
    outbox.enqueue(channel, notification).expect("enqueue");
    report_for(&mut reports, channel, &key).await
}
