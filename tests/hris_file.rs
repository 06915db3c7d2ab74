//! The file source: CSV and JSON from a path, and from an http URL served on 127.0.0.1 by a
//! small file server that can fail, demand a bearer token and count requests.

mod hris_support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::NaiveDate;
use opal_operator::hris::{
    ColumnMapping, Employee, EmploymentStatus, FileConfig, FileFormat, FileSource, HrSource,
    HrisConfig, HrisError, InvalidRowPolicy,
};
use opal_operator::secret::{LocalSecretRef, Secret};
use opal_operator::sim::hris::generate_employees;

use hris_support::{assert_same_people, fast_http};

fn file_config(location: String) -> FileConfig {
    FileConfig {
        location,
        format: None,
        records: None,
        delimiter: None,
        columns: ColumnMapping {
            custom: [("level".to_owned(), "level".to_owned())].into(),
            ..ColumnMapping::default()
        },
        bearer_token: None,
        invalid_rows: InvalidRowPolicy::Reject,
        http: fast_http(3),
    }
}

fn temp_file(suffix: &str, contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    file.write_all(contents).expect("write");
    file
}

fn status_text(status: EmploymentStatus) -> &'static str {
    match status {
        EmploymentStatus::Active => "Active",
        EmploymentStatus::OnLeave => "On Leave",
        EmploymentStatus::Terminated => "Terminated",
    }
}

/// The generated people as a CSV export with the default (employee field) column names.
fn csv_export(employees: &[Employee]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "id",
            "email",
            "firstName",
            "lastName",
            "department",
            "title",
            "location",
            "costCenter",
            "employmentType",
            "managerId",
            "status",
            "startDate",
            "terminationDate",
            "level",
        ])
        .expect("header");
    let date = |date: Option<NaiveDate>| date.map(|d| d.to_string()).unwrap_or_default();
    for e in employees {
        writer
            .write_record([
                e.id.clone(),
                e.email.clone(),
                e.first_name.clone(),
                e.last_name.clone(),
                e.department.clone().unwrap_or_default(),
                e.title.clone().unwrap_or_default(),
                e.location.clone().unwrap_or_default(),
                e.cost_center.clone().unwrap_or_default(),
                e.employment_type.clone().unwrap_or_default(),
                e.manager_id.clone().unwrap_or_default(),
                status_text(e.status).to_owned(),
                date(e.start_date),
                date(e.termination_date),
                e.custom.get("level").cloned().unwrap_or_default(),
            ])
            .expect("row");
    }
    writer.into_inner().expect("csv bytes")
}

#[tokio::test]
async fn csv_from_a_path_yields_every_employee() {
    let employees = generate_employees(150, 31);
    let file = temp_file(".csv", &csv_export(&employees));
    let source =
        FileSource::new(&file_config(file.path().display().to_string()), None).expect("source");
    let snapshot = source.snapshot().await.expect("snapshot");
    assert_same_people(&snapshot, &employees);
    let one = source.employee("1042").await.expect("read");
    let mut want = employees[41].clone();
    want.manager_email = None;
    assert_eq!(one, Some(want));
    assert_eq!(source.employee("999999").await.expect("read"), None);
}

#[tokio::test]
async fn csv_with_a_column_mapping_and_semicolons() {
    let file = temp_file(
        ".txt",
        "Personalnummer;E-Mail;Name;Abteilung;Austritt\n\
         7;anna@example.de;Anna Schmidt;Vertrieb;\n\
         8;ben@example.de;Ben Weber;Technik;01.02.2024\n"
            .as_bytes(),
    );
    let mut config = file_config(file.path().display().to_string());
    config.format = Some(FileFormat::Csv);
    config.delimiter = Some(';');
    config.columns = serde_yaml::from_str(
        "id: Personalnummer\nemail: E-Mail\nfullName: Name\ndepartment: Abteilung\nterminationDate: Austritt\ndateFormat: '%d.%m.%Y'\n",
    )
    .expect("mapping");
    let snapshot = FileSource::new(&config, None)
        .expect("source")
        .snapshot()
        .await
        .expect("snapshot");
    let anna = snapshot.employee("7").expect("anna");
    assert_eq!(
        (anna.first_name.as_str(), anna.last_name.as_str()),
        ("Anna", "Schmidt")
    );
    assert_eq!(anna.status, EmploymentStatus::Active);
    let ben = snapshot.employee("8").expect("ben");
    assert_eq!(ben.department.as_deref(), Some("Technik"));
    assert_eq!(
        ben.status,
        EmploymentStatus::Terminated,
        "left in 2024, no status column"
    );
    assert_eq!(ben.termination_date, NaiveDate::from_ymd_opt(2024, 2, 1));
}

#[tokio::test]
async fn bad_rows_reject_the_snapshot_or_are_skipped_and_reported() {
    let file = temp_file(
        ".csv",
        b"id,email,status\n1,a@example.com,Active\n2,b@example.com,Retired\n3,c@example.com,Terminated\n",
    );
    let mut config = file_config(file.path().display().to_string());
    let error = FileSource::new(&config, None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("unknown status");
    let HrisError::InvalidRow { problem, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(problem.location, "line 3");
    assert_eq!(problem.employee_id.as_deref(), Some("2"));
    assert_eq!(problem.field.as_deref(), Some("status"));

    config.invalid_rows = InvalidRowPolicy::Skip;
    let snapshot = FileSource::new(&config, None)
        .expect("source")
        .snapshot()
        .await
        .expect("skip");
    let ids: Vec<_> = snapshot.employees.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["1", "3"]);
    assert!(!snapshot.is_complete());
    assert_eq!(snapshot.skipped.len(), 1);
}

#[tokio::test]
async fn missing_empty_and_malformed_files_are_errors() {
    let missing = FileSource::new(&file_config("/nonexistent/hr/export.csv".into()), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("missing");
    assert_eq!(missing.label(), "io");

    let header_only = temp_file(".csv", b"id,email\n");
    let empty = FileSource::new(&file_config(header_only.path().display().to_string()), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("no rows");
    assert_eq!(empty.label(), "empty");

    let truncated = temp_file(
        ".json",
        br#"[{"id": "1", "email": "a@example.com"}, {"id": "2", "em"#,
    );
    let malformed = FileSource::new(&file_config(truncated.path().display().to_string()), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("truncated json");
    assert_eq!(malformed.label(), "malformed");
    assert!(malformed.to_string().contains("not JSON"), "{malformed}");

    let unknown = temp_file(".dat", b"id\n1\n");
    let error = FileSource::new(&file_config(unknown.path().display().to_string()), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("unknown format");
    assert_eq!(error.label(), "config");
}

/// Serves one document; fails the first `failures` requests with 503; demands a bearer token
/// when given.
struct FileServer {
    addr: SocketAddr,
    requests: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    async fn start(
        body: Vec<u8>,
        content_type: &'static str,
        failures: u32,
        token: Option<&'static str>,
    ) -> Self {
        let requests = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&requests);
        let app = Router::new().route(
            "/exports/people",
            get(move |headers: HeaderMap| {
                let body = body.clone();
                let counter = Arc::clone(&counter);
                async move {
                    let seen = counter.fetch_add(1, Ordering::SeqCst);
                    if seen < failures {
                        return (StatusCode::SERVICE_UNAVAILABLE, "export is being generated")
                            .into_response();
                    }
                    let presented = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|value| value.to_str().ok());
                    if let Some(token) = token
                        && presented != Some(&format!("Bearer {token}"))
                    {
                        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
                    }
                    ([(header::CONTENT_TYPE, content_type)], body).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/exports/people", self.addr)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn json_from_a_url_with_a_bearer_token_retries_an_outage() {
    let employees = generate_employees(60, 32);
    let document = serde_json::json!({"data": {"people": employees}});
    let server = FileServer::start(
        serde_json::to_vec(&document).expect("json"),
        "application/json",
        2,
        Some("file-token"),
    )
    .await;
    let mut config = file_config(server.url());
    config.records = Some("/data/people".into());
    let source =
        FileSource::new(&config, Some(Secret::new("file-token").expect("token"))).expect("source");
    let snapshot = source.snapshot().await.expect("snapshot after two 503s");
    assert_same_people(&snapshot, &employees);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);

    let unauthorized = FileSource::new(&config, Some(Secret::new("other").expect("token")))
        .expect("source")
        .snapshot()
        .await
        .expect_err("wrong token");
    assert_eq!(unauthorized.label(), "unauthorized");
    assert!(
        unauthorized.to_string().contains("bad token"),
        "{unauthorized}"
    );
}

#[tokio::test]
async fn csv_format_comes_from_the_content_type_and_outages_end_in_an_error() {
    let employees = generate_employees(20, 33);
    let server =
        FileServer::start(csv_export(&employees), "text/csv; charset=utf-8", 0, None).await;
    let snapshot = FileSource::new(&file_config(server.url()), None)
        .expect("source")
        .snapshot()
        .await
        .expect("snapshot");
    assert_same_people(&snapshot, &employees);

    let down = FileServer::start(Vec::new(), "text/csv", u32::MAX, None).await;
    let error = FileSource::new(&file_config(down.url()), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("always 503");
    assert_eq!(error.label(), "server_error");
    assert!(
        error.to_string().contains("export is being generated"),
        "{error}"
    );
    assert_eq!(down.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn from_config_builds_a_file_source_from_yaml() {
    let employees = generate_employees(8, 34);
    let file = temp_file(".json", &serde_json::to_vec(&employees).expect("json"));
    let yaml = format!(
        "source: file\nlocation: {}\ncolumns:\n  custom: {{level: level}}\n",
        file.path().display()
    );
    let config: HrisConfig = serde_yaml::from_str(&yaml).expect("config");
    let source = HrSource::from_config(&config).expect("source");
    assert_same_people(&source.snapshot().await.expect("snapshot"), &employees);

    let bad: HrisConfig = serde_yaml::from_str(
        "source: file\nlocation: x.csv\nbearerToken: {env: OPAL_OPERATOR_TEST_SURELY_UNSET_TOKEN}\n",
    )
    .expect("config");
    let error = HrSource::from_config(&bad).expect_err("unset token variable");
    assert_eq!(error.label(), "secret");
    let reference = LocalSecretRef::Env("OPAL_OPERATOR_TEST_SURELY_UNSET_TOKEN".into());
    assert!(
        error.to_string().contains(&reference.to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn a_body_cut_off_in_transit_is_retried_then_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&served);
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            // Promises 500 bytes, sends a few, then closes the connection.
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n[{\"id\": \"1\",",
                )
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let error = FileSource::new(&file_config(format!("http://{addr}/people.json")), None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("truncated body");
    server.abort();
    assert!(
        matches!(
            error,
            HrisError::Transport {
                kind: opal_operator::http::TransportErrorKind::Body,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn oversized_exports_are_refused() {
    let employees = generate_employees(30, 35);
    let body = serde_json::to_vec(&employees).expect("json");
    let server = FileServer::start(body.clone(), "application/json", 0, None).await;
    let mut config = file_config(server.url());
    config.http.max_body_bytes = 1_000;
    let error = FileSource::new(&config, None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("too large");
    assert_eq!(error.label(), "malformed");
    assert!(error.to_string().contains("http.maxBodyBytes"), "{error}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "not retried");

    let file = temp_file(".json", &body);
    let mut config = file_config(file.path().display().to_string());
    config.http.max_body_bytes = 1_000;
    let error = FileSource::new(&config, None)
        .expect("source")
        .snapshot()
        .await
        .expect_err("too large");
    assert_eq!(error.label(), "io");
}
