//! The HTTP server over real HTTP on loopback: probes, metrics, and every webhook with valid,
//! forged, stale, oversized and malformed requests, asserting exactly what reached the sinks.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use opal_operator::config::AlertFieldPaths;
use opal_operator::crd::{AlertSeverity, AlertSource, IncidentResponseSpec, Lockdown};
use opal_operator::engine::ObjectKey;
use opal_operator::hris::WebhookVerifier;
use opal_operator::metrics::Metrics;
use opal_operator::secret::Secret;
use opal_operator::webhooks::{
    Doorbell, Health, HrChangeSink, IncidentPolicy, IncidentSink, JIRA_SIGNATURE_HEADER,
    LockdownCreated, OPAL_SIGNATURE_HEADER, OPAL_TIMESTAMP_HEADER, WebhookSinks, WebhookState,
    router, serve,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BAMBOOHR_KEY: &str = "bhr-private-key-Pk31";
const WORKDAY_SECRET: &str = "workday-hook-secret-Ws58";
const SPLUNK_TOKEN: &str = "splunk-alert-token-St72";
const DATADOG_SECRET: &str = "datadog-hook-secret-Ds19";
const GENERIC_SECRET: &str = "generic-hook-secret-Gs44";
const NAMESPACE: &str = "opal-system";
const MAX_BODY_BYTES: usize = 4096;

/// Every secret, to check no answer ever quotes one.
const SECRETS: [&str; 5] = [
    BAMBOOHR_KEY,
    WORKDAY_SECRET,
    SPLUNK_TOKEN,
    DATADOG_SECRET,
    GENERIC_SECRET,
];

type HmacSha256 = Hmac<Sha256>;

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.as_bytes()).expect("key");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Default)]
struct RecordingHrSink {
    calls: Mutex<Vec<(&'static str, BTreeSet<String>)>>,
}

impl HrChangeSink for RecordingHrSink {
    fn employees_changed(&self, source: &'static str, employee_ids: BTreeSet<String>) {
        self.calls
            .lock()
            .expect("lock")
            .push((source, employee_ids));
    }
}

impl RecordingHrSink {
    fn calls(&self) -> Vec<(&'static str, BTreeSet<String>)> {
        self.calls.lock().expect("lock").clone()
    }
}

/// Keeps Lockdowns by name like the API server would, and every creation attempt.
#[derive(Default)]
struct FakeIncidentSink {
    policy: Mutex<Option<IncidentPolicy>>,
    failure: Mutex<Option<String>>,
    attempts: Mutex<Vec<Lockdown>>,
    stored: Mutex<Vec<Lockdown>>,
}

impl IncidentSink for FakeIncidentSink {
    fn incident_policy(&self) -> Option<IncidentPolicy> {
        self.policy.lock().expect("lock").clone()
    }

    fn create_lockdown(
        &self,
        lockdown: Lockdown,
    ) -> BoxFuture<'_, Result<LockdownCreated, String>> {
        self.attempts.lock().expect("lock").push(lockdown.clone());
        let result = if let Some(failure) = self.failure.lock().expect("lock").clone() {
            Err(failure)
        } else {
            let mut stored = self.stored.lock().expect("lock");
            if stored
                .iter()
                .any(|existing| existing.metadata.name == lockdown.metadata.name)
            {
                Ok(LockdownCreated::AlreadyExists)
            } else {
                stored.push(lockdown);
                Ok(LockdownCreated::Created)
            }
        };
        futures::future::ready(result).boxed()
    }
}

impl FakeIncidentSink {
    fn attempts(&self) -> Vec<Lockdown> {
        self.attempts.lock().expect("lock").clone()
    }

    fn stored(&self) -> Vec<Lockdown> {
        self.stored.lock().expect("lock").clone()
    }
}

fn incident_policy(min_severity: AlertSeverity, sources: Vec<AlertSource>) -> IncidentPolicy {
    IncidentPolicy {
        policy: ObjectKey::new(NAMESPACE, "default"),
        spec: IncidentResponseSpec {
            sources,
            user_field: "result.user".into(),
            min_severity,
            lockdown_duration: "2h".into(),
            restore_on_release: true,
            notify: vec!["security-oncall".into()],
        },
    }
}

struct Server {
    base: String,
    http: reqwest::Client,
    health: Arc<Health>,
    hr: Arc<RecordingHrSink>,
    incidents: Arc<FakeIncidentSink>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Every hook configured, sinks recording, a policy for every source at minimum High.
    async fn start() -> Self {
        Self::start_with(|state| {
            state
                .with_bamboohr(WebhookVerifier::new(
                    Secret::new(BAMBOOHR_KEY).expect("key"),
                    Duration::from_secs(300),
                ))
                .with_workday_secret(Secret::new(WORKDAY_SECRET).expect("secret"))
                .with_splunk_token(Secret::new(SPLUNK_TOKEN).expect("token"))
                .with_datadog_secret(Secret::new(DATADOG_SECRET).expect("secret"))
                .with_generic_alerts(
                    Secret::new(GENERIC_SECRET).expect("secret"),
                    generic_fields(),
                )
        })
        .await
    }

    async fn start_with(configure: impl FnOnce(WebhookState) -> WebhookState) -> Self {
        let health = Arc::new(Health::new());
        let hr = Arc::new(RecordingHrSink::default());
        let incidents = Arc::new(FakeIncidentSink::default());
        *incidents.policy.lock().expect("lock") = Some(incident_policy(
            AlertSeverity::High,
            vec![
                AlertSource::Splunk,
                AlertSource::Datadog,
                AlertSource::Generic,
            ],
        ));
        let state = WebhookState::new(Arc::new(Metrics::new()), health.clone(), NAMESPACE)
            .with_max_body_bytes(MAX_BODY_BYTES)
            .with_hr_sink(hr.clone())
            .with_incident_sink(incidents.clone());
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
            base,
            http: reqwest::Client::new(),
            health,
            hr,
            incidents,
            shutdown,
            task,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.into());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::of(request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, response.text().await.expect("body"))
    }

    /// Stops the server and checks it ends cleanly within a bound.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ends cleanly");
    }
}

/// A webhook answer: status and JSON body, checked never to quote a secret.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        for secret in SECRETS {
            assert!(!text.contains(secret), "the answer quotes a secret: {text}");
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self { status, body }
    }

    fn outcome(&self) -> &str {
        self.body["outcome"].as_str().unwrap_or_default()
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    fn expect(&self, status: u16, outcome: &str) -> &Self {
        assert_eq!(
            (self.status, self.outcome()),
            (status, outcome),
            "answer: {}",
            self.body
        );
        self
    }
}

fn now_seconds() -> String {
    chrono::Utc::now().timestamp().to_string()
}

fn bamboohr_headers(body: &[u8], timestamp: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-bamboohr-timestamp", timestamp.to_owned()),
        (
            "x-bamboohr-signature",
            hmac_hex(BAMBOOHR_KEY, &[body, timestamp.as_bytes()]),
        ),
    ]
}

fn borrowed<'h>(headers: &'h [(&'static str, String)]) -> Vec<(&'static str, &'h str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// `X-Opal-Operator-Signature` of `body` under `key`.
fn signature(key: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(key, &[body]))
}

fn workday_signature(body: &[u8]) -> String {
    signature(WORKDAY_SECRET, body)
}

fn generic_signature(body: &[u8]) -> String {
    signature(GENERIC_SECRET, body)
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

const BAMBOOHR_CURRENT: &[u8] = br#"{"type":"employee.updated","timestamp":"2026-01-01T00:00:00Z","data":{"companyId":"1","employeeId":"42","changedFields":["jobTitle"]}}"#;
const BAMBOOHR_LEGACY: &[u8] = br#"{"employees":[{"id":"7","action":"Updated","timestamp":"2026-01-01T00:00:00Z","changedFields":["status"]},{"id":"8","action":"Created"}]}"#;

#[tokio::test]
async fn signed_bamboohr_deliveries_hand_exactly_their_employee_ids_to_the_sink() {
    let server = Server::start().await;
    let headers = bamboohr_headers(BAMBOOHR_CURRENT, &now_seconds());
    let answer = server
        .post("/webhooks/bamboohr", &borrowed(&headers), BAMBOOHR_CURRENT)
        .await;
    answer.expect(202, "accepted");
    assert_eq!(answer.body["employees"], 1);

    let headers = bamboohr_headers(BAMBOOHR_LEGACY, &now_seconds());
    server
        .post("/webhooks/bamboohr", &borrowed(&headers), BAMBOOHR_LEGACY)
        .await
        .expect(202, "accepted");

    assert_eq!(
        server.hr.calls(),
        vec![("bamboohr", ids(&["42"])), ("bamboohr", ids(&["7", "8"]))]
    );
    server.stop().await;
}

#[tokio::test]
async fn forged_unsigned_and_stale_bamboohr_deliveries_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let now = now_seconds();

    let mut forged = bamboohr_headers(BAMBOOHR_CURRENT, &now);
    forged[1].1 = hmac_hex("not-the-key", &[BAMBOOHR_CURRENT, now.as_bytes()]);
    let answer = server
        .post("/webhooks/bamboohr", &borrowed(&forged), BAMBOOHR_CURRENT)
        .await;
    answer.expect(401, "unauthorized");
    assert!(
        answer.error().contains("signature does not match"),
        "{}",
        answer.body
    );

    // A valid signature over a different body.
    let tampered = String::from_utf8_lossy(BAMBOOHR_CURRENT).replace(r#""42""#, r#""43""#);
    let headers = bamboohr_headers(BAMBOOHR_CURRENT, &now);
    server
        .post("/webhooks/bamboohr", &borrowed(&headers), tampered)
        .await
        .expect(401, "unauthorized");

    let answer = server
        .post("/webhooks/bamboohr", &[], BAMBOOHR_CURRENT)
        .await;
    answer.expect(401, "unauthorized");
    assert!(answer.error().contains("missing header"), "{}", answer.body);

    let an_hour_ago = (chrono::Utc::now().timestamp() - 3600).to_string();
    let stale = bamboohr_headers(BAMBOOHR_CURRENT, &an_hour_ago);
    let answer = server
        .post("/webhooks/bamboohr", &borrowed(&stale), BAMBOOHR_CURRENT)
        .await;
    answer.expect(401, "unauthorized");
    assert!(answer.error().contains("timestamp"), "{}", answer.body);

    // Signed but not a BambooHR payload: authenticated, so a 400 naming the problem.
    let garbage = br#"{"hello":"world"}"#;
    let headers = bamboohr_headers(garbage, &now);
    let answer = server
        .post("/webhooks/bamboohr", &borrowed(&headers), &garbage[..])
        .await;
    answer.expect(400, "malformed");
    assert!(answer.error().contains("employees"), "{}", answer.body);

    assert!(server.hr.calls().is_empty(), "{:?}", server.hr.calls());
    server.stop().await;
}

#[tokio::test]
async fn workday_hooks_need_our_signature_and_deliver_exactly_the_worker_ids() {
    let server = Server::start().await;
    let body = br#"{"workerIds":["21001","21002"]}"#;

    let answer = server.post("/webhooks/workday", &[], &body[..]).await;
    answer.expect(401, "unauthorized");
    assert!(
        answer.error().contains("x-opal-operator-signature"),
        "{}",
        answer.body
    );

    let forged = format!("sha256={}", hmac_hex("guess", &[body]));
    server
        .post(
            "/webhooks/workday",
            &[("x-opal-operator-signature", &forged)],
            &body[..],
        )
        .await
        .expect(401, "unauthorized");

    // The right signature of another body.
    let other = br#"{"workerIds":["99999"]}"#;
    server
        .post(
            "/webhooks/workday",
            &[("x-opal-operator-signature", &workday_signature(body))],
            &other[..],
        )
        .await
        .expect(401, "unauthorized");

    let malformed = br#"{"workers":["21001"]}"#;
    let answer = server
        .post(
            "/webhooks/workday",
            &[("x-opal-operator-signature", &workday_signature(malformed))],
            &malformed[..],
        )
        .await;
    answer.expect(400, "malformed");
    assert!(answer.error().contains("workerIds"), "{}", answer.body);
    assert!(server.hr.calls().is_empty(), "{:?}", server.hr.calls());

    let answer = server
        .post(
            "/webhooks/workday",
            &[("x-opal-operator-signature", &workday_signature(body))],
            &body[..],
        )
        .await;
    answer.expect(202, "accepted");
    assert_eq!(answer.body["employees"], 2);
    assert_eq!(
        server.hr.calls(),
        vec![("workday", ids(&["21001", "21002"]))]
    );
    server.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_on_every_hook_and_reach_no_sink() {
    let server = Server::start().await;
    let user = "a".repeat(MAX_BODY_BYTES);
    let splunk = serde_json::to_vec(
        &json!({"result": {"user": format!("{user}@example.com")}, "sid": "big"}),
    )
    .expect("json");
    let workday = serde_json::to_vec(&json!({"workerIds": [user]})).expect("json");
    let bamboohr_headers = bamboohr_headers(&workday, &now_seconds());
    for (path, headers, body) in [
        (
            "/webhooks/workday",
            vec![("x-opal-operator-signature", workday_signature(&workday))],
            workday.clone(),
        ),
        ("/webhooks/bamboohr", bamboohr_headers, workday.clone()),
        (
            "/webhooks/alerts/splunk",
            vec![("authorization", format!("Bearer {SPLUNK_TOKEN}"))],
            splunk.clone(),
        ),
        (
            "/webhooks/alerts/datadog",
            vec![("x-opal-operator-token", DATADOG_SECRET.to_owned())],
            splunk.clone(),
        ),
        (
            "/webhooks/alerts/generic",
            vec![("x-opal-operator-signature", generic_signature(&splunk))],
            splunk.clone(),
        ),
    ] {
        let answer = server.post(path, &borrowed(&headers), body).await;
        answer.expect(413, "too_large");
        assert!(
            answer.error().contains("4096-byte limit"),
            "{path}: {}",
            answer.body
        );
    }
    assert!(server.hr.calls().is_empty());
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn hooks_without_credentials_answer_404_and_reach_no_sink() {
    let server = Server::start_with(|state| state).await;
    let body = br#"{"workerIds":["1"]}"#;
    for path in [
        "/webhooks/bamboohr",
        "/webhooks/workday",
        "/webhooks/alerts/splunk",
        "/webhooks/alerts/datadog",
        "/webhooks/alerts/generic",
    ] {
        server
            .post(
                path,
                &[
                    ("authorization", "Bearer anything"),
                    ("x-opal-operator-signature", &generic_signature(body)),
                ],
                &body[..],
            )
            .await
            .expect(404, "not_configured");
    }
    assert!(server.hr.calls().is_empty());
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn authenticated_requests_with_nothing_to_receive_them_get_503() {
    let server = Server::start_with(|state| {
        state
            .with_workday_secret(Secret::new(WORKDAY_SECRET).expect("secret"))
            .with_splunk_token(Secret::new(SPLUNK_TOKEN).expect("token"))
            .with_sinks(WebhookSinks::default())
    })
    .await;
    let body = br#"{"workerIds":["21001"]}"#;
    server
        .post(
            "/webhooks/workday",
            &[("x-opal-operator-signature", &workday_signature(body))],
            &body[..],
        )
        .await
        .expect(503, "unavailable");
    server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &format!("Bearer {SPLUNK_TOKEN}"))],
            splunk_alert("sid-0", "alice@example.com", None),
        )
        .await
        .expect(503, "unavailable");
    assert!(server.hr.calls().is_empty());
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

fn splunk_alert(sid: &str, user: &str, severity: Option<&str>) -> Vec<u8> {
    let mut result = json!({"user": user, "src_ip": "203.0.113.9"});
    if let Some(severity) = severity {
        result["severity"] = json!(severity);
    }
    serde_json::to_vec(&json!({
        "result": result,
        "sid": sid,
        "results_link": format!("https://splunk.example:8000/app/search/@go?sid={sid}"),
        "search_name": "Impossible travel",
        "owner": "admin",
        "app": "search",
    }))
    .expect("json")
}

/// The naming scheme, computed independently: `<source>-alert-` and 16 hex digits of
/// SHA-256(source NUL identity NUL email NUL).
fn expected_name(source: &str, identity: &str, email: &str) -> String {
    let mut hash = Sha256::new();
    for part in [source, identity, email] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("{source}-alert-{}", &hex::encode(hash.finalize())[..16])
}

/// The alert created a Lockdown named `name` in the operator namespace, the only one stored.
fn expect_created(server: &Server, answer: &Answer, name: &str) -> Lockdown {
    answer.expect(201, "created");
    assert_eq!(
        answer.body["lockdown"],
        json!({"namespace": NAMESPACE, "name": name})
    );
    let stored = server.incidents.stored();
    assert_eq!(stored.len(), 1);
    stored[0].clone()
}

/// A redelivery found the Lockdown `name` again: attempted twice, stored once.
fn expect_found_again(server: &Server, answer: &Answer, name: &str) {
    answer.expect(200, "already_exists");
    assert_eq!(answer.body["lockdown"]["name"], name);
    assert_eq!(server.incidents.attempts().len(), 2);
    assert_eq!(server.incidents.stored().len(), 1);
}

fn check_lockdown(
    lockdown: &Lockdown,
    name: &str,
    source: &str,
    email: &str,
    reason: &str,
    incident: &str,
) {
    assert_eq!(lockdown.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(lockdown.metadata.name.as_deref(), Some(name));
    let labels = lockdown.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("opal-operator")
    );
    assert_eq!(
        labels
            .get("opal-operator.io/alert-source")
            .map(String::as_str),
        Some(source)
    );
    let spec = &lockdown.spec;
    assert_eq!(spec.subjects.len(), 1);
    assert_eq!(spec.subjects[0].email.as_deref(), Some(email));
    assert_eq!(spec.subjects[0].opal_user_id, None);
    assert_eq!(spec.subjects[0].group, None);
    assert_eq!(spec.reason, reason);
    assert_eq!(spec.incident.as_deref(), Some(incident));
    assert_eq!(spec.duration.as_deref(), Some("2h"));
    assert_eq!(spec.expires_at, None);
    assert!(spec.restore_on_release);
    assert_eq!(spec.notify, ["security-oncall"]);
    assert_eq!(spec.scope, None);
    assert!(spec.break_glass.is_empty());
}

#[tokio::test]
async fn a_splunk_alert_creates_one_lockdown_and_a_redelivery_finds_it() {
    let server = Server::start().await;
    let sid = "scheduler__admin__search__RMD5_at_1767225600_42";
    let body = splunk_alert(sid, "Alice@Example.com", Some("critical"));
    let bearer = format!("Bearer {SPLUNK_TOKEN}");
    let name = expected_name("splunk", sid, "alice@example.com");

    let answer = server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            body.clone(),
        )
        .await;
    let stored = expect_created(&server, &answer, &name);
    check_lockdown(
        &stored,
        &name,
        "splunk",
        "alice@example.com",
        "Splunk alert: Impossible travel",
        &format!("https://splunk.example:8000/app/search/@go?sid={sid}"),
    );

    // Splunk's action can only put the token in the URL.
    let answer = server
        .post(
            &format!("/webhooks/alerts/splunk?token={SPLUNK_TOKEN}"),
            &[],
            body,
        )
        .await;
    expect_found_again(&server, &answer, &name);
    server.stop().await;
}

#[tokio::test]
async fn a_datadog_alert_with_the_shared_secret_creates_the_expected_lockdown() {
    let server = Server::start().await;
    let body = serde_json::to_vec(&json!({
        "alert_id": "1234",
        "alert_cycle_key": "7301955520713495226",
        "title": "[Triggered on {user:bob@example.com}] Suspicious token use",
        "transition": "Triggered",
        "priority": "P2",
        "link": "https://app.datadoghq.example/monitors/1234",
        "result": {"user": "bob@example.com"},
    }))
    .expect("json");

    server
        .post("/webhooks/alerts/datadog", &[], body.clone())
        .await
        .expect(401, "unauthorized");
    server
        .post(
            "/webhooks/alerts/datadog",
            &[("x-opal-operator-token", "datadog-hook-secret")],
            body.clone(),
        )
        .await
        .expect(401, "unauthorized");
    assert!(server.incidents.attempts().is_empty());

    let answer = server
        .post(
            "/webhooks/alerts/datadog",
            &[("x-opal-operator-token", DATADOG_SECRET)],
            body,
        )
        .await;
    answer.expect(201, "created");
    let name = expected_name("datadog", "7301955520713495226", "bob@example.com");
    let stored = server.incidents.stored();
    assert_eq!(stored.len(), 1);
    check_lockdown(
        &stored[0],
        &name,
        "datadog",
        "bob@example.com",
        "Datadog alert: [Triggered on {user:bob@example.com}] Suspicious token use",
        "https://app.datadoghq.example/monitors/1234",
    );
    server.stop().await;
}

#[tokio::test]
async fn forged_or_missing_splunk_tokens_are_refused_and_create_nothing() {
    let server = Server::start().await;
    let body = splunk_alert("sid-1", "alice@example.com", None);
    for (path, headers) in [
        ("/webhooks/alerts/splunk", vec![]),
        (
            "/webhooks/alerts/splunk",
            vec![("authorization", "Bearer splunk-alert-token")],
        ),
        (
            "/webhooks/alerts/splunk",
            vec![("authorization", SPLUNK_TOKEN)],
        ),
        ("/webhooks/alerts/splunk?token=wrong", vec![]),
    ] {
        server
            .post(path, &headers, body.clone())
            .await
            .expect(401, "unauthorized");
    }
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn alerts_below_the_minimum_severity_are_ignored_and_unstated_severity_counts_as_met() {
    let server = Server::start().await;
    let bearer = format!("Bearer {SPLUNK_TOKEN}");
    let answer = server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            splunk_alert("sid-low", "alice@example.com", Some("medium")),
        )
        .await;
    answer.expect(202, "ignored");
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("below"),
        "{}",
        answer.body
    );
    assert!(server.incidents.attempts().is_empty());

    let recovery = serde_json::to_vec(&json!({"alert_cycle_key": "c1", "transition": "Recovered", "result": {"user": "bob@example.com"}})).expect("json");
    server
        .post(
            "/webhooks/alerts/datadog",
            &[("x-opal-operator-token", DATADOG_SECRET)],
            recovery,
        )
        .await
        .expect(202, "ignored");
    assert!(server.incidents.attempts().is_empty());

    server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            splunk_alert("sid-unstated", "alice@example.com", None),
        )
        .await
        .expect(201, "created");
    assert_eq!(server.incidents.stored().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn without_an_incident_policy_or_an_accepted_source_alerts_get_422_and_create_nothing() {
    let server = Server::start().await;
    let bearer = format!("Bearer {SPLUNK_TOKEN}");
    let body = splunk_alert("sid-2", "alice@example.com", Some("critical"));

    *server.incidents.policy.lock().expect("lock") = None;
    let answer = server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            body.clone(),
        )
        .await;
    answer.expect(422, "no_policy");
    assert!(
        answer.error().contains("incidentResponse"),
        "{}",
        answer.body
    );

    *server.incidents.policy.lock().expect("lock") = Some(incident_policy(
        AlertSeverity::Info,
        vec![AlertSource::Datadog],
    ));
    let answer = server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            body,
        )
        .await;
    answer.expect(422, "source_not_accepted");
    assert!(answer.error().contains("splunk"), "{}", answer.body);

    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn malformed_alerts_get_400_with_the_reason_and_sink_failures_503() {
    let server = Server::start().await;
    let bearer = format!("Bearer {SPLUNK_TOKEN}");
    for (body, reason) in [
        (b"{not json".to_vec(), "not JSON"),
        (br#"{"sid":"x"}"#.to_vec(), "`result`"),
        (
            splunk_alert("sid-3", "no-email-here", None),
            "holds no email",
        ),
        (
            br#"{"sid":"x","result":{"src_ip":"203.0.113.9"}}"#.to_vec(),
            "result.user",
        ),
    ] {
        let answer = server
            .post(
                "/webhooks/alerts/splunk",
                &[("authorization", &bearer)],
                body,
            )
            .await;
        answer.expect(400, "malformed");
        assert!(answer.error().contains(reason), "{reason}: {}", answer.body);
    }
    assert!(server.incidents.attempts().is_empty());

    *server.incidents.failure.lock().expect("lock") =
        Some("lockdowns.opal-operator.io is forbidden".to_owned());
    let answer = server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &bearer)],
            splunk_alert("sid-4", "alice@example.com", None),
        )
        .await;
    answer.expect(503, "lockdown_failed");
    assert!(answer.error().contains("is forbidden"), "{}", answer.body);
    assert!(server.incidents.stored().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn probes_follow_the_health_flags() {
    let server = Server::start().await;
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok\n");

    let (status, _, body) = server.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("starting"), "{body}");

    server.health.set_ready(true);
    let (status, _, _) = server.get("/readyz").await;
    assert_eq!(status, 200);

    server.health.set_not_ready("HR snapshot failed: HTTP 503");
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "HR snapshot failed: HTTP 503\n")
    );

    server.health.set_live(false);
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 503);
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_every_webhook_request_by_hook_and_outcome() {
    let server = Server::start().await;
    let body = br#"{"workerIds":["21001"]}"#;
    let signature = workday_signature(body);
    for _ in 0..2 {
        server
            .post(
                "/webhooks/workday",
                &[("x-opal-operator-signature", &signature)],
                &body[..],
            )
            .await
            .expect(202, "accepted");
    }
    server
        .post("/webhooks/workday", &[], &body[..])
        .await
        .expect(401, "unauthorized");
    server
        .post(
            "/webhooks/alerts/splunk",
            &[("authorization", &format!("Bearer {SPLUNK_TOKEN}"))],
            splunk_alert("sid-m", "alice@example.com", None),
        )
        .await
        .expect(201, "created");

    let (status, content_type, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        r#"opal_operator_webhook_requests_total{hook="workday",outcome="accepted"} 2"#,
        r#"opal_operator_webhook_requests_total{hook="workday",outcome="unauthorized"} 1"#,
        r#"opal_operator_webhook_requests_total{hook="splunk",outcome="created"} 1"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("opal_operator_webhook_requests_total"))
            .count(),
        3,
        "{text}"
    );
    assert_eq!(lines.last(), Some(&"# EOF"));
    server.stop().await;
}

/// Where the generic hook reads a CrowdStrike-like detection: the user's email elsewhere than
/// the policy's `result.user`, so the test sees which one wins.
fn generic_fields() -> AlertFieldPaths {
    AlertFieldPaths {
        user: Some("detection.user.email".into()),
        severity: Some("detection.severity_name".into()),
        id: Some("detection.id".into()),
        title: Some("detection.name".into()),
    }
}

fn edr_alert(id: &str, user: &str, severity: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "detection": {
            "id": id,
            "name": "Credential dumping on lap-7",
            "severity_name": severity,
            "user": {"email": user},
        },
        "result": {"user": "not-this-one@example.com"},
    }))
    .expect("json")
}

#[tokio::test]
async fn a_signed_generic_alert_locks_the_user_at_the_configured_path_and_a_redelivery_finds_it() {
    let server = Server::start().await;
    let id = "ldt:4f2a9c:981";
    let body = edr_alert(id, "Dana@Example.com", "Critical");
    let name = expected_name("generic", id, "dana@example.com");

    let answer = server
        .post(
            "/webhooks/alerts/generic",
            &[("x-opal-operator-signature", &generic_signature(&body))],
            body.clone(),
        )
        .await;
    let stored = expect_created(&server, &answer, &name);
    check_lockdown(
        &stored,
        &name,
        "generic",
        "dana@example.com",
        "Generic alert: Credential dumping on lap-7",
        id,
    );
    let annotations = stored.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("opal-operator.io/alert-id")
            .map(String::as_str),
        Some(id)
    );

    let answer = server
        .post(
            "/webhooks/alerts/generic",
            &[("x-opal-operator-signature", &generic_signature(&body))],
            body,
        )
        .await;
    expect_found_again(&server, &answer, &name);
    server.stop().await;
}

#[tokio::test]
async fn generic_alerts_without_a_valid_signature_get_401_and_create_nothing() {
    let server = Server::start().await;
    let body = edr_alert("ldt:1", "dana@example.com", "Critical");
    let other = edr_alert("ldt:2", "dana@example.com", "Critical");
    let right = generic_signature(&body);
    for headers in [
        vec![],
        vec![("x-opal-operator-signature", signature("guess", &body))],
        // The right key over another body.
        vec![("x-opal-operator-signature", generic_signature(&other))],
        // Malformed: no scheme, not hex, truncated.
        vec![("x-opal-operator-signature", right[7..].to_owned())],
        vec![("x-opal-operator-signature", "sha256=zz".to_owned())],
        vec![(
            "x-opal-operator-signature",
            right[..right.len() - 2].to_owned(),
        )],
        // The secret itself is no credential here: only a signature is.
        vec![("x-opal-operator-token", GENERIC_SECRET.to_owned())],
        vec![("authorization", format!("Bearer {GENERIC_SECRET}"))],
    ] {
        let answer = server
            .post(
                "/webhooks/alerts/generic",
                &borrowed(&headers),
                body.clone(),
            )
            .await;
        answer.expect(401, "unauthorized");
        assert!(
            answer.error().contains("x-opal-operator-signature")
                || answer.error().contains("signature does not match"),
            "{headers:?}: {}",
            answer.body
        );
    }
    // Unauthenticated garbage is refused as unauthenticated, not read.
    server
        .post("/webhooks/alerts/generic", &[], &b"{not json"[..])
        .await
        .expect(401, "unauthorized");
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn signed_generic_alerts_without_a_usable_user_or_severity_get_400_with_the_path() {
    let server = Server::start().await;
    for (body, reason) in [
        (b"{not json".to_vec(), "not JSON"),
        (
            serde_json::to_vec(&json!({
                "detection": {"id": "ldt:3", "severity_name": "High"},
                "result": {"user": "not-this-one@example.com"},
            }))
            .expect("json"),
            "has no `detection.user.email` (webhooks.generic.fields.user)",
        ),
        (
            edr_alert("ldt:4", "dana", "High"),
            "`detection.user.email` holds no email",
        ),
        (
            edr_alert("ldt:5", "dana@example.com", "90"),
            "`detection.severity_name` is \"90\"",
        ),
    ] {
        let answer = server
            .post(
                "/webhooks/alerts/generic",
                &[("x-opal-operator-signature", &generic_signature(&body))],
                body,
            )
            .await;
        answer.expect(400, "malformed");
        assert!(answer.error().contains(reason), "{reason}: {}", answer.body);
    }
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn generic_alerts_below_the_minimum_or_from_an_unaccepted_source_create_nothing() {
    let server = Server::start().await;
    let low = edr_alert("ldt:6", "dana@example.com", "Medium");
    let answer = server
        .post(
            "/webhooks/alerts/generic",
            &[("x-opal-operator-signature", &generic_signature(&low))],
            low,
        )
        .await;
    answer.expect(202, "ignored");
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("below the policy's minimum High"),
        "{}",
        answer.body
    );

    *server.incidents.policy.lock().expect("lock") = Some(incident_policy(
        AlertSeverity::Info,
        vec![AlertSource::Splunk, AlertSource::Datadog],
    ));
    let critical = edr_alert("ldt:7", "dana@example.com", "Critical");
    let answer = server
        .post(
            "/webhooks/alerts/generic",
            &[("x-opal-operator-signature", &generic_signature(&critical))],
            critical,
        )
        .await;
    answer.expect(422, "source_not_accepted");
    assert!(answer.error().contains("generic"), "{}", answer.body);
    assert!(server.incidents.attempts().is_empty());
    server.stop().await;
}

/// Counts rings.
#[derive(Default)]
struct CountingDoorbell(std::sync::atomic::AtomicUsize);

impl Doorbell for CountingDoorbell {
    fn ring(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl CountingDoorbell {
    fn rings(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_opal_doorbell_rings_only_for_fresh_deliveries_signed_with_the_stream_secret() {
    const STREAM_SECRET: &str = "opal-stream-secret";
    let doorbell = Arc::new(CountingDoorbell::default());
    let bell = doorbell.clone();
    let server = Server::start_with(move |state| {
        let sinks = WebhookSinks {
            doorbell: Some(bell),
            ..WebhookSinks::default()
        };
        state
            .with_sinks(sinks)
            .with_opal_events_secret(Secret::new(STREAM_SECRET).expect("secret"))
    })
    .await;
    // The payload is never read as data: even one that is not JSON rings when signed.
    let body = b"{\"event_type\": \"REQUEST_CREATED\", \"anything\": [1, 2]}";
    let signed = |key: &str, timestamp: &str| {
        hmac_hex(key, &[b"v0:", timestamp.as_bytes(), b":", &body[..]])
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let stale = (chrono::Utc::now().timestamp() - 301).to_string();
    let post = |signature: String, timestamp: String| {
        let server = &server;
        async move {
            server
                .post(
                    "/webhooks/opal/events",
                    &[
                        (OPAL_SIGNATURE_HEADER, signature.as_str()),
                        (OPAL_TIMESTAMP_HEADER, timestamp.as_str()),
                    ],
                    &body[..],
                )
                .await
        }
    };

    server
        .post("/webhooks/opal/events", &[], &body[..])
        .await
        .expect(401, "unauthorized");
    post(signed("guess", &now), now.clone())
        .await
        .expect(401, "unauthorized");
    let replay = post(signed(STREAM_SECRET, &stale), stale.clone()).await;
    replay.expect(401, "unauthorized");
    assert!(replay.error().contains("300s"), "{}", replay.body);
    // Signed for one timestamp, presented with another.
    post(signed(STREAM_SECRET, &stale), now.clone())
        .await
        .expect(401, "unauthorized");
    assert_eq!(doorbell.rings(), 0, "a refused delivery rang the doorbell");

    post(signed(STREAM_SECRET, &now), now.clone())
        .await
        .expect(202, "rung");
    post(format!("v0={}", signed(STREAM_SECRET, &now)), now.clone())
        .await
        .expect(202, "rung");
    assert_eq!(doorbell.rings(), 2);
}

#[tokio::test]
async fn the_opal_doorbell_is_absent_without_a_stream_secret() {
    let server = Server::start().await;
    server
        .post("/webhooks/opal/events", &[], &b"{}"[..])
        .await
        .expect(404, "not_configured");
}

#[tokio::test]
async fn the_jira_doorbell_rings_only_for_deliveries_signed_with_the_webhook_secret() {
    const JIRA_SECRET: &str = "jira-webhook-secret";
    let doorbell = Arc::new(CountingDoorbell::default());
    let bell = doorbell.clone();
    let server = Server::start_with(move |state| {
        let sinks = WebhookSinks {
            doorbell: Some(bell),
            ..WebhookSinks::default()
        };
        state
            .with_sinks(sinks)
            .with_jira_secret(Secret::new(JIRA_SECRET).expect("secret"))
    })
    .await;
    // A payload claiming an approval decides nothing by itself: it only rings.
    let body = br#"{"webhookEvent": "jira:issue_updated", "issue": {"key": "ITSD-1"}}"#;
    let signature = |key: &str| format!("sha256={}", hmac_hex(key, &[&body[..]]));
    let post = |signature: Option<String>| {
        let server = &server;
        async move {
            let headers: Vec<(&str, &str)> = signature
                .as_deref()
                .map(|s| vec![(JIRA_SIGNATURE_HEADER, s)])
                .unwrap_or_default();
            server.post("/webhooks/jira", &headers, &body[..]).await
        }
    };
    post(None).await.expect(401, "unauthorized");
    post(Some(signature("guess")))
        .await
        .expect(401, "unauthorized");
    post(Some(hmac_hex(JIRA_SECRET, &[&body[..]])))
        .await
        .expect(401, "unauthorized");
    let tampered = format!(
        "sha256={}",
        hmac_hex(JIRA_SECRET, &[&b"{\"webhookEvent\": \"other\"}"[..]])
    );
    post(Some(tampered)).await.expect(401, "unauthorized");
    assert_eq!(doorbell.rings(), 0, "a refused delivery rang the doorbell");
    post(Some(signature(JIRA_SECRET))).await.expect(202, "rung");
    assert_eq!(doorbell.rings(), 1);

    let unconfigured = Server::start().await;
    unconfigured
        .post("/webhooks/jira", &[], &body[..])
        .await
        .expect(404, "not_configured");
}
