//! The outbox as the controller uses it: a full queue is refused at once and reported, a failing
//! channel does not hold up the others, metrics count attempts and outcomes, credentials come
//! from files or a Kubernetes Secret source, unknown channel names are clear errors, and no
//! credential ever reaches logs, errors or `Debug` output.

mod notify_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use notify_support::*;
use opal_operator::notify::{
    ChannelRegistry, ChannelState, DeliveryOutcome, EnqueueError, Outbox, PrometheusMetrics,
};
use opal_operator::secret::KubeSecretSource;
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::jira::{JiraSim, JiraSimConfig};
use opal_operator::sim::notify::pagerduty::{PagerDutySim, PagerDutySimConfig};
use opal_operator::sim::notify::servicenow::{ServiceNowSim, ServiceNowSimConfig};
use opal_operator::sim::notify::slack::{SlackSim, SlackSimConfig};
use opal_operator::sim::notify::splunk::{HecSim, HecSimConfig};
use opal_operator::sim::notify::webhook::{WebhookSim, WebhookSimConfig};

const ROUTING_KEY: &str = "R0UTINGKEY0000000000000000000099";
const HOOK_KEY: &str = "outbox-hook-key-Ok31";

/// Every log line of this test binary, at TRACE level and from every crate.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls the outbox's health until `condition` holds (bounded).
async fn until_health(outbox: &Outbox, channel: &str, condition: impl Fn(&ChannelState) -> bool) {
    let deadline = tokio::time::Instant::now() + REPORT_WAIT;
    loop {
        let state = outbox
            .health()
            .channels
            .into_iter()
            .find(|h| h.channel == channel)
            .map(|h| h.state);
        if state.as_ref().is_some_and(&condition) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "channel {channel} never reached the expected state (last: {state:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pagerduty_sim() -> PagerDutySim {
    PagerDutySim::start(PagerDutySimConfig {
        routing_keys: vec![ROUTING_KEY.to_owned()],
    })
    .await
    .expect("pagerduty sim")
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_reported() {
    let sim = pagerduty_sim().await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  page:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {}\noutbox:\n  queueCapacity: 2\n  retry:\n    initialBackoffMs: 10\n    maxBackoffMs: 50\n",
        sim.events_url(),
        secrets.reference("pd", ROUTING_KEY),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(PrometheusMetrics::register(&mut registry));
    let outbox = outbox_with(&yaml, metrics).await;
    // The first message meets a 429 asking for a one-second pause; the worker sits in it.
    sim.inject(Fault::rate_limited(1).on("POST", "/v2/enqueue"));
    let mut reports = outbox.subscribe();
    let notes: Vec<_> = (0..5)
        .map(|i| offboarded(&format!("p{i}@example.com")))
        .collect();
    outbox.enqueue("page", notes[0].clone()).expect("first");
    until_health(&outbox, "page", |state| *state == ChannelState::Retrying).await;
    outbox.enqueue("page", notes[1].clone()).expect("second");
    outbox.enqueue("page", notes[2].clone()).expect("third");
    assert_eq!(
        outbox.enqueue("page", notes[3].clone()),
        Err(EnqueueError::QueueFull {
            channel: "page".into(),
            capacity: 2
        })
    );
    assert_eq!(
        outbox
            .enqueue_wait("page", notes[3].clone(), Duration::from_millis(10))
            .await
            .map_err(|e| e.label()),
        Err("queue_full")
    );
    let health = outbox.health();
    let page = &health.channels[0];
    assert_eq!(page.state, ChannelState::Retrying);
    assert_eq!(page.pending, 3);
    assert_eq!(page.refused_since_delivery, 2);
    assert!(
        health
            .condition_message()
            .is_some_and(|m| m.contains("page (pagerduty): retrying"))
    );

    // Waiting callers get in once the channel drains.
    outbox
        .enqueue_wait("page", notes[4].clone(), REPORT_WAIT)
        .await
        .expect("room appears");
    for note in [&notes[0], &notes[1], &notes[2], &notes[4]] {
        assert!(
            report_for(&mut reports, "page", note.idempotency_key())
                .await
                .is_delivered()
        );
    }
    let health = outbox.health();
    assert!(!health.is_degraded(), "{health:?}");
    assert_eq!(health.channels[0].delivered, 4);
    assert_eq!(sim.alerts().len(), 4);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "notify_enqueue_rejected_total{channel=\"page\",reason=\"queue_full\"} 2",
        "notify_attempts_total{channel=\"page\",kind=\"pagerduty\",outcome=\"rate_limited\"} 1",
        "notify_attempts_total{channel=\"page\",kind=\"pagerduty\",outcome=\"ok\"} 4",
        "notify_messages_total{channel=\"page\",kind=\"pagerduty\",outcome=\"delivered\"} 4",
        "notify_queue_depth{channel=\"page\"} 0",
        "notify_attempt_duration_seconds_count{channel=\"page\"} 5",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_failing_channel_does_not_hold_up_the_others() {
    let pd = pagerduty_sim().await;
    let hook = WebhookSim::start(WebhookSimConfig {
        signing_key: HOOK_KEY.to_owned(),
        ..WebhookSimConfig::default()
    })
    .await
    .expect("webhook sim");
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  page:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {}\n  hook:\n    type: webhook\n    url: {}\n    signingKey: {}\noutbox:\n  retry:\n    maxAttempts: 4\n    initialBackoffMs: 1000\n    maxBackoffMs: 1000\n",
        pd.events_url(),
        secrets.reference("pd", ROUTING_KEY),
        hook.url("/in"),
        secrets.reference("hook", HOOK_KEY),
    );
    let outbox = outbox(&yaml).await;
    for _ in 0..4 {
        pd.inject(Fault::status(503).on("POST", "/v2/enqueue"));
    }
    let paged = lockdown_activated("eve");
    let mut reports = outbox.subscribe();
    outbox.enqueue("page", paged.clone()).expect("page");
    until_health(&outbox, "page", |state| *state == ChannelState::Retrying).await;
    let notes: Vec<_> = (0..3)
        .map(|i| offboarded(&format!("h{i}@example.com")))
        .collect();
    for note in &notes {
        assert_eq!(outbox.enqueue_all(&["hook"], note), Vec::new());
    }
    // The webhook's reports all come before PagerDuty's final one.
    let mut delivered = 0;
    while delivered < notes.len() {
        let report = tokio::time::timeout(REPORT_WAIT, reports.recv())
            .await
            .expect("report in time")
            .expect("report");
        assert_eq!(
            report.channel, "hook",
            "PagerDuty finished first: {report:?}"
        );
        assert!(report.is_delivered());
        delivered += 1;
    }
    // The webhook got everything while PagerDuty was still being retried.
    let health = outbox.health();
    let page = health
        .channels
        .iter()
        .find(|h| h.channel == "page")
        .expect("page");
    assert_eq!(page.state, ChannelState::Retrying, "{page:?}");
    assert_eq!(page.last_error_label, Some("server_error"));
    assert_eq!(hook.accepted().len(), 3);

    let report = report_for(&mut reports, "page", paged.idempotency_key()).await;
    let DeliveryOutcome::Failed(error) = &report.outcome else {
        panic!("expected failure: {report:?}");
    };
    assert_eq!(report.attempts, 4);
    assert_eq!(error.label(), "server_error");
    let health = outbox.health();
    let page = health
        .channels
        .iter()
        .find(|h| h.channel == "page")
        .expect("page");
    assert_eq!(
        (page.state, page.failed, page.consecutive_failures),
        (ChannelState::Failing, 1, 4)
    );
    let message = health.condition_message().expect("degraded");
    assert!(
        message.starts_with("page (pagerduty): failing: pagerduty events.enqueue: HTTP 503"),
        "{message}"
    );
    assert!(
        !message.contains("hook"),
        "the healthy channel is not named: {message}"
    );
}

struct FakeKubeSecrets(BTreeMap<(String, String), String>);

impl KubeSecretSource for FakeKubeSecrets {
    fn read<'a>(&'a self, name: &'a str, key: &'a str) -> BoxFuture<'a, Result<String, String>> {
        let found = self
            .0
            .get(&(name.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| format!("Secret {name} has no key {key}"));
        Box::pin(async move { found })
    }
}

#[tokio::test]
async fn credentials_from_a_kubernetes_secret_source_and_unknown_channel_names() {
    let hook = WebhookSim::start(WebhookSimConfig {
        signing_key: HOOK_KEY.to_owned(),
        ..WebhookSimConfig::default()
    })
    .await
    .expect("webhook sim");
    let yaml = format!(
        "channels:\n  hook:\n    type: webhook\n    urlFrom: {{secretKeyRef: {{name: hooks, key: url}}}}\n    signingKey: {{secretKeyRef: {{name: hooks, key: signing-key}}}}\n{FAST_OUTBOX}",
    );
    let kube = FakeKubeSecrets(BTreeMap::from([
        (("hooks".into(), "url".into()), hook.url("/from-secret")),
        (
            ("hooks".into(), "signing-key".into()),
            format!("{HOOK_KEY}\n"),
        ),
    ]));
    let registry = ChannelRegistry::from_config(&config(&yaml), &kube)
        .await
        .expect("registry");
    let err = registry
        .validate_channel_refs(&["hook", "hoook", "pager"])
        .expect_err("unknown names");
    assert_eq!(
        err.to_string(),
        r#"unknown notification channel(s) ["hoook", "pager"]; configured channels: ["hook"]"#
    );
    let outbox = Outbox::start(&registry, Arc::new(opal_operator::notify::NoopMetrics));
    assert_eq!(
        outbox.enqueue("pager", offboarded("x@example.com")),
        Err(EnqueueError::UnknownChannel {
            channel: "pager".into()
        })
    );
    assert!(
        deliver(&outbox, "hook", offboarded("y@example.com"))
            .await
            .is_delivered()
    );
    assert_eq!(hook.accepted()[0].path, "/from-secret");

    let missing = FakeKubeSecrets(BTreeMap::new());
    let err = ChannelRegistry::from_config(&config(&yaml), &missing)
        .await
        .expect_err("missing secret");
    assert_eq!(err.label(), "secret");
    assert_eq!(
        err.to_string(),
        "channel \"hook\": cannot read credential from Secret hooks/key url: Secret hooks has no key url"
    );
}

#[tokio::test]
async fn credentials_never_reach_logs_errors_or_debug_output() {
    let logs = captured_logs();
    let slack_token = "xoxb-2222-LEAKCHECK-slack";
    let jira_token = "LEAKCHECK-jira-token";
    let sn_password = "LEAKCHECK-sn-password";
    let hec_token = "9a8b7c6d-LEAK-4e3f-8a1b-0c9d8e7f6a5b";
    let hook_key = "LEAKCHECK-hook-key";
    let hook_url_secret = "LEAKCHECKurlToken";

    let slack = SlackSim::start(SlackSimConfig {
        bot_token: "xoxb-the-right-one".into(),
        ..SlackSimConfig::default()
    })
    .await
    .expect("slack");
    let jira = JiraSim::start(JiraSimConfig::default())
        .await
        .expect("jira");
    let snow = ServiceNowSim::start(ServiceNowSimConfig::default())
        .await
        .expect("snow");
    let pd = pagerduty_sim().await;
    let hec = HecSim::start(HecSimConfig::default()).await.expect("hec");
    let hook = WebhookSim::start(WebhookSimConfig::default())
        .await
        .expect("hook");
    let secrets = SecretFiles::new();
    let wrong_routing_key = "LEAKCHECK000000000000000000000RK";
    let yaml = format!(
        "channels:\n  slack:\n    type: slack\n    apiUrl: {}\n    token: {}\n    channel: C0SECOPS\n  slack-hook:\n    type: slackWebhook\n    url: {}\n  jira:\n    type: jira\n    url: {}\n    email: opal-operator@example.com\n    apiToken: {}\n    projectKey: SEC\n  snow:\n    type: serviceNow\n    instanceUrl: {}\n    username: opal.operator\n    password: {}\n  page:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {}\n  hec:\n    type: splunkHec\n    url: {}\n    token: {}\n  hook:\n    type: webhook\n    urlFrom: {}\n    signingKey: {}\n  down:\n    type: webhook\n    urlFrom: {}\n    signingKey: {}\noutbox:\n  requestTimeoutMs: 2000\n  retry:\n    maxAttempts: 2\n    initialBackoffMs: 10\n    maxBackoffMs: 20\n",
        slack.api_url(),
        secrets.reference("slack", slack_token),
        secrets.reference(
            "slack-hook",
            &format!(
                "{}/services/T0SIM/B0SIM/{hook_url_secret}",
                slack.base_url()
            )
        ),
        jira.site_url(),
        secrets.reference("jira", jira_token),
        snow.instance_url(),
        secrets.reference("snow", sn_password),
        pd.events_url(),
        secrets.reference("pd", wrong_routing_key),
        hec.collector_url(),
        secrets.reference("hec", hec_token),
        secrets.reference(
            "hook-url",
            &hook.url(&format!("/in?token={hook_url_secret}"))
        ),
        secrets.reference("hook-key", hook_key),
        // Nothing listens on port 9 (discard): a connection failure, retried.
        secrets.reference(
            "down-url",
            &format!("http://127.0.0.1:9/in?token={hook_url_secret}")
        ),
        secrets.reference("down-key", hook_key),
    );
    let registry = registry(&yaml).await;
    let outbox = Outbox::start(&registry, Arc::new(opal_operator::notify::NoopMetrics));
    let mut errors = Vec::new();
    for channel in [
        "slack",
        "slack-hook",
        "jira",
        "snow",
        "page",
        "hec",
        "hook",
        "down",
    ] {
        let report = deliver(&outbox, channel, lockdown_activated(channel)).await;
        match &report.outcome {
            DeliveryOutcome::Failed(error) => {
                errors.push(error.to_string());
                errors.push(format!("{error:?}"));
            }
            DeliveryOutcome::Delivered(receipt) => panic!("{channel} should fail, got {receipt:?}"),
        }
    }
    assert_eq!(errors.len(), 16, "every channel failed: {errors:#?}");
    let health = outbox.health();
    let texts = [
        logs.lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .expect("logs"),
        errors.join("\n"),
        format!("{health:?}"),
        health.condition_message().unwrap_or_default(),
        format!("{registry:?}"),
        format!("{outbox:?}"),
        format!("{:?}", config(&yaml)),
    ];
    let log_text = &texts[0];
    assert!(
        log_text.contains("notification delivery failed for good"),
        "logs were captured"
    );
    assert!(log_text.contains("channel=\"down\""), "{log_text}");
    let basic_jira = base64_of(&format!("opal-operator@example.com:{jira_token}"));
    let basic_snow = base64_of(&format!("opal.operator:{sn_password}"));
    for secret in [
        slack_token,
        jira_token,
        sn_password,
        hec_token,
        hook_key,
        hook_url_secret,
        wrong_routing_key,
        &basic_jira,
        &basic_snow,
    ] {
        for text in &texts {
            assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
        }
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
