//! ServiceNow Table API simulator for task tables (`incident`, `sc_task`, …).
//!
//! * `POST /api/now/table/{table}` → 201 + `Location`, `{"result": {...}}` with every value a
//!   string, `sys_id`, `number`, `state`, `active`, timestamps;
//! * `GET /api/now/table/{table}` with `sysparm_query` (`field=value`, `!=`, `LIKE`,
//!   `STARTSWITH`, joined by `^`, `ORDERBY`/`ORDERBYDESC`), `sysparm_limit`, `sysparm_offset`,
//!   `sysparm_fields`, `sysparm_display_value`, `sysparm_exclude_reference_link`; `X-Total-Count`;
//!   an empty result is `200 []` (and `404` on the `/api/now/v1/` path, as in Table API v1);
//! * `GET`/`PUT`/`PATCH`/`DELETE /api/now/table/{table}/{sys_id}`.
//!
//! `work_notes` and `comments` are journal fields: writes append an entry; reads show the
//! entries only with display values (`sysparm_display_value=true|all`), else `""`. Reference
//! fields render as `{"link", "value"}` unless links are excluded. Closing states make the
//! record inactive. Basic auth; errors are `{"error": {"message", "detail"}, "status": "failure"}`.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use super::server::{SimServer, query_get, query_pairs, state};

const JOURNAL_FIELDS: &[&str] = &["work_notes", "comments"];
const REFERENCE_FIELDS: &[(&str, &str)] = &[
    ("caller_id", "sys_user"),
    ("assigned_to", "sys_user"),
    ("opened_by", "sys_user"),
    ("assignment_group", "sys_user_group"),
];

/// Instance settings.
#[derive(Clone, Debug)]
pub struct ServiceNowSimConfig {
    pub username: String,
    pub password: String,
}

impl Default for ServiceNowSimConfig {
    fn default() -> Self {
        Self {
            username: "opal.operator".to_owned(),
            password: "sim-servicenow-password".to_owned(),
        }
    }
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub field: String,
    pub text: String,
    pub created_on: String,
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRecord {
    pub table: String,
    pub sys_id: String,
    pub fields: BTreeMap<String, String>,
    pub journal: Vec<JournalEntry>,
}

impl SimRecord {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// Journal entries of one field (`work_notes`, `comments`), oldest first.
    pub fn entries(&self, field: &str) -> Vec<&str> {
        self.journal
            .iter()
            .filter(|entry| entry.field == field)
            .map(|entry| entry.text.as_str())
            .collect()
    }
}

#[derive(Debug, Default)]
struct Instance {
    config: Option<ServiceNowSimConfig>,
    records: Vec<SimRecord>,
    next_number: BTreeMap<String, u64>,
    clock: u64,
    base_url: String,
}

type Shared = Arc<Mutex<Instance>>;

/// The running simulator. Derefs to [`SimServer`].
#[derive(Debug)]
pub struct ServiceNowSim {
    server: SimServer,
    instance: Shared,
}

impl Deref for ServiceNowSim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl ServiceNowSim {
    pub async fn start(config: ServiceNowSimConfig) -> std::io::Result<Self> {
        let instance = Arc::new(Mutex::new(Instance {
            config: Some(config),
            ..Instance::default()
        }));
        let router = Router::new()
            .route("/api/now/table/{table}", get(list).post(create))
            .route("/api/now/v1/table/{table}", get(list_v1).post(create))
            .route(
                "/api/now/table/{table}/{sys_id}",
                get(read).put(update).patch(update).delete(remove),
            )
            .route(
                "/api/now/v1/table/{table}/{sys_id}",
                get(read).put(update).patch(update).delete(remove),
            )
            .with_state(Arc::clone(&instance));
        let server = SimServer::start(router).await?;
        state(&instance).base_url = server.base_url();
        Ok(Self { server, instance })
    }

    /// The simulated `https://<instance>.service-now.com`.
    pub fn instance_url(&self) -> String {
        self.server.base_url()
    }

    /// Records of one table, oldest first.
    pub fn records(&self, table: &str) -> Vec<SimRecord> {
        state(&self.instance)
            .records
            .iter()
            .filter(|record| record.table == table)
            .cloned()
            .collect()
    }
}

fn failure(status: StatusCode, message: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

fn number_prefix(table: &str) -> &'static str {
    match table {
        "incident" => "INC",
        "sc_task" => "SCTASK",
        "sc_req_item" => "RITM",
        "sc_request" => "REQ",
        "change_request" => "CHG",
        "problem" => "PRB",
        _ => "TASK",
    }
}

/// States in which a record of `table` is no longer active.
fn closing_states(table: &str) -> &'static [&'static str] {
    match table {
        "incident" => &["6", "7", "8"],
        _ => &["3", "4", "7"],
    }
}

fn incident_state_label(state: &str) -> Option<&'static str> {
    Some(match state {
        "1" => "New",
        "2" => "In Progress",
        "3" => "On Hold",
        "6" => "Resolved",
        "7" => "Closed",
        "8" => "Canceled",
        _ => return None,
    })
}

impl Instance {
    /// The error answer for bad credentials, `Accept` or `Content-Type`, if any.
    fn refusal(&self, headers: &HeaderMap, method: &Method) -> Option<Response> {
        let expected = self.config.as_ref().map(|config| {
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", config.username, config.password))
        });
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        if given.is_none() || given != expected.as_deref() {
            return Some(failure(
                StatusCode::UNAUTHORIZED,
                "User Not Authenticated",
                "Required to provide Auth information",
            ));
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("*/*");
        if !(accept.contains("json") || accept.contains("*/*")) {
            return Some(failure(
                StatusCode::NOT_ACCEPTABLE,
                "Requested response format not supported",
                "Use Accept: application/json",
            ));
        }
        if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !content_type.starts_with("application/json") {
                return Some(failure(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type",
                    "Content-Type must be application/json",
                ));
            }
        }
        None
    }

    fn now(&mut self) -> String {
        self.clock += 1;
        let at = chrono::DateTime::from_timestamp(
            1_767_225_600 + i64::try_from(self.clock).unwrap_or(0),
            0,
        )
        .unwrap_or_default();
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// Applies client-writable fields; journal fields append entries.
    fn apply(&mut self, at: usize, values: &serde_json::Map<String, Value>, now: &str) {
        let username = self
            .config
            .as_ref()
            .map(|c| c.username.clone())
            .unwrap_or_default();
        let record = &mut self.records[at];
        for (field, value) in values {
            if field.starts_with("sys_") || field == "number" {
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if JOURNAL_FIELDS.contains(&field.as_str()) {
                if !text.is_empty() {
                    record.journal.push(JournalEntry {
                        field: field.clone(),
                        text,
                        created_on: format!("{now} - {username}"),
                    });
                }
            } else {
                record.fields.insert(field.clone(), text);
            }
        }
        let inactive = closing_states(&record.table).contains(&record.field("state"));
        record
            .fields
            .insert("active".to_owned(), (!inactive).to_string());
        record
            .fields
            .insert("sys_updated_on".to_owned(), now.to_owned());
        let count = record.field("sys_mod_count").parse::<u64>().unwrap_or(0) + 1;
        record
            .fields
            .insert("sys_mod_count".to_owned(), count.to_string());
    }

    fn render(&self, record: &SimRecord, params: &[(String, String)]) -> Value {
        let display = query_get(params, "sysparm_display_value").unwrap_or("false");
        let exclude_links = query_get(params, "sysparm_exclude_reference_link") == Some("true");
        let wanted: Option<Vec<&str>> = query_get(params, "sysparm_fields")
            .map(|list| list.split(',').map(str::trim).collect());
        let mut names: Vec<String> = record.fields.keys().cloned().collect();
        names.extend(JOURNAL_FIELDS.iter().map(|f| (*f).to_owned()));
        let mut out = serde_json::Map::new();
        for name in names {
            if wanted.as_ref().is_some_and(|w| !w.contains(&name.as_str())) {
                continue;
            }
            let raw = record.field(&name).to_owned();
            let value = if JOURNAL_FIELDS.contains(&name.as_str()) {
                let text: String = record
                    .journal
                    .iter()
                    .rev()
                    .filter(|entry| entry.field == name)
                    .map(|entry| {
                        let kind = if name == "work_notes" {
                            "Work notes"
                        } else {
                            "Additional comments"
                        };
                        format!("{} ({kind})\n{}\n\n", entry.created_on, entry.text)
                    })
                    .collect();
                match display {
                    "true" => json!(text),
                    "all" => json!({"display_value": text, "value": ""}),
                    _ => json!(""),
                }
            } else if let Some((_, table)) = REFERENCE_FIELDS.iter().find(|(f, _)| *f == name) {
                if raw.is_empty() || exclude_links || display == "true" {
                    json!(raw)
                } else {
                    json!({"link": format!("{}/api/now/table/{table}/{raw}", self.base_url), "value": raw})
                }
            } else if name == "state" && record.table == "incident" && display != "false" {
                let label = incident_state_label(&raw).unwrap_or(&raw).to_owned();
                if display == "all" {
                    json!({"display_value": label, "value": raw})
                } else {
                    json!(label)
                }
            } else {
                json!(raw)
            };
            out.insert(name, value);
        }
        Value::Object(out)
    }
}

/// One condition of an encoded query.
enum Condition {
    Equals(String, String),
    NotEquals(String, String),
    Like(String, String),
    StartsWith(String, String),
}

/// An encoded query: conditions, and the sort field with whether it is descending.
struct ParsedQuery {
    conditions: Vec<Condition>,
    order: Option<(String, bool)>,
}

fn parse_query(query: &str) -> Result<ParsedQuery, String> {
    let mut conditions = Vec::new();
    let mut order = None;
    for term in query.split('^').filter(|t| !t.is_empty()) {
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            order = Some((field.to_owned(), true));
        } else if let Some(field) = term.strip_prefix("ORDERBY") {
            order = Some((field.to_owned(), false));
        } else if let Some((field, value)) = term.split_once("!=") {
            conditions.push(Condition::NotEquals(field.to_owned(), value.to_owned()));
        } else if let Some((field, value)) = term.split_once("STARTSWITH") {
            conditions.push(Condition::StartsWith(field.to_owned(), value.to_owned()));
        } else if let Some((field, value)) = term.split_once("LIKE") {
            conditions.push(Condition::Like(field.to_owned(), value.to_owned()));
        } else if let Some((field, value)) = term.split_once('=') {
            conditions.push(Condition::Equals(field.to_owned(), value.to_owned()));
        } else {
            return Err(format!("Unsupported query term {term:?}"));
        }
    }
    Ok(ParsedQuery { conditions, order })
}

fn matches(record: &SimRecord, condition: &Condition) -> bool {
    match condition {
        Condition::Equals(field, value) => record.field(field) == value,
        Condition::NotEquals(field, value) => record.field(field) != value,
        Condition::Like(field, value) => record.field(field).contains(value.as_str()),
        Condition::StartsWith(field, value) => record.field(field).starts_with(value.as_str()),
    }
}

async fn create(
    State(instance): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut instance = state(&instance);
    if let Some(response) = instance.refusal(&headers, &Method::POST) {
        return response;
    }
    let values = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(values)) => values,
        _ => {
            return failure(
                StatusCode::BAD_REQUEST,
                "Exception while reading request",
                "The payload is not valid JSON.",
            );
        }
    };
    let now = instance.now();
    let number = instance.next_number.entry(table.clone()).or_insert(10_000);
    *number += 1;
    let number = format!("{}{:07}", number_prefix(&table), number);
    let sys_id = uuid::Uuid::new_v4().simple().to_string();
    let username = instance
        .config
        .as_ref()
        .map(|c| c.username.clone())
        .unwrap_or_default();
    let fields = BTreeMap::from([
        ("sys_id".to_owned(), sys_id.clone()),
        ("number".to_owned(), number),
        ("state".to_owned(), "1".to_owned()),
        ("active".to_owned(), "true".to_owned()),
        ("sys_class_name".to_owned(), table.clone()),
        ("sys_created_on".to_owned(), now.clone()),
        ("sys_created_by".to_owned(), username),
        ("opened_at".to_owned(), now.clone()),
        ("sys_mod_count".to_owned(), "-1".to_owned()),
    ]);
    instance.records.push(SimRecord {
        table: table.clone(),
        sys_id: sys_id.clone(),
        fields,
        journal: Vec::new(),
    });
    let at = instance.records.len() - 1;
    instance.apply(at, &values, &now);
    let params = query_pairs(uri.query());
    let result = instance.render(&instance.records[at], &params);
    let location = format!("{}/api/now/table/{table}/{sys_id}", instance.base_url);
    let mut response = (StatusCode::CREATED, axum::Json(json!({"result": result}))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn list_any(
    instance: &Shared,
    table: &str,
    headers: &HeaderMap,
    uri: &Uri,
    v1: bool,
) -> Response {
    let instance = state(instance);
    if let Some(response) = instance.refusal(headers, &Method::GET) {
        return response;
    }
    let params = query_pairs(uri.query());
    let ParsedQuery { conditions, order } =
        match parse_query(query_get(&params, "sysparm_query").unwrap_or_default()) {
            Ok(parsed) => parsed,
            Err(detail) => return failure(StatusCode::BAD_REQUEST, "Invalid query", &detail),
        };
    let number = |name: &str, default: usize| {
        query_get(&params, name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let (limit, offset) = (number("sysparm_limit", 10_000), number("sysparm_offset", 0));
    let mut found: Vec<&SimRecord> = instance
        .records
        .iter()
        .filter(|record| record.table == table && conditions.iter().all(|c| matches(record, c)))
        .collect();
    if let Some((field, descending)) = &order {
        found.sort_by(|a, b| a.field(field).cmp(b.field(field)));
        if *descending {
            found.reverse();
        }
    }
    let total = found.len();
    let page: Vec<Value> = found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|record| instance.render(record, &params))
        .collect();
    if v1 && page.is_empty() {
        return failure(
            StatusCode::NOT_FOUND,
            "No Record found",
            "Records matching query not found. Check query parameter or offset parameter",
        );
    }
    let mut response = axum::Json(json!({"result": page})).into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    response
}

async fn list(
    State(instance): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list_any(&instance, &table, &headers, &uri, false).await
}

async fn list_v1(
    State(instance): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list_any(&instance, &table, &headers, &uri, true).await
}

fn no_record() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

async fn read(
    State(instance): State<Shared>,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let instance = state(&instance);
    if let Some(response) = instance.refusal(&headers, &Method::GET) {
        return response;
    }
    let Some(record) = instance
        .records
        .iter()
        .find(|r| r.table == table && r.sys_id == sys_id)
    else {
        return no_record();
    };
    let params = query_pairs(uri.query());
    axum::Json(json!({"result": instance.render(record, &params)})).into_response()
}

async fn update(
    State(instance): State<Shared>,
    method: Method,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut instance = state(&instance);
    if let Some(response) = instance.refusal(&headers, &method) {
        return response;
    }
    let Some(at) = instance
        .records
        .iter()
        .position(|r| r.table == table && r.sys_id == sys_id)
    else {
        return no_record();
    };
    let values = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(values)) => values,
        _ => {
            return failure(
                StatusCode::BAD_REQUEST,
                "Exception while reading request",
                "The payload is not valid JSON.",
            );
        }
    };
    let now = instance.now();
    instance.apply(at, &values, &now);
    let params = query_pairs(uri.query());
    axum::Json(json!({"result": instance.render(&instance.records[at], &params)})).into_response()
}

async fn remove(
    State(instance): State<Shared>,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut instance = state(&instance);
    if let Some(response) = instance.refusal(&headers, &Method::DELETE) {
        return response;
    }
    let before = instance.records.len();
    instance
        .records
        .retain(|r| !(r.table == table && r.sys_id == sys_id));
    if instance.records.len() == before {
        return no_record();
    }
    StatusCode::NO_CONTENT.into_response()
}
