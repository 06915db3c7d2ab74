//! Splunk HTTP Event Collector simulator: `POST /services/collector[/event]` with
//! `Authorization: Splunk <token>` and a body of concatenated event envelopes; events are indexed
//! in order until the first invalid one, whose 0-based position is reported as
//! `invalid-event-number`. Optional indexer acknowledgement (channel GUID required, `ackId`s per
//! channel, `POST /services/collector/ack`). `GET /services/collector/health`.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::server::{SimServer, query_get, query_pairs, state};

/// Collector settings.
#[derive(Clone, Debug)]
pub struct HecSimConfig {
    pub tokens: Vec<String>,
    /// Indexes the tokens may write to; `None` allows any.
    pub allowed_indexes: Option<Vec<String>>,
    /// Indexer acknowledgement on: every request needs a channel GUID.
    pub ack: bool,
}

impl Default for HecSimConfig {
    fn default() -> Self {
        Self {
            tokens: vec!["6f1c2b7e-4a0d-4c55-9e3a-0123456789ab".to_owned()],
            allowed_indexes: None,
            ack: false,
        }
    }
}

/// An indexed event envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedEvent {
    pub envelope: Value,
    pub channel: Option<String>,
}

#[derive(Debug, Default)]
struct Collector {
    config: Option<HecSimConfig>,
    events: Vec<IndexedEvent>,
    /// Per channel: acks issued (true once reported) and the next id.
    acks: BTreeMap<String, (u64, Vec<u64>)>,
}

type Shared = Arc<Mutex<Collector>>;

/// The running simulator. Derefs to [`SimServer`].
#[derive(Debug)]
pub struct HecSim {
    server: SimServer,
    collector: Shared,
}

impl Deref for HecSim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl HecSim {
    pub async fn start(config: HecSimConfig) -> std::io::Result<Self> {
        let collector = Arc::new(Mutex::new(Collector {
            config: Some(config),
            ..Collector::default()
        }));
        let router = Router::new()
            .route("/services/collector", post(collect))
            .route("/services/collector/event", post(collect))
            .route("/services/collector/event/1.0", post(collect))
            .route("/services/collector/health", get(health))
            .route("/services/collector/ack", post(ack))
            .with_state(Arc::clone(&collector));
        Ok(Self {
            server: SimServer::start(router).await?,
            collector,
        })
    }

    /// Collector root (`https://host:8088` in production).
    pub fn collector_url(&self) -> String {
        self.server.base_url()
    }

    /// Indexed envelopes, in order.
    pub fn events(&self) -> Vec<IndexedEvent> {
        state(&self.collector).events.clone()
    }
}

fn answer(status: StatusCode, code: u8, text: &str) -> Response {
    (status, axum::Json(json!({"text": text, "code": code}))).into_response()
}

fn invalid_event(code: u8, text: &str, index: usize) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"text": text, "code": code, "invalid-event-number": index})),
    )
        .into_response()
}

/// The answer to a missing or unknown token, if any.
fn refusal(collector: &Collector, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        if query_get(&query_pairs(uri.query()), "token").is_some() {
            return Some(answer(
                StatusCode::BAD_REQUEST,
                16,
                "Query string authorization is not enabled",
            ));
        }
        return Some(answer(StatusCode::UNAUTHORIZED, 2, "Token is required"));
    };
    let Some(token) = value.strip_prefix("Splunk ") else {
        return Some(answer(StatusCode::UNAUTHORIZED, 3, "Invalid authorization"));
    };
    let known = collector
        .config
        .as_ref()
        .is_some_and(|config| config.tokens.iter().any(|t| t == token.trim()));
    (!known).then(|| answer(StatusCode::FORBIDDEN, 4, "Invalid token"))
}

fn request_channel(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_get(&query_pairs(uri.query()), "channel").map(str::to_owned))
}

async fn collect(
    State(collector): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut collector = state(&collector);
    if let Some(response) = refusal(&collector, &headers, &uri) {
        return response;
    }
    let (ack, allowed) = collector
        .config
        .as_ref()
        .map(|c| (c.ack, c.allowed_indexes.clone()))
        .unwrap_or_default();
    let channel = request_channel(&headers, &uri);
    if ack {
        match &channel {
            None => return answer(StatusCode::BAD_REQUEST, 10, "Data channel is missing"),
            Some(guid) if uuid::Uuid::parse_str(guid).is_err() => {
                return answer(StatusCode::BAD_REQUEST, 11, "Invalid data channel");
            }
            Some(_) => {}
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return answer(StatusCode::BAD_REQUEST, 5, "No data");
    }
    let stream = serde_json::Deserializer::from_slice(&body).into_iter::<Value>();
    for (index, item) in stream.enumerate() {
        let envelope = match item {
            Ok(Value::Object(envelope)) => envelope,
            _ => return invalid_event(6, "Invalid data format", index),
        };
        match envelope.get("event") {
            None => return invalid_event(12, "Event field is required", index),
            Some(Value::Null) => return invalid_event(13, "Event field cannot be blank", index),
            Some(Value::String(text)) if text.trim().is_empty() => {
                return invalid_event(13, "Event field cannot be blank", index);
            }
            Some(_) => {}
        }
        if let (Some(allowed), Some(index_name)) =
            (&allowed, envelope.get("index").and_then(Value::as_str))
            && !allowed.iter().any(|i| i == index_name)
        {
            return answer(StatusCode::BAD_REQUEST, 7, "Incorrect index");
        }
        collector.events.push(IndexedEvent {
            envelope: Value::Object(envelope),
            channel: channel.clone(),
        });
    }
    if let (true, Some(channel)) = (ack, channel) {
        let entry = collector.acks.entry(channel).or_default();
        let ack_id = entry.0;
        entry.0 += 1;
        entry.1.push(ack_id);
        return axum::Json(json!({"text": "Success", "code": 0, "ackId": ack_id})).into_response();
    }
    axum::Json(json!({"text": "Success", "code": 0})).into_response()
}

async fn health() -> Response {
    axum::Json(json!({"text": "HEC is healthy", "code": 17})).into_response()
}

async fn ack(
    State(collector): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut collector = state(&collector);
    if let Some(response) = refusal(&collector, &headers, &uri) {
        return response;
    }
    if !collector.config.as_ref().is_some_and(|c| c.ack) {
        return answer(StatusCode::BAD_REQUEST, 14, "ACK is disabled");
    }
    let Some(channel) = request_channel(&headers, &uri) else {
        return answer(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, 6, "Invalid data format");
    };
    let wanted: Vec<u64> = request
        .get("acks")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let pending = &mut collector.acks.entry(channel).or_default().1;
    let mut acks = serde_json::Map::new();
    for id in wanted {
        // Indexing is immediate here; an ack is reported true once, then forgotten.
        let done = pending
            .iter()
            .position(|p| *p == id)
            .map(|at| pending.remove(at));
        acks.insert(id.to_string(), Value::Bool(done.is_some()));
    }
    axum::Json(json!({"acks": acks})).into_response()
}
