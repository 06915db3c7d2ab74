//! Slack simulator: an incoming webhook (`POST /services/T…/B…/<secret>`, answers `ok` or a
//! plain-text error code with a 4xx) and the Web API methods `chat.postMessage` and
//! `users.lookupByEmail` (HTTP 200 with `{"ok": false, "error": …}` on refusal).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

use super::server::{SimServer, query_get, query_pairs, state};

/// What the simulated workspace holds.
#[derive(Clone, Debug)]
pub struct SlackSimConfig {
    pub bot_token: String,
    /// Path of the one incoming webhook, e.g. `/services/T000/B000/secret`.
    pub webhook_path: String,
    /// Channel IDs or names `chat.postMessage` accepts.
    pub channels: Vec<String>,
    /// Members by email → user ID.
    pub users: BTreeMap<String, String>,
}

impl Default for SlackSimConfig {
    fn default() -> Self {
        Self {
            bot_token: "xoxb-sim-token".to_owned(),
            webhook_path: "/services/T0SIM/B0SIM/simwebhooksecret".to_owned(),
            channels: vec!["C0SECOPS".to_owned()],
            users: BTreeMap::new(),
        }
    }
}

/// How a message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackVia {
    Webhook,
    WebApi,
}

/// A message the workspace accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackPost {
    pub via: SlackVia,
    /// The channel (for DMs, the `D…` conversation); empty for webhooks.
    pub channel: String,
    pub ts: String,
    pub text: Option<String>,
    pub blocks: Option<Value>,
}

#[derive(Debug)]
struct Workspace {
    config: SlackSimConfig,
    posts: Vec<SlackPost>,
    next_ts: u64,
}

type Shared = Arc<Mutex<Workspace>>;

/// The running simulator. Derefs to [`SimServer`] for recorded requests and fault injection.
#[derive(Debug)]
pub struct SlackSim {
    server: SimServer,
    workspace: Shared,
}

impl Deref for SlackSim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl SlackSim {
    pub async fn start(config: SlackSimConfig) -> std::io::Result<Self> {
        let workspace = Arc::new(Mutex::new(Workspace {
            config,
            posts: Vec::new(),
            next_ts: 1_700_000_000_000_100,
        }));
        let router = Router::new()
            .route("/services/{*rest}", post(webhook))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/users.lookupByEmail", any(lookup_by_email))
            .with_state(Arc::clone(&workspace));
        Ok(Self {
            server: SimServer::start(router).await?,
            workspace,
        })
    }

    /// The incoming webhook's full URL (the credential).
    pub fn webhook_url(&self) -> String {
        format!(
            "{}{}",
            self.server.base_url(),
            state(&self.workspace).config.webhook_path
        )
    }

    /// Web API method root, the simulated `https://slack.com/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.server.base_url())
    }

    /// Messages accepted so far.
    pub fn posts(&self) -> Vec<SlackPost> {
        state(&self.workspace).posts.clone()
    }
}

fn text_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        code.to_owned(),
    )
        .into_response()
}

fn api_error(code: &str) -> Response {
    axum::Json(json!({"ok": false, "error": code})).into_response()
}

async fn webhook(State(workspace): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let mut workspace = state(&workspace);
    if uri.path() != workspace.config.webhook_path {
        return text_error(StatusCode::NOT_FOUND, "no_service");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return text_error(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let text = payload
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let blocks = payload.get("blocks").cloned();
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() {
        return text_error(StatusCode::BAD_REQUEST, "no_text");
    }
    if blocks.as_ref().is_some_and(|b| !b.is_array()) {
        return text_error(StatusCode::BAD_REQUEST, "invalid_blocks");
    }
    let ts = workspace.next_ts();
    workspace.posts.push(SlackPost {
        via: SlackVia::Webhook,
        channel: String::new(),
        ts,
        text,
        blocks,
    });
    text_error(StatusCode::OK, "ok")
}

impl Workspace {
    fn next_ts(&mut self) -> String {
        self.next_ts += 1;
        format!(
            "{}.{:06}",
            self.next_ts / 1_000_000,
            self.next_ts % 1_000_000
        )
    }

    /// `None` when authorized, else the Web API error code.
    fn auth_error(&self, headers: &HeaderMap) -> Option<&'static str> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Some("not_authed");
        };
        match value.strip_prefix("Bearer ") {
            Some(token) if token == self.config.bot_token => None,
            _ => Some("invalid_auth"),
        }
    }
}

/// Web API arguments from a JSON or form body, plus the query string.
fn arguments(headers: &HeaderMap, uri: &Uri, body: &Bytes) -> Result<Value, &'static str> {
    let mut args = serde_json::Map::new();
    for (key, value) in query_pairs(uri.query()) {
        args.insert(key, Value::String(value));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if body.is_empty() {
        return Ok(Value::Object(args));
    }
    if content_type.starts_with("application/json") {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err("invalid_json");
        };
        args.extend(fields);
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (key, value) in url::form_urlencoded::parse(body) {
            args.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    } else {
        return Err("invalid_form_data");
    }
    Ok(Value::Object(args))
}

async fn post_message(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut workspace = state(&workspace);
    if let Some(code) = workspace.auth_error(&headers) {
        return api_error(code);
    }
    let args = match arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let Some(channel) = args
        .get("channel")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return api_error("channel_not_found");
    };
    let dm_user = workspace
        .config
        .users
        .values()
        .find(|id| **id == channel)
        .cloned();
    let conversation = match dm_user {
        Some(user) => format!("D{}", user.trim_start_matches(['U', 'W'])),
        None if workspace.config.channels.contains(&channel) => channel.clone(),
        None => return api_error("channel_not_found"),
    };
    let text = args.get("text").and_then(Value::as_str).map(str::to_owned);
    let blocks = match args.get("blocks") {
        None => None,
        Some(Value::Array(blocks)) => Some(Value::Array(blocks.clone())),
        // Form-encoded calls carry blocks as a JSON string.
        Some(Value::String(raw)) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(blocks)) => Some(Value::Array(blocks)),
            _ => return api_error("invalid_blocks"),
        },
        Some(_) => return api_error("invalid_blocks"),
    };
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() {
        return api_error("no_text");
    }
    if text.as_deref().is_some_and(|t| t.chars().count() > 40_000) {
        return api_error("msg_too_long");
    }
    let ts = workspace.next_ts();
    workspace.posts.push(SlackPost {
        via: SlackVia::WebApi,
        channel: conversation.clone(),
        ts: ts.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
    });
    axum::Json(json!({
        "ok": true,
        "channel": conversation,
        "ts": ts,
        "message": {"type": "message", "subtype": "bot_message", "text": text, "blocks": blocks, "ts": ts, "bot_id": "B0SIMBOT"},
    }))
    .into_response()
}

async fn lookup_by_email(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let workspace = state(&workspace);
    if let Some(code) = workspace.auth_error(&headers) {
        return api_error(code);
    }
    let args = match arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let pairs = query_pairs(uri.query());
    let email = args
        .get("email")
        .and_then(Value::as_str)
        .or_else(|| query_get(&pairs, "email"));
    let Some(email) = email else {
        return api_error("invalid_arguments");
    };
    let found = workspace
        .config
        .users
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(email));
    match found {
        Some((email, id)) => {
            let name = email.split('@').next().unwrap_or_default();
            axum::Json(json!({
                "ok": true,
                "user": {
                    "id": id,
                    "team_id": "T0SIM",
                    "name": name,
                    "real_name": name,
                    "deleted": false,
                    "profile": {"email": email, "real_name": name},
                }
            }))
            .into_response()
        }
        None => api_error("users_not_found"),
    }
}
