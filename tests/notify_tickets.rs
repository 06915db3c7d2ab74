//! Ticketing channels (Jira, Jira Service Management, ServiceNow) over real HTTP against their
//! simulators: payloads field by field, the ticket lifecycle (open, comment, close), and
//! de-duplication across 429/5xx retries, lost answers and an outbox restart.

mod notify_support;

use std::time::Duration;

use base64::Engine;
use notify_support::*;
use opal_operator::notify::{DeliveryOutcome, Receipt, TicketAction, render};
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::jira::{JiraSim, JiraSimConfig};
use opal_operator::sim::notify::servicenow::{ServiceNowSim, ServiceNowSimConfig};
use serde_json::Value;

const JIRA_TOKEN: &str = "jira-api-token-Zx81Qq";
const SN_PASSWORD: &str = "sn-password-Pw93Lk";

async fn jira_sim() -> JiraSim {
    JiraSim::start(JiraSimConfig {
        api_token: JIRA_TOKEN.to_owned(),
        ..JiraSimConfig::default()
    })
    .await
    .expect("jira sim")
}

fn jira_yaml(sim: &JiraSim, secrets: &SecretFiles, project: &str) -> String {
    format!(
        "channels:\n  sec-jira:\n    type: jira\n    url: {}\n    email: opal-operator@example.com\n    apiToken: {}\n    projectKey: {project}\n    labels: [access]\n  it-desk:\n    type: jiraServiceManagement\n    url: {}\n    email: opal-operator@example.com\n    apiToken: {}\n    serviceDeskId: \"1\"\n    requestTypeId: \"10\"\n{FAST_OUTBOX}",
        sim.site_url(),
        secrets.reference("jira", JIRA_TOKEN),
        sim.site_url(),
        secrets.reference("jira2", JIRA_TOKEN),
    )
}

fn ticket(report: &opal_operator::notify::DeliveryReport) -> (String, bool, TicketAction) {
    match &report.outcome {
        DeliveryOutcome::Delivered(Receipt::Ticket {
            key,
            created,
            action,
        }) => (key.clone(), *created, *action),
        other => panic!("expected a ticket receipt, got {other:?}"),
    }
}

fn adf_text(doc: &Value) -> String {
    let mut out = String::new();
    fn walk(node: &Value, out: &mut String) {
        if let Some(text) = node.get("text").and_then(Value::as_str) {
            out.push_str(text);
            out.push('\n');
        }
        if let Some(children) = node.get("content").and_then(Value::as_array) {
            for child in children {
                walk(child, out);
            }
        }
    }
    walk(doc, &mut out);
    out
}

#[tokio::test]
async fn jira_lockdown_and_review_lifecycle() {
    let sim = jira_sim().await;
    let secrets = SecretFiles::new();
    let outbox = outbox(&jira_yaml(&sim, &secrets, "SEC")).await;

    let opened = lockdown_activated("eve");
    let token = opened.thread().token();
    let report = deliver(&outbox, "sec-jira", opened.clone()).await;
    let (key, created, action) = ticket(&report);
    assert_eq!(
        (key.as_str(), created, action),
        ("SEC-1", true, TicketAction::Open)
    );
    assert_eq!(report.attempts, 1);

    // The create request, field by field.
    let creates = sim.requests_to("POST /rest/api/3/issue");
    assert_eq!(creates.len(), 1);
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("opal-operator@example.com:{JIRA_TOKEN}"))
    );
    assert_eq!(
        creates[0].header("authorization"),
        Some(expected_auth.as_str())
    );
    let body = creates[0].json().expect("json body");
    let fields = &body["fields"];
    assert_eq!(fields["project"]["key"], "SEC");
    assert_eq!(fields["issuetype"]["name"], "Task");
    assert_eq!(
        fields["summary"],
        "Lockdown eve activated for eve@example.com"
    );
    assert_eq!(
        fields["labels"],
        serde_json::json!(["opal-operator", token, "access"])
    );
    assert_eq!(fields["description"]["type"], "doc");
    assert_eq!(fields["description"]["version"], 1);
    let text = adf_text(&fields["description"]);
    for needle in [
        "Lockdown secops/eve",
        "impossible travel",
        "INC-4711",
        "Eve Adams <eve@example.com> → group \"prod-admins\" (admin)",
        "Opal user",
        &render::reference_marker(&opened),
    ] {
        assert!(
            text.contains(needle),
            "description lacks {needle:?}:\n{text}"
        );
    }
    assert!(
        fields["description"]
            .to_string()
            .contains(r#""href":"https://app.opal.dev/users/eve""#)
    );
    // The lookup ran before the create, by label.
    let searches = sim.requests_to("GET /rest/api/3/search/jql");
    assert_eq!(searches.len(), 1);
    let query = searches[0].query.clone().unwrap_or_default();
    let jql: String = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "jql")
        .map(|(_, v)| v.into_owned())
        .expect("jql");
    assert_eq!(jql, format!("labels = \"{token}\" ORDER BY created ASC"));

    // A review opens its own ticket; the overdue message comments on it, once.
    let launched = review_launched("uar-1");
    let (review_key, created, _) = ticket(&deliver(&outbox, "sec-jira", launched).await);
    assert_eq!((review_key.as_str(), created), ("SEC-2", true));
    let overdue = review_overdue("uar-1");
    let (same, created, action) = ticket(&deliver(&outbox, "sec-jira", overdue.clone()).await);
    assert_eq!(
        (same.as_str(), created, action),
        ("SEC-2", false, TicketAction::Update)
    );
    let issues = sim.issues();
    assert_eq!(issues[1].comments.len(), 1);
    assert!(adf_text(&issues[1].comments[0]).contains("Dora Director <director@example.com>"));
    assert!(adf_text(&issues[1].comments[0]).contains(&render::reference_marker(&overdue)));
    // The same overdue message again (a replay) adds no second comment.
    let (_, created, _) = ticket(&deliver(&outbox, "sec-jira", overdue).await);
    assert!(!created);
    assert_eq!(sim.issues()[1].comments.len(), 1);

    // Release resolves the lockdown's ticket through the Done transition, with a comment.
    let (released_key, created, action) =
        ticket(&deliver(&outbox, "sec-jira", lockdown_released("eve")).await);
    assert_eq!(
        (released_key.as_str(), created, action),
        ("SEC-1", false, TicketAction::Resolve)
    );
    let issue = &sim.issues()[0];
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.transitions, vec!["31".to_owned()]);
    assert!(adf_text(&issue.comments[0]).contains("incident closed"));
    assert_eq!(sim.issues().len(), 2, "no ticket beyond one per thread");
    assert_eq!(sim.requests_to("POST /rest/api/3/issue").len(), 2);
    assert!(
        sim.requests().iter().all(|r| r.status < 400),
        "no failed calls"
    );
}

#[tokio::test]
async fn jira_retries_429_and_a_lost_create_without_a_second_ticket() {
    let sim = jira_sim().await;
    let secrets = SecretFiles::new();
    let outbox = outbox(&jira_yaml(&sim, &secrets, "SEC")).await;
    sim.inject(Fault::rate_limited(1).on("POST", "/rest/api/3/issue"));
    // The issue gets created but the answer is lost.
    sim.inject(
        Fault::status(500)
            .on("POST", "/rest/api/3/issue")
            .after_effect(),
    );

    let started = std::time::Instant::now();
    let report = deliver(&outbox, "sec-jira", lockdown_activated("mallory")).await;
    let (key, created, _) = ticket(&report);
    assert_eq!(key, "SEC-1");
    assert!(
        !created,
        "the third attempt found the issue the second one created"
    );
    assert_eq!(report.attempts, 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(sim.issues().len(), 1, "exactly one ticket");
    let statuses: Vec<u16> = sim
        .requests_to("POST /rest/api/3/issue")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 500]);
    assert_eq!(sim.requests_to("GET /rest/api/3/search/jql").len(), 3);
    assert_eq!(sim.pending_faults(), 0);
}

#[tokio::test]
async fn jira_outbox_restart_finds_the_existing_ticket() {
    let sim = jira_sim().await;
    let secrets = SecretFiles::new();
    let yaml = jira_yaml(&sim, &secrets, "SEC");

    let first = outbox(&yaml).await;
    let (key, created, _) = ticket(&deliver(&first, "sec-jira", lockdown_activated("trent")).await);
    assert_eq!((key.as_str(), created), ("SEC-1", true));
    assert_eq!(first.shutdown(Duration::from_secs(5)).await, 0);

    // A new process: nothing in memory. The same message is re-sent and the release follows.
    let second = outbox(&yaml).await;
    let (key, created, _) =
        ticket(&deliver(&second, "sec-jira", lockdown_activated("trent")).await);
    assert_eq!((key.as_str(), created), ("SEC-1", false));
    let (key, _, _) = ticket(&deliver(&second, "sec-jira", lockdown_released("trent")).await);
    assert_eq!(key, "SEC-1");
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(sim.issues()[0].status, "Done");
    assert_eq!(sim.requests_to("POST /rest/api/3/issue").len(), 1);
}

#[tokio::test]
async fn jira_service_management_request_is_opened_once_and_resolved() {
    let sim = jira_sim().await;
    let secrets = SecretFiles::new();
    let yaml = jira_yaml(&sim, &secrets, "SEC");
    let opened = lockdown_activated("oscar");
    let token = opened.thread().token();
    sim.inject(
        Fault::status(503)
            .on("POST", "/rest/servicedeskapi/request")
            .after_effect(),
    );

    let first = outbox(&yaml).await;
    let report = deliver(&first, "it-desk", opened.clone()).await;
    let (key, created, _) = ticket(&report);
    assert_eq!(
        (key.as_str(), created, report.attempts),
        ("ITSD-1", false, 2)
    );
    let requests = sim.requests_to("POST /rest/servicedeskapi/request");
    assert_eq!(requests.len(), 1);
    let body = requests[0].json().expect("json");
    assert_eq!(body["serviceDeskId"], "1");
    assert_eq!(body["requestTypeId"], "10");
    assert_eq!(body["isAdfRequest"], false);
    let values = &body["requestFieldValues"];
    assert_eq!(
        values["summary"],
        "Lockdown oscar activated for eve@example.com"
    );
    let description = values["description"].as_str().expect("plain description");
    assert!(description.contains("Reason: impossible travel"));
    assert!(description.contains("- Opal user: https://app.opal.dev/users/eve"));
    assert_eq!(
        values["labels"],
        serde_json::json!(["opal-operator", token])
    );
    first.shutdown(Duration::from_secs(5)).await;

    let second = outbox(&yaml).await;
    let (key, created, action) =
        ticket(&deliver(&second, "it-desk", lockdown_released("oscar")).await);
    assert_eq!(
        (key.as_str(), created, action),
        ("ITSD-1", false, TicketAction::Resolve)
    );
    let issues = sim.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].project, "ITSD");
    assert_eq!(issues[0].status, "Done");
}

#[tokio::test]
async fn jira_permanent_failure_surfaces_the_reason_and_degrades_health() {
    let sim = jira_sim().await;
    let secrets = SecretFiles::new();
    let outbox = outbox(&jira_yaml(&sim, &secrets, "NOPE")).await;
    let report = deliver(&outbox, "sec-jira", offboarded("bob@example.com")).await;
    let DeliveryOutcome::Failed(error) = &report.outcome else {
        panic!("expected failure, got {:?}", report.outcome);
    };
    assert_eq!(report.attempts, 1, "a 400 is not retried");
    assert_eq!(error.label(), "bad_request");
    assert_eq!(
        error.to_string(),
        "jira issue.create: HTTP 400: project: valid project is required"
    );
    let health = outbox.health();
    let jira = health
        .channels
        .iter()
        .find(|h| h.channel == "sec-jira")
        .expect("health");
    assert!(jira.is_degraded());
    assert_eq!(jira.failed, 1);
    assert_eq!(jira.last_error_label, Some("bad_request"));
    let message = health.condition_message().expect("degraded");
    assert!(
        message.contains("sec-jira (jira): failing: jira issue.create: HTTP 400"),
        "{message}"
    );
    assert!(!message.contains(JIRA_TOKEN));
    assert!(sim.issues().is_empty());
}

async fn servicenow_sim() -> ServiceNowSim {
    ServiceNowSim::start(ServiceNowSimConfig {
        password: SN_PASSWORD.to_owned(),
        ..ServiceNowSimConfig::default()
    })
    .await
    .expect("servicenow sim")
}

fn servicenow_yaml(sim: &ServiceNowSim, secrets: &SecretFiles) -> String {
    servicenow_yaml_with(sim, secrets, SN_PASSWORD)
}

fn servicenow_yaml_with(sim: &ServiceNowSim, secrets: &SecretFiles, password: &str) -> String {
    format!(
        "channels:\n  snow:\n    type: serviceNow\n    instanceUrl: {}\n    username: opal.operator\n    password: {}\n    fields:\n      urgency: \"1\"\n      assignment_group: 8a4dde73c6112278017a6a4baf547aa7\n{FAST_OUTBOX}",
        sim.instance_url(),
        secrets.reference("sn", password),
    )
}

#[tokio::test]
async fn servicenow_incident_lifecycle_with_correlation_id() {
    let sim = servicenow_sim().await;
    let secrets = SecretFiles::new();
    let outbox = outbox(&servicenow_yaml(&sim, &secrets)).await;

    let launched = review_launched("uar-9");
    let token = launched.thread().token();
    let (number, created, _) = ticket(&deliver(&outbox, "snow", launched).await);
    assert_eq!((number.as_str(), created), ("INC0010001", true));
    let records = sim.records("incident");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        record.field("short_description"),
        "Access review \"Q1 access review\" launched"
    );
    assert_eq!(record.field("correlation_id"), token);
    assert_eq!(record.field("correlation_display"), "opal-operator");
    assert_eq!(record.field("urgency"), "1");
    assert_eq!(
        record.field("assignment_group"),
        "8a4dde73c6112278017a6a4baf547aa7"
    );
    assert!(
        record
            .field("description")
            .contains("- reviewer: Mia Manager <mgr@example.com>")
    );
    assert_eq!(record.field("state"), "1");

    let create = &sim.requests_to("POST /api/now/table/incident")[0];
    assert_eq!(create.header("accept"), Some("application/json"));
    assert!(
        create
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let query = sim.requests_to("GET /api/now/table/incident");
    assert_eq!(query.len(), 1, "looked up before creating");
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query[0].query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    assert!(params.contains(&(
        "sysparm_query".into(),
        format!("correlation_id={token}^ORDERBYsys_created_on")
    )));
    assert!(params.contains(&("sysparm_limit".into(), "1".into())));

    // The overdue work note, with its PATCH answer lost once: exactly one journal entry.
    sim.inject(
        Fault::status(502)
            .on("PATCH", "/api/now/table/incident/")
            .after_effect(),
    );
    let overdue = review_overdue("uar-9");
    let report = deliver(&outbox, "snow", overdue.clone()).await;
    let (same, created, action) = ticket(&report);
    assert_eq!(
        (same.as_str(), created, action),
        ("INC0010001", false, TicketAction::Update)
    );
    assert_eq!(report.attempts, 2);
    let notes = sim.records("incident")[0]
        .entries("work_notes")
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains(&render::reference_marker(&overdue)));
    assert!(notes[0].contains("escalated to: Dora Director <director@example.com>"));
}

#[tokio::test]
async fn servicenow_lost_create_retry_and_restart_close_one_record() {
    let sim = servicenow_sim().await;
    let secrets = SecretFiles::new();
    let yaml = servicenow_yaml(&sim, &secrets);
    sim.inject(Fault::rate_limited(0).on("POST", "/api/now/table/incident"));
    sim.inject(
        Fault::status(503)
            .on("POST", "/api/now/table/incident")
            .after_effect(),
    );

    let first = outbox(&yaml).await;
    let report = deliver(&first, "snow", lockdown_activated("zoe")).await;
    let (number, created, _) = ticket(&report);
    assert_eq!(
        (number.as_str(), created, report.attempts),
        ("INC0010001", false, 3)
    );
    assert_eq!(sim.records("incident").len(), 1);
    first.shutdown(Duration::from_secs(5)).await;

    let second = outbox(&yaml).await;
    let (number, created, action) =
        ticket(&deliver(&second, "snow", lockdown_released("zoe")).await);
    assert_eq!(
        (number.as_str(), created, action),
        ("INC0010001", false, TicketAction::Resolve)
    );
    let records = sim.records("incident");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.field("state"), "6");
    assert_eq!(record.field("close_code"), "Solution provided");
    assert_eq!(record.field("active"), "false");
    assert!(
        record
            .field("close_notes")
            .contains("Reason: incident closed")
    );
    // A replayed release does not touch the closed record again.
    let patches = sim
        .requests_to(&format!("PATCH /api/now/table/incident/{}", record.sys_id))
        .len();
    deliver(&second, "snow", lockdown_released("zoe")).await;
    assert_eq!(
        sim.requests_to(&format!("PATCH /api/now/table/incident/{}", record.sys_id))
            .len(),
        patches
    );
    assert_eq!(sim.records("incident").len(), 1);
}

#[tokio::test]
async fn offboarding_record_is_opened_and_closed_at_once() {
    let sim = servicenow_sim().await;
    let secrets = SecretFiles::new();
    let outbox = outbox(&servicenow_yaml(&sim, &secrets)).await;
    let (number, created, action) =
        ticket(&deliver(&outbox, "snow", offboarded("bob@example.com")).await);
    assert_eq!(
        (number.as_str(), created, action),
        ("INC0010001", true, TicketAction::Record)
    );
    let record = &sim.records("incident")[0];
    assert_eq!(record.field("state"), "6");
    assert!(
        record
            .field("description")
            .contains("- group \"engineering\"")
    );
    assert!(
        record
            .field("description")
            .contains("Termination date: 2026-02-28")
    );
}

#[tokio::test]
async fn servicenow_wrong_password_is_a_permanent_401_without_the_password() {
    let sim = servicenow_sim().await;
    let secrets = SecretFiles::new();
    let yaml = servicenow_yaml_with(&sim, &secrets, "not-the-Pw93Lk-password");
    let outbox = outbox(&yaml).await;
    let report = deliver(&outbox, "snow", lockdown_activated("x")).await;
    let DeliveryOutcome::Failed(error) = &report.outcome else {
        panic!("expected failure");
    };
    assert_eq!(report.attempts, 1);
    assert_eq!(
        error.to_string(),
        "servicenow table.query: HTTP 401: User Not Authenticated: Required to provide Auth information"
    );
    assert!(!format!("{error:?}").contains("Pw93Lk"));
}
