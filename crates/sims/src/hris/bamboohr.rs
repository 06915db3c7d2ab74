//! A BambooHR company: the directory, custom reports, the changed-since feed and single-employee
//! reads, under both API roots — `/api/v1/...` and the legacy
//! `/api/gateway.php/{companyDomain}/v1/...`.
//!
//! Authentication is HTTP Basic with the API key as the user name (any password). Answers are
//! JSON only when `Accept` asks for `application/json`; otherwise a small XML document, as
//! BambooHR picks the format from `Accept`. Errors carry their text in the
//! `x-bamboohr-error-message` header with an empty body. A custom report needs `Content-Type`
//! exactly `application/json` (anything else is read as XML and refused with a 400), returns
//! active and inactive employees, and drops unknown fields silently. Values are strings or
//! `null`; an unset date is `0000-00-00`. `employeeNumber` is `E<id>`, so `supervisorId`
//! (the supervisor's employee number) differs from `supervisorEId` (the supervisor's ID).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

use super::control::{CallCounts, Control, FaultRates, HrisFault, Server};
use super::roster::{Roster, RosterChange, RosterEntry};
use crate::operator_hris::{
    BambooHrConfig, BambooHrSnapshotMode, ColumnMapping, Employee, EmploymentStatus, HttpConfig,
    InvalidRowPolicy,
};
use crate::secret::LocalSecretRef;

/// Route names the counters use (the same under both API roots).
pub const ROUTE_DIRECTORY: &str = "GET /employees/directory";
pub const ROUTE_CUSTOM_REPORT: &str = "POST /reports/custom";
pub const ROUTE_CHANGED: &str = "GET /employees/changed";
pub const ROUTE_EMPLOYEE: &str = "GET /employees/{id}";

const ROOTS: [&str; 2] = ["/api/v1", "/api/gateway.php/{company}/v1"];

/// BambooHR refuses requests for more fields than this.
pub const MAX_FIELDS: usize = 400;

/// How the simulated company behaves.
#[derive(Clone, Debug)]
pub struct BambooHrSimConfig {
    pub company_domain: String,
    pub api_key: String,
    /// Whether the company shares its directory (403 otherwise).
    pub directory_shared: bool,
    /// The custom field that holds the cost center.
    pub cost_center_field: String,
    pub latency: Duration,
    pub faults: FaultRates,
    pub seed: u64,
}

impl Default for BambooHrSimConfig {
    fn default() -> Self {
        Self {
            company_domain: "acme".into(),
            api_key: "bamboohr-sim-api-key".into(),
            directory_shared: true,
            cost_center_field: "customCostCenter".into(),
            latency: Duration::ZERO,
            faults: FaultRates::default(),
            seed: 0x5EED,
        }
    }
}

#[derive(Debug)]
struct Shared {
    roster: Roster,
    config: BambooHrSimConfig,
    control: Control,
}

/// A running BambooHR simulator; stops when dropped.
#[derive(Debug)]
pub struct BambooHrSim {
    server: Server,
    shared: Arc<Shared>,
}

fn bamboo_error(status: StatusCode, message: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(message) {
        response
            .headers_mut()
            .insert("x-bamboohr-error-message", value);
    }
    response
}

impl BambooHrSim {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(
        employees: Vec<Employee>,
        config: BambooHrSimConfig,
    ) -> std::io::Result<Self> {
        Self::start_on(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            employees,
            config,
        )
        .await
    }

    /// Starts on the given address (port 0 picks a free one).
    pub async fn start_on(
        addr: SocketAddr,
        employees: Vec<Employee>,
        config: BambooHrSimConfig,
    ) -> std::io::Result<Self> {
        let mut route_names = HashMap::new();
        let mut router = Router::new();
        for root in ROOTS {
            for (path, name) in [
                ("/employees/directory", ROUTE_DIRECTORY),
                ("/reports/custom", ROUTE_CUSTOM_REPORT),
                ("/employees/changed", ROUTE_CHANGED),
                ("/employees/{id}", ROUTE_EMPLOYEE),
            ] {
                route_names.insert(format!("{root}{path}"), name);
            }
            router = router
                .route(&format!("{root}/employees/directory"), get(directory))
                .route(&format!("{root}/reports/custom"), post(custom_report))
                .route(&format!("{root}/employees/changed"), get(changed))
                .route(&format!("{root}/employees/{{id}}"), get(employee));
        }
        let shared = Arc::new(Shared {
            roster: Roster::new(employees),
            control: Control::new(
                config.seed,
                config.faults.clone(),
                config.latency,
                route_names,
                bamboo_error,
            ),
            config,
        });
        let app = router
            .fallback(|| async { bamboo_error(StatusCode::NOT_FOUND, "Not found") })
            .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate))
            .with_state(Arc::clone(&shared));
        Ok(Self {
            server: Server::start(addr, app).await?,
            shared,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The current API root, e.g. `http://127.0.0.1:41234/api/v1` (the client's `baseUrl`).
    pub fn api_root(&self) -> String {
        format!("http://{}/api/v1", self.server.addr())
    }

    /// The legacy gateway root, `http://127.0.0.1:41234/api/gateway.php/{companyDomain}/v1`.
    pub fn legacy_api_root(&self) -> String {
        format!(
            "http://{}/api/gateway.php/{}/v1",
            self.server.addr(),
            self.shared.config.company_domain
        )
    }

    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// The simulator's data, changeable while it runs.
    pub fn roster(&self) -> &Roster {
        &self.shared.roster
    }

    pub fn counts(&self) -> CallCounts {
        self.shared.control.counts()
    }

    pub fn reset_counts(&self) {
        self.shared.control.reset_counts();
    }

    /// Queues faults for the next requests to `route` (a `ROUTE_*` name) or to any route.
    pub fn script_faults(&self, route: Option<&str>, faults: Vec<HrisFault>) {
        self.shared.control.script_faults(route, faults);
    }

    pub fn set_fault_rates(&self, rates: FaultRates) {
        self.shared.control.set_fault_rates(rates);
    }

    /// Drops scripted faults and random fault rates.
    pub fn clear_faults(&self) {
        self.shared.control.clear_faults();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.control.set_latency(latency);
    }

    /// A client configuration for this company (custom report mode, cost center mapped to the
    /// simulator's custom field). Its API key reference names the environment variable
    /// `BAMBOOHR_API_KEY`; pass [`Self::api_key`] to `BambooHrSource::new` instead of setting it.
    pub fn client_config(&self) -> BambooHrConfig {
        BambooHrConfig {
            company_domain: self.shared.config.company_domain.clone(),
            base_url: Some(self.api_root()),
            api_key: LocalSecretRef::Env("BAMBOOHR_API_KEY".into()),
            snapshot: BambooHrSnapshotMode::CustomReport,
            fields: ColumnMapping {
                cost_center: Some(self.shared.config.cost_center_field.clone()),
                ..ColumnMapping::default()
            },
            webhook: None,
            invalid_rows: InvalidRowPolicy::Reject,
            http: HttpConfig::default(),
        }
    }
}

async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = shared.control.route_of(&request);
    shared.control.record_request(&route);
    let response = if !api_key_ok(&shared, request.headers()) {
        bamboo_error(StatusCode::UNAUTHORIZED, "Invalid API key")
    } else if let Some(fault) = shared.control.draw_fault(&route) {
        fault
    } else {
        shared.control.delay().await;
        next.run(request).await
    };
    shared.control.record_answer(&route, response.status());
    response
}

fn api_key_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .is_some_and(|credentials| {
            credentials
                .split_once(':')
                .map_or(credentials.as_str(), |(user, _)| user)
                == shared.config.api_key
        })
}

/// The answer to give instead of serving the request, if any: 404 for another company on the
/// legacy root, XML when the client does not accept JSON.
fn preflight(
    shared: &Shared,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    if params
        .get("company")
        .is_some_and(|company| *company != shared.config.company_domain)
    {
        return Some(bamboo_error(
            StatusCode::NOT_FOUND,
            "Unknown company domain",
        ));
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    (!wants_json).then(|| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\"?><response/>",
        )
            .into_response()
    })
}

fn name_of(employee: &Employee) -> String {
    format!("{} {}", employee.first_name, employee.last_name)
        .trim()
        .to_owned()
}

fn date_text(date: Option<chrono::NaiveDate>) -> String {
    date.map_or_else(|| "0000-00-00".to_owned(), |date| date.to_string())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Fields every company has.
const STANDARD_FIELDS: &[&str] = &[
    "id",
    "employeeNumber",
    "workEmail",
    "bestEmail",
    "firstName",
    "lastName",
    "displayName",
    "department",
    "division",
    "jobTitle",
    "location",
    "status",
    "employmentHistoryStatus",
    "hireDate",
    "terminationDate",
    "supervisor",
    "supervisorEId",
    "supervisorId",
    "supervisorEmail",
    "lastChanged",
    "photoUrl",
];

/// Whether the company has this field: a standard one, the cost center field, or a custom field
/// some employee has. Unknown fields are dropped from answers.
fn is_known_field(shared: &Shared, entries: &BTreeMap<String, RosterEntry>, field: &str) -> bool {
    STANDARD_FIELDS.contains(&field)
        || field == shared.config.cost_center_field
        || entries
            .values()
            .any(|entry| entry.employee.custom.contains_key(field))
}

/// The value of one known field for an employee (`null` when empty).
fn field_value(
    shared: &Shared,
    entries: &BTreeMap<String, RosterEntry>,
    employee: &Employee,
    changed_at: DateTime<Utc>,
    field: &str,
) -> Value {
    let text = |value: Option<String>| value.map_or(Value::Null, Value::String);
    let manager = employee
        .manager_id
        .as_ref()
        .and_then(|id| entries.get(id))
        .map(|entry| &entry.employee);
    match field {
        "id" => text(Some(employee.id.clone())),
        "employeeNumber" => text(Some(format!("E{}", employee.id))),
        "workEmail" | "bestEmail" => text(Some(employee.email.clone()).filter(|e| !e.is_empty())),
        "firstName" => text(Some(employee.first_name.clone())),
        "lastName" => text(Some(employee.last_name.clone())),
        "displayName" => text(Some(name_of(employee))),
        "department" => text(employee.department.clone()),
        "jobTitle" => text(employee.title.clone()),
        "location" => text(employee.location.clone()),
        "status" => text(Some(
            if employee.status == EmploymentStatus::Terminated {
                "Inactive"
            } else {
                "Active"
            }
            .to_owned(),
        )),
        "employmentHistoryStatus" => text(Some(match employee.status {
            EmploymentStatus::OnLeave => "Leave of Absence".to_owned(),
            EmploymentStatus::Terminated => "Terminated".to_owned(),
            EmploymentStatus::Active => employee
                .employment_type
                .clone()
                .unwrap_or_else(|| "Full-Time".to_owned()),
        })),
        "hireDate" => text(Some(date_text(employee.start_date))),
        "terminationDate" => text(Some(date_text(employee.termination_date))),
        "supervisor" => text(manager.map(name_of)),
        "supervisorEId" => text(employee.manager_id.clone()),
        "supervisorId" => text(manager.map(|manager| format!("E{}", manager.id))),
        "supervisorEmail" => text(
            employee
                .manager_email
                .clone()
                .or_else(|| manager.map(|manager| manager.email.clone())),
        ),
        "lastChanged" => text(Some(timestamp(changed_at))),
        other if other == shared.config.cost_center_field => text(employee.cost_center.clone()),
        other => text(employee.custom.get(other).cloned()),
    }
}

fn field_type(field: &str) -> &'static str {
    match field {
        "hireDate" | "terminationDate" => "date",
        "workEmail" | "bestEmail" | "supervisorEmail" => "email",
        "status" | "employmentHistoryStatus" | "department" | "division" | "location" => "list",
        "lastChanged" => "timestamp",
        _ => "text",
    }
}

async fn directory(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = preflight(&shared, &params, &headers) {
        return response;
    }
    if !shared.config.directory_shared {
        return bamboo_error(StatusCode::FORBIDDEN, "The company directory is not shared");
    }
    const FIELDS: [&str; 9] = [
        "displayName",
        "firstName",
        "lastName",
        "jobTitle",
        "workEmail",
        "department",
        "location",
        "division",
        "photoUrl",
    ];
    let state = shared.roster.lock();
    let employees: Vec<Value> = state
        .entries
        .values()
        .filter(|entry| entry.employee.status != EmploymentStatus::Terminated)
        .map(|entry| {
            let mut row = serde_json::Map::new();
            row.insert("id".into(), json!(entry.employee.id));
            for field in FIELDS {
                let value = field_value(
                    &shared,
                    &state.entries,
                    &entry.employee,
                    entry.changed_at,
                    field,
                );
                row.insert(field.to_owned(), value);
            }
            Value::Object(row)
        })
        .collect();
    if employees.is_empty() {
        return bamboo_error(StatusCode::NOT_FOUND, "No employees in the directory");
    }
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|field| json!({"id": field, "type": field_type(field), "name": field}))
        .collect();
    Json(json!({"fields": fields, "employees": employees})).into_response()
}

async fn custom_report(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = preflight(&shared, &params, &headers) {
        return response;
    }
    if !query
        .get("format")
        .is_some_and(|format| format.eq_ignore_ascii_case("json"))
    {
        return bamboo_error(StatusCode::NOT_FOUND, "Unsupported report format");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if content_type != Some("application/json") {
        return bamboo_error(StatusCode::BAD_REQUEST, "Malformed XML in request body");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bamboo_error(StatusCode::BAD_REQUEST, "Malformed JSON in request body");
    };
    let Some(fields) = request.get("fields").and_then(Value::as_array) else {
        return bamboo_error(StatusCode::BAD_REQUEST, "The report needs a list of fields");
    };
    if fields.len() > MAX_FIELDS {
        return bamboo_error(
            StatusCode::BAD_REQUEST,
            &format!("A report may request at most {MAX_FIELDS} fields"),
        );
    }
    let fields: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
    let filters = request.get("filters");
    let changed_since = filters
        .and_then(|filters| filters.pointer("/lastChanged/value"))
        .and_then(Value::as_str)
        .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
        .map(|at| at.with_timezone(&Utc));
    let only_ids: Option<Vec<String>> = filters
        .and_then(|filters| filters.get("employeeIds"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .map(|id| match id {
                    Value::String(id) => id.clone(),
                    other => other.to_string(),
                })
                .collect()
        });
    let state = shared.roster.lock();
    let fields: Vec<&str> = fields
        .into_iter()
        .filter(|field| is_known_field(&shared, &state.entries, field))
        .collect();
    let employees: Vec<Value> = state
        .entries
        .values()
        .filter(|entry| changed_since.is_none_or(|since| entry.changed_at > since))
        .filter(|entry| {
            only_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&entry.employee.id))
        })
        .map(|entry| {
            let mut row = serde_json::Map::new();
            row.insert("id".into(), json!(entry.employee.id));
            for field in &fields {
                let value = field_value(
                    &shared,
                    &state.entries,
                    &entry.employee,
                    entry.changed_at,
                    field,
                );
                row.insert((*field).to_owned(), value);
            }
            Value::Object(row)
        })
        .collect();
    let known_fields: Vec<Value> = fields
        .iter()
        .map(|field| json!({"id": field, "type": field_type(field), "name": field}))
        .collect();
    let title = request
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Custom report");
    Json(json!({"title": title, "fields": known_fields, "employees": employees})).into_response()
}

async fn changed(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = preflight(&shared, &params, &headers) {
        return response;
    }
    let Some(since) = query
        .get("since")
        .and_then(|since| DateTime::parse_from_rfc3339(since.trim()).ok())
        .map(|since| since.with_timezone(&Utc))
    else {
        return bamboo_error(
            StatusCode::BAD_REQUEST,
            "The 'since' parameter must be an ISO 8601 timestamp",
        );
    };
    let wanted = match query.get("type").map(String::as_str).unwrap_or("all") {
        "all" => None,
        "inserted" => Some(RosterChange::Inserted),
        "updated" => Some(RosterChange::Updated),
        "deleted" => Some(RosterChange::Deleted),
        _ => {
            return bamboo_error(
                StatusCode::BAD_REQUEST,
                "The 'type' parameter must be inserted, updated, deleted or all",
            );
        }
    };
    // `latest` is the request time cut to whole seconds: the next `since` re-reads at most the
    // same second and never skips a change.
    let now = Utc::now();
    let latest = now.with_nanosecond(0).unwrap_or(now);
    let mut employees = serde_json::Map::new();
    for (id, change, at) in shared.roster.changed_since(since) {
        if wanted.is_some_and(|wanted| wanted != change) {
            continue;
        }
        let action = match change {
            RosterChange::Inserted => "Inserted",
            RosterChange::Updated => "Updated",
            RosterChange::Deleted => "Deleted",
        };
        employees.insert(
            id.clone(),
            json!({"id": id, "action": action, "lastChanged": timestamp(at)}),
        );
    }
    // An empty map comes out of BambooHR's PHP as an empty array.
    let employees = if employees.is_empty() {
        json!([])
    } else {
        Value::Object(employees)
    };
    Json(json!({"latest": timestamp(latest), "employees": employees})).into_response()
}

async fn employee(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = preflight(&shared, &params, &headers) {
        return response;
    }
    let id = params.get("id").cloned().unwrap_or_default();
    let fields: Vec<&str> = query
        .get("fields")
        .map(|fields| {
            fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_else(|| vec!["firstName", "lastName"]);
    if fields.len() > MAX_FIELDS {
        return bamboo_error(
            StatusCode::BAD_REQUEST,
            &format!("At most {MAX_FIELDS} fields may be requested"),
        );
    }
    let state = shared.roster.lock();
    // ID 0 is the owner of the API key; here the first employee.
    let entry = if id == "0" {
        state.entries.values().next()
    } else {
        state.entries.get(&id)
    };
    let Some(entry) = entry else {
        return bamboo_error(StatusCode::NOT_FOUND, "Employee not found");
    };
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(entry.employee.id));
    for field in fields {
        if is_known_field(&shared, &state.entries, field) {
            let value = field_value(
                &shared,
                &state.entries,
                &entry.employee,
                entry.changed_at,
                field,
            );
            object.insert(field.to_owned(), value);
        }
    }
    Json(Value::Object(object)).into_response()
}
