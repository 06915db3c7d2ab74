//! A Workday tenant: the OAuth token endpoint (refresh-token grant), staffing v6 `/workers`
//! (`limit` ≤ 100, `offset`, `total`, `includeTerminatedWorkers`, `search`), `/workers/{ID}`, and
//! a RaaS JSON report with configurable column aliases.
//!
//! Paths: `POST /ccx/oauth2/{tenant}/token`, `GET /ccx/api/staffing/v6/{tenant}/workers[/{ID}]`,
//! `GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`. Every request but the
//! token request needs `Authorization: Bearer <access token>`. Errors carry Workday's body
//! `{"error": "...", "errors": [{"error", "code", "field", "path"}]}` (OAuth errors the OAuth
//! `{"error", "error_description"}`).
//!
//! Terminated employees appear only with `includeTerminatedWorkers=true` (and in the report);
//! people on leave are listed as current. Workers are ordered by employee ID.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use super::control::{CallCounts, Control, FaultRates, HrisFault, Server};
use super::roster::Roster;
use crate::operator_hris::{
    ColumnMapping, Employee, EmploymentStatus, HrisError, HttpConfig, InvalidRowPolicy,
    WorkdayConfig, WorkdayCredentials, WorkdayReportConfig,
};
use crate::secret::{LocalSecretRef, Secret};

/// Route names the counters use.
pub const ROUTE_TOKEN: &str = "POST /token";
pub const ROUTE_WORKERS: &str = "GET /workers";
pub const ROUTE_WORKER: &str = "GET /workers/{ID}";
pub const ROUTE_REPORT: &str = "GET /customreport2/{owner}/{report}";

const TOKEN_PATH: &str = "/ccx/oauth2/{tenant}/token";
const WORKERS_PATH: &str = "/ccx/api/staffing/v6/{tenant}/workers";
const WORKER_PATH: &str = "/ccx/api/staffing/v6/{tenant}/workers/{id}";
const REPORT_PATH: &str = "/ccx/service/customreport2/{tenant}/{owner}/{report}";

/// Workday's page size when `limit` is not given, and the most it allows.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// Column aliases of the simulated report (author-defined in a real tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportColumns {
    pub employee_id: String,
    pub full_name: String,
    pub email: String,
    pub manager_id: String,
    pub manager_name: String,
    pub team_name: String,
    pub start_date: String,
    pub termination_date: String,
    pub location: String,
    pub employee_type: String,
    pub cost_center: String,
    /// `Active`, `On Leave` or `Terminated`.
    pub status: String,
}

impl Default for ReportColumns {
    fn default() -> Self {
        Self {
            employee_id: "Employee_ID".into(),
            full_name: "Full_Name".into(),
            email: "Email".into(),
            manager_id: "Manager_ID".into(),
            manager_name: "Manager_Name".into(),
            team_name: "Team_Name".into(),
            start_date: "Start_Date".into(),
            termination_date: "Termination_Date".into(),
            location: "Location".into(),
            employee_type: "Employee_Type".into(),
            cost_center: "Cost_Center".into(),
            status: "Worker_Status".into(),
        }
    }
}

/// How the simulated tenant behaves.
#[derive(Clone, Debug)]
pub struct WorkdaySimConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub report_owner: String,
    pub report_name: String,
    pub report_columns: ReportColumns,
    /// Query parameter that limits the report to one employee ID.
    pub employee_prompt: String,
    /// Delay before each answer.
    pub latency: Duration,
    pub faults: FaultRates,
    /// Added to every listing's `total`, so the listing claims more workers than it serves.
    pub total_overstatement: u64,
    pub seed: u64,
}

impl Default for WorkdaySimConfig {
    fn default() -> Self {
        Self {
            tenant: "acme".into(),
            client_id: "opal-operator-client".into(),
            client_secret: "workday-sim-client-secret".into(),
            refresh_token: "workday-sim-refresh-token".into(),
            report_owner: "isu_opal".into(),
            report_name: "Opal_Worker_Dates".into(),
            report_columns: ReportColumns::default(),
            employee_prompt: "Employee_ID".into(),
            latency: Duration::ZERO,
            faults: FaultRates::default(),
            total_overstatement: 0,
            seed: 0x5EED,
        }
    }
}

/// The Workday ID (WID, 32 hex digits) the simulator gives an employee ID.
pub fn workday_id(employee_id: &str) -> String {
    let hash = |seed: u64| {
        employee_id.bytes().fold(seed, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x8422_2325_cbf2_9ce4)
    )
}

#[derive(Debug)]
struct Shared {
    roster: Roster,
    config: WorkdaySimConfig,
    total_overstatement: AtomicU64,
    control: Control,
    tokens: Mutex<HashSet<String>>,
    issued: AtomicU64,
}

impl Shared {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running Workday simulator; stops when dropped.
#[derive(Debug)]
pub struct WorkdaySim {
    server: Server,
    shared: Arc<Shared>,
}

fn workday_error(status: StatusCode, message: &str) -> Response {
    workday_field_error(status, message, "")
}

fn workday_field_error(status: StatusCode, message: &str, field: &str) -> Response {
    (
        status,
        Json(json!({
            "error": message,
            "errors": [{"error": message, "code": status.as_u16().to_string(), "field": field, "path": ""}],
        })),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// An error answer in Workday's format, rendered when returned from a handler.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
    field: &'static str,
}

impl Rejection {
    fn bad_parameter(field: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            field,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        workday_field_error(self.status, &self.message, self.field)
    }
}

impl WorkdaySim {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(
        employees: Vec<Employee>,
        config: WorkdaySimConfig,
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
        config: WorkdaySimConfig,
    ) -> std::io::Result<Self> {
        let route_names = HashMap::from([
            (TOKEN_PATH.to_owned(), ROUTE_TOKEN),
            (WORKERS_PATH.to_owned(), ROUTE_WORKERS),
            (WORKER_PATH.to_owned(), ROUTE_WORKER),
            (REPORT_PATH.to_owned(), ROUTE_REPORT),
        ]);
        let shared = Arc::new(Shared {
            roster: Roster::new(employees),
            total_overstatement: AtomicU64::new(config.total_overstatement),
            control: Control::new(
                config.seed,
                config.faults.clone(),
                config.latency,
                route_names,
                workday_error,
            ),
            config,
            tokens: Mutex::new(HashSet::new()),
            issued: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .route(WORKERS_PATH, get(list_workers))
            .route(WORKER_PATH, get(get_worker))
            .route(REPORT_PATH, get(report))
            .fallback(|| async { workday_error(StatusCode::NOT_FOUND, "resource not found") })
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

    /// The tenant host URL, e.g. `http://127.0.0.1:41234` (the client's `baseUrl`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
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

    /// Makes listings claim `extra` more workers than they serve (0 restores honesty).
    pub fn set_total_overstatement(&self, extra: u64) {
        self.shared
            .total_overstatement
            .store(extra, Ordering::SeqCst);
    }

    /// Invalidates every access token issued so far, as an expiry would.
    pub fn expire_access_tokens(&self) {
        self.shared.tokens().clear();
    }

    /// The client credentials the token endpoint accepts (an error if the simulator was
    /// configured with an empty one).
    pub fn credentials(&self) -> Result<WorkdayCredentials, HrisError> {
        Ok(WorkdayCredentials {
            client_id: self.shared.config.client_id.clone(),
            client_secret: Secret::new(&self.shared.config.client_secret)?,
            refresh_token: Secret::new(&self.shared.config.refresh_token)?,
        })
    }

    /// A client configuration for this tenant, including the report with its column aliases
    /// (status included). Its credential references name the environment variables
    /// `WORKDAY_CLIENT_SECRET` and `WORKDAY_REFRESH_TOKEN`; pass [`Self::credentials`] to
    /// `WorkdaySource::new` instead of setting them.
    pub fn client_config(&self) -> WorkdayConfig {
        let config = &self.shared.config;
        let columns = &config.report_columns;
        WorkdayConfig {
            base_url: self.base_url(),
            tenant: config.tenant.clone(),
            staffing_version: "v6".into(),
            client_id: config.client_id.clone(),
            client_secret: LocalSecretRef::Env("WORKDAY_CLIENT_SECRET".into()),
            refresh_token: LocalSecretRef::Env("WORKDAY_REFRESH_TOKEN".into()),
            page_size: 100,
            max_employees: 2_000_000,
            report: Some(WorkdayReportConfig {
                owner: config.report_owner.clone(),
                name: config.report_name.clone(),
                columns: ColumnMapping {
                    id: Some(columns.employee_id.clone()),
                    email: Some(columns.email.clone()),
                    full_name: Some(columns.full_name.clone()),
                    department: Some(columns.team_name.clone()),
                    location: Some(columns.location.clone()),
                    cost_center: Some(columns.cost_center.clone()),
                    employment_type: Some(columns.employee_type.clone()),
                    manager_id: Some(columns.manager_id.clone()),
                    status: Some(columns.status.clone()),
                    start_date: Some(columns.start_date.clone()),
                    termination_date: Some(columns.termination_date.clone()),
                    ..ColumnMapping::default()
                },
                prompts: BTreeMap::new(),
                employee_prompt: Some(config.employee_prompt.clone()),
            }),
            invalid_rows: InvalidRowPolicy::Reject,
            http: HttpConfig::default(),
        }
    }
}

async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = shared.control.route_of(&request);
    shared.control.record_request(&route);
    let response = if route != ROUTE_TOKEN && !bearer_ok(&shared, &request) {
        workday_error(StatusCode::UNAUTHORIZED, "invalid or expired access token")
    } else if let Some(fault) = shared.control.draw_fault(&route) {
        fault
    } else {
        shared.control.delay().await;
        next.run(request).await
    };
    shared.control.record_answer(&route, response.status());
    response
}

fn bearer_ok(shared: &Shared, request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && shared.tokens().contains(token.trim())
        })
}

fn tenant_ok(shared: &Shared, tenant: &str) -> Result<(), Rejection> {
    if tenant == shared.config.tenant {
        Ok(())
    } else {
        Err(Rejection {
            status: StatusCode::NOT_FOUND,
            message: format!("tenant {tenant} not found"),
            field: "",
        })
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(rejection) = tenant_ok(&shared, &tenant) {
        return rejection.into_response();
    }
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only the refresh_token grant is enabled for this client",
        );
    }
    if field("client_id") != shared.config.client_id
        || field("client_secret") != shared.config.client_secret
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    }
    if field("refresh_token") != shared.config.refresh_token {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "invalid refresh token",
        );
    }
    let number = shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let access_token = format!("wd-sim-access-{number}-{}", workday_id(&number.to_string()));
    shared.tokens().insert(access_token.clone());
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "refresh_token": shared.config.refresh_token,
    }))
    .into_response()
}

fn parse_limit(query: &HashMap<String, String>) -> Result<usize, Rejection> {
    match query.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(Rejection::bad_parameter(
                "limit",
                format!("limit must be an integer between 1 and {MAX_LIMIT}, got {text:?}"),
            )),
        },
    }
}

fn parse_offset(query: &HashMap<String, String>) -> Result<usize, Rejection> {
    match query.get("offset") {
        None => Ok(0),
        Some(text) => text.parse::<usize>().map_err(|_| {
            Rejection::bad_parameter(
                "offset",
                format!("offset must be a non-negative integer, got {text:?}"),
            )
        }),
    }
}

fn parse_bool(query: &HashMap<String, String>, name: &'static str) -> Result<bool, Rejection> {
    match query.get(name).map(|text| text.to_ascii_lowercase()) {
        None => Ok(false),
        Some(text) if text == "true" => Ok(true),
        Some(text) if text == "false" => Ok(false),
        Some(text) => Err(Rejection::bad_parameter(
            name,
            format!("{name} must be true or false, got {text:?}"),
        )),
    }
}

fn full_name(employee: &Employee) -> String {
    format!("{} {}", employee.first_name, employee.last_name)
        .trim()
        .to_owned()
}

fn reference(id: String, descriptor: &Option<String>) -> Option<Value> {
    descriptor
        .as_ref()
        .map(|descriptor| json!({"id": id, "descriptor": descriptor}))
}

/// The staffing v6 worker representation; empty values are left out, as Workday does.
fn worker_json(employee: &Employee, base: &str) -> Value {
    let wid = workday_id(&employee.id);
    let mut job = serde_json::Map::new();
    job.insert(
        "id".into(),
        json!(workday_id(&format!("job-{}", employee.id))),
    );
    if let Some(title) = &employee.title {
        job.insert("descriptor".into(), json!(title));
        job.insert("businessTitle".into(), json!(title));
        job.insert(
            "jobProfile".into(),
            json!({"id": workday_id(&format!("profile-{title}")), "descriptor": title}),
        );
    }
    if let Some(org) = reference(
        workday_id(&format!(
            "org-{}",
            employee.department.as_deref().unwrap_or_default()
        )),
        &employee.department,
    ) {
        job.insert("supervisoryOrganization".into(), org);
    }
    if let Some(location) = &employee.location {
        let mut value =
            json!({"id": workday_id(&format!("location-{location}")), "descriptor": location});
        if let Some(country) = employee.custom.get("country") {
            value["country"] = json!({"descriptor": country});
        }
        job.insert("location".into(), value);
    }
    let mut worker = json!({
        "id": wid,
        "descriptor": full_name(employee),
        "href": format!("{base}/{wid}"),
        "workerId": employee.id,
        "workerType": {
            "id": workday_id(&format!("type-{}", employee.employment_type.as_deref().unwrap_or("Employee"))),
            "descriptor": employee.employment_type.as_deref().unwrap_or("Employee"),
        },
        "primaryJob": Value::Object(job),
    });
    let mut person = json!({"id": workday_id(&format!("person-{}", employee.id))});
    if !employee.email.is_empty() {
        person["email"] = json!(employee.email);
    }
    worker["person"] = person;
    worker
}

fn search_matches(employee: &Employee, search: &str) -> bool {
    let name = full_name(employee).to_lowercase();
    let worker_id = employee.id.to_lowercase();
    search
        .split_whitespace()
        .map(str::to_lowercase)
        .any(|term| name.contains(&term) || worker_id.contains(&term))
}

async fn list_workers(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let parsed = tenant_ok(&shared, &tenant).and_then(|()| {
        Ok((
            parse_limit(&query)?,
            parse_offset(&query)?,
            parse_bool(&query, "includeTerminatedWorkers")?,
        ))
    });
    let (limit, offset, include_terminated) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    let search = query
        .get("search")
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty());
    let base = format!("/ccx/api/staffing/v6/{tenant}/workers");
    let (total, data) = {
        let state = shared.roster.lock();
        let matching: Vec<&Employee> = state
            .entries
            .values()
            .map(|entry| &entry.employee)
            .filter(|employee| {
                include_terminated || employee.status != EmploymentStatus::Terminated
            })
            .filter(|employee| search.is_none_or(|search| search_matches(employee, search)))
            .collect();
        let data: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|employee| worker_json(employee, &base))
            .collect();
        (matching.len() as u64, data)
    };
    let total = total + shared.total_overstatement.load(Ordering::SeqCst);
    Json(json!({"total": total, "data": data})).into_response()
}

async fn get_worker(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
) -> Response {
    if let Err(rejection) = tenant_ok(&shared, &tenant) {
        return rejection.into_response();
    }
    let found = shared
        .roster
        .lock()
        .entries
        .values()
        .find(|entry| workday_id(&entry.employee.id) == id)
        .map(|entry| entry.employee.clone());
    match found {
        Some(employee) => Json(worker_json(
            &employee,
            &format!("/ccx/api/staffing/v6/{tenant}/workers"),
        ))
        .into_response(),
        None => workday_error(StatusCode::NOT_FOUND, &format!("worker {id} not found")),
    }
}

fn status_text(status: EmploymentStatus) -> &'static str {
    match status {
        EmploymentStatus::Active => "Active",
        EmploymentStatus::OnLeave => "On Leave",
        EmploymentStatus::Terminated => "Terminated",
    }
}

async fn report(
    State(shared): State<Arc<Shared>>,
    Path((tenant, owner, name)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(rejection) = tenant_ok(&shared, &tenant) {
        return rejection.into_response();
    }
    let config = &shared.config;
    if owner != config.report_owner || name != config.report_name {
        return workday_error(
            StatusCode::NOT_FOUND,
            &format!("report {owner}/{name} not found or not exposed as a web service"),
        );
    }
    if !query
        .get("format")
        .is_some_and(|format| format.eq_ignore_ascii_case("json"))
    {
        // XML is RaaS's default output.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            format!("<wd:Report_Data xmlns:wd=\"urn:com.workday.report/{name}\"/>"),
        )
            .into_response();
    }
    let only = query.get(&config.employee_prompt);
    let columns = &config.report_columns;
    let state = shared.roster.lock();
    let entries: Vec<Value> = state
        .entries
        .values()
        .map(|entry| &entry.employee)
        .filter(|employee| only.is_none_or(|id| *id == employee.id))
        .map(|employee| {
            let manager = employee
                .manager_id
                .as_ref()
                .and_then(|id| state.entries.get(id))
                .map(|entry| &entry.employee);
            let mut row = serde_json::Map::new();
            let mut put = |column: &str, value: Option<String>| {
                if let Some(value) = value.filter(|value| !value.is_empty()) {
                    row.insert(column.to_owned(), json!(value));
                }
            };
            put(&columns.employee_id, Some(employee.id.clone()));
            put(&columns.full_name, Some(full_name(employee)));
            put(&columns.email, Some(employee.email.clone()));
            put(&columns.manager_id, employee.manager_id.clone());
            put(&columns.manager_name, manager.map(full_name));
            put(&columns.team_name, employee.department.clone());
            put(
                &columns.start_date,
                employee.start_date.map(|d| d.to_string()),
            );
            put(
                &columns.termination_date,
                employee.termination_date.map(|d| d.to_string()),
            );
            put(&columns.location, employee.location.clone());
            put(&columns.employee_type, employee.employment_type.clone());
            put(&columns.cost_center, employee.cost_center.clone());
            put(
                &columns.status,
                Some(status_text(employee.status).to_owned()),
            );
            for (name, value) in &employee.custom {
                put(name, Some(value.clone()));
            }
            Value::Object(row)
        })
        .collect();
    Json(json!({"Report_Entry": entries})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workday_ids_are_stable_hex_and_distinct() {
        let wid = workday_id("1001");
        assert_eq!(wid.len(), 32);
        assert!(wid.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(wid, workday_id("1001"));
        assert_ne!(wid, workday_id("1002"));
    }
}
