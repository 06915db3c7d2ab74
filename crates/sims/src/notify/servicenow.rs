//! ServiceNow Table API simulator for task tables (`incident`, `sc_task`, `sc_req_item`, …),
//! their approval records and the users who decide them.
//!
//! * `POST /api/now/table/{table}` → 201 + `Location`, `{"result": {...}}` with every value a
//!   string, `sys_id`, `number`, `state`, `active`, timestamps;
//! * `GET /api/now/table/{table}` with `sysparm_query` (`field=value`, `!=`, `LIKE`,
//!   `STARTSWITH`, joined by `^`; `ORDERBY`/`ORDERBYDESC`, several of them sorting by the first,
//!   then the next), `sysparm_limit` (capped by [`ServiceNowSim::set_page_limit`]),
//!   `sysparm_offset`, `sysparm_fields`, `sysparm_display_value`,
//!   `sysparm_exclude_reference_link`; `X-Total-Count` (all matches, whatever the page); an empty
//!   result is `200 []` (and `404` on the `/api/now/v1/` path, as in Table API v1);
//! * `GET`/`PUT`/`PATCH`/`DELETE /api/now/table/{table}/{sys_id}`.
//!
//! `work_notes` and `comments` are journal fields: writes append an entry; reads show the
//! entries only with display values (`sysparm_display_value=true|all`), else `""`. Reference
//! fields (`caller_id`, `assigned_to`, `opened_by`, `assignment_group`, `approver`,
//! `sysapproval`) render as `{"link", "value"}` unless links are excluded. Closing states make
//! the record inactive. Basic auth; errors are `{"error": {"message", "detail"}, "status":
//! "failure"}`.
//!
//! Timestamps (`sys_created_on`, `sys_updated_on`) are `YYYY-MM-DD HH:MM:SS` from a simulated
//! clock that starts at 2026-01-01 00:00:00 and moves one second per change, so every change is
//! newer than the previous one; the records one create makes (a task and its approvals) share
//! its second. Sorting is stable: records equal in the sort fields keep their creation order.
//!
//! # Approvals
//!
//! [`ServiceNowSimConfig::approvers`] are seeded as `sys_user` records (`sys_id`, `user_name`,
//! `email`, `name`) at start. A record created in one of
//! [`ServiceNowSimConfig::approval_tables`] (e.g. `sc_req_item`) gets one `sysapproval_approver`
//! record per configured approver (`state=requested`, `approver=<user sys_id>`,
//! `sysapproval=<task sys_id>`, `source_table`, `document_id`), and its own `approval` field is
//! set to `requested` (`not requested` when no approvers are configured and the client set
//! none). Approval states are `requested`, `approved`, `rejected`, `cancelled`,
//! `not_required`; tests decide with [`ServiceNowSim::decide_approval`], which also settles the
//! task's `approval` ("anyone approves": `approved` as soon as one approval is approved, else
//! `rejected` once one is rejected), and add arbitrary records with
//! [`ServiceNowSim::add_approval`].

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
    ("approver", "sys_user"),
    ("sysapproval", "task"),
];

/// The table of approval records.
pub const APPROVAL_TABLE: &str = "sysapproval_approver";

/// Instance settings.
#[derive(Clone, Debug)]
pub struct ServiceNowSimConfig {
    pub username: String,
    pub password: String,
    /// Users seeded as `sys_user` records; each approves every new record of the approval
    /// tables. None by default.
    pub approvers: Vec<SimSnUser>,
    /// Tables whose new records get approval records (e.g. `sc_req_item`). None by default.
    pub approval_tables: Vec<String>,
}

impl Default for ServiceNowSimConfig {
    fn default() -> Self {
        Self {
            username: "opal.operator".to_owned(),
            password: "sim-servicenow-password".to_owned(),
            approvers: Vec::new(),
            approval_tables: Vec::new(),
        }
    }
}

/// A `sys_user` of the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSnUser {
    /// Kept as given (ServiceNow's are 32 hexadecimal characters).
    pub sys_id: String,
    pub user_name: String,
    pub email: String,
    pub name: String,
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
    /// Largest `sysparm_limit` honoured, if capped.
    page_limit: Option<usize>,
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
        let mut seeded = Instance::default();
        let now = seeded.now();
        for user in &config.approvers {
            seeded.records.push(SimRecord {
                table: "sys_user".to_owned(),
                sys_id: user.sys_id.clone(),
                fields: BTreeMap::from([
                    ("sys_id".to_owned(), user.sys_id.clone()),
                    ("user_name".to_owned(), user.user_name.clone()),
                    ("email".to_owned(), user.email.clone()),
                    ("name".to_owned(), user.name.clone()),
                    ("active".to_owned(), "true".to_owned()),
                    ("sys_class_name".to_owned(), "sys_user".to_owned()),
                    ("sys_created_on".to_owned(), now.clone()),
                    ("sys_created_by".to_owned(), "system".to_owned()),
                    ("sys_updated_on".to_owned(), now.clone()),
                    ("sys_mod_count".to_owned(), "0".to_owned()),
                ]),
                journal: Vec::new(),
            });
        }
        seeded.config = Some(config);
        let instance = Arc::new(Mutex::new(seeded));
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

    /// The approval records of one task, oldest first.
    pub fn approvals(&self, task_sys_id: &str) -> Vec<SimRecord> {
        state(&self.instance)
            .records
            .iter()
            .filter(|record| is_approval_of(record, task_sys_id))
            .cloned()
            .collect()
    }

    /// Caps `sysparm_limit` of every list request at `limit` (at least 1), as an instance's
    /// maximum page size does, to make clients page; `None` lifts the cap.
    pub fn set_page_limit(&self, limit: Option<usize>) {
        state(&self.instance).page_limit = limit.map(|limit| limit.max(1));
    }

    /// `approver_sys_id` approves (or rejects) the task `task_sys_id`: the approval's `state`
    /// becomes `approved` (`rejected`), its `sys_updated_on` moves on, and the task's `approval`
    /// is settled ("anyone approves": `approved` when any approval is approved, else `rejected`
    /// when any is rejected). When the approver has several approval records on the task, the
    /// newest still `requested` one is decided, else the newest. False when the approver has
    /// none.
    pub fn decide_approval(&self, task_sys_id: &str, approver_sys_id: &str, approve: bool) -> bool {
        let mut instance = state(&self.instance);
        let mine: Vec<usize> = instance
            .records
            .iter()
            .enumerate()
            .filter(|(_, record)| {
                is_approval_of(record, task_sys_id) && record.field("approver") == approver_sys_id
            })
            .map(|(at, _)| at)
            .collect();
        let pending = mine
            .iter()
            .rev()
            .find(|&&at| instance.records[at].field("state") == "requested");
        let Some(&at) = pending.or(mine.last()) else {
            return false;
        };
        let now = instance.now();
        let decision = if approve { "approved" } else { "rejected" };
        touch(&mut instance.records[at], &[("state", decision)], &now);
        instance.settle(task_sys_id, &now);
        true
    }

    /// Adds an approval record of `task_sys_id` for `approver_sys_id` in any `state` (unknown
    /// ones too), one second after the last change; returns its sys_id. The task need not exist
    /// and its `approval` field is left alone.
    pub fn add_approval(
        &self,
        task_sys_id: &str,
        approver_sys_id: &str,
        state_value: &str,
    ) -> String {
        let mut instance = state(&self.instance);
        let now = instance.now();
        let source_table = instance
            .records
            .iter()
            .find(|record| record.sys_id == task_sys_id && record.table != APPROVAL_TABLE)
            .map(|record| record.table.clone())
            .unwrap_or_default();
        instance.push_approval(
            task_sys_id,
            &source_table,
            approver_sys_id,
            state_value,
            &now,
        )
    }
}

fn is_approval_of(record: &SimRecord, task_sys_id: &str) -> bool {
    record.table == APPROVAL_TABLE && record.field("sysapproval") == task_sys_id
}

/// Sets system-maintained `fields` of a record changed at `now`.
fn touch(record: &mut SimRecord, fields: &[(&str, &str)], now: &str) {
    for (field, value) in fields {
        record
            .fields
            .insert((*field).to_owned(), (*value).to_owned());
    }
    record
        .fields
        .insert("sys_updated_on".to_owned(), now.to_owned());
    let count = record.field("sys_mod_count").parse::<u64>().unwrap_or(0) + 1;
    record
        .fields
        .insert("sys_mod_count".to_owned(), count.to_string());
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

    /// Adds an approval record; returns its sys_id.
    fn push_approval(
        &mut self,
        task_sys_id: &str,
        source_table: &str,
        approver_sys_id: &str,
        state_value: &str,
        now: &str,
    ) -> String {
        let sys_id = uuid::Uuid::new_v4().simple().to_string();
        let username = self
            .config
            .as_ref()
            .map(|c| c.username.clone())
            .unwrap_or_default();
        let fields = BTreeMap::from([
            ("sys_id".to_owned(), sys_id.clone()),
            ("state".to_owned(), state_value.to_owned()),
            ("approver".to_owned(), approver_sys_id.to_owned()),
            ("sysapproval".to_owned(), task_sys_id.to_owned()),
            ("document_id".to_owned(), task_sys_id.to_owned()),
            ("source_table".to_owned(), source_table.to_owned()),
            ("sys_class_name".to_owned(), APPROVAL_TABLE.to_owned()),
            ("sys_created_on".to_owned(), now.to_owned()),
            ("sys_created_by".to_owned(), username),
            ("sys_updated_on".to_owned(), now.to_owned()),
            ("sys_mod_count".to_owned(), "0".to_owned()),
        ]);
        self.records.push(SimRecord {
            table: APPROVAL_TABLE.to_owned(),
            sys_id: sys_id.clone(),
            fields,
            journal: Vec::new(),
        });
        sys_id
    }

    /// After a create in an approval table: one requested approval per configured approver,
    /// and the record's `approval` field.
    fn open_approvals(&mut self, at: usize, now: &str) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let (table, sys_id) = (
            self.records[at].table.clone(),
            self.records[at].sys_id.clone(),
        );
        if !config.approval_tables.contains(&table) {
            return;
        }
        for approver in &config.approvers {
            self.push_approval(&sys_id, &table, &approver.sys_id, "requested", now);
        }
        let record = &mut self.records[at];
        if !config.approvers.is_empty() {
            record
                .fields
                .insert("approval".to_owned(), "requested".to_owned());
        } else if record.field("approval").is_empty() {
            record
                .fields
                .insert("approval".to_owned(), "not requested".to_owned());
        }
    }

    /// Sets the task's `approval` from its approval records: `approved` when any is approved,
    /// else `rejected` when any is rejected; otherwise unchanged.
    fn settle(&mut self, task_sys_id: &str, now: &str) {
        let states: Vec<&str> = self
            .records
            .iter()
            .filter(|record| is_approval_of(record, task_sys_id))
            .map(|record| record.field("state"))
            .collect();
        let outcome = if states.contains(&"approved") {
            "approved"
        } else if states.contains(&"rejected") {
            "rejected"
        } else {
            return;
        };
        let Some(task) = self
            .records
            .iter_mut()
            .find(|record| record.sys_id == task_sys_id && record.table != APPROVAL_TABLE)
        else {
            return;
        };
        if task.field("approval") != outcome {
            touch(task, &[("approval", outcome)], now);
        }
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

/// An encoded query: conditions, and the sort fields (first sorts first) with whether each is
/// descending.
struct ParsedQuery {
    conditions: Vec<Condition>,
    order: Vec<(String, bool)>,
}

fn parse_query(query: &str) -> Result<ParsedQuery, String> {
    let mut conditions = Vec::new();
    let mut order = Vec::new();
    for term in query.split('^').filter(|t| !t.is_empty()) {
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            order.push((field.to_owned(), true));
        } else if let Some(field) = term.strip_prefix("ORDERBY") {
            order.push((field.to_owned(), false));
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
    instance.open_approvals(at, &now);
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
    let limit = instance.page_limit.map_or(limit, |cap| limit.min(cap));
    let mut found: Vec<&SimRecord> = instance
        .records
        .iter()
        .filter(|record| record.table == table && conditions.iter().all(|c| matches(record, c)))
        .collect();
    // Stable: records equal in every sort field keep their creation order.
    found.sort_by(|a, b| {
        order
            .iter()
            .map(|(field, descending)| {
                let ordering = a.field(field).cmp(b.field(field));
                if *descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: &str = "5137153cc611227c000bbd1bd8cd2005";
    const BEN: &str = "46d44a23a9fe19810012d100cca80666";
    const CAI: &str = "a8f98bb0eb32010045e1a5115206fe3a";

    fn user(sys_id: &str, user_name: &str) -> SimSnUser {
        SimSnUser {
            sys_id: sys_id.to_owned(),
            user_name: user_name.to_owned(),
            email: format!("{user_name}@example.com"),
            name: user_name.to_uppercase(),
        }
    }

    async fn sim() -> ServiceNowSim {
        ServiceNowSim::start(ServiceNowSimConfig {
            approvers: vec![user(ANA, "ana"), user(BEN, "ben"), user(CAI, "cai")],
            approval_tables: vec!["sc_req_item".to_owned()],
            ..ServiceNowSimConfig::default()
        })
        .await
        .expect("sim")
    }

    fn headers() -> HeaderMap {
        let defaults = ServiceNowSimConfig::default();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", defaults.username, defaults.password));
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (header::AUTHORIZATION, format!("Basic {basic}")),
            (header::ACCEPT, "application/json".to_owned()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).expect("header"));
        }
        headers
    }

    fn uri(table: &str, query: &str) -> Uri {
        format!("/api/now/table/{table}?{query}")
            .parse()
            .expect("uri")
    }

    async fn json_of(response: Response) -> (StatusCode, HeaderMap, Value) {
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&body).expect("json body"),
        )
    }

    /// `POST /api/now/table/{table}`; the new record's sys_id.
    async fn post(sim: &ServiceNowSim, table: &str, body: Value) -> String {
        let response = create(
            State(Arc::clone(&sim.instance)),
            Path(table.to_owned()),
            headers(),
            uri(table, "sysparm_exclude_reference_link=true"),
            Bytes::from(body.to_string()),
        )
        .await;
        let (status, _, body) = json_of(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["result"]["sys_id"]
            .as_str()
            .expect("sys_id")
            .to_owned()
    }

    /// `GET /api/now/table/{table}?{query}`: the result list and `X-Total-Count`.
    async fn get(sim: &ServiceNowSim, table: &str, query: &str) -> (Vec<Value>, usize) {
        let response = list_any(&sim.instance, table, &headers(), &uri(table, query), false).await;
        let (status, headers, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let total = headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("x-total-count");
        (body["result"].as_array().cloned().expect("list"), total)
    }

    fn column<'a>(rows: &'a [Value], field: &str) -> Vec<&'a str> {
        rows.iter()
            .map(|row| row[field].as_str().expect("string field"))
            .collect()
    }

    fn is_timestamp(value: &str) -> bool {
        chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok()
    }

    #[tokio::test]
    async fn servicenow_seeds_the_approvers_as_users() {
        let sim = sim().await;
        let users = sim.records("sys_user");
        assert_eq!(
            users.iter().map(|u| u.sys_id.as_str()).collect::<Vec<_>>(),
            [ANA, BEN, CAI]
        );
        assert_eq!(users[1].field("user_name"), "ben");
        assert_eq!(users[1].field("email"), "ben@example.com");
        assert_eq!(users[1].field("name"), "BEN");
        assert!(is_timestamp(users[1].field("sys_updated_on")));
        let (rows, _) = get(
            &sim,
            "sys_user",
            &format!("sysparm_query=sys_id={CAI}&sysparm_fields=email"),
        )
        .await;
        assert_eq!(rows, [json!({"email": "cai@example.com"})]);
    }

    #[tokio::test]
    async fn servicenow_an_approval_table_record_gets_one_requested_approval_per_approver() {
        let sim = sim().await;
        let ritm = post(&sim, "sc_req_item", json!({"short_description": "access"})).await;
        let incident = post(&sim, "incident", json!({"short_description": "outage"})).await;

        let approvals = sim.approvals(&ritm);
        assert_eq!(approvals.len(), 3);
        assert_eq!(
            approvals
                .iter()
                .map(|a| a.field("approver"))
                .collect::<Vec<_>>(),
            [ANA, BEN, CAI]
        );
        let task = &sim.records("sc_req_item")[0];
        for approval in &approvals {
            assert_eq!(approval.field("state"), "requested");
            assert_eq!(approval.field("sysapproval"), ritm);
            assert_eq!(approval.field("source_table"), "sc_req_item");
            assert_eq!(
                approval.field("sys_updated_on"),
                task.field("sys_created_on")
            );
            assert!(is_timestamp(approval.field("sys_updated_on")));
        }
        assert_eq!(task.field("approval"), "requested");
        assert!(sim.approvals(&incident).is_empty());
        assert_eq!(sim.records("incident")[0].field("approval"), "");
        assert_eq!(sim.records(APPROVAL_TABLE).len(), 3);
    }

    #[tokio::test]
    async fn servicenow_no_approvers_means_approval_not_requested() {
        let sim = ServiceNowSim::start(ServiceNowSimConfig {
            approval_tables: vec!["sc_req_item".to_owned()],
            ..ServiceNowSimConfig::default()
        })
        .await
        .expect("sim");
        let ritm = post(&sim, "sc_req_item", json!({})).await;
        assert!(sim.approvals(&ritm).is_empty());
        assert_eq!(
            sim.records("sc_req_item")[0].field("approval"),
            "not requested"
        );
    }

    #[tokio::test]
    async fn servicenow_approval_references_render_as_links_unless_excluded() {
        let sim = sim().await;
        let ritm = post(&sim, "sc_req_item", json!({})).await;
        let query = format!("sysparm_query=sysapproval={ritm}&sysparm_fields=approver,sysapproval");
        let (linked, _) = get(&sim, APPROVAL_TABLE, &query).await;
        let base = sim.instance_url();
        assert_eq!(
            linked[0],
            json!({
                "approver": {"link": format!("{base}/api/now/table/sys_user/{ANA}"), "value": ANA},
                "sysapproval": {"link": format!("{base}/api/now/table/task/{ritm}"), "value": ritm},
            })
        );
        let (plain, _) = get(
            &sim,
            APPROVAL_TABLE,
            &format!("{query}&sysparm_exclude_reference_link=true"),
        )
        .await;
        assert_eq!(plain[0], json!({"approver": ANA, "sysapproval": ritm}));
    }

    #[tokio::test]
    async fn servicenow_deciding_an_approval_settles_the_task() {
        let sim = sim().await;
        let first = post(&sim, "sc_req_item", json!({})).await;
        let second = post(&sim, "sc_req_item", json!({})).await;
        let created = sim.approvals(&first)[1].field("sys_updated_on").to_owned();

        assert!(sim.decide_approval(&first, BEN, true));
        let approvals = sim.approvals(&first);
        assert_eq!(
            approvals
                .iter()
                .map(|a| a.field("state"))
                .collect::<Vec<_>>(),
            ["requested", "approved", "requested"]
        );
        assert!(approvals[1].field("sys_updated_on") > created.as_str());
        assert!(is_timestamp(approvals[1].field("sys_updated_on")));
        assert_eq!(approvals[1].field("sys_mod_count"), "1");
        let task = |sys_id: &str| {
            sim.records("sc_req_item")
                .into_iter()
                .find(|r| r.sys_id == sys_id)
                .expect("task")
        };
        assert_eq!(task(&first).field("approval"), "approved");
        assert_eq!(task(&second).field("approval"), "requested");
        assert!(
            sim.approvals(&second)
                .iter()
                .all(|a| a.field("state") == "requested")
        );

        assert!(sim.decide_approval(&second, CAI, false));
        assert_eq!(task(&second).field("approval"), "rejected");
        assert_eq!(sim.approvals(&second)[2].field("state"), "rejected");
        // Anyone approves: one approval outweighs a rejection.
        assert!(sim.decide_approval(&second, ANA, true));
        assert_eq!(task(&second).field("approval"), "approved");

        assert!(!sim.decide_approval(&first, "0123456789abcdef0123456789abcdef", true));
        assert!(!sim.decide_approval(CAI, ANA, true));
    }

    #[tokio::test]
    async fn servicenow_add_approval_keeps_any_state_and_leaves_the_task_alone() {
        let sim = sim().await;
        let ritm = post(&sim, "sc_req_item", json!({})).await;
        let added = sim.add_approval(&ritm, ANA, "awaiting_review");
        let approvals = sim.approvals(&ritm);
        assert_eq!(approvals.len(), 4);
        assert_eq!(approvals[3].sys_id, added);
        assert_eq!(approvals[3].field("state"), "awaiting_review");
        assert_eq!(approvals[3].field("source_table"), "sc_req_item");
        assert!(approvals[3].field("sys_updated_on") > approvals[0].field("sys_updated_on"));
        assert_eq!(sim.records("sc_req_item")[0].field("approval"), "requested");
        // A decision picks the approver's newest pending record; there is none besides the
        // seeded one, so that one is decided.
        assert!(sim.decide_approval(&ritm, ANA, false));
        assert_eq!(sim.approvals(&ritm)[0].field("state"), "rejected");
        assert_eq!(sim.approvals(&ritm)[3].field("state"), "awaiting_review");
    }

    #[tokio::test]
    async fn servicenow_sorting_is_stable_and_follows_every_orderby() {
        let sim = sim().await;
        let ritm = post(&sim, "sc_req_item", json!({})).await;
        let by_update = |direction: &str| {
            format!(
                "sysparm_query=sysapproval={ritm}^ORDERBY{direction}sys_updated_on&sysparm_fields=approver&sysparm_exclude_reference_link=true"
            )
        };
        // Same second: creation order, whichever the direction.
        let (rows, _) = get(&sim, APPROVAL_TABLE, &by_update("")).await;
        assert_eq!(column(&rows, "approver"), [ANA, BEN, CAI]);
        let (rows, _) = get(&sim, APPROVAL_TABLE, &by_update("DESC")).await;
        assert_eq!(column(&rows, "approver"), [ANA, BEN, CAI]);

        assert!(sim.decide_approval(&ritm, ANA, true));
        let (rows, _) = get(&sim, APPROVAL_TABLE, &by_update("")).await;
        assert_eq!(column(&rows, "approver"), [BEN, CAI, ANA]);
        let (rows, _) = get(&sim, APPROVAL_TABLE, &by_update("DESC")).await;
        assert_eq!(column(&rows, "approver"), [ANA, BEN, CAI]);

        // The first ORDERBY sorts first; the next breaks its ties.
        let query = format!(
            "sysparm_query=sysapproval={ritm}^ORDERBYsys_created_on^ORDERBYDESCapprover&sysparm_fields=approver&sysparm_exclude_reference_link=true"
        );
        let (rows, _) = get(&sim, APPROVAL_TABLE, &query).await;
        assert_eq!(column(&rows, "approver"), [CAI, ANA, BEN]);
    }

    #[tokio::test]
    async fn servicenow_page_limit_caps_sysparm_limit_but_not_the_total_count() {
        let sim = sim().await;
        let ritm = post(&sim, "sc_req_item", json!({})).await;
        let page = |offset: usize| {
            format!(
                "sysparm_query=sysapproval={ritm}&sysparm_limit=100&sysparm_offset={offset}&sysparm_fields=approver&sysparm_exclude_reference_link=true"
            )
        };
        sim.set_page_limit(Some(2));
        let (rows, total) = get(&sim, APPROVAL_TABLE, &page(0)).await;
        assert_eq!((column(&rows, "approver"), total), (vec![ANA, BEN], 3));
        let (rows, total) = get(&sim, APPROVAL_TABLE, &page(2)).await;
        assert_eq!((column(&rows, "approver"), total), (vec![CAI], 3));
        sim.set_page_limit(Some(0));
        let (rows, _) = get(&sim, APPROVAL_TABLE, &page(0)).await;
        assert_eq!(column(&rows, "approver"), [ANA]);
        sim.set_page_limit(None);
        let (rows, _) = get(&sim, APPROVAL_TABLE, &page(0)).await;
        assert_eq!(rows.len(), 3);
    }
}
