//! PagerDuty Events API v2 simulator: `POST /v2/enqueue` answers 202 for valid events, 400 with
//! `errors` for invalid ones, and keeps alerts by `(routing_key, dedup_key)`: a trigger opens an
//! alert or adds to the open one, acknowledge/resolve act only on an open alert (otherwise the
//! event is dropped), and a trigger after a resolve opens a new alert.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::server::{SimServer, state};

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

#[derive(Debug, Default)]
struct Account {
    config: Option<PagerDutySimConfig>,
    alerts: Vec<SimAlert>,
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
            alerts: Vec::new(),
        }));
        let router = Router::new()
            .route("/v2/enqueue", post(enqueue))
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
