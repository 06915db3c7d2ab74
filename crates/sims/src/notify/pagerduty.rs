//! PagerDuty simulator: the Events API v2 and the REST API v2 on one server.
//!
//! Events API: `POST /v2/enqueue` answers 202 for valid events, 400 with `errors` for invalid
//! ones, and keeps alerts by `(routing_key, dedup_key)`: a trigger opens an alert or adds to the
//! open one, acknowledge/resolve act only on an open alert (otherwise the event is dropped), and
//! a trigger after a resolve opens a new alert.
//!
//! REST API (every route checks `Authorization: Token token=<key>` first, 401 with
//! `{"error": {"message", "code"}}` otherwise, then that `Accept` asks for version 2, 406
//! otherwise; the real API is more lenient about `Accept`, the simulator is strict so a client
//! that forgets it is caught):
//!
//! * `GET /users?query=`: users whose name or email contains the query (case-insensitive), as
//!   PagerDuty's search does, so an exact address can also match longer ones;
//! * `GET /oncalls` with `user_ids[]`, `escalation_policy_ids[]`, `schedule_ids[]` (each list
//!   narrows: an entry must match every list given) and `earliest=true` (one entry per user,
//!   policy and level). The simulator has no clock: the entries set with
//!   [`PagerDutySim::put_on_call`] are the ones on call now;
//! * `GET /incidents` (`incident_key`, `statuses[]`, `service_ids[]`), `POST /incidents`,
//!   `POST /incidents/{id}/notes` and `PUT /incidents/{id}` (acknowledge, resolve). Writes need
//!   a `From` header naming a user of the account (400 otherwise).
//!
//! De-duplication of `POST /incidents`: while an incident on the same service with the same
//! `incident_key` is open (triggered or acknowledged), a create is refused with 400, message
//! "Arguments Caused Error", code 2002 and the error "Open incident with matching dedup key
//! already exists on this service" — the refusal PagerDuty is reported to send, which does not
//! carry the open incident's id; clients find it with `GET /incidents?incident_key=`. Once the
//! incident is resolved, the key opens a new one.
//!
//! Lists page with `offset`/`limit` (default 25, capped at 100 or at
//! [`PagerDutySim::set_page_limit`]) and answer `more`. Rate limiting is scripted with
//! [`PagerDutySim::throttle`] (429 with `Retry-After`), on top of the shared fault injection.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::server::{Fault, SimServer, query_get, query_pairs, state};

const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

/// Integration keys the simulated account accepts.
#[derive(Clone, Debug)]
pub struct PagerDutySimConfig {
    pub routing_keys: Vec<String>,
}

impl Default for PagerDutySimConfig {
    fn default() -> Self {
        Self {
            routing_keys: vec!["R0SIMROUTINGKEY00000000000000000".to_owned()],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

/// An alert and every event that reached it.
#[derive(Clone, Debug, PartialEq)]
pub struct SimAlert {
    pub routing_key: String,
    pub dedup_key: String,
    pub status: AlertStatus,
    /// The payload of the trigger that opened the alert.
    pub payload: Value,
    /// Every accepted event body applied to this alert, in order.
    pub events: Vec<Value>,
}

/// The REST API key the simulator accepts until [`PagerDutySim::set_api_key`] changes it.
pub const DEFAULT_REST_API_KEY: &str = "u+SimRestApiKey0000000";

/// The `Accept` value selecting version 2 of the REST API.
const REST_ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

/// A user of the simulated account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    pub id: String,
    pub email: String,
    pub name: String,
}

/// One way a user is on call now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOnCall {
    pub user_id: String,
    pub escalation_policy_id: String,
    /// `None`: the user is a direct target of the escalation rule.
    pub schedule_id: Option<String>,
    pub escalation_level: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    fn label(self) -> &'static str {
        match self {
            Self::Triggered => "triggered",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// A note on an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNote {
    pub id: String,
    pub content: String,
    /// The user the `From` header named.
    pub user_id: String,
}

/// An incident opened through the REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimIncident {
    pub id: String,
    pub number: u64,
    pub title: String,
    pub service_id: String,
    pub incident_key: Option<String>,
    /// `body.details`, when given.
    pub details: Option<String>,
    pub status: IncidentStatus,
    /// The user the create's `From` header named.
    pub requester_id: String,
    /// Oldest first.
    pub notes: Vec<SimNote>,
}

/// The REST side of the account.
#[derive(Debug)]
struct Rest {
    api_key: String,
    page_limit: usize,
    users: Vec<SimUser>,
    on_call: Vec<SimOnCall>,
    incidents: Vec<SimIncident>,
    next_id: u64,
}

impl Default for Rest {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_REST_API_KEY.to_owned(),
            page_limit: 100,
            users: Vec::new(),
            on_call: Vec::new(),
            incidents: Vec::new(),
            next_id: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Account {
    config: Option<PagerDutySimConfig>,
    alerts: Vec<SimAlert>,
    rest: Rest,
}

type Shared = Arc<Mutex<Account>>;

/// The running simulator. Derefs to [`SimServer`].
#[derive(Debug)]
pub struct PagerDutySim {
    server: SimServer,
    account: Shared,
}

impl Deref for PagerDutySim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl PagerDutySim {
    pub async fn start(config: PagerDutySimConfig) -> std::io::Result<Self> {
        let account = Arc::new(Mutex::new(Account {
            config: Some(config),
            ..Account::default()
        }));
        let router = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .route("/users", get(list_users))
            .route("/oncalls", get(list_oncalls))
            .route("/incidents", get(list_incidents).post(create_incident))
            .route("/incidents/{id}", put(update_incident))
            .route("/incidents/{id}/notes", post(add_note))
            .with_state(Arc::clone(&account));
        Ok(Self {
            server: SimServer::start(router).await?,
            account,
        })
    }

    /// The simulated `https://events.pagerduty.com/v2/enqueue`.
    pub fn events_url(&self) -> String {
        format!("{}/v2/enqueue", self.server.base_url())
    }

    /// All alerts, oldest first (a resolved key triggered again is a second alert).
    pub fn alerts(&self) -> Vec<SimAlert> {
        state(&self.account).alerts.clone()
    }

    /// The simulated `https://api.pagerduty.com` (the REST API root).
    pub fn rest_url(&self) -> String {
        self.server.base_url()
    }

    /// The REST API key the simulator accepts.
    pub fn api_key(&self) -> String {
        state(&self.account).rest.api_key.clone()
    }

    /// Accepts `key` instead of the current REST API key (a rotated or revoked key).
    pub fn set_api_key(&self, key: &str) {
        state(&self.account).rest.api_key = key.to_owned();
    }

    /// Caps every REST page at `limit` entries whatever the client asks for (at least 1).
    pub fn set_page_limit(&self, limit: usize) {
        state(&self.account).rest.page_limit = limit.max(1);
    }

    /// Adds a user and returns its id.
    pub fn add_user(&self, email: &str, name: &str) -> String {
        let mut account = state(&self.account);
        let id = account.rest.new_id("PU");
        account.rest.users.push(SimUser {
            id: id.clone(),
            email: email.to_owned(),
            name: name.to_owned(),
        });
        id
    }

    /// The account's users, in the order they were added.
    pub fn users(&self) -> Vec<SimUser> {
        state(&self.account).rest.users.clone()
    }

    /// Puts a user on call now at `level` of an escalation policy, through a schedule or (with
    /// `None`) as a direct target of the rule.
    pub fn put_on_call(
        &self,
        user_id: &str,
        escalation_policy_id: &str,
        schedule_id: Option<&str>,
        level: u32,
    ) {
        state(&self.account).rest.on_call.push(SimOnCall {
            user_id: user_id.to_owned(),
            escalation_policy_id: escalation_policy_id.to_owned(),
            schedule_id: schedule_id.map(str::to_owned),
            escalation_level: level,
        });
    }

    /// Takes a user off call everywhere.
    pub fn clear_on_call(&self, user_id: &str) {
        state(&self.account)
            .rest
            .on_call
            .retain(|entry| entry.user_id != user_id);
    }

    /// Every incident opened through the REST API, oldest first, with notes and status.
    pub fn incidents(&self) -> Vec<SimIncident> {
        state(&self.account).rest.incidents.clone()
    }

    /// Answers the next `count` requests whose path starts with `path_prefix` (such as
    /// `"/oncalls"`) with PagerDuty's 429 and `Retry-After: <retry_after_seconds>`, without
    /// effect. Uses the shared scripted faults, so [`SimServer::pending_faults`] counts them.
    pub fn throttle(&self, path_prefix: &str, count: usize, retry_after_seconds: u64) {
        let body = json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}}).to_string();
        for _ in 0..count {
            self.server.inject(Fault {
                path_prefix: Some(path_prefix.to_owned()),
                ..Fault::rate_limited(retry_after_seconds)
                    .with_body("application/json", body.clone())
            });
        }
    }
}

fn invalid(errors: &[String]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})),
    )
        .into_response()
}

fn validate(event: &Value, keys: &[String]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    match event.get("routing_key").and_then(Value::as_str) {
        None | Some("") => errors.push("'routing_key' is missing or blank".to_owned()),
        Some(key) if key.len() != 32 => {
            errors.push("'routing_key' must be 32 characters".to_owned());
        }
        Some(key) if !keys.iter().any(|k| k == key) => {
            errors.push("Invalid routing key".to_owned());
        }
        Some(_) => {}
    }
    let action = event.get("event_action").and_then(Value::as_str);
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push(
            "'event_action' is invalid (must be one of trigger, acknowledge, resolve)".to_owned(),
        );
    }
    let dedup_key = event.get("dedup_key").and_then(Value::as_str);
    if dedup_key.is_some_and(|key| key.len() > 255) {
        errors.push("'dedup_key' is longer than 255 characters".to_owned());
    }
    if matches!(action, Some("acknowledge" | "resolve")) && dedup_key.is_none_or(str::is_empty) {
        errors.push("'dedup_key' is required for acknowledge and resolve".to_owned());
    }
    if action == Some("trigger") {
        match event.get("payload") {
            Some(Value::Object(payload)) => {
                match payload.get("summary").and_then(Value::as_str) {
                    None | Some("") => {
                        errors.push("'payload.summary' is missing or blank".to_owned())
                    }
                    Some(summary) if summary.chars().count() > 1024 => {
                        errors.push("'payload.summary' is longer than 1024 characters".to_owned());
                    }
                    Some(_) => {}
                }
                if payload
                    .get("source")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push("'payload.source' is missing or blank".to_owned());
                }
                let severity = payload.get("severity").and_then(Value::as_str);
                if !severity.is_some_and(|s| SEVERITIES.contains(&s)) {
                    errors.push("'payload.severity' is invalid (must be one of critical, error, warning, info)".to_owned());
                }
                if payload
                    .get("custom_details")
                    .is_some_and(|details| !details.is_object() && !details.is_string())
                {
                    errors.push("'payload.custom_details' must be an object".to_owned());
                }
            }
            _ => errors.push("'payload' is missing or not an object".to_owned()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

async fn enqueue(State(account): State<Shared>, body: Bytes) -> Response {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return invalid(&["Event object is not valid JSON".to_owned()]);
    };
    let mut account = state(&account);
    let keys = account
        .config
        .as_ref()
        .map(|config| config.routing_keys.clone())
        .unwrap_or_default();
    if let Err(errors) = validate(&event, &keys) {
        return invalid(&errors);
    }
    let routing_key = event["routing_key"].as_str().unwrap_or_default().to_owned();
    let action = event["event_action"].as_str().unwrap_or_default();
    let dedup_key = event
        .get("dedup_key")
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let open = account.alerts.iter_mut().find(|alert| {
        alert.routing_key == routing_key
            && alert.dedup_key == dedup_key
            && alert.status != AlertStatus::Resolved
    });
    match (action, open) {
        ("trigger", Some(alert)) => alert.events.push(event.clone()),
        ("trigger", None) => account.alerts.push(SimAlert {
            routing_key,
            dedup_key: dedup_key.clone(),
            status: AlertStatus::Triggered,
            payload: event["payload"].clone(),
            events: vec![event.clone()],
        }),
        ("acknowledge", Some(alert)) => {
            alert.status = AlertStatus::Acknowledged;
            alert.events.push(event.clone());
        }
        ("resolve", Some(alert)) => {
            alert.status = AlertStatus::Resolved;
            alert.events.push(event.clone());
        }
        // Acknowledge/resolve without an open alert are accepted and dropped.
        _ => {}
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
        ),
    )
        .into_response()
}

// ---- REST API ----

/// PagerDuty's error body.
fn rest_error(status: StatusCode, message: &str, code: u32, errors: &[&str]) -> Response {
    let mut error = json!({"message": message, "code": code});
    if !errors.is_empty() {
        error["errors"] = json!(errors);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn invalid_input(problem: &str) -> Response {
    rest_error(
        StatusCode::BAD_REQUEST,
        "Invalid Input Provided",
        2001,
        &[problem],
    )
}

fn unknown_requester() -> Response {
    invalid_input("The 'From' header must be the email address of a user of the account")
}

fn not_found() -> Response {
    rest_error(StatusCode::NOT_FOUND, "Not Found", 2100, &[])
}

/// One page of `items` as `offset`/`limit` in the query ask, capped at `page_limit`.
fn page<T: Clone>(items: &[T], pairs: &[(String, String)], page_limit: usize) -> (Vec<T>, Value) {
    let offset = query_get(pairs, "offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = query_get(pairs, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, page_limit);
    let chosen: Vec<T> = items.iter().skip(offset).take(limit).cloned().collect();
    let more = offset.saturating_add(chosen.len()) < items.len();
    (
        chosen,
        json!({"offset": offset, "limit": limit, "more": more, "total": null}),
    )
}

fn all_of<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .collect()
}

fn with_page(mut envelope: Value, key: &str, items: Vec<Value>) -> Response {
    envelope[key] = Value::Array(items);
    (StatusCode::OK, axum::Json(envelope)).into_response()
}

impl Rest {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:05}", self.next_id)
    }

    /// The 401 or 406 answer for a request without the key or without version 2 in `Accept`.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Token token="));
        if token != Some(self.api_key.as_str()) {
            return Some(rest_error(
                StatusCode::UNAUTHORIZED,
                "Authentication failed",
                2006,
                &[],
            ));
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace(' ', "")
            .to_ascii_lowercase();
        if !accept.split(',').any(|part| part == REST_ACCEPT) {
            return Some(rest_error(
                StatusCode::NOT_ACCEPTABLE,
                "Not Acceptable",
                2001,
                &["Accept must ask for application/vnd.pagerduty+json;version=2"],
            ));
        }
        None
    }

    /// The user a write's `From` header names, if it names one of the account.
    fn requester(&self, headers: &HeaderMap) -> Option<String> {
        let from = headers
            .get(header::FROM)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|from| !from.is_empty())?;
        self.users
            .iter()
            .find(|user| user.email.eq_ignore_ascii_case(from))
            .map(|user| user.id.clone())
    }

    fn user_json(&self, user: &SimUser) -> Value {
        json!({
            "id": user.id,
            "type": "user",
            "summary": user.name,
            "name": user.name,
            "email": user.email,
        })
    }

    fn user_reference(&self, user_id: &str) -> Value {
        let name = self
            .users
            .iter()
            .find(|user| user.id == user_id)
            .map(|user| user.name.clone());
        json!({"id": user_id, "type": "user_reference", "summary": name})
    }
}

fn incident_json(incident: &SimIncident) -> Value {
    json!({
        "id": incident.id,
        "type": "incident",
        "incident_number": incident.number,
        "title": incident.title,
        "status": incident.status.label(),
        "incident_key": incident.incident_key,
        "service": {"id": incident.service_id, "type": "service_reference"},
    })
}

async fn list_users(State(account): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let account = state(&account);
    let rest = &account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    let pairs = query_pairs(uri.query());
    let query = query_get(&pairs, "query")
        .unwrap_or_default()
        .to_lowercase();
    let matching: Vec<&SimUser> = rest
        .users
        .iter()
        .filter(|user| {
            user.email.to_lowercase().contains(&query) || user.name.to_lowercase().contains(&query)
        })
        .collect();
    let (chosen, envelope) = page(&matching, &pairs, rest.page_limit);
    let users = chosen
        .into_iter()
        .map(|user| rest.user_json(user))
        .collect();
    with_page(envelope, "users", users)
}

async fn list_oncalls(State(account): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let account = state(&account);
    let rest = &account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    let pairs = query_pairs(uri.query());
    let users = all_of(&pairs, "user_ids[]");
    let policies = all_of(&pairs, "escalation_policy_ids[]");
    let schedules = all_of(&pairs, "schedule_ids[]");
    let earliest = query_get(&pairs, "earliest") == Some("true");
    let mut seen = std::collections::BTreeSet::new();
    let matching: Vec<&SimOnCall> = rest
        .on_call
        .iter()
        .filter(|entry| users.is_empty() || users.contains(&entry.user_id.as_str()))
        .filter(|entry| {
            policies.is_empty() || policies.contains(&entry.escalation_policy_id.as_str())
        })
        .filter(|entry| {
            schedules.is_empty()
                || entry
                    .schedule_id
                    .as_deref()
                    .is_some_and(|id| schedules.contains(&id))
        })
        .filter(|entry| {
            !earliest
                || seen.insert((
                    entry.user_id.clone(),
                    entry.escalation_policy_id.clone(),
                    entry.escalation_level,
                ))
        })
        .collect();
    let (chosen, envelope) = page(&matching, &pairs, rest.page_limit);
    let oncalls = chosen
        .into_iter()
        .map(|entry| {
            json!({
                "escalation_level": entry.escalation_level,
                "user": rest.user_reference(&entry.user_id),
                "schedule": entry.schedule_id.as_ref().map(|id| json!({"id": id, "type": "schedule_reference"})),
                "escalation_policy": {"id": entry.escalation_policy_id, "type": "escalation_policy_reference"},
                "start": null,
                "end": null,
            })
        })
        .collect();
    with_page(envelope, "oncalls", oncalls)
}

async fn list_incidents(State(account): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let account = state(&account);
    let rest = &account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    let pairs = query_pairs(uri.query());
    let key = query_get(&pairs, "incident_key");
    let statuses = all_of(&pairs, "statuses[]");
    let services = all_of(&pairs, "service_ids[]");
    let matching: Vec<&SimIncident> = rest
        .incidents
        .iter()
        .filter(|incident| key.is_none_or(|key| incident.incident_key.as_deref() == Some(key)))
        .filter(|incident| statuses.is_empty() || statuses.contains(&incident.status.label()))
        .filter(|incident| services.is_empty() || services.contains(&incident.service_id.as_str()))
        .collect();
    let (chosen, envelope) = page(&matching, &pairs, rest.page_limit);
    let incidents = chosen.into_iter().map(incident_json).collect();
    with_page(envelope, "incidents", incidents)
}

async fn create_incident(
    State(account): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut account = state(&account);
    let rest = &mut account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    let Some(requester_id) = rest.requester(&headers) else {
        return unknown_requester();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid_input("The request body is not valid JSON");
    };
    let incident = &request["incident"];
    if incident["type"].as_str() != Some("incident") {
        return invalid_input("incident.type must be 'incident'");
    }
    let Some(title) = incident["title"].as_str().filter(|t| !t.trim().is_empty()) else {
        return invalid_input("incident.title is required");
    };
    let service = &incident["service"];
    let Some(service_id) = service["id"].as_str().filter(|id| !id.is_empty()) else {
        return invalid_input("incident.service.id is required");
    };
    if service["type"].as_str() != Some("service_reference") {
        return invalid_input("incident.service.type must be 'service_reference'");
    }
    let incident_key = incident["incident_key"]
        .as_str()
        .filter(|key| !key.is_empty())
        .map(str::to_owned);
    let duplicate = incident_key.as_ref().is_some_and(|key| {
        rest.incidents.iter().any(|open| {
            open.service_id == service_id
                && open.incident_key.as_ref() == Some(key)
                && open.status != IncidentStatus::Resolved
        })
    });
    if duplicate {
        // PagerDuty's refusal names the condition but not the open incident.
        return rest_error(
            StatusCode::BAD_REQUEST,
            "Arguments Caused Error",
            2002,
            &["Open incident with matching dedup key already exists on this service"],
        );
    }
    let id = rest.new_id("PI");
    let created = SimIncident {
        id,
        number: rest.incidents.len() as u64 + 1,
        title: title.to_owned(),
        service_id: service_id.to_owned(),
        incident_key,
        details: incident["body"]["details"].as_str().map(str::to_owned),
        status: IncidentStatus::Triggered,
        requester_id,
        notes: Vec::new(),
    };
    let answer = json!({"incident": incident_json(&created)});
    rest.incidents.push(created);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn add_note(
    State(account): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut account = state(&account);
    let rest = &mut account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    let Some(user_id) = rest.requester(&headers) else {
        return unknown_requester();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid_input("The request body is not valid JSON");
    };
    let Some(content) = request["note"]["content"]
        .as_str()
        .filter(|c| !c.trim().is_empty())
    else {
        return invalid_input("note.content is required");
    };
    let note_id = rest.new_id("PN");
    let user = rest.user_reference(&user_id);
    let Some(incident) = rest.incidents.iter_mut().find(|incident| incident.id == id) else {
        return not_found();
    };
    incident.notes.push(SimNote {
        id: note_id.clone(),
        content: content.to_owned(),
        user_id,
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({"note": {
            "id": note_id,
            "user": user,
            "content": content,
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }})),
    )
        .into_response()
}

async fn update_incident(
    State(account): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut account = state(&account);
    let rest = &mut account.rest;
    if let Some(refused) = rest.refusal(&headers) {
        return refused;
    }
    if rest.requester(&headers).is_none() {
        return unknown_requester();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid_input("The request body is not valid JSON");
    };
    let change = &request["incident"];
    if change["type"].as_str() != Some("incident_reference") {
        return invalid_input("incident.type must be 'incident_reference'");
    }
    let status = match change["status"].as_str() {
        Some("acknowledged") => IncidentStatus::Acknowledged,
        Some("resolved") => IncidentStatus::Resolved,
        _ => return invalid_input("incident.status must be acknowledged or resolved"),
    };
    let Some(incident) = rest.incidents.iter_mut().find(|incident| incident.id == id) else {
        return not_found();
    };
    // Resolving again changes nothing; a resolved incident cannot be acknowledged.
    if incident.status == IncidentStatus::Resolved && status != IncidentStatus::Resolved {
        return invalid_input("Incident Already Resolved");
    }
    incident.status = status;
    (
        StatusCode::OK,
        axum::Json(json!({"incident": incident_json(incident)})),
    )
        .into_response()
}
