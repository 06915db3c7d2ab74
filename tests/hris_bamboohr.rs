//! The BambooHR source, its change feed and webhook verification against the BambooHR
//! simulator over HTTP on 127.0.0.1.

mod hris_support;

use std::io::Write;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use opal_operator::hris::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use opal_operator::hris::{
    BambooHrConfig, BambooHrSnapshotMode, BambooHrSource, BambooHrWebhookConfig, ChangeAction,
    Employee, EmploymentStatus, HrSource, HrisConfig, InvalidRowPolicy,
};
use opal_operator::secret::{LocalSecretRef, Secret};
use opal_operator::sim::hris::bamboohr::{
    BambooHrSim, BambooHrSimConfig, ROUTE_CHANGED, ROUTE_CUSTOM_REPORT, ROUTE_DIRECTORY,
    ROUTE_EMPLOYEE,
};
use opal_operator::sim::hris::{FaultRates, HrisFault, generate_employees};
use reqwest::header::{HeaderMap, HeaderValue};

use hris_support::{assert_same_people, fast_http};

/// The client's view of an employee the simulator serves: leave and termination show in
/// `employmentHistoryStatus`, which is also the employment type.
fn as_seen(employee: &Employee) -> Employee {
    let mut seen = employee.clone();
    seen.employment_type = Some(match employee.status {
        EmploymentStatus::OnLeave => "Leave of Absence".to_owned(),
        EmploymentStatus::Terminated => "Terminated".to_owned(),
        EmploymentStatus::Active => employee
            .employment_type
            .clone()
            .unwrap_or_else(|| "Full-Time".to_owned()),
    });
    seen
}

fn config(sim: &BambooHrSim, attempts: u32) -> BambooHrConfig {
    let mut config = sim.client_config();
    config.http = fast_http(attempts);
    config.fields.custom.insert("level".into(), "level".into());
    config
}

fn source(sim: &BambooHrSim, config: &BambooHrConfig) -> BambooHrSource {
    BambooHrSource::new(config, Secret::new(sim.api_key()).expect("key")).expect("source")
}

async fn start(employees: Vec<Employee>) -> BambooHrSim {
    BambooHrSim::start(employees, BambooHrSimConfig::default())
        .await
        .expect("start simulator")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

#[tokio::test]
async fn custom_report_snapshot_includes_inactive_employees_and_every_mapped_field() {
    let employees = generate_employees(300, 21);
    let sim = start(employees.clone()).await;
    let snapshot = source(&sim, &config(&sim, 3))
        .snapshot()
        .await
        .expect("snapshot");
    let expected: Vec<Employee> = employees.iter().map(as_seen).collect();
    assert_same_people(&snapshot, &expected);
    assert!(
        snapshot
            .employees
            .iter()
            .any(|e| e.status == EmploymentStatus::Terminated && e.termination_date.is_some())
    );
    assert!(
        snapshot
            .employees
            .iter()
            .any(|e| e.status == EmploymentStatus::OnLeave)
    );
    let counts = sim.counts();
    assert_eq!(counts.calls_with_status(ROUTE_CUSTOM_REPORT, 200), 1);
    assert_eq!(counts.total, 1, "one request for the whole roster");
}

#[tokio::test]
async fn the_legacy_gateway_root_serves_the_same_roster() {
    let employees = generate_employees(40, 22);
    let sim = start(employees.clone()).await;
    let mut config = config(&sim, 3);
    config.base_url = Some(sim.legacy_api_root());
    let snapshot = source(&sim, &config).snapshot().await.expect("snapshot");
    let expected: Vec<Employee> = employees.iter().map(as_seen).collect();
    assert_same_people(&snapshot, &expected);
    assert_eq!(sim.counts().calls(ROUTE_CUSTOM_REPORT), 1);

    config.base_url = Some(sim.legacy_api_root().replace("/acme/", "/globex/"));
    let error = source(&sim, &config)
        .snapshot()
        .await
        .expect_err("other company");
    assert_eq!(error.label(), "not_found");
}

#[tokio::test]
async fn directory_mode_lists_current_employees_only() {
    let employees = generate_employees(80, 23);
    let sim = start(employees.clone()).await;
    let mut config = config(&sim, 3);
    config.snapshot = BambooHrSnapshotMode::Directory;
    let snapshot = source(&sim, &config).snapshot().await.expect("snapshot");
    let current: Vec<&Employee> = employees
        .iter()
        .filter(|e| e.status != EmploymentStatus::Terminated)
        .collect();
    assert_eq!(snapshot.employees.len(), current.len());
    for employee in current {
        let seen = snapshot.employee(&employee.id).expect("listed");
        assert_eq!(seen.email, employee.email);
        assert_eq!(seen.title, employee.title);
        assert_eq!(seen.department, employee.department);
        assert_eq!(seen.status, EmploymentStatus::Active);
        assert_eq!(seen.manager_id, None, "the directory has no supervisor");
    }
    assert_eq!(sim.counts().calls(ROUTE_DIRECTORY), 1);
}

#[tokio::test]
async fn an_unshared_directory_is_an_error_with_bamboohrs_message() {
    let sim = BambooHrSim::start(
        generate_employees(5, 1),
        BambooHrSimConfig {
            directory_shared: false,
            ..BambooHrSimConfig::default()
        },
    )
    .await
    .expect("start");
    let mut config = config(&sim, 3);
    config.snapshot = BambooHrSnapshotMode::Directory;
    let error = source(&sim, &config)
        .snapshot()
        .await
        .expect_err("forbidden");
    assert_eq!(error.label(), "forbidden");
    assert!(
        error.to_string().contains("directory is not shared"),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_fails_at_once() {
    let sim = start(generate_employees(5, 1)).await;
    let source = BambooHrSource::new(&config(&sim, 4), Secret::new("not-the-key").expect("key"))
        .expect("source");
    let error = source.snapshot().await.expect_err("unauthorized");
    assert_eq!(error.label(), "unauthorized");
    assert!(error.to_string().contains("Invalid API key"), "{error}");
    assert_eq!(sim.counts().total, 1, "a 401 is not retried");
}

#[tokio::test]
async fn change_feed_and_single_reads_follow_hires_changes_terminations_and_deletions() {
    let employees = generate_employees(30, 24);
    let sim = start(employees.clone()).await;
    let source = source(&sim, &config(&sim, 3));
    let checkpoint = source
        .changed_since(Utc::now() - chrono::Duration::hours(1))
        .await
        .expect("initial feed");
    assert_eq!(
        checkpoint.changes.len(),
        30,
        "everyone is new to an old checkpoint"
    );
    // The feed works in whole seconds: poll until the initial load is behind the checkpoint.
    let mut checkpoint = checkpoint.latest;
    let mut quiet = false;
    for _ in 0..50 {
        let feed = source.changed_since(checkpoint).await.expect("feed");
        if feed.changes.is_empty() {
            quiet = true;
            break;
        }
        checkpoint = feed.latest;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(quiet, "the feed never caught up with the initial load");
    sim.reset_counts();

    let active: Vec<Employee> = employees
        .iter()
        .filter(|e| e.status == EmploymentStatus::Active && e.id != "1001")
        .take(3)
        .cloned()
        .collect();
    let mut hire = active[0].clone();
    hire.id = "5001".into();
    hire.email = "fresh@example.com".into();
    sim.roster().hire(hire.clone());
    assert!(
        sim.roster()
            .change_title(&active[0].id, "Principal Engineer")
    );
    assert!(sim.roster().terminate(&active[1].id, date(2026, 4, 30)));
    assert!(sim.roster().remove(&active[2].id));

    let feed = source.changed_since(checkpoint).await.expect("feed");
    let actions: Vec<(String, ChangeAction)> = feed
        .changes
        .iter()
        .map(|change| (change.employee_id.clone(), change.action.clone()))
        .collect();
    let mut expected = vec![
        ("5001".to_owned(), ChangeAction::Created),
        (active[0].id.clone(), ChangeAction::Updated),
        (active[1].id.clone(), ChangeAction::Updated),
        (active[2].id.clone(), ChangeAction::Deleted),
    ];
    expected.sort();
    assert_eq!(actions, expected);
    assert!(feed.latest >= checkpoint);

    let retitled = source
        .employee(&active[0].id)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(retitled.title.as_deref(), Some("Principal Engineer"));
    let leaver = source
        .employee(&active[1].id)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(leaver.status, EmploymentStatus::Terminated);
    assert_eq!(leaver.termination_date, Some(date(2026, 4, 30)));
    assert_eq!(source.employee(&active[2].id).await.expect("read"), None);
    let hired = source.employee("5001").await.expect("read").expect("known");
    assert_eq!(hired, as_seen(&hire));
    assert_eq!(sim.counts().calls(ROUTE_CHANGED), 1);
    assert_eq!(sim.counts().calls(ROUTE_EMPLOYEE), 4);

    let quiet = source
        .changed_since(feed.latest + chrono::Duration::seconds(1))
        .await
        .expect("quiet feed");
    assert!(quiet.changes.is_empty());
}

#[tokio::test]
async fn throttling_and_outages_are_retried_and_persistent_failure_is_an_error() {
    let employees = generate_employees(20, 25);
    let sim = start(employees.clone()).await;
    let source = source(&sim, &config(&sim, 3));
    sim.script_faults(
        None,
        vec![
            HrisFault::TooManyRequests {
                retry_after: Some(Duration::ZERO),
            },
            HrisFault::ServiceUnavailable { retry_after: None },
        ],
    );
    let snapshot = source.snapshot().await.expect("snapshot after two retries");
    assert_eq!(snapshot.employees.len(), 20);
    let counts = sim.counts();
    assert_eq!(counts.calls_with_status(ROUTE_CUSTOM_REPORT, 429), 1);
    assert_eq!(counts.calls_with_status(ROUTE_CUSTOM_REPORT, 503), 1);
    assert_eq!(counts.calls_with_status(ROUTE_CUSTOM_REPORT, 200), 1);

    sim.set_fault_rates(FaultRates {
        too_many_requests: 1.0,
        retry_after: Some(Duration::ZERO),
        ..FaultRates::default()
    });
    let error = source.snapshot().await.expect_err("always throttled");
    assert_eq!(error.label(), "rate_limited");
    assert!(error.to_string().contains("after 3 attempt(s)"), "{error}");
    let error = source
        .changed_since(Utc::now())
        .await
        .expect_err("feed throttled too");
    assert_eq!(error.label(), "rate_limited");
}

#[tokio::test]
async fn malformed_bodies_and_bad_records_are_errors() {
    let mut employees = generate_employees(10, 26);
    employees[3].custom.insert("level".into(), "L3".into());
    employees[4].email = "not-an-address".into();
    let bad_id = employees[4].id.clone();
    let sim = start(employees).await;
    let config = config(&sim, 3);

    sim.script_faults(Some(ROUTE_CUSTOM_REPORT), vec![HrisFault::MalformedBody]);
    let error = source(&sim, &config)
        .snapshot()
        .await
        .expect_err("malformed");
    assert_eq!(error.label(), "malformed");

    let error = source(&sim, &config)
        .snapshot()
        .await
        .expect_err("bad email");
    assert_eq!(error.label(), "invalid_row");
    assert!(
        error.to_string().contains(&format!("employee {bad_id}")),
        "{error}"
    );
    assert!(error.to_string().contains("workEmail"), "{error}");

    let mut skipping = config.clone();
    skipping.invalid_rows = InvalidRowPolicy::Skip;
    let snapshot = source(&sim, &skipping).snapshot().await.expect("skip");
    assert_eq!(snapshot.employees.len(), 9);
    assert!(!snapshot.is_complete());
    assert_eq!(
        snapshot.skipped[0].employee_id.as_deref(),
        Some(bad_id.as_str())
    );
}

#[tokio::test]
async fn the_simulator_insists_on_exact_json_content_type_and_accept() {
    let sim = start(generate_employees(3, 1)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/reports/custom?format=json", sim.api_root());
    let body = r#"{"title":"t","fields":["id","workEmail"]}"#;
    let with_charset = http
        .post(&url)
        .basic_auth(sim.api_key(), Some("x"))
        .header("accept", "application/json")
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(with_charset.status(), 400);
    assert!(
        with_charset
            .headers()
            .contains_key("x-bamboohr-error-message")
    );

    let xml = http
        .post(&url)
        .basic_auth(sim.api_key(), Some("x"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(xml.status(), 200);
    assert!(xml.text().await.expect("body").starts_with("<?xml"));

    let csv = http
        .post(format!("{}/reports/custom?format=csvx", sim.api_root()))
        .basic_auth(sim.api_key(), Some("x"))
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(csv.status(), 404);
}

#[tokio::test]
async fn a_signed_webhook_names_employees_that_are_then_refreshed() {
    let employees = generate_employees(12, 27);
    let sim = start(employees.clone()).await;
    let mut key_file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(key_file, "webhook-private-key").expect("write");
    let mut config = config(&sim, 3);
    config.webhook = Some(BambooHrWebhookConfig {
        private_key: LocalSecretRef::File(key_file.path().to_owned()),
        max_age_seconds: 300,
    });
    let verifier = config
        .webhook
        .as_ref()
        .expect("webhook")
        .verifier()
        .expect("verifier");
    let source = source(&sim, &config);

    let leaver = employees
        .iter()
        .find(|e| e.status == EmploymentStatus::Active && e.id != "1001")
        .expect("active employee");
    assert!(sim.roster().terminate(&leaver.id, date(2026, 5, 1)));
    let body = format!(
        r#"{{"employees":[{{"id":"{}","action":"Updated","timestamp":"2026-05-01T00:00:00+00:00","changedFields":["status","terminationDate"]}}]}}"#,
        leaver.id
    );
    let now = Utc::now();
    let timestamp = now.timestamp().to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        TIMESTAMP_HEADER,
        HeaderValue::from_str(&timestamp).expect("header"),
    );
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&sign(b"webhook-private-key", body.as_bytes(), &timestamp))
            .expect("header"),
    );
    let notification = verifier
        .verify(&headers, body.as_bytes(), now)
        .expect("authentic webhook");
    let ids: Vec<String> = notification.employee_ids().into_iter().collect();
    assert_eq!(ids, std::slice::from_ref(&leaver.id));
    let refreshed = source
        .employee(&ids[0])
        .await
        .expect("read")
        .expect("known");
    assert_eq!(refreshed.status, EmploymentStatus::Terminated);

    let forged = body.replace("Updated", "Deleted");
    assert!(verifier.verify(&headers, forged.as_bytes(), now).is_err());
    let late = now + chrono::Duration::seconds(301);
    assert_eq!(
        verifier
            .verify(&headers, body.as_bytes(), late)
            .expect_err("replayed later")
            .label(),
        "stale_timestamp"
    );
}

#[tokio::test]
async fn from_config_reads_the_api_key_from_a_file() {
    let employees = generate_employees(9, 28);
    let sim = start(employees).await;
    let mut key_file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(key_file, "{}", sim.api_key()).expect("write");
    let mut config = config(&sim, 3);
    config.api_key = LocalSecretRef::File(key_file.path().to_owned());
    let source = HrSource::from_config(&HrisConfig::BambooHr(config)).expect("source");
    assert_eq!(
        source.snapshot().await.expect("snapshot").employees.len(),
        9
    );
    assert!(source.employee("1003").await.expect("read").is_some());
    let feed = source
        .changed_since(Utc::now() - chrono::Duration::minutes(5))
        .await
        .expect("feed");
    assert_eq!(feed.changes.len(), 9);
    assert!(
        !format!("{source:?}").contains(sim.api_key()),
        "Debug leaks the key"
    );
}
