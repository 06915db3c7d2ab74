//! The PagerDuty REST client over real HTTP against the PagerDuty simulator: on-call lookups
//! (by escalation policy, by schedule, either of both, level limits, paging, the substring
//! trap of `GET /users?query=`), incidents (de-duplicated by key, also across a lost answer;
//! notes; resolve), and failures (a wrong key, a missing `From`, 429 with `Retry-After`).

mod notify_support;

use std::time::{Duration, Instant};

use notify_support::{SecretFiles, config};
use opal_operator::http::RetryConfig;
use opal_operator::notify::{
    ChannelConfig, OnCallEntry, OnCallQuery, PAGERDUTY_REST_ACCEPT, PagerDutyConfig, PagerDutyRest,
};
use opal_operator::secret::{NoKubeSecrets, Secret};
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::pagerduty::{IncidentStatus, PagerDutySim, PagerDutySimConfig};
use serde_json::json;

const SERVICE: &str = "PSVC0001";
const BOT_EMAIL: &str = "opal-bot@example.com";

/// Quick retries; a `Retry-After` still sets the wait.
fn fast_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        max_total_delay_ms: 10_000,
    }
}

async fn sim() -> PagerDutySim {
    let sim = PagerDutySim::start(PagerDutySimConfig::default())
        .await
        .expect("pagerduty sim");
    sim.add_user(BOT_EMAIL, "Opal Operator");
    sim
}

/// The channel as an operator config would carry it, REST section included.
fn channel_config(sim: &PagerDutySim, from: Option<&str>) -> PagerDutyConfig {
    let mut rest = format!(
        "    rest:\n      apiUrl: {}\n      apiKey: {{env: UNUSED_PD_KEY}}\n      serviceId: {SERVICE}\n",
        sim.rest_url()
    );
    if let Some(from) = from {
        rest.push_str(&format!("      fromEmail: {from}\n"));
    }
    let yaml = format!(
        "channels:\n  pd:\n    type: pagerDuty\n    eventsUrl: {}\n    routingKey: {{env: UNUSED_ROUTING_KEY}}\n{rest}",
        sim.events_url()
    );
    let parsed = config(&yaml);
    parsed.validate().expect("valid config");
    match parsed.channels.get("pd") {
        Some(ChannelConfig::PagerDuty(pd)) => {
            assert_eq!(
                pd.rest.as_ref().map(|r| r.api_url.as_str()),
                Some(sim.rest_url().as_str())
            );
            pd.clone()
        }
        other => panic!("expected a PagerDuty channel, got {other:?}"),
    }
}

fn client_with(sim: &PagerDutySim, api_key: &str, from: Option<&str>) -> PagerDutyRest {
    PagerDutyRest::from_config(
        reqwest::Client::new(),
        "pd",
        &channel_config(sim, from),
        Secret::new(api_key).expect("key"),
    )
    .expect("client")
    .with_retry(&fast_retry())
}

fn client(sim: &PagerDutySim) -> PagerDutyRest {
    client_with(sim, &sim.api_key(), Some(BOT_EMAIL))
}

fn policies(ids: &[&str]) -> OnCallQuery {
    OnCallQuery {
        escalation_policy_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        ..OnCallQuery::default()
    }
}

fn schedules(ids: &[&str]) -> OnCallQuery {
    OnCallQuery {
        schedule_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        ..OnCallQuery::default()
    }
}

fn entry(level: u32, policy: &str, schedule: Option<&str>) -> OnCallEntry {
    OnCallEntry {
        escalation_level: level,
        escalation_policy_id: Some(policy.to_owned()),
        schedule_id: schedule.map(str::to_owned),
    }
}

#[tokio::test]
async fn on_call_by_escalation_policy() {
    let sim = sim().await;
    let ann = sim.add_user("ann@example.com", "Ann Lee");
    sim.put_on_call(&ann, "PEP0001", Some("PSCH001"), 1);
    let pd = client(&sim);

    assert!(
        pd.is_on_call("ann@example.com", &policies(&["PEP0001"]))
            .await
            .expect("lookup")
    );
    assert!(
        !pd.is_on_call("ann@example.com", &policies(&["PEP0002"]))
            .await
            .expect("lookup"),
        "on call elsewhere does not count"
    );
    assert_eq!(
        pd.on_call(&ann, &policies(&["PEP0001"]))
            .await
            .expect("entries"),
        vec![entry(1, "PEP0001", Some("PSCH001"))]
    );

    let lookups = sim.requests_to("GET /oncalls");
    let first = &lookups[0];
    assert_eq!(
        first.header("authorization"),
        Some(format!("Token token={}", sim.api_key()).as_str())
    );
    assert_eq!(first.header("accept"), Some(PAGERDUTY_REST_ACCEPT));
    let query = first.query.as_deref().unwrap_or_default();
    for part in [
        format!("user_ids%5B%5D={ann}"),
        "escalation_policy_ids%5B%5D=PEP0001".to_owned(),
        "earliest=true".to_owned(),
    ] {
        assert!(query.contains(&part), "{part} missing from {query}");
    }
    assert!(lookups.iter().all(|request| request.status == 200));
}

#[tokio::test]
async fn on_call_by_schedule_or_by_either_list() {
    let sim = sim().await;
    let bo = sim.add_user("bo@example.com", "Bo Kim");
    sim.put_on_call(&bo, "PEP0001", Some("PSCH001"), 1);
    let pd = client(&sim);

    assert!(
        pd.is_on_call("bo@example.com", &schedules(&["PSCH001"]))
            .await
            .expect("lookup")
    );
    assert!(
        !pd.is_on_call("bo@example.com", &schedules(&["PSCH002"]))
            .await
            .expect("lookup")
    );
    // Either list counts: on call through the schedule, not in the named policy.
    let either = OnCallQuery {
        escalation_policy_ids: vec!["PEP0009".to_owned()],
        schedule_ids: vec!["PSCH001".to_owned()],
        max_escalation_level: None,
    };
    assert_eq!(
        pd.on_call(&bo, &either).await.expect("entries"),
        vec![entry(1, "PEP0001", Some("PSCH001"))]
    );
    // A direct target of an escalation rule is in no schedule.
    let cy = sim.add_user("cy@example.com", "Cy Diaz");
    sim.put_on_call(&cy, "PEP0003", None, 1);
    assert!(
        !pd.is_on_call("cy@example.com", &schedules(&["PSCH001"]))
            .await
            .expect("lookup")
    );
    assert!(
        pd.is_on_call("cy@example.com", &policies(&["PEP0003"]))
            .await
            .expect("lookup")
    );
}

#[tokio::test]
async fn not_on_call_until_put_on_call_and_again_after_clearing() {
    let sim = sim().await;
    let dee = sim.add_user("dee@example.com", "Dee Ong");
    let pd = client(&sim);
    let query = policies(&["PEP0001"]);

    assert!(
        !pd.is_on_call("dee@example.com", &query)
            .await
            .expect("lookup")
    );
    sim.put_on_call(&dee, "PEP0001", Some("PSCH001"), 1);
    assert!(
        pd.is_on_call("dee@example.com", &query)
            .await
            .expect("lookup")
    );
    sim.clear_on_call(&dee);
    assert!(
        !pd.is_on_call("dee@example.com", &query)
            .await
            .expect("lookup")
    );
    assert_eq!(sim.requests_to("GET /oncalls").len(), 3);
}

#[tokio::test]
async fn level_limit_excludes_deeper_levels() {
    let sim = sim().await;
    let eve = sim.add_user("eve@example.com", "Eve Park");
    sim.put_on_call(&eve, "PEP0001", Some("PSCH002"), 2);
    let pd = client(&sim);
    let limited = |max| OnCallQuery {
        max_escalation_level: max,
        ..policies(&["PEP0001"])
    };

    assert!(
        !pd.is_on_call("eve@example.com", &limited(Some(1)))
            .await
            .expect("lookup"),
        "level 2 is beyond the first level"
    );
    assert!(
        pd.is_on_call("eve@example.com", &limited(Some(2)))
            .await
            .expect("lookup")
    );
    assert!(
        pd.is_on_call("eve@example.com", &limited(None))
            .await
            .expect("lookup")
    );

    sim.put_on_call(&eve, "PEP0001", Some("PSCH001"), 1);
    assert_eq!(
        pd.on_call(&eve, &limited(Some(1))).await.expect("entries"),
        vec![entry(1, "PEP0001", Some("PSCH001"))]
    );
}

#[tokio::test]
async fn every_page_of_on_call_entries_is_read() {
    let sim = sim().await;
    let fay = sim.add_user("fay@example.com", "Fay Wu");
    for n in 1..=5 {
        sim.put_on_call(&fay, &format!("PEP000{n}"), Some("PSCH001"), n);
    }
    sim.set_page_limit(2);
    let pd = client(&sim);

    let entries = pd
        .on_call(&fay, &OnCallQuery::default())
        .await
        .expect("entries");
    assert_eq!(
        entries,
        (1..=5)
            .map(|n| entry(n, &format!("PEP000{n}"), Some("PSCH001")))
            .collect::<Vec<_>>()
    );
    let offsets: Vec<String> = sim
        .requests_to("GET /oncalls")
        .iter()
        .map(|request| {
            let query = request.query.clone().unwrap_or_default();
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("offset="))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(offsets, ["0", "2", "4"]);
}

#[tokio::test]
async fn unknown_email_is_not_on_call() {
    let sim = sim().await;
    let pd = client(&sim);

    assert_eq!(
        pd.user_id_by_email("nobody@example.com")
            .await
            .expect("lookup"),
        None
    );
    assert!(
        !pd.is_on_call("nobody@example.com", &policies(&["PEP0001"]))
            .await
            .expect("lookup")
    );
    assert!(
        sim.requests_to("GET /oncalls").is_empty(),
        "no on-call lookup for a user that does not exist"
    );
}

#[tokio::test]
async fn an_address_never_matches_a_longer_one_containing_it() {
    let sim = sim().await;
    // joann comes first in the search results for "ann@x.com" and is on call; ann is not.
    let joann = sim.add_user("joann@x.com", "Jo Ann");
    let ann = sim.add_user("ann@x.com", "Ann");
    sim.put_on_call(&joann, "PEP0001", Some("PSCH001"), 1);
    // One user per page, so ann is only found by reading on.
    sim.set_page_limit(1);
    let pd = client(&sim);

    assert_eq!(
        pd.user_id_by_email("ann@x.com").await.expect("lookup"),
        Some(ann.clone())
    );
    assert_eq!(
        pd.user_id_by_email("ANN@X.com").await.expect("lookup"),
        Some(ann.clone()),
        "addresses compare without case"
    );
    assert!(
        !pd.is_on_call("ann@x.com", &policies(&["PEP0001"]))
            .await
            .expect("lookup")
    );
    assert!(
        pd.is_on_call("joann@x.com", &policies(&["PEP0001"]))
            .await
            .expect("lookup")
    );
    let asked_for_ann = sim
        .requests_to("GET /oncalls")
        .iter()
        .filter(|request| {
            request
                .query
                .as_deref()
                .is_some_and(|query| query.contains(&format!("user_ids%5B%5D={ann}&")))
        })
        .count();
    assert_eq!(asked_for_ann, 1);
}

#[tokio::test]
async fn a_wrong_key_fails_without_revealing_it() {
    let sim = sim().await;
    let wrong = "wrong-pd-key-Qz71Xv";
    let pd = client_with(&sim, wrong, Some(BOT_EMAIL));

    let err = pd
        .user_id_by_email("ann@example.com")
        .await
        .expect_err("refused");
    assert_eq!(err.label(), "unauthorized");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert_eq!(
        text,
        "pagerduty users.list: HTTP 401: Authentication failed (code 2006)"
    );
    assert_eq!(
        sim.requests_to("GET /users").len(),
        1,
        "a 401 is not retried"
    );

    // A server that echoes the credential still does not get it into the error.
    sim.inject(
        Fault::status(401)
            .on("GET", "/users")
            .with_body(
                "application/json",
                json!({"error": {"message": format!("Token token={wrong} is not valid"), "code": 2006}})
                    .to_string(),
            ),
    );
    let text = pd
        .user_id_by_email("ann@example.com")
        .await
        .expect_err("refused")
        .to_string();
    assert!(!text.contains(wrong), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn an_incident_key_opens_one_incident_until_it_is_resolved() {
    let sim = sim().await;
    let pd = client(&sim);

    let first = pd
        .open_incident(
            "Lockdown of eve",
            "opal-lockdown-eve",
            "Access revoked after impossible travel",
        )
        .await
        .expect("open");
    let again = pd
        .open_incident("Lockdown of eve", "opal-lockdown-eve", "repeat")
        .await
        .expect("open again");
    assert_eq!(again, first);
    let incidents = sim.incidents();
    assert_eq!(incidents.len(), 1);
    let incident = &incidents[0];
    assert_eq!(incident.id, first);
    assert_eq!(incident.service_id, SERVICE);
    assert_eq!(incident.incident_key.as_deref(), Some("opal-lockdown-eve"));
    assert_eq!(
        incident.details.as_deref(),
        Some("Access revoked after impossible travel")
    );
    assert_eq!(incident.status, IncidentStatus::Triggered);

    let creates = sim.requests_to("POST /incidents");
    assert_eq!(
        creates.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 400]
    );
    assert_eq!(creates[0].header("from"), Some(BOT_EMAIL));
    assert_eq!(
        creates[0].json().expect("json")["incident"]["service"],
        json!({"id": SERVICE, "type": "service_reference"})
    );
    assert_eq!(sim.requests_to("GET /incidents").len(), 1);

    // Another key is another incident; a resolved key opens a new one.
    let other = pd
        .open_incident("Lockdown of bob", "opal-lockdown-bob", "")
        .await
        .expect("other");
    assert_ne!(other, first);
    pd.resolve_incident(&first).await.expect("resolve");
    let reopened = pd
        .open_incident("Lockdown of eve", "opal-lockdown-eve", "again")
        .await
        .expect("reopen");
    assert_ne!(reopened, first);
    assert_eq!(sim.incidents().len(), 3);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_repeated() {
    let sim = sim().await;
    let pd = client(&sim);
    sim.inject(Fault::status(502).on("POST", "/incidents").after_effect());

    let id = pd
        .open_incident("Held plan", "opal-plan-7", "details")
        .await
        .expect("open");
    let incidents = sim.incidents();
    assert_eq!(
        incidents.len(),
        1,
        "the retry found the incident the lost answer opened"
    );
    assert_eq!(incidents[0].id, id);
    assert_eq!(
        sim.requests_to("POST /incidents")
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [502, 400]
    );
}

#[tokio::test]
async fn notes_and_resolve() {
    let sim = sim().await;
    let pd = client(&sim);
    let id = pd
        .open_incident("Review overdue", "opal-review-q1", "12 grants unreviewed")
        .await
        .expect("open");

    let note = pd
        .add_note(&id, "Reminder sent to the reviewers")
        .await
        .expect("note");
    pd.resolve_incident(&id).await.expect("resolve");
    pd.resolve_incident(&id)
        .await
        .expect("resolving again is fine");

    let incident = sim.incidents().remove(0);
    assert_eq!(incident.status, IncidentStatus::Resolved);
    assert_eq!(incident.notes.len(), 1);
    assert_eq!(incident.notes[0].id, note);
    assert_eq!(incident.notes[0].content, "Reminder sent to the reviewers");
    let updates = sim.requests_to(&format!("PUT /incidents/{id}"));
    assert_eq!(
        updates[0].json().expect("json"),
        json!({"incident": {"type": "incident_reference", "status": "resolved"}})
    );
    assert_eq!(updates[0].header("from"), Some(BOT_EMAIL));

    let err = pd
        .add_note("PNOPE01", "lost")
        .await
        .expect_err("unknown incident");
    assert_eq!(err.label(), "not_found");
}

#[tokio::test]
async fn writes_need_a_known_from_address() {
    let sim = sim().await;
    let anonymous = client_with(&sim, &sim.api_key(), None);
    let err = anonymous
        .open_incident("t", "k", "d")
        .await
        .expect_err("no From");
    assert_eq!(err.label(), "config");
    assert!(err.to_string().contains("rest.fromEmail"), "{err}");
    assert!(sim.requests().is_empty(), "nothing sent without From");

    let stranger = client_with(&sim, &sim.api_key(), Some("stranger@example.com"));
    let err = stranger
        .open_incident("t", "k", "d")
        .await
        .expect_err("unknown From");
    assert_eq!(err.label(), "bad_request");
    assert!(err.to_string().contains("'From' header"), "{err}");
    assert!(sim.incidents().is_empty());
}

#[tokio::test]
async fn a_rate_limited_lookup_waits_and_is_retried() {
    let sim = sim().await;
    let gil = sim.add_user("gil@example.com", "Gil Roy");
    sim.put_on_call(&gil, "PEP0001", Some("PSCH001"), 1);
    let pd = client(&sim);
    sim.throttle("/oncalls", 1, 1);

    let started = Instant::now();
    assert!(
        pd.is_on_call("gil@example.com", &policies(&["PEP0001"]))
            .await
            .expect("lookup after the 429")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After is waited out, not just the short backoff"
    );
    assert_eq!(
        sim.requests_to("GET /oncalls")
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [429, 200]
    );
    assert_eq!(sim.pending_faults(), 0);

    // Without retries the 429 surfaces with the wait PagerDuty asked for.
    let impatient = client(&sim).with_retry(&RetryConfig {
        max_attempts: 1,
        ..fast_retry()
    });
    sim.throttle("/users", 1, 7);
    let err = impatient
        .user_id_by_email("gil@example.com")
        .await
        .expect_err("rate limited");
    assert_eq!(err.label(), "rate_limited");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.to_string().contains("Rate Limit Exceeded"), "{err}");
}

#[tokio::test]
async fn connect_reads_the_api_key_reference() {
    let sim = sim().await;
    let hal = sim.add_user("hal@example.com", "Hal Ng");
    let secrets = SecretFiles::new();
    let yaml = format!(
        "channels:\n  pd:\n    type: pagerDuty\n    routingKey: {{env: UNUSED_ROUTING_KEY}}\n    rest:\n      apiUrl: {}\n      apiKey: {}\n",
        sim.rest_url(),
        secrets.reference("pd-api-key", &sim.api_key()),
    );
    let Some(ChannelConfig::PagerDuty(pd)) = config(&yaml).channels.remove("pd") else {
        panic!("pd channel");
    };
    let client = PagerDutyRest::connect(reqwest::Client::new(), "pd", &pd, &NoKubeSecrets)
        .await
        .expect("connect");
    assert_eq!(
        client
            .user_id_by_email("hal@example.com")
            .await
            .expect("lookup"),
        Some(hal)
    );

    let events_only = PagerDutyConfig { rest: None, ..pd };
    let err = PagerDutyRest::connect(reqwest::Client::new(), "pd", &events_only, &NoKubeSecrets)
        .await
        .expect_err("no rest section");
    assert_eq!(err.label(), "config");
}
