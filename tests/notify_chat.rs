//! Slack (webhook and Web API), PagerDuty, Splunk HEC and signed webhooks over real HTTP against
//! their simulators: payloads field by field, body-level errors, retries without duplicates, and
//! permanent failures with their reason.

mod notify_support;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use notify_support::*;
use opal_operator::notify::{DeliveryOutcome, Receipt};
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::pagerduty::{AlertStatus, PagerDutySim, PagerDutySimConfig};
use opal_operator::sim::notify::slack::{SlackSim, SlackSimConfig, SlackVia};
use opal_operator::sim::notify::splunk::{HecSim, HecSimConfig};
use opal_operator::sim::notify::webhook::{WebhookSim, WebhookSimConfig};
use serde_json::{Value, json};
use sha2::Sha256;

const SLACK_TOKEN: &str = "xoxb-1111-slack-bot-Tk44";
const ROUTING_KEY: &str = "R0UTINGKEY0000000000000000000042";
const HEC_TOKEN: &str = "0b6f3a52-7c1e-4d0a-9f6e-5a4b3c2d1e0f";
const HOOK_KEY: &str = "hook-signing-key-Hk77";

fn failed(report: &opal_operator::notify::DeliveryReport) -> String {
    match &report.outcome {
        DeliveryOutcome::Failed(error) => error.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

async fn slack_sim() -> SlackSim {
    SlackSim::start(SlackSimConfig {
        bot_token: SLACK_TOKEN.to_owned(),
        users: BTreeMap::from([("alice@example.com".to_owned(), "U0ALICE".to_owned())]),
        ..SlackSimConfig::default()
    })
    .await
    .expect("slack sim")
}

#[tokio::test]
async fn slack_webhook_posts_blocks_and_keeps_its_url_secret() {
    let sim = slack_sim().await;
    let secrets = SecretFiles::new();
    let wrong_url = format!("{}/services/T0SIM/B0SIM/wrongSecretPart99", sim.base_url());
    let yaml = format!(
        "channels:\n  hook:\n    type: slackWebhook\n    url: {}\n  bad-hook:\n    type: slackWebhook\n    url: {}\n{FAST_OUTBOX}",
        secrets.reference("hook", &sim.webhook_url()),
        secrets.reference("bad", &wrong_url),
    );
    let outbox = outbox(&yaml).await;
    let notification = offboarded("bob@example.com");
    let report = deliver(&outbox, "hook", notification.clone()).await;
    assert!(matches!(
        report.outcome,
        DeliveryOutcome::Delivered(Receipt::Posted { messages: 1 })
    ));

    let posts = sim.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].via, SlackVia::Webhook);
    assert_eq!(
        posts[0].text.as_deref(),
        Some("Offboarded Bob Stone &lt;bob@example.com&gt;"),
        "the fallback text is mrkdwn, escaped like the blocks"
    );
    let blocks = posts[0].blocks.clone().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Offboarded Bob Stone <bob@example.com>"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(
        fields.contains(&"*Person*\nBob Stone &lt;bob@example.com&gt;"),
        "{fields:?}"
    );
    assert!(fields.contains(&"*Policy*\nAccessPolicy hr/offboarding"));
    assert!(fields.contains(&"*Termination date*\n2026-02-28"));
    assert_eq!(
        blocks[2]["text"]["text"],
        "• group \"engineering\"\n• resource \"github-org\" (member)"
    );
    let context = blocks[3]["elements"].as_array().expect("context");
    assert_eq!(
        context[0]["text"],
        "<https://hr.example.com/people/42|HR record>"
    );
    assert!(
        context[1]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with(notification.idempotency_key()))
    );
    let request = &sim.requests_to("POST /services/T0SIM/B0SIM/simwebhooksecret")[0];
    assert!(
        request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );

    // A wrong webhook URL: 404 no_service, permanent, and the URL's secret is not in the error.
    let report = deliver(&outbox, "bad-hook", offboarded("carl@example.com")).await;
    let error = failed(&report);
    assert_eq!(report.attempts, 1);
    assert_eq!(error, "slack-webhook webhook.post: HTTP 404: no_service");
    assert!(!error.contains("wrongSecretPart99"));
}

#[tokio::test]
async fn slack_web_api_posts_to_the_channel_and_messages_recipients_directly() {
    let sim = slack_sim().await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  secops:\n    type: slack\n    apiUrl: {}\n    token: {}\n    channel: C0SECOPS\n    directMessages: true\n{FAST_OUTBOX}",
        sim.api_url(),
        secrets.reference("slack", SLACK_TOKEN),
    );
    let outbox = outbox(&yaml).await;
    // The direct message's lookup fails once: the channel post is not repeated on retry.
    sim.inject(Fault::status(503).on("GET", "/api/users.lookupByEmail"));
    let notification = review_overdue("uar-3").with_recipient("alice@example.com");
    let report = deliver(&outbox, "secops", notification).await;
    assert!(matches!(
        report.outcome,
        DeliveryOutcome::Delivered(Receipt::Posted { messages: 2 })
    ));
    assert_eq!(report.attempts, 2);

    let posts = sim.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].channel, "C0SECOPS");
    assert_eq!(posts[1].channel, "D0ALICE");
    let calls = sim.requests_to("POST /api/chat.postMessage");
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {SLACK_TOKEN}").as_str())
        );
        assert_eq!(
            call.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    let body = calls[0].json().expect("json");
    assert_eq!(body["channel"], "C0SECOPS");
    assert_eq!(
        body["text"],
        "Access review \"Q1 access review\" is overdue"
    );
    assert_eq!(body["unfurl_links"], false);
    assert!(body["blocks"].as_array().is_some_and(|b| b.len() >= 3));
    assert_eq!(calls[1].json().expect("json")["channel"], "U0ALICE");
    let lookups = sim.requests_to("GET /api/users.lookupByEmail");
    assert_eq!(
        lookups.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 200]
    );
    assert_eq!(
        lookups[1].query.as_deref(),
        Some("email=alice%40example.com")
    );
}

#[tokio::test]
async fn slack_ok_false_inside_http_200_is_an_error() {
    let sim = slack_sim().await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  secops:\n    type: slack\n    apiUrl: {}\n    token: {}\n    channel: C0SECOPS\n  lost:\n    type: slack\n    apiUrl: {}\n    token: {}\n    channel: C0NOWHERE\n  dms:\n    type: slack\n    apiUrl: {}\n    token: {}\n    directMessages: true\n{FAST_OUTBOX}",
        sim.api_url(),
        secrets.reference("slack", SLACK_TOKEN),
        sim.api_url(),
        secrets.reference("slack2", SLACK_TOKEN),
        sim.api_url(),
        secrets.reference("slack3", "xoxb-revoked-token"),
    );
    let outbox = outbox(&yaml).await;

    sim.inject(
        Fault::status(200)
            .on("POST", "/api/chat.postMessage")
            .with_body("application/json", r#"{"ok":false,"error":"is_archived"}"#),
    );
    let report = deliver(&outbox, "secops", lockdown_activated("a")).await;
    assert_eq!(failed(&report), "slack chat.postMessage: is_archived");
    assert_eq!(report.attempts, 1);

    // `ratelimited` inside a 200 and a real 429 are both retried; one message results.
    sim.inject(
        Fault::status(200)
            .on("POST", "/api/chat.postMessage")
            .with_body("application/json", r#"{"ok":false,"error":"ratelimited"}"#),
    );
    sim.inject(Fault::rate_limited(0).on("POST", "/api/chat.postMessage"));
    let report = deliver(&outbox, "secops", lockdown_activated("b")).await;
    assert!(report.is_delivered());
    assert_eq!(report.attempts, 3);
    assert_eq!(sim.posts().len(), 1);

    let report = deliver(&outbox, "lost", lockdown_activated("c")).await;
    assert_eq!(failed(&report), "slack chat.postMessage: channel_not_found");

    let report = deliver(
        &outbox,
        "dms",
        lockdown_activated("d").with_recipient("alice@example.com"),
    )
    .await;
    assert_eq!(failed(&report), "slack users.lookupByEmail: invalid_auth");
    assert_eq!(sim.posts().len(), 1);
}

async fn pagerduty_sim() -> PagerDutySim {
    PagerDutySim::start(PagerDutySimConfig {
        routing_keys: vec![ROUTING_KEY.to_owned()],
    })
    .await
    .expect("pagerduty sim")
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
    let sim = pagerduty_sim().await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  page:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {}\n    component: access\n    group: secops\n{FAST_OUTBOX}",
        sim.events_url(),
        secrets.reference("pd", ROUTING_KEY),
    );
    let outbox = outbox(&yaml).await;
    let activated = lockdown_activated("eve");
    let token = activated.thread().token();
    sim.inject(Fault::rate_limited(0).on("POST", "/v2/enqueue"));
    sim.inject(Fault::status(502).on("POST", "/v2/enqueue"));
    let report = deliver(&outbox, "page", activated).await;
    assert_eq!(report.attempts, 3);
    assert!(
        matches!(&report.outcome, DeliveryOutcome::Delivered(Receipt::Paged { dedup_key }) if *dedup_key == token)
    );

    let trigger = sim
        .requests_to("POST /v2/enqueue")
        .into_iter()
        .find(|r| r.status == 202)
        .expect("accepted trigger")
        .json()
        .expect("json");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], token);
    assert_eq!(trigger["client"], "opal-operator");
    let payload = &trigger["payload"];
    assert_eq!(
        payload["summary"],
        "Lockdown eve activated for eve@example.com"
    );
    assert_eq!(payload["source"], "opal-operator");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["timestamp"], "2026-03-01T12:01:00+00:00");
    assert_eq!(payload["component"], "access");
    assert_eq!(payload["group"], "secops");
    assert_eq!(payload["class"], "lockdownActivated");
    assert_eq!(payload["custom_details"]["Incident"], "INC-4711");
    assert_eq!(payload["custom_details"]["Subjects"], "eve@example.com");
    assert_eq!(
        payload["custom_details"]["Evidence"][1],
        "Eve Adams <eve@example.com> → resource \"billing-db\""
    );
    assert_eq!(
        trigger["links"],
        json!([{"href": "https://app.opal.dev/users/eve", "text": "Opal user"}])
    );

    let report = deliver(&outbox, "page", lockdown_released("eve")).await;
    assert!(report.is_delivered());
    let alerts = sim.alerts();
    assert_eq!(alerts.len(), 1, "one alert for the lockdown");
    assert_eq!(alerts[0].status, AlertStatus::Resolved);
    assert_eq!(alerts[0].dedup_key, token);
    let actions: Vec<&str> = alerts[0]
        .events
        .iter()
        .filter_map(|e| e["event_action"].as_str())
        .collect();
    assert_eq!(actions, vec!["trigger", "resolve"]);
    assert!(alerts[0].events[1].get("payload").is_none());
}

#[tokio::test]
async fn pagerduty_unknown_routing_key_fails_without_revealing_it() {
    let sim = pagerduty_sim().await;
    let secrets = SecretFiles::new();
    let unknown_key = "UNKNOWNKEY0000000000000000000077";
    let yaml = format!(
        "channels:\n  page:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {}\n{FAST_OUTBOX}",
        sim.events_url(),
        secrets.reference("pd", unknown_key),
    );
    let outbox = outbox(&yaml).await;
    let report = deliver(&outbox, "page", offboarded("bob@example.com")).await;
    let error = failed(&report);
    assert_eq!(report.attempts, 1);
    assert_eq!(
        error,
        "pagerduty events.enqueue: HTTP 400: Event object is invalid: Invalid routing key"
    );
    assert!(!error.contains(unknown_key));
    assert!(sim.alerts().is_empty());
}

fn hec_yaml(sim: &HecSim, secrets: &SecretFiles, extra: &str) -> String {
    format!(
        "channels:\n  audit:\n    type: splunkHec\n    url: {}\n    token: {}\n    index: opal\n    host: operator-0\n{extra}{FAST_OUTBOX}",
        sim.collector_url(),
        secrets.reference("hec", HEC_TOKEN),
    )
}

fn envelopes(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("concatenated JSON")
}

#[tokio::test]
async fn hec_batches_concatenated_envelopes_and_retries_busy() {
    let sim = HecSim::start(HecSimConfig {
        tokens: vec![HEC_TOKEN.to_owned()],
        allowed_indexes: Some(vec!["opal".to_owned()]),
        ack: false,
    })
    .await
    .expect("hec sim");
    let secrets = SecretFiles::new();
    let outbox = outbox(&hec_yaml(&sim, &secrets, "")).await;
    sim.inject(
        Fault::status(503)
            .on("POST", "/services/collector/event")
            .with_body("application/json", r#"{"text":"Server is busy","code":9}"#),
    );
    let notes: Vec<_> = (0..5)
        .map(|i| offboarded(&format!("user{i}@example.com")))
        .collect();
    let mut reports = outbox.subscribe();
    // Queued before the worker runs, so they travel as one batch.
    for note in &notes {
        outbox.enqueue("audit", note.clone()).expect("enqueue");
    }
    for note in &notes {
        let report = report_for(&mut reports, "audit", note.idempotency_key()).await;
        assert!(
            matches!(
                report.outcome,
                DeliveryOutcome::Delivered(Receipt::Indexed {
                    events: 5,
                    ack_id: None
                })
            ),
            "{report:?}"
        );
        assert_eq!(report.attempts, 2);
    }
    let requests = sim.requests_to("POST /services/collector/event");
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 200]
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Splunk {HEC_TOKEN}").as_str())
    );
    let sent = envelopes(&requests[1].body);
    assert_eq!(sent.len(), 5, "one body, five envelopes, no array");
    assert!(!requests[1].body_text().trim_start().starts_with('['));
    for (envelope, note) in sent.iter().zip(&notes) {
        assert_eq!(envelope["index"], "opal");
        assert_eq!(envelope["host"], "operator-0");
        assert_eq!(envelope["source"], "opal-operator");
        assert_eq!(envelope["sourcetype"], "opal-operator:notification");
        assert_eq!(envelope["time"], json!(1_772_366_700.0));
        assert_eq!(
            envelope["fields"]["idempotency_key"],
            note.idempotency_key()
        );
        assert_eq!(envelope["fields"]["kind"], "offboarded");
        assert_eq!(envelope["event"]["id"], note.idempotency_key());
        assert_eq!(
            envelope["event"]["schemaVersion"],
            "opal-operator.io/notification/v1"
        );
        assert_eq!(envelope["event"]["event"]["type"], "offboarded");
        assert_eq!(
            envelope["event"]["event"]["revoked"][1]["accessLevel"],
            "member"
        );
    }
    let indexed = sim.events();
    assert_eq!(indexed.len(), 5, "no duplicates after the retry");
}

#[tokio::test]
async fn hec_invalid_event_fails_alone_and_the_rest_are_resent() {
    let sim = HecSim::start(HecSimConfig {
        tokens: vec![HEC_TOKEN.to_owned()],
        ..HecSimConfig::default()
    })
    .await
    .expect("hec sim");
    let secrets = SecretFiles::new();
    let outbox = outbox(&hec_yaml(&sim, &secrets, "")).await;
    sim.inject(
        Fault::status(400)
            .on("POST", "/services/collector/event")
            .with_body(
                "application/json",
                r#"{"text":"Event field cannot be blank","code":13,"invalid-event-number":1}"#,
            ),
    );
    let notes: Vec<_> = (0..3)
        .map(|i| offboarded(&format!("u{i}@example.com")))
        .collect();
    let mut reports = outbox.subscribe();
    for note in &notes {
        outbox.enqueue("audit", note.clone()).expect("enqueue");
    }
    let first = report_for(&mut reports, "audit", notes[0].idempotency_key()).await;
    let second = report_for(&mut reports, "audit", notes[1].idempotency_key()).await;
    let third = report_for(&mut reports, "audit", notes[2].idempotency_key()).await;
    assert!(
        first.is_delivered(),
        "events before the invalid one were indexed"
    );
    assert_eq!(
        failed(&second),
        "splunk-hec collector.event: HTTP 400: code 13: Event field cannot be blank"
    );
    assert!(third.is_delivered());
    assert_eq!(third.attempts, 2);
    let requests = sim.requests_to("POST /services/collector/event");
    assert_eq!(requests.len(), 2);
    let resent = envelopes(&requests[1].body);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0]["event"]["id"], notes[2].idempotency_key());
}

#[tokio::test]
async fn hec_acknowledgement_channel_and_bad_token() {
    let sim = HecSim::start(HecSimConfig {
        tokens: vec![HEC_TOKEN.to_owned()],
        allowed_indexes: None,
        ack: true,
    })
    .await
    .expect("hec sim");
    let secrets = SecretFiles::new();
    let guid = "8d3c6f1e-2b4a-4c5d-9e8f-0a1b2c3d4e5f";
    let outbox = outbox(&hec_yaml(&sim, &secrets, &format!("    channel: {guid}\n  no-channel:\n    type: splunkHec\n    url: {}\n    token: {}\n  wrong-token:\n    type: splunkHec\n    url: {}\n    token: {}\n    channel: {guid}\n", sim.collector_url(), secrets.reference("hec2", HEC_TOKEN), sim.collector_url(), secrets.reference("hec3", "11111111-2222-3333-4444-555555555555")))).await;
    let report = deliver(&outbox, "audit", offboarded("a@example.com")).await;
    assert!(
        matches!(
            report.outcome,
            DeliveryOutcome::Delivered(Receipt::Indexed {
                events: 1,
                ack_id: Some(0)
            })
        ),
        "{report:?}"
    );
    assert_eq!(
        sim.requests_to("POST /services/collector/event")[0].header("x-splunk-request-channel"),
        Some(guid)
    );
    assert_eq!(sim.events()[0].channel.as_deref(), Some(guid));

    let report = deliver(&outbox, "no-channel", offboarded("b@example.com")).await;
    assert_eq!(
        failed(&report),
        "splunk-hec collector.event: HTTP 400: code 10: Data channel is missing"
    );
    let report = deliver(&outbox, "wrong-token", offboarded("c@example.com")).await;
    let error = failed(&report);
    assert_eq!(
        error,
        "splunk-hec collector.event: HTTP 403: code 4: Invalid token"
    );
    assert_eq!(sim.events().len(), 1);
}

#[tokio::test]
async fn webhook_is_signed_carries_the_idempotency_key_and_retries() {
    let sim = WebhookSim::start(WebhookSimConfig {
        signing_key: HOOK_KEY.to_owned(),
        ..WebhookSimConfig::default()
    })
    .await
    .expect("webhook sim");
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  hook:\n    type: webhook\n    url: {}\n    signingKey: {}\n  wrong-key:\n    type: webhook\n    url: {}\n    signingKey: {}\n{FAST_OUTBOX}",
        sim.url("/hooks/opal"),
        secrets.reference("key", HOOK_KEY),
        sim.url("/hooks/opal"),
        secrets.reference("key2", "some-other-Kx55-key"),
    );
    let outbox = outbox(&yaml).await;
    // Received, but the answer is lost: the retry is a duplicate the receiver can recognise.
    sim.inject(Fault::status(500).on("POST", "/hooks/opal").after_effect());
    let note = lockdown_activated("eve");
    let report = deliver(&outbox, "hook", note.clone()).await;
    assert!(matches!(
        report.outcome,
        DeliveryOutcome::Delivered(Receipt::Accepted { status: 200 })
    ));
    assert_eq!(report.attempts, 2);
    let accepted = sim.accepted();
    assert_eq!(accepted.len(), 2);
    assert!(!accepted[0].duplicate && accepted[1].duplicate);
    assert_eq!(
        accepted[0].idempotency_key.as_deref(),
        Some(note.idempotency_key())
    );
    assert_eq!(accepted[0].event.as_deref(), Some("lockdownActivated"));
    let body = &accepted[0].body;
    assert_eq!(body["schemaVersion"], "opal-operator.io/notification/v1");
    assert_eq!(body["id"], note.idempotency_key());
    assert_eq!(body["kind"], "lockdownActivated");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["thread"]["token"], note.thread().token());
    assert_eq!(body["thread"]["action"], "open");
    assert_eq!(body["event"]["lockdown"]["name"], "eve");
    assert_eq!(body["event"]["revoked"][0]["target"]["name"], "prod-admins");
    assert_eq!(body["links"][0]["url"], "https://app.opal.dev/users/eve");

    // The signature, recomputed here from the recorded request.
    let request = &sim.requests_to("POST /hooks/opal")[1];
    let timestamp = request
        .header("x-opal-operator-timestamp")
        .expect("timestamp");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(HOOK_KEY.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-opal-operator-signature"),
        Some(expected.as_str())
    );

    let report = deliver(&outbox, "wrong-key", lockdown_activated("x")).await;
    let error = failed(&report);
    assert_eq!(report.attempts, 1);
    assert_eq!(
        error,
        r#"webhook webhook.post: HTTP 401: {"error":"invalid or missing signature"}"#
    );
    assert_eq!(sim.refused(), 1);
}
