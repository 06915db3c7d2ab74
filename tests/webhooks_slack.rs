//! `POST /webhooks/slack/interactivity` served by the real router on loopback, clicked by the
//! Slack simulator on a message posted with `SlackApiClient::post_buttons`: valid clicks reach
//! the click sink exactly once, forged, stale, tampered, unsigned, oversized, unconfigured and
//! malformed ones are refused in the documented order and reach nothing, and the request
//! counter shows every outcome.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use opal_operator::metrics::Metrics;
use opal_operator::notify::{
    BlockAction, ButtonMessage, PostedMessage, SLACK_APPROVE_ACTION, SLACK_DENY_ACTION,
    SlackApiClient, render::SlackMessage,
};
use opal_operator::secret::Secret;
use opal_operator::sim::notify::slack::{Click, ClickOutcome, SlackSim, SlackSimConfig};
use opal_operator::webhooks::{
    ClickRecorded, ClickSink, Health, SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER, WebhookState,
    router, serve,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BOT_TOKEN: &str = "xoxb-3333-interactivity-Zt64";
const SIGNING_SECRET: &str = "5b1e0c9a77d24f18slack0hook0sign";
const CHANNEL: &str = "C0SECOPS";
const ALICE: &str = "U0ALICE";
const BOB: &str = "W0BOB";
/// A user id of the same length as [`ALICE`], for tampering in place.
const MALLORY: &str = "U0MALLO";
/// The simulator's team.
const TEAM: &str = "T0SIM";
const NAMESPACE: &str = "opal-system";
const PATH: &str = "/webhooks/slack/interactivity";
/// Roomy enough for every click the simulator sends here.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Records every click; answers with `answer` (`Recorded` unless changed).
#[derive(Default)]
struct RecordingClickSink {
    clicks: Mutex<Vec<BlockAction>>,
    answer: Mutex<Option<Result<ClickRecorded, String>>>,
}

impl ClickSink for RecordingClickSink {
    fn record(&self, click: BlockAction) -> BoxFuture<'_, Result<ClickRecorded, String>> {
        self.clicks.lock().expect("lock").push(click);
        let answer = self
            .answer
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or(Ok(ClickRecorded::Recorded));
        futures::future::ready(answer).boxed()
    }
}

impl RecordingClickSink {
    fn clicks(&self) -> Vec<BlockAction> {
        self.clicks.lock().expect("lock").clone()
    }

    fn answer_with(&self, answer: Result<ClickRecorded, String>) {
        *self.answer.lock().expect("lock") = Some(answer);
    }
}

struct Server {
    url: String,
    base: String,
    http: reqwest::Client,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The Slack hook configured with [`SIGNING_SECRET`], clicks going to `sink`.
    async fn start(sink: Arc<RecordingClickSink>) -> Self {
        Self::start_with(Arc::new(Metrics::new()), |state| {
            state
                .with_slack_signing_secret(Secret::new(SIGNING_SECRET).expect("secret"))
                .with_click_sink(sink)
        })
        .await
    }

    async fn start_with(
        metrics: Arc<Metrics>,
        configure: impl FnOnce(WebhookState) -> WebhookState,
    ) -> Self {
        let state = WebhookState::new(metrics, Arc::new(Health::new()), NAMESPACE)
            .with_max_body_bytes(MAX_BODY_BYTES);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            router(Arc::new(configure(state))),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url: format!("{base}{PATH}"),
            base,
            http: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    /// Posts `body` with exactly these Slack headers (none left out is added).
    async fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        Answer::of(status, &response.bytes().await.expect("body"))
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ends cleanly");
    }
}

/// An answer: status and JSON body, checked never to quote the signing secret.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn of(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        assert!(
            !text.contains(SIGNING_SECRET),
            "the answer quotes the signing secret: {text}"
        );
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()));
        Self { status, body }
    }

    fn clicked(outcome: &ClickOutcome) -> Self {
        Self::of(outcome.status, &outcome.body)
    }

    /// Asserts the status and the `outcome` of the body; returns the body.
    #[track_caller]
    fn expect(&self, status: u16, outcome: &str) -> &Value {
        assert_eq!(
            (self.status, self.body["outcome"].as_str()),
            (status, Some(outcome)),
            "{:?}",
            self.body
        );
        &self.body
    }
}

async fn slack_sim() -> SlackSim {
    SlackSim::start(SlackSimConfig {
        bot_token: BOT_TOKEN.to_owned(),
        channels: vec![CHANNEL.to_owned()],
        users: BTreeMap::from([
            ("alice@example.com".to_owned(), ALICE.to_owned()),
            ("bob@example.com".to_owned(), BOB.to_owned()),
            ("mallory@example.com".to_owned(), MALLORY.to_owned()),
        ]),
        ..SlackSimConfig::default()
    })
    .await
    .expect("slack sim")
}

fn slack_client(sim: &SlackSim) -> SlackApiClient {
    SlackApiClient::new(
        reqwest::Client::new(),
        "access-requests",
        &sim.api_url(),
        &Secret::new(BOT_TOKEN).expect("token"),
    )
    .expect("client")
}

/// The Approve / Deny message of request route token `token`.
async fn post_request(sim: &SlackSim, token: &str) -> PostedMessage {
    slack_client(sim)
        .post_buttons(&ButtonMessage {
            channel: CHANNEL.to_owned(),
            text: "Eve Adams asks for admin on prod-db for 2h".to_owned(),
            token: token.to_owned(),
            approve_value: format!("{token}:approve"),
            deny_value: format!("{token}:deny"),
            details: vec!["Reason: INC-4711".to_owned()],
        })
        .await
        .expect("posted")
}

/// The click the sink should see: `user` pressed `action` on `posted` of route `token`.
fn block_action(posted: &PostedMessage, token: &str, user: &str, action: &str) -> BlockAction {
    BlockAction {
        user_id: user.to_owned(),
        team_id: Some(TEAM.to_owned()),
        channel_id: Some(posted.channel.clone()),
        message_ts: Some(posted.ts.clone()),
        action_id: action.to_owned(),
        value: format!("{token}:{action}"),
    }
}

fn click(server: &Server, posted: &PostedMessage, user: &str, action: &str) -> Click {
    Click::new(&server.url, SIGNING_SECRET, &posted.ts, user, action)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `v0=` and the hex HMAC-SHA256 of `v0:<timestamp>:<body>`, as Slack signs.
fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// `body` signed now with [`SIGNING_SECRET`]: the timestamp and the signature.
fn signed_now(body: &[u8]) -> (String, String) {
    let timestamp = unix_now().to_string();
    let signature = slack_signature(SIGNING_SECRET, &timestamp, body);
    (timestamp, signature)
}

/// Replaces `from` by `to` (same length) wherever it occurs in `body`.
fn replace_in(body: &mut [u8], from: &str, to: &str) -> usize {
    assert_eq!(from.len(), to.len());
    let mut replaced = 0;
    let mut at = 0;
    while let Some(offset) = body[at..]
        .windows(from.len())
        .position(|window| window == from.as_bytes())
    {
        let start = at + offset;
        body[start..start + to.len()].copy_from_slice(to.as_bytes());
        at = start + to.len();
        replaced += 1;
    }
    replaced
}

/// A form body with `payload` = this JSON.
fn form_body(payload: &Value) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
        .into_bytes()
}

#[tokio::test]
async fn a_valid_click_reaches_the_sink_once_with_who_clicked_what_where() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-7f3a").await;
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start(sink.clone()).await;

    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    assert!(sent.signature.starts_with("v0="), "{}", sent.signature);
    assert_eq!(
        Answer::clicked(&sent)
            .expect(200, "recorded")
            .as_object()
            .map(|body| body.len()),
        Some(1),
        "only the outcome is answered"
    );
    assert_eq!(
        sink.clicks(),
        [block_action(
            &posted,
            "route-7f3a",
            ALICE,
            SLACK_APPROVE_ACTION
        )]
    );

    // Another member denies: handed on as its own click, with the Deny button's value.
    let status = sim
        .click(
            &server.url,
            SIGNING_SECRET,
            &posted.ts,
            BOB,
            SLACK_DENY_ACTION,
        )
        .await
        .expect("click");
    assert_eq!(status, 200);
    assert_eq!(
        sink.clicks(),
        [
            block_action(&posted, "route-7f3a", ALICE, SLACK_APPROVE_ACTION),
            block_action(&posted, "route-7f3a", BOB, SLACK_DENY_ACTION),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_sinks_already_recorded_and_ignored_answers_are_200_with_their_outcome() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-81c0").await;
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start(sink.clone()).await;

    sink.answer_with(Ok(ClickRecorded::AlreadyRecorded));
    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    Answer::clicked(&sent).expect(200, "already_recorded");

    sink.answer_with(Ok(ClickRecorded::Ignored {
        reason: "the request is decided already".into(),
    }));
    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_DENY_ACTION))
        .await
        .expect("click");
    let answer = Answer::clicked(&sent);
    assert_eq!(
        answer.expect(200, "ignored")["reason"],
        "the request is decided already"
    );
    assert_eq!(sink.clicks().len(), 2, "both were handed to the sink");
    server.stop().await;
}

#[tokio::test]
async fn forged_stale_tampered_and_unsigned_clicks_are_401_and_reach_no_sink() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-2b9e").await;
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start(sink.clone()).await;
    let approve = || click(&server, &posted, ALICE, SLACK_APPROVE_ACTION);
    let now = unix_now();

    let forged = sim
        .click_with(approve().with_signature(format!("v0={}", "0".repeat(64))))
        .await
        .expect("forged click");
    let wrong_secret = sim
        .click_with(Click::new(
            &server.url,
            "not-the-signing-secret",
            &posted.ts,
            ALICE,
            SLACK_APPROVE_ACTION,
        ))
        .await
        .expect("click signed with another secret");
    let stale = sim
        .click_with(approve().at_timestamp(now - 301))
        .await
        .expect("stale click");
    let early = sim
        .click_with(approve().at_timestamp(now + 310))
        .await
        .expect("click from the future");
    // Signed as Alice's, delivered as Mallory's: still a well-formed click.
    let tampered = sim
        .click_with(approve().tamper(|body| {
            assert!(replace_in(body, ALICE, MALLORY) > 0, "Alice is in the body");
        }))
        .await
        .expect("tampered click");
    let unprefixed = sim
        .click_with(approve().with_signature("0".repeat(64)))
        .await
        .expect("click without v0=");
    let empty = sim
        .click_with(approve().with_signature(""))
        .await
        .expect("click with an empty signature");
    for (case, sent) in [
        ("forged", &forged),
        ("wrong secret", &wrong_secret),
        ("stale", &stale),
        ("from the future", &early),
        ("tampered", &tampered),
        ("not v0=", &unprefixed),
        ("empty signature", &empty),
    ] {
        let answer = Answer::clicked(sent);
        assert_eq!(answer.status, 401, "{case}: {:?}", answer.body);
        assert_eq!(answer.body["outcome"], "unauthorized", "{case}");
    }

    // The forged click's body, with the right signature but without the signature header,
    // or with the right digest but without `v0=`, or without the timestamp header.
    let body = &forged.sent;
    let (timestamp, signature) = signed_now(body);
    let digest = signature.trim_start_matches("v0=");
    for (case, headers) in [
        (
            "no signature",
            vec![(SLACK_TIMESTAMP_HEADER, timestamp.as_str())],
        ),
        (
            "bare digest",
            vec![
                (SLACK_TIMESTAMP_HEADER, timestamp.as_str()),
                (SLACK_SIGNATURE_HEADER, digest),
            ],
        ),
        (
            "no timestamp",
            vec![(SLACK_SIGNATURE_HEADER, signature.as_str())],
        ),
        ("no headers", vec![]),
    ] {
        let answer = server.post(&headers, body).await;
        assert_eq!(answer.status, 401, "{case}: {:?}", answer.body);
        assert_eq!(answer.body["outcome"], "unauthorized", "{case}");
    }
    assert_eq!(sink.clicks(), [], "no refused click reached the sink");

    // The same requests pass once signed right: the refusals above were for the signature.
    server
        .post(
            &[
                (SLACK_TIMESTAMP_HEADER, &timestamp),
                (SLACK_SIGNATURE_HEADER, &signature),
            ],
            body,
        )
        .await
        .expect(200, "recorded");
    let almost_stale = sim
        .click_with(approve().at_timestamp(now - 290))
        .await
        .expect("click 290 s old");
    Answer::clicked(&almost_stale).expect(200, "recorded");
    let mut tampered_body = tampered.sent.clone();
    assert!(replace_in(&mut tampered_body, MALLORY, ALICE) > 0);
    server
        .post(
            &[
                (SLACK_TIMESTAMP_HEADER, &tampered.timestamp),
                (SLACK_SIGNATURE_HEADER, &tampered.signature),
            ],
            &tampered_body,
        )
        .await
        .expect(200, "recorded");
    let alice = block_action(&posted, "route-2b9e", ALICE, SLACK_APPROVE_ACTION);
    assert_eq!(sink.clicks(), [alice.clone(), alice.clone(), alice]);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_click_is_413_before_its_signature_is_looked_at() {
    const SMALL_LIMIT: usize = 1024;
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-c4d2").await;
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start_with(Arc::new(Metrics::new()), |state| {
        state
            .with_slack_signing_secret(Secret::new(SIGNING_SECRET).expect("secret"))
            .with_click_sink(sink.clone())
            .with_max_body_bytes(SMALL_LIMIT)
    })
    .await;

    let signed = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    assert!(
        signed.sent.len() > SMALL_LIMIT,
        "{} bytes",
        signed.sent.len()
    );
    Answer::clicked(&signed).expect(413, "too_large");
    let forged = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION).with_signature("v0=00"))
        .await
        .expect("click");
    Answer::clicked(&forged).expect(413, "too_large");
    assert_eq!(sink.clicks(), []);

    // A small body is read, and then refused for its signature.
    server
        .post(&[(SLACK_SIGNATURE_HEADER, "v0=00")], b"payload=%7B%7D")
        .await
        .expect(401, "unauthorized");
    server.stop().await;
}

#[tokio::test]
async fn an_unconfigured_hook_is_404_even_for_a_valid_click() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-0e11").await;
    let sink = Arc::new(RecordingClickSink::default());
    let sink_for_state = sink.clone();
    let server = Server::start_with(Arc::new(Metrics::new()), move |state| {
        state.with_click_sink(sink_for_state)
    })
    .await;

    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    Answer::clicked(&sent).expect(404, "not_configured");
    assert_eq!(sink.clicks(), []);
    server.stop().await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_button_click_is_400() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-5a5a").await;
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start(sink.clone()).await;

    let view_submission = json!({
        "type": "view_submission",
        "user": {"id": ALICE, "team_id": TEAM},
        "team": {"id": TEAM},
        "view": {"id": "V0SIM", "state": {"values": {}}},
    });
    let two_buttons = json!({
        "type": "block_actions",
        "user": {"id": ALICE, "team_id": TEAM},
        "team": {"id": TEAM},
        "channel": {"id": CHANNEL},
        "message": {"ts": posted.ts},
        "actions": [
            {"type": "button", "action_id": SLACK_APPROVE_ACTION, "value": "route-5a5a:approve"},
            {"type": "button", "action_id": SLACK_DENY_ACTION, "value": "route-5a5a:deny"},
        ],
    });
    for (case, body) in [
        ("view_submission", form_body(&view_submission)),
        ("two actions", form_body(&two_buttons)),
        (
            "JSON, not a form",
            json!({"type": "block_actions"}).to_string().into_bytes(),
        ),
        (
            "no payload field",
            b"command=%2Fapprove&text=route-5a5a".to_vec(),
        ),
        ("payload not JSON", b"payload=approve".to_vec()),
    ] {
        let (timestamp, signature) = signed_now(&body);
        let answer = server
            .post(
                &[
                    (SLACK_TIMESTAMP_HEADER, &timestamp),
                    (SLACK_SIGNATURE_HEADER, &signature),
                ],
                &body,
            )
            .await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.body);
        assert_eq!(answer.body["outcome"], "malformed", "{case}");
    }
    assert_eq!(sink.clicks(), []);

    // Signed the same way, a real click passes: the refusals were for the bodies.
    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION).with_signature("v0=00"))
        .await
        .expect("click");
    let (timestamp, signature) = signed_now(&sent.sent);
    server
        .post(
            &[
                (SLACK_TIMESTAMP_HEADER, &timestamp),
                (SLACK_SIGNATURE_HEADER, &signature),
            ],
            &sent.sent,
        )
        .await
        .expect(200, "recorded");
    assert_eq!(sink.clicks().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_click_on_another_button_is_200_ignored_and_not_handed_on() {
    let sim = slack_sim().await;
    let posted = slack_client(&sim)
        .post_message(
            CHANNEL,
            &SlackMessage {
                text: "Remind me later?".into(),
                blocks: vec![json!({
                    "type": "actions",
                    "block_id": "reminder",
                    "elements": [{
                        "type": "button",
                        "action_id": "snooze",
                        "text": {"type": "plain_text", "text": "Snooze"},
                        "value": "route-9d9d:snooze",
                    }],
                })],
            },
        )
        .await
        .expect("posted");
    let sink = Arc::new(RecordingClickSink::default());
    let server = Server::start(sink.clone()).await;

    let sent = sim
        .click_with(click(&server, &posted, ALICE, "snooze"))
        .await
        .expect("click");
    let answer = Answer::clicked(&sent);
    let reason = answer.expect(200, "ignored")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("snooze"), "{reason}");
    assert_eq!(sink.clicks(), []);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_sink_is_503_click_failed_and_no_sink_is_503_unavailable() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-e503").await;
    let sink = Arc::new(RecordingClickSink::default());
    sink.answer_with(Err("the API server is unreachable".into()));
    let server = Server::start(sink.clone()).await;

    let sent = sim
        .click_with(click(&server, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    let answer = Answer::clicked(&sent);
    let error = answer.expect(503, "click_failed")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("the API server is unreachable"), "{error}");
    assert_eq!(sink.clicks().len(), 1, "the sink was asked once");
    server.stop().await;

    let sinkless = Server::start_with(Arc::new(Metrics::new()), |state| {
        state.with_slack_signing_secret(Secret::new(SIGNING_SECRET).expect("secret"))
    })
    .await;
    let sent = sim
        .click_with(click(&sinkless, &posted, ALICE, SLACK_APPROVE_ACTION))
        .await
        .expect("click");
    Answer::clicked(&sent).expect(503, "unavailable");
    sinkless.stop().await;
}

#[tokio::test]
async fn the_request_counter_shows_every_slack_outcome() {
    let sim = slack_sim().await;
    let posted = post_request(&sim, "route-m3tr").await;
    let metrics = Arc::new(Metrics::new());
    let sink = Arc::new(RecordingClickSink::default());
    let state_sink = sink.clone();
    let server = Server::start_with(metrics.clone(), move |state| {
        state
            .with_slack_signing_secret(Secret::new(SIGNING_SECRET).expect("secret"))
            .with_click_sink(state_sink)
    })
    .await;
    let sinkless = Server::start_with(metrics.clone(), |state| {
        state.with_slack_signing_secret(Secret::new(SIGNING_SECRET).expect("secret"))
    })
    .await;
    let unconfigured = Server::start_with(metrics.clone(), |state| state).await;
    let approve = |server: &Server| click(server, &posted, ALICE, SLACK_APPROVE_ACTION);
    let status = |outcome: ClickOutcome| outcome.status;

    for _ in 0..2 {
        assert_eq!(
            status(sim.click_with(approve(&server)).await.expect("click")),
            200
        );
    }
    sink.answer_with(Ok(ClickRecorded::AlreadyRecorded));
    assert_eq!(
        status(sim.click_with(approve(&server)).await.expect("click")),
        200
    );
    sink.answer_with(Ok(ClickRecorded::Ignored {
        reason: "decided already".into(),
    }));
    assert_eq!(
        status(sim.click_with(approve(&server)).await.expect("click")),
        200
    );
    sink.answer_with(Err("etcd is slow".into()));
    assert_eq!(
        status(sim.click_with(approve(&server)).await.expect("click")),
        503
    );
    let forged = approve(&server).with_signature("v0=00");
    assert_eq!(status(sim.click_with(forged).await.expect("click")), 401);
    let oversized = approve(&server).tamper(|body| body.extend(vec![b'x'; MAX_BODY_BYTES]));
    assert_eq!(status(sim.click_with(oversized).await.expect("click")), 413);
    let body = b"payload=%7B%22type%22%3A%22view_submission%22%7D";
    let (timestamp, signature) = signed_now(body);
    server
        .post(
            &[
                (SLACK_TIMESTAMP_HEADER, &timestamp),
                (SLACK_SIGNATURE_HEADER, &signature),
            ],
            body,
        )
        .await
        .expect(400, "malformed");
    assert_eq!(
        status(sim.click_with(approve(&sinkless)).await.expect("click")),
        503
    );
    assert_eq!(
        status(sim.click_with(approve(&unconfigured)).await.expect("click")),
        404
    );

    let text = server.metrics().await;
    let lines: Vec<&str> = text.lines().collect();
    let mut counted: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.starts_with("opal_operator_webhook_requests_total"))
        .collect();
    counted.sort_unstable();
    let mut expected = vec![
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="recorded"} 2"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="already_recorded"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="ignored"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="click_failed"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="unauthorized"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="too_large"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="malformed"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="unavailable"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="slack",outcome="not_configured"} 1"#,
    ];
    expected.sort_unstable();
    assert_eq!(counted, expected, "{text}");
    assert_eq!(
        sink.clicks().len(),
        5,
        "recorded twice, already recorded, ignored, failed"
    );
    for server in [server, sinkless, unconfigured] {
        server.stop().await;
    }
}
