//! The Workday source against the Workday simulator over HTTP on 127.0.0.1.

mod hris_support;

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use opal_operator::hris::{
    Employee, EmploymentStatus, HrSource, HrisConfig, HrisError, InvalidRowPolicy, WorkdayConfig,
    WorkdaySource,
};
use opal_operator::secret::LocalSecretRef;
use opal_operator::sim::hris::workday::{
    ROUTE_REPORT, ROUTE_TOKEN, ROUTE_WORKER, ROUTE_WORKERS, ReportColumns, WorkdaySim,
    WorkdaySimConfig, workday_id,
};
use opal_operator::sim::hris::{FaultRates, HrisFault, generate_employees};

use hris_support::{assert_same_people, fast_http};

const PEOPLE: usize = 250;

/// The client's view of an employee the simulator serves: REST adds the WID and job profile,
/// the report supplies everything else (its `level` column mapped as a custom field).
fn as_seen(employee: &Employee) -> Employee {
    let mut seen = employee.clone();
    seen.custom
        .insert("workdayId".into(), workday_id(&employee.id));
    if let Some(title) = &employee.title {
        seen.custom.insert("jobProfile".into(), title.clone());
    }
    seen
}

fn config(sim: &WorkdaySim, attempts: u32) -> WorkdayConfig {
    let mut config = sim.client_config();
    config.http = fast_http(attempts);
    if let Some(report) = config.report.as_mut() {
        report.columns.custom.insert("level".into(), "level".into());
    }
    config
}

fn source(sim: &WorkdaySim, config: &WorkdayConfig) -> WorkdaySource {
    WorkdaySource::new(config, sim.credentials().expect("credentials")).expect("source")
}

async fn start(employees: Vec<Employee>) -> WorkdaySim {
    WorkdaySim::start(employees, WorkdaySimConfig::default())
        .await
        .expect("start simulator")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

#[tokio::test]
async fn snapshot_merges_workers_and_report_including_terminated_workers() {
    let employees = generate_employees(PEOPLE, 11);
    let sim = start(employees.clone()).await;
    let snapshot = source(&sim, &config(&sim, 3))
        .snapshot()
        .await
        .expect("snapshot");

    let expected: Vec<Employee> = employees.iter().map(as_seen).collect();
    assert_same_people(&snapshot, &expected);
    assert!(snapshot.is_complete());
    let terminated = snapshot
        .employees
        .iter()
        .filter(|e| e.status == EmploymentStatus::Terminated)
        .count();
    assert!(terminated > 0, "the generated org has terminations");

    let current = employees
        .iter()
        .filter(|e| e.status != EmploymentStatus::Terminated)
        .count();
    let counts = sim.counts();
    assert_eq!(
        counts.calls(ROUTE_TOKEN),
        1,
        "one token for the whole snapshot"
    );
    assert_eq!(
        counts.calls(ROUTE_WORKERS) as usize,
        PEOPLE.div_ceil(100) + current.div_ceil(100),
        "every page of both listings, once"
    );
    assert_eq!(counts.calls(ROUTE_REPORT), 1);
}

#[tokio::test]
async fn hires_title_changes_and_terminations_show_in_the_next_snapshot() {
    let employees = generate_employees(40, 3);
    let sim = start(employees.clone()).await;
    let source = source(&sim, &config(&sim, 3));
    source.snapshot().await.expect("first snapshot");

    let active = employees
        .iter()
        .find(|e| e.status == EmploymentStatus::Active && e.id != "1001")
        .expect("an active employee")
        .clone();
    let mut hire = employees[5].clone();
    hire.id = "9001".into();
    hire.email = "new.hire@example.com".into();
    hire.status = EmploymentStatus::Active;
    hire.termination_date = None;
    sim.roster().hire(hire.clone());
    assert!(
        sim.roster()
            .change_title("1001", "Chief Everything Officer")
    );
    assert!(sim.roster().terminate(&active.id, date(2026, 3, 31)));

    let snapshot = source.snapshot().await.expect("second snapshot");
    assert_eq!(snapshot.employees.len(), 41);
    assert_eq!(snapshot.employee("9001"), Some(&as_seen(&hire)));
    assert_eq!(
        snapshot.employee("1001").and_then(|e| e.title.as_deref()),
        Some("Chief Everything Officer")
    );
    let leaver = snapshot
        .employee(&active.id)
        .expect("terminated workers stay listed");
    assert_eq!(leaver.status, EmploymentStatus::Terminated);
    assert_eq!(leaver.termination_date, Some(date(2026, 3, 31)));
}

#[tokio::test]
async fn without_a_report_the_rest_listing_alone_decides_status() {
    let employees = generate_employees(30, 5);
    let sim = start(employees.clone()).await;
    let mut config = config(&sim, 3);
    config.report = None;
    let snapshot = source(&sim, &config).snapshot().await.expect("snapshot");
    for employee in &employees {
        let seen = snapshot.employee(&employee.id).expect("listed");
        let want = match employee.status {
            EmploymentStatus::Terminated => EmploymentStatus::Terminated,
            EmploymentStatus::Active | EmploymentStatus::OnLeave => EmploymentStatus::Active,
        };
        assert_eq!(seen.status, want, "employee {}", employee.id);
        assert_eq!(seen.email, employee.email);
        assert_eq!(seen.cost_center, None, "only the report has cost centers");
    }
    assert_eq!(sim.counts().calls(ROUTE_REPORT), 0);
}

#[tokio::test]
async fn single_employee_refresh_uses_search_and_the_report_prompt() {
    let employees = generate_employees(60, 8);
    let sim = start(employees.clone()).await;
    let source = source(&sim, &config(&sim, 3));
    let terminated = employees
        .iter()
        .find(|e| e.status == EmploymentStatus::Terminated)
        .expect("a terminated employee");

    let mut found = source
        .employee(&terminated.id)
        .await
        .expect("refresh")
        .expect("known employee");
    // A lone refresh cannot resolve the manager's email from the roster.
    found.manager_email = terminated.manager_email.clone();
    assert_eq!(found, as_seen(terminated));
    assert_eq!(source.employee("424242").await.expect("refresh"), None);
    assert_eq!(source.employee("  ").await.expect("refresh"), None);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once() {
    let sim = start(generate_employees(10, 1)).await;
    let source = source(&sim, &config(&sim, 3));
    source.snapshot().await.expect("first");
    sim.expire_access_tokens();
    source.snapshot().await.expect("second, after a refresh");
    let counts = sim.counts();
    assert_eq!(counts.calls(ROUTE_TOKEN), 2);
    assert!(counts.calls_with_status(ROUTE_WORKERS, 401) >= 1);
}

#[tokio::test]
async fn rejected_credentials_fail_at_once_with_workdays_error_text() {
    let sim = start(generate_employees(5, 1)).await;
    let config = config(&sim, 5);
    let mut credentials = sim.credentials().expect("credentials");
    credentials.client_secret =
        opal_operator::secret::Secret::new("wrong-secret-value").expect("secret");
    let source = WorkdaySource::new(&config, credentials).expect("source");
    let error = source.snapshot().await.expect_err("bad client secret");
    assert_eq!(error.label(), "unauthorized");
    let text = error.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(
        text.contains("after 1 attempt"),
        "a 401 is not retried: {text}"
    );
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[tokio::test]
async fn throttling_and_outages_are_retried_honouring_retry_after() {
    let sim = start(generate_employees(20, 2)).await;
    let source = source(&sim, &config(&sim, 4));
    sim.script_faults(
        Some(ROUTE_WORKERS),
        vec![
            HrisFault::TooManyRequests {
                retry_after: Some(Duration::from_secs(1)),
            },
            HrisFault::ServiceUnavailable {
                retry_after: Some(Duration::ZERO),
            },
        ],
    );
    let started = Instant::now();
    let snapshot = source.snapshot().await.expect("snapshot after retries");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not waited for"
    );
    assert_eq!(snapshot.employees.len(), 20);
    let counts = sim.counts();
    assert_eq!(counts.calls_with_status(ROUTE_WORKERS, 429), 1);
    assert_eq!(counts.calls_with_status(ROUTE_WORKERS, 503), 1);
    assert_eq!(counts.injected_faults, 2);
}

#[tokio::test]
async fn random_throttling_still_yields_the_complete_roster() {
    let employees = generate_employees(120, 4);
    let sim = start(employees.clone()).await;
    sim.set_fault_rates(FaultRates {
        too_many_requests: 0.2,
        service_unavailable: 0.1,
        retry_after: Some(Duration::ZERO),
    });
    let snapshot = source(&sim, &config(&sim, 12))
        .snapshot()
        .await
        .expect("snapshot");
    let expected: Vec<Employee> = employees.iter().map(as_seen).collect();
    assert_same_people(&snapshot, &expected);
    assert!(sim.counts().injected_faults > 0);
}

#[tokio::test]
async fn a_persistent_outage_is_an_error_not_an_empty_list() {
    let sim = start(generate_employees(10, 2)).await;
    let source = source(&sim, &config(&sim, 3));
    sim.set_fault_rates(FaultRates {
        service_unavailable: 1.0,
        ..FaultRates::default()
    });
    let error = source.snapshot().await.expect_err("outage");
    assert_eq!(error.label(), "server_error");
    let text = error.to_string();
    assert!(text.contains("HTTP 503 after 3 attempt(s)"), "{text}");
    assert!(text.contains("service temporarily unavailable"), "{text}");
}

#[tokio::test]
async fn a_listing_shorter_than_its_total_is_incomplete() {
    let sim = start(generate_employees(230, 6)).await;
    sim.set_total_overstatement(20);
    let error = source(&sim, &config(&sim, 3))
        .snapshot()
        .await
        .expect_err("truncated");
    assert_eq!(error.label(), "incomplete");
    let text = error.to_string();
    assert!(text.contains("expected 50 of total 250"), "{text}");
    assert!(text.contains("230 worker(s) received"), "{text}");
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_malformed() {
    let sim = start(generate_employees(10, 2)).await;
    sim.script_faults(Some(ROUTE_WORKERS), vec![HrisFault::MalformedBody]);
    let error = source(&sim, &config(&sim, 3))
        .snapshot()
        .await
        .expect_err("malformed");
    assert_eq!(error.label(), "malformed");
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn an_unreachable_tenant_is_a_transport_error() {
    let sim = start(generate_employees(3, 2)).await;
    let config = config(&sim, 2);
    let credentials = sim.credentials().expect("credentials");
    drop(sim);
    // The port was just released; nothing listens there any more.
    let source = WorkdaySource::new(&config, credentials).expect("source");
    let error = source.snapshot().await.expect_err("unreachable");
    assert!(
        matches!(error, HrisError::Transport { attempts: 2, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn report_aliases_are_configurable_and_a_wrong_id_column_is_caught() {
    let employees = generate_employees(25, 9);
    let sim = WorkdaySim::start(
        employees.clone(),
        WorkdaySimConfig {
            report_columns: ReportColumns {
                employee_id: "Worker_Number".into(),
                termination_date: "Last_Day_of_Work".into(),
                manager_id: "Supervisor_ID".into(),
                ..ReportColumns::default()
            },
            ..WorkdaySimConfig::default()
        },
    )
    .await
    .expect("start");
    let config = config(&sim, 3);
    let report = config.report.as_ref().expect("report");
    assert_eq!(
        report.columns.termination_date.as_deref(),
        Some("Last_Day_of_Work")
    );
    let snapshot = source(&sim, &config).snapshot().await.expect("snapshot");
    let expected: Vec<Employee> = employees.iter().map(as_seen).collect();
    assert_same_people(&snapshot, &expected);

    let mut wrong = config.clone();
    if let Some(report) = wrong.report.as_mut() {
        report.columns.id = Some("Employee_ID".into());
    }
    let error = source(&sim, &wrong)
        .snapshot()
        .await
        .expect_err("no ID column");
    assert_eq!(error.label(), "invalid_row");
    assert!(error.to_string().contains("Report_Entry[0]"), "{error}");
}

#[tokio::test]
async fn a_bad_report_value_rejects_the_snapshot_or_is_skipped_and_reported() {
    let mut employees = generate_employees(15, 10);
    employees[7]
        .custom
        .insert("Start_Date".into(), "next spring".into());
    let bad_id = employees[7].id.clone();
    let sim = start(employees).await;

    let error = source(&sim, &config(&sim, 3))
        .snapshot()
        .await
        .expect_err("reject");
    let HrisError::InvalidRow { problem, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(problem.employee_id.as_deref(), Some(bad_id.as_str()));
    assert_eq!(problem.field.as_deref(), Some("Start_Date"));

    let mut config = config(&sim, 3);
    config.invalid_rows = InvalidRowPolicy::Skip;
    let snapshot = source(&sim, &config).snapshot().await.expect("skip");
    assert_eq!(snapshot.employees.len(), 14);
    assert!(!snapshot.is_complete());
    assert_eq!(snapshot.skipped.len(), 1);
    assert_eq!(
        snapshot.skipped[0].employee_id.as_deref(),
        Some(bad_id.as_str())
    );
}

#[tokio::test]
async fn the_simulator_enforces_workdays_paging_rules() {
    let sim = start(generate_employees(5, 1)).await;
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/ccx/oauth2/acme/token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "workday-sim-refresh-token"),
            ("client_id", "opal-operator-client"),
            ("client_secret", "workday-sim-client-secret"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let bearer = token["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let workers = format!("{}/ccx/api/staffing/v6/acme/workers", sim.base_url());
    let answer = http
        .get(format!("{workers}?limit=101"))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.expect("error body");
    assert_eq!(body["errors"][0]["field"], "limit");

    let page: serde_json::Value = http
        .get(&workers)
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("page");
    assert!(page["total"].as_u64().is_some());
    assert!(page["data"].as_array().is_some_and(|d| d.len() <= 20));

    let anonymous = http.get(&workers).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);

    let wid = workday_id("1003");
    let worker: serde_json::Value = http
        .get(format!("{workers}/{wid}"))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("worker");
    assert_eq!(worker["workerId"], "1003");
    let unknown = http
        .get(format!("{workers}/{}", workday_id("nobody")))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 404);
    assert_eq!(sim.counts().calls(ROUTE_WORKER), 2);

    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let answer = http
        .get(&workers)
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency not applied"
    );
}

#[tokio::test]
async fn from_config_reads_credentials_from_files() {
    let employees = generate_employees(12, 12);
    let sim = start(employees.clone()).await;
    let mut secret_file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(secret_file, "workday-sim-client-secret").expect("write");
    let mut refresh_file = tempfile::NamedTempFile::new().expect("temp");
    writeln!(refresh_file, "workday-sim-refresh-token").expect("write");
    let mut config = config(&sim, 3);
    config.client_secret = LocalSecretRef::File(secret_file.path().to_owned());
    config.refresh_token = LocalSecretRef::File(refresh_file.path().to_owned());
    let source = HrSource::from_config(&HrisConfig::Workday(config)).expect("source");
    assert_eq!(source.kind().label(), "workday");
    let snapshot = source.snapshot().await.expect("snapshot");
    assert_eq!(snapshot.employees.len(), 12);
    let error = source
        .changed_since(chrono::Utc::now())
        .await
        .expect_err("no change feed");
    assert_eq!(error.label(), "unsupported");
}
