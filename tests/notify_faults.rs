//! Random faults and latency in the notification simulators, and the outbox against them.
//!
//! * The faults follow their configured rates, repeat exactly for a seed, answer 429s with the
//!   configured `Retry-After`, refuse without effect, or (lost answers) take effect and then
//!   fail; latency delays the requests the service handles.
//! * With a quarter of all requests failing at random (429 with `Retry-After`, 5xx) and latency
//!   on every answer, the outbox delivers every message to Slack and Jira exactly once: one post
//!   per message, one ticket per thread, one comment per update.
//! * When Jira loses answers at random (the issue or comment is made, the answer is a 5xx), no
//!   ticket or comment is made twice.

mod notify_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use notify_support::*;
use opal_operator::notify::render::reference_marker;
use opal_operator::notify::{DeliveryOutcome, DeliveryReport, Notification, Outbox, Receipt};
use opal_operator::sim::notify::jira::{JiraSim, JiraSimConfig, SimIssue};
use opal_operator::sim::notify::pagerduty::{PagerDutySim, PagerDutySimConfig};
use opal_operator::sim::notify::slack::{SlackSim, SlackSimConfig};
use opal_operator::sim::notify::{FaultConfig, InjectedFault, RecordedRequest};
use serde_json::{Value, json};

const ROUTING_KEY: &str = "R0FAULTSKEY000000000000000000042";
const SLACK_CHANNEL: &str = "C0SECOPS";
const CREATE_ISSUE: &str = "POST /rest/api/3/issue";

/// Retries generous enough that a message survives several faults in a row.
const PATIENT_OUTBOX: &str = "outbox:\n  queueCapacity: 100\n  requestTimeoutMs: 5000\n  connectTimeoutMs: 2000\n  retry:\n    maxAttempts: 12\n    initialBackoffMs: 10\n    maxBackoffMs: 100\n    maxTotalDelayMs: 60000\n";

/// Longest the outbox may take to drain in these tests.
const DRAIN: Duration = Duration::from_secs(60);

async fn pagerduty_sim() -> PagerDutySim {
    PagerDutySim::start(PagerDutySimConfig {
        routing_keys: vec![ROUTING_KEY.to_owned()],
    })
    .await
    .expect("pagerduty sim")
}

fn trigger(dedup_key: &str) -> Value {
    json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": "fault drill", "source": "notify-faults", "severity": "info"},
    })
}

/// Sends `count` triggers with distinct keys, one after the other; returns each answer's
/// status and `Retry-After`.
async fn send_triggers(sim: &PagerDutySim, count: usize) -> Vec<(u16, Option<String>)> {
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for n in 0..count {
        let response = http
            .post(sim.events_url())
            .json(&trigger(&format!("drill-{n}")))
            .send()
            .await
            .expect("answer");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        answers.push((response.status().as_u16(), retry_after));
    }
    answers
}

fn drill_faults() -> FaultConfig {
    FaultConfig {
        too_many_requests_rate: 0.2,
        retry_after: Some(Duration::from_millis(1_500)),
        server_error_rate: 0.1,
        server_error_statuses: vec![502, 504],
        lost_answer_rate: 0.1,
    }
}

fn injections(requests: &[RecordedRequest]) -> Vec<Option<InjectedFault>> {
    requests.iter().map(|request| request.injected).collect()
}

#[tokio::test]
async fn random_faults_follow_their_rates_and_repeat_for_a_seed() {
    const REQUESTS: usize = 400;
    let first = pagerduty_sim().await;
    first.set_faults(drill_faults());
    first.set_seed(42);
    let answers = send_triggers(&first, REQUESTS).await;
    let requests = first.requests();
    assert_eq!(requests.len(), REQUESTS);

    let count = |kind: InjectedFault| first.injected(kind);
    let (limited, refused, lost) = (
        count(InjectedFault::TooManyRequests),
        count(InjectedFault::ServerError),
        count(InjectedFault::LostAnswer),
    );
    // Drawn in order 429, server error, lost answer: 20%, then 10% of the remaining 80%, then
    // 10% of the remaining 72% (80, 32 and 29 of 400 expected).
    assert!((55..=105).contains(&limited), "{limited} 429s");
    assert!((17..=50).contains(&refused), "{refused} server errors");
    assert!((14..=46).contains(&lost), "{lost} lost answers");
    assert_eq!(count(InjectedFault::Scripted), 0);

    for ((status, retry_after), request) in answers.iter().zip(&requests) {
        assert_eq!(*status, request.status);
        match request.injected {
            // 1.5 s rounds up to whole seconds.
            Some(InjectedFault::TooManyRequests) => {
                assert_eq!((*status, retry_after.as_deref()), (429, Some("2")));
            }
            Some(InjectedFault::ServerError | InjectedFault::LostAnswer) => {
                assert!([502, 504].contains(status), "{status}");
                assert_eq!(retry_after.as_deref(), None);
            }
            None => assert_eq!(*status, 202),
            Some(InjectedFault::Scripted) => unreachable!("nothing was scripted"),
        }
    }
    // Refused requests had no effect; lost answers did: every other trigger opened its alert.
    let alerts: Vec<String> = first
        .alerts()
        .into_iter()
        .map(|alert| alert.dedup_key)
        .collect();
    let took_effect: Vec<String> = requests
        .iter()
        .filter(|r| matches!(r.injected, None | Some(InjectedFault::LostAnswer)))
        .map(|r| {
            r.json().expect("json")["dedup_key"]
                .as_str()
                .expect("key")
                .to_owned()
        })
        .collect();
    assert_eq!(alerts, took_effect);
    assert_eq!(alerts.len(), REQUESTS - limited - refused);

    // The same seed repeats the same faults; another seed does not.
    let again = pagerduty_sim().await;
    again.set_faults(drill_faults());
    again.set_seed(42);
    send_triggers(&again, REQUESTS).await;
    assert_eq!(injections(&again.requests()), injections(&requests));
    let other = pagerduty_sim().await;
    other.set_faults(drill_faults());
    other.set_seed(43);
    send_triggers(&other, REQUESTS).await;
    assert_ne!(injections(&other.requests()), injections(&requests));

    // Without rates nothing is injected, whatever the seed.
    let calm = pagerduty_sim().await;
    calm.set_seed(42);
    let calm_answers = send_triggers(&calm, 50).await;
    assert!(calm_answers.iter().all(|(status, _)| *status == 202));
    assert!(calm.requests().iter().all(|r| r.injected.is_none()));
}

#[tokio::test]
async fn scripted_faults_come_before_random_ones_and_latency_delays_handled_requests() {
    let sim = pagerduty_sim().await;
    sim.set_faults(FaultConfig {
        too_many_requests_rate: 1.0,
        ..FaultConfig::none()
    });
    sim.inject(opal_operator::sim::notify::Fault::status(500));
    let answers = send_triggers(&sim, 2).await;
    assert_eq!(answers[0].0, 500);
    assert_eq!(answers[1], (429, None));
    assert_eq!(
        injections(&sim.requests()),
        vec![
            Some(InjectedFault::Scripted),
            Some(InjectedFault::TooManyRequests)
        ]
    );

    sim.set_faults(FaultConfig::none());
    let latency = Duration::from_millis(150);
    sim.set_latency(latency);
    let started = Instant::now();
    let answers = send_triggers(&sim, 1).await;
    assert_eq!(answers[0].0, 202);
    assert!(
        started.elapsed() >= latency,
        "answered after {:?}",
        started.elapsed()
    );
}

/// Drains the outbox and returns every report, by idempotency key and channel.
async fn drain(
    outbox: Outbox,
    mut reports: tokio::sync::broadcast::Receiver<DeliveryReport>,
) -> BTreeMap<(String, String), DeliveryReport> {
    let undelivered = outbox.shutdown(DRAIN).await;
    assert_eq!(undelivered, 0, "messages left in the queue");
    let mut by_key = BTreeMap::new();
    while let Ok(report) = reports.try_recv() {
        let key = (report.idempotency_key.clone(), report.channel.clone());
        assert!(
            by_key.insert(key, report).is_none(),
            "a message was reported twice"
        );
    }
    by_key
}

fn assert_all_delivered(
    reports: &BTreeMap<(String, String), DeliveryReport>,
    sent: &[(&str, &Notification)],
) {
    assert_eq!(reports.len(), sent.len());
    for (channel, note) in sent {
        let key = (note.idempotency_key().to_owned(), (*channel).to_owned());
        let report = reports
            .get(&key)
            .unwrap_or_else(|| panic!("no report for {} on {channel}", note.kind()));
        assert!(
            matches!(report.outcome, DeliveryOutcome::Delivered(_)),
            "{} on {channel}: {:?}",
            note.kind(),
            report.outcome
        );
    }
}

/// The issue carrying `note`'s thread token as a label; fails unless exactly one does.
fn only_issue<'a>(issues: &'a [SimIssue], note: &Notification) -> &'a SimIssue {
    let token = note.thread().token();
    let carrying: Vec<&SimIssue> = issues
        .iter()
        .filter(|issue| issue.labels.contains(&token))
        .collect();
    assert_eq!(
        carrying.len(),
        1,
        "{} issues for the thread of {}",
        carrying.len(),
        note.kind()
    );
    carrying[0]
}

fn mentions(value: &Value, marker: &str) -> bool {
    value.to_string().contains(marker)
}

#[tokio::test]
async fn every_message_reaches_slack_and_jira_exactly_once_under_random_faults() {
    let slack = SlackSim::start(SlackSimConfig::default())
        .await
        .expect("slack sim");
    let jira = JiraSim::start(JiraSimConfig::default())
        .await
        .expect("jira sim");
    // A quarter of all requests fail: 429s (Slack's with Retry-After: 1), 500/502/503s.
    slack.set_faults(FaultConfig {
        too_many_requests_rate: 0.1,
        retry_after: Some(Duration::from_secs(1)),
        server_error_rate: 0.15,
        ..FaultConfig::none()
    });
    slack.set_latency(Duration::from_millis(10));
    slack.set_seed(7);
    jira.set_faults(FaultConfig {
        too_many_requests_rate: 0.1,
        server_error_rate: 0.15,
        ..FaultConfig::none()
    });
    jira.set_latency(Duration::from_millis(10));
    jira.set_seed(11);

    let secrets = SecretFiles::new();
    let defaults = JiraSimConfig::default();
    let yaml = format!(
        "channels:\n  chat:\n    type: slack\n    apiUrl: {}\n    token: {}\n    channel: {SLACK_CHANNEL}\n  tickets:\n    type: jira\n    url: {}\n    email: {}\n    apiToken: {}\n    projectKey: SEC\n{PATIENT_OUTBOX}",
        slack.api_url(),
        secrets.reference("slack", &SlackSimConfig::default().bot_token),
        jira.site_url(),
        defaults.email,
        secrets.reference("jira", &defaults.api_token),
    );
    let outbox = outbox(&yaml).await;
    let reports = outbox.subscribe();

    let lockdowns: Vec<String> = (0..4).map(|n| format!("drill-{n}")).collect();
    let activated: Vec<Notification> = lockdowns.iter().map(|l| lockdown_activated(l)).collect();
    let released: Vec<Notification> = lockdowns.iter().map(|l| lockdown_released(l)).collect();
    let offboardings: Vec<Notification> = (0..4)
        .map(|n| offboarded(&format!("leaver{n}@example.com")))
        .collect();
    let (launched, overdue) = (review_launched("rv-1"), review_overdue("rv-1"));

    let mut sent: Vec<(&str, &Notification)> = Vec::new();
    for (open, close) in activated.iter().zip(&released) {
        sent.extend([("chat", open), ("tickets", open)]);
        sent.extend([("chat", close), ("tickets", close)]);
    }
    for note in &offboardings {
        sent.extend([("chat", note), ("tickets", note)]);
    }
    sent.extend([("tickets", &launched), ("tickets", &overdue)]);
    for (channel, note) in &sent {
        outbox.enqueue(channel, (*note).clone()).expect("enqueue");
    }
    let reports = drain(outbox, reports).await;
    assert_all_delivered(&reports, &sent);

    // The faults happened, and were retried through.
    for (name, requests) in [("slack", slack.requests()), ("jira", jira.requests())] {
        let injected = requests.iter().filter(|r| r.injected.is_some()).count();
        let rate = injected as f64 / requests.len() as f64;
        assert!(
            injected >= 3 && rate >= 0.1,
            "{name}: {injected} of {} requests faulted",
            requests.len()
        );
    }
    let retried = reports.values().filter(|r| r.attempts > 1).count();
    assert!(retried >= 3, "only {retried} messages needed a retry");

    // Slack: one post per message, each in the channel, each message's marker exactly once.
    let chat: Vec<&Notification> = sent
        .iter()
        .filter(|(channel, _)| *channel == "chat")
        .map(|(_, note)| *note)
        .collect();
    let posts = slack.posts();
    assert_eq!(posts.len(), chat.len());
    for note in &chat {
        let marker = reference_marker(note);
        let carrying = posts
            .iter()
            .filter(|post| post.blocks.as_ref().is_some_and(|b| mentions(b, &marker)))
            .count();
        assert_eq!(carrying, 1, "{} posted {carrying} times", note.kind());
    }
    assert!(posts.iter().all(|post| post.channel == SLACK_CHANNEL));

    // Jira: one ticket per thread; each lockdown closed with one resolution comment, each
    // offboarding recorded and closed, the review commented once.
    let issues = jira.issues();
    assert_eq!(issues.len(), lockdowns.len() + offboardings.len() + 1);
    let created = jira
        .requests_to(CREATE_ISSUE)
        .iter()
        .filter(|r| r.status == 201)
        .count();
    assert_eq!(created, issues.len());
    for (open, close) in activated.iter().zip(&released) {
        let issue = only_issue(&issues, open);
        assert_eq!(issue.status, "Done");
        assert_eq!(issue.comments.len(), 1, "{:?}", issue.comments);
        assert!(mentions(&issue.comments[0], &reference_marker(close)));
        assert!(mentions(&issue.description, &reference_marker(open)));
    }
    for note in &offboardings {
        let issue = only_issue(&issues, note);
        assert_eq!(issue.status, "Done");
        assert!(issue.comments.is_empty());
    }
    let review = only_issue(&issues, &launched);
    assert_eq!(review.status, "To Do");
    assert_eq!(review.comments.len(), 1);
    assert!(mentions(&review.comments[0], &reference_marker(&overdue)));
    assert!(matches!(
        reports[&(overdue.idempotency_key().to_owned(), "tickets".to_owned())].outcome,
        DeliveryOutcome::Delivered(Receipt::Ticket { created: false, .. })
    ));
}

#[tokio::test]
async fn jira_answers_lost_at_random_never_open_a_ticket_or_comment_twice() {
    let jira = JiraSim::start(JiraSimConfig::default())
        .await
        .expect("jira sim");
    jira.set_faults(FaultConfig {
        server_error_rate: 0.1,
        lost_answer_rate: 0.3,
        ..FaultConfig::none()
    });
    jira.set_latency(Duration::from_millis(5));
    jira.set_seed(5);
    let secrets = SecretFiles::new();
    let defaults = JiraSimConfig::default();
    let yaml = format!(
        "channels:\n  tickets:\n    type: jira\n    url: {}\n    email: {}\n    apiToken: {}\n    projectKey: SEC\n{PATIENT_OUTBOX}",
        jira.site_url(),
        defaults.email,
        secrets.reference("jira", &defaults.api_token),
    );
    let outbox = outbox(&yaml).await;
    let reports = outbox.subscribe();
    // Opening tickets and commenting: the steps a lost answer could repeat.
    let opened: Vec<Notification> = (0..6)
        .map(|n| lockdown_activated(&format!("lost-{n}")))
        .collect();
    let (launched, overdue) = (review_launched("rv-lost"), review_overdue("rv-lost"));
    let mut sent: Vec<(&str, &Notification)> = opened.iter().map(|n| ("tickets", n)).collect();
    sent.extend([("tickets", &launched), ("tickets", &overdue)]);
    for (channel, note) in &sent {
        outbox.enqueue(channel, (*note).clone()).expect("enqueue");
    }
    let reports = drain(outbox, reports).await;
    assert_all_delivered(&reports, &sent);

    let creates = jira.requests_to(CREATE_ISSUE);
    let lost_creates = creates
        .iter()
        .filter(|r| r.injected == Some(InjectedFault::LostAnswer))
        .count();
    assert!(lost_creates >= 2, "only {lost_creates} creations lost");
    // Every create that took effect made a ticket for a thread without one.
    let effective = creates
        .iter()
        .filter(|r| r.status == 201 || r.injected == Some(InjectedFault::LostAnswer))
        .count();
    let issues = jira.issues();
    assert_eq!(effective, issues.len());
    assert_eq!(issues.len(), opened.len() + 1);
    for note in &opened {
        only_issue(&issues, note);
    }
    let review = only_issue(&issues, &launched);
    assert_eq!(review.comments.len(), 1, "{:?}", review.comments);
    assert!(mentions(&review.comments[0], &reference_marker(&overdue)));
}
