//! Slack simulator: an incoming webhook (`POST /services/T…/B…/<secret>`, answers `ok` or a
//! plain-text error code with a 4xx) and the Web API methods `chat.postMessage`, `chat.update`,
//! `conversations.history`, `conversations.replies`, `users.lookupByEmail` and `users.info`
//! (HTTP 200 with `{"ok": false, "error": …}` on refusal).
//!
//! # Messages and interactivity
//!
//! Web API posts are kept as conversation messages ([`SimMessage`], from
//! [`SlackSim::messages`]) with their blocks and `metadata` (`{event_type, event_payload}`, an
//! object or, in form-encoded calls, a JSON string). [`SlackSim::posts`] stays the log of what
//! arrived; the messages are the live state `chat.update` changes.
//!
//! * `chat.postMessage` with `thread_ts` replies in the thread of that message of the same
//!   conversation (a reply's `ts` joins its parent's thread); no such message →
//!   `thread_not_found`. `reply_broadcast` is not simulated: replies stay in their thread.
//! * `chat.update` (`channel`, `ts`, `text`, `blocks`, `metadata`) changes a message posted
//!   through the Web API: fields left out are kept, `blocks: []` removes the blocks. Unknown
//!   conversation → `channel_not_found`, unknown `ts` → `message_not_found`.
//! * `conversations.history` (`channel`, `limit`, `cursor`, `oldest`, `latest`, `inclusive`,
//!   `include_all_metadata`) lists a conversation's messages newest first, thread parents
//!   only (with `thread_ts`, `reply_count` and `latest_reply` once replied to). `limit`
//!   defaults to 100 and is capped at 999 and at [`SlackSim::set_history_page_limit`];
//!   `has_more` and `response_metadata.next_cursor` (an opaque `next_ts:` cursor, left out
//!   on the last page) page through the rest. `metadata` is only returned with
//!   `include_all_metadata=true`.
//!   Bad `oldest`/`latest` → `invalid_ts_oldest`/`invalid_ts_latest`, a bad cursor →
//!   `invalid_cursor`.
//! * `conversations.replies` (`channel`, `ts`, `limit`, `cursor`, `include_all_metadata`)
//!   lists a thread oldest first, the parent leading, paged and capped like the history (its
//!   cursor points forward). A reply's `ts` answers that reply alone. Unknown conversation →
//!   `channel_not_found`, unknown `ts` → `thread_not_found`.
//! * `users.info` (`user`) answers the members of [`SlackSimConfig::users`] (email → ID; the
//!   name is the email's local part, as `users.lookupByEmail` answers) with `profile.email`,
//!   left out for the IDs in [`SlackSimConfig::hidden_emails`]; others → `user_not_found`.
//! * [`SlackSim::click`] plays a member clicking a button: it builds the `block_actions`
//!   payload Slack sends for that message (the button's `value` and `block_id`, the user,
//!   team, channel, message, `response_url`, `trigger_id`), form-encodes it as the single field
//!   `payload`, signs the exact bytes sent with `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>`
//!   under the signing secret, and POSTs it with `X-Slack-Request-Timestamp` and
//!   `X-Slack-Signature` to a plain `http://` URL. [`SlackSim::click_with`] takes a [`Click`]
//!   that can set the timestamp (replays), change the body after signing (tampering) or
//!   replace the signature. Clicks go out over a minimal HTTP/1.1 client (`Connection: close`,
//!   no TLS, no redirects). The `response_url` points at this simulator, which accepts and
//!   records `POST /actions/…` with `{"ok": true}` and no other effect.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    /// User IDs whose email `users.info` does not show (`profile.email` left out).
    pub hidden_emails: BTreeSet<String>,
}

impl Default for SlackSimConfig {
    fn default() -> Self {
        Self {
            bot_token: "xoxb-sim-token".to_owned(),
            webhook_path: "/services/T0SIM/B0SIM/simwebhooksecret".to_owned(),
            channels: vec!["C0SECOPS".to_owned()],
            users: BTreeMap::new(),
            hidden_emails: BTreeSet::new(),
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
    /// The parent's `ts` for a thread reply.
    pub thread_ts: Option<String>,
    pub text: Option<String>,
    pub blocks: Option<Value>,
}

/// A Web API message as the conversation holds it now (after any `chat.update`).
#[derive(Clone, Debug, PartialEq)]
pub struct SimMessage {
    /// The conversation: a channel of the config, or `D…` for a direct message.
    pub channel: String,
    pub ts: String,
    /// The parent's `ts` for a thread reply; `None` for a message of the channel itself.
    pub thread_ts: Option<String>,
    pub text: Option<String>,
    pub blocks: Option<Value>,
    /// `{event_type, event_payload}` as posted (or last updated).
    pub metadata: Option<Value>,
    /// How many times `chat.update` changed it.
    pub edits: u32,
}

/// A button of a message's actions blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimButton {
    pub block_id: Option<String>,
    pub action_id: String,
    pub text: Option<String>,
    pub style: Option<String>,
    pub value: Option<String>,
}

impl SimMessage {
    /// Every button of every actions block, in order.
    pub fn buttons(&self) -> Vec<SimButton> {
        let Some(blocks) = self.blocks.as_ref().and_then(Value::as_array) else {
            return Vec::new();
        };
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("actions"))
            .flat_map(|block| {
                let block_id = text(block, "block_id");
                block
                    .get("elements")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|element| element.get("type").and_then(Value::as_str) == Some("button"))
                    .filter_map(move |element| {
                        Some(SimButton {
                            block_id: block_id.clone(),
                            action_id: text(&element, "action_id")?,
                            text: element.get("text").and_then(|label| text(label, "text")),
                            style: text(&element, "style"),
                            value: text(&element, "value"),
                        })
                    })
            })
            .collect()
    }

    /// The button with this `action_id`.
    pub fn button(&self, action_id: &str) -> Option<SimButton> {
        self.buttons()
            .into_iter()
            .find(|button| button.action_id == action_id)
    }

    pub fn has_buttons(&self) -> bool {
        !self.buttons().is_empty()
    }

    /// The metadata's `event_type`.
    pub fn event_type(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("event_type")?.as_str()
    }

    /// The metadata's `event_payload`.
    pub fn event_payload(&self) -> Option<&Value> {
        self.metadata.as_ref()?.get("event_payload")
    }

    /// The section texts of the blocks, in order.
    pub fn section_texts(&self) -> Vec<String> {
        self.blocks
            .as_ref()
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|block| block.get("type").and_then(Value::as_str) == Some("section"))
                    .filter_map(|block| block.get("text")?.get("text")?.as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Workspace {
    config: SlackSimConfig,
    posts: Vec<SlackPost>,
    messages: Vec<SimMessage>,
    next_ts: u64,
    /// Cap on the `limit` of `conversations.history` and `conversations.replies`.
    history_page_limit: Option<usize>,
    /// Serial of trigger IDs and response URLs of clicks.
    clicks: u64,
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
            messages: Vec::new(),
            next_ts: 1_700_000_000_000_100,
            history_page_limit: None,
            clicks: 0,
        }));
        let router = Router::new()
            .route("/services/{*rest}", post(webhook))
            .route("/actions/{*rest}", post(response_url))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update_message))
            .route("/api/conversations.history", any(history))
            .route("/api/conversations.replies", any(replies))
            .route("/api/users.lookupByEmail", any(lookup_by_email))
            .route("/api/users.info", any(user_info))
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

    /// Web API messages as the conversations hold them now, oldest first, thread replies
    /// included.
    pub fn messages(&self) -> Vec<SimMessage> {
        state(&self.workspace).messages.clone()
    }

    /// The Web API message with this `ts`.
    pub fn message(&self, ts: &str) -> Option<SimMessage> {
        state(&self.workspace)
            .messages
            .iter()
            .find(|message| message.ts == ts)
            .cloned()
    }

    /// The replies in the thread of message `thread_ts` of `channel`, oldest first.
    pub fn replies(&self, channel: &str, thread_ts: &str) -> Vec<SimMessage> {
        state(&self.workspace)
            .messages
            .iter()
            .filter(|message| {
                message.channel == channel && message.thread_ts.as_deref() == Some(thread_ts)
            })
            .cloned()
            .collect()
    }

    /// Caps the messages per `conversations.history` and `conversations.replies` page whatever
    /// `limit` asks for (at least 1); `None` restores Slack's own cap.
    pub fn set_history_page_limit(&self, limit: Option<usize>) {
        state(&self.workspace).history_page_limit = limit.map(|limit| limit.max(1));
    }

    /// `user_id` clicks the button `action_id` of message `message_ts`: the signed
    /// `block_actions` POST Slack sends, to `target_url`, now. Returns the HTTP status.
    pub async fn click(
        &self,
        target_url: &str,
        signing_secret: &str,
        message_ts: &str,
        user_id: &str,
        action_id: &str,
    ) -> Result<u16, ClickError> {
        self.click_with(Click::new(
            target_url,
            signing_secret,
            message_ts,
            user_id,
            action_id,
        ))
        .await
        .map(|sent| sent.status)
    }

    /// Sends a click as set up in `click`; the answer and what was sent.
    pub async fn click_with(&self, click: Click) -> Result<ClickOutcome, ClickError> {
        let payload = self.click_payload(&click)?;
        let mut body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes();
        let timestamp = click
            .timestamp
            .unwrap_or_else(|| unix_now().as_secs())
            .to_string();
        let signature = slack_signature(&click.signing_secret, &timestamp, &body);
        if let Some(tamper) = click.tamper {
            tamper(&mut body);
        }
        let signature = click.signature.unwrap_or(signature);
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("X-Slack-Request-Timestamp", timestamp.clone()),
            ("X-Slack-Signature", signature.clone()),
            (
                "User-Agent",
                "Slackbot 1.0 (+https://api.slack.com/robots)".to_owned(),
            ),
        ];
        let (status, answer) = post_http(&click.target_url, &headers, &body).await?;
        Ok(ClickOutcome {
            status,
            body: answer,
            sent: body,
            timestamp,
            signature,
        })
    }

    /// The `block_actions` payload of a click, from the message as it is now.
    fn click_payload(&self, click: &Click) -> Result<Value, ClickError> {
        let base_url = self.server.base_url();
        let mut workspace = state(&self.workspace);
        let message = workspace
            .messages
            .iter()
            .find(|message| message.ts == click.message_ts)
            .cloned()
            .ok_or_else(|| ClickError::NoMessage(click.message_ts.clone()))?;
        let button = message
            .button(&click.action_id)
            .ok_or_else(|| ClickError::NoButton {
                ts: click.message_ts.clone(),
                action_id: click.action_id.clone(),
            })?;
        let username = workspace
            .config
            .users
            .iter()
            .find(|(_, id)| **id == click.user_id)
            .map(|(email, _)| local_part(email).to_owned())
            .unwrap_or_else(|| click.user_id.to_ascii_lowercase());
        workspace.clicks += 1;
        let serial = workspace.clicks;
        drop(workspace);
        let now = unix_now();
        let action_ts = format!("{}.{:06}", now.as_secs(), now.subsec_micros());
        let channel_name = if message.channel.starts_with('D') {
            "directmessage".to_owned()
        } else {
            message.channel.trim_start_matches('#').to_ascii_lowercase()
        };
        let mut action = json!({
            "type": "button",
            "action_id": button.action_id,
            "block_id": button.block_id,
            "text": {"type": "plain_text", "text": button.text, "emoji": true},
            "action_ts": action_ts,
        });
        if let Some(value) = &button.value {
            action["value"] = json!(value);
        }
        if let Some(style) = &button.style {
            action["style"] = json!(style);
        }
        Ok(json!({
            "type": "block_actions",
            "user": {
                "id": click.user_id,
                "username": username,
                "name": username,
                "team_id": TEAM_ID,
            },
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": false,
            },
            "trigger_id": format!("{serial}.{}.{:032x}", now.as_secs(), serial),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": message.channel, "name": channel_name},
            "message": {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": BOT_ID,
                "text": message.text,
                "ts": message.ts,
                "blocks": message.blocks,
            },
            "state": {"values": {}},
            "response_url": format!("{base_url}/actions/{TEAM_ID}/{serial}/simresponse{serial:08}"),
            "actions": [action],
        }))
    }
}

const TEAM_ID: &str = "T0SIM";
const TEAM_DOMAIN: &str = "sim";
const APP_ID: &str = "A0SIMAPP";
const BOT_ID: &str = "B0SIMBOT";
const VERIFICATION_TOKEN: &str = "simVerificationToken0";
/// Longest a click waits for its answer, and the most of it read.
const CLICK_TIMEOUT: Duration = Duration::from_secs(10);
const CLICK_MAX_ANSWER: u64 = 1024 * 1024;

/// An edit of a signed click body.
type Tamper = Box<dyn FnOnce(&mut Vec<u8>) + Send>;

/// A button click to send with [`SlackSim::click_with`].
pub struct Click {
    target_url: String,
    signing_secret: String,
    message_ts: String,
    user_id: String,
    action_id: String,
    timestamp: Option<u64>,
    tamper: Option<Tamper>,
    signature: Option<String>,
}

impl std::fmt::Debug for Click {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Click")
            .field("target_url", &self.target_url)
            .field("message_ts", &self.message_ts)
            .field("user_id", &self.user_id)
            .field("action_id", &self.action_id)
            .field("timestamp", &self.timestamp)
            .field("tamper", &self.tamper.is_some())
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl Click {
    /// `user_id` clicks `action_id` on message `message_ts`, signed with `signing_secret`.
    pub fn new(
        target_url: &str,
        signing_secret: &str,
        message_ts: &str,
        user_id: &str,
        action_id: &str,
    ) -> Self {
        Self {
            target_url: target_url.to_owned(),
            signing_secret: signing_secret.to_owned(),
            message_ts: message_ts.to_owned(),
            user_id: user_id.to_owned(),
            action_id: action_id.to_owned(),
            timestamp: None,
            tamper: None,
            signature: None,
        }
    }

    /// Signs and sends `X-Slack-Request-Timestamp` as these Unix seconds instead of now.
    pub fn at_timestamp(mut self, unix_seconds: u64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// Changes the body after it was signed (the signature stays that of the original).
    pub fn tamper(mut self, edit: impl FnOnce(&mut Vec<u8>) + Send + 'static) -> Self {
        self.tamper = Some(Box::new(edit));
        self
    }

    /// Sends this `X-Slack-Signature` instead of the computed one.
    pub fn with_signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = Some(signature.into());
        self
    }
}

/// What a click sent and got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickOutcome {
    /// The target's HTTP status.
    pub status: u16,
    /// The target's answer body (chunked encoding removed).
    pub body: Vec<u8>,
    /// The exact body sent (after any tampering).
    pub sent: Vec<u8>,
    /// `X-Slack-Request-Timestamp` as sent.
    pub timestamp: String,
    /// `X-Slack-Signature` as sent.
    pub signature: String,
}

/// Why a click could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum ClickError {
    #[error("no Web API message with ts {0:?}")]
    NoMessage(String),
    #[error("message {ts:?} has no button with action_id {action_id:?}")]
    NoButton { ts: String, action_id: String },
    #[error("cannot click to {0}")]
    Url(String),
    #[error("click request failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("click request timed out after {0:?}")]
    Timeout(Duration),
    #[error("click answer is not HTTP/1.x: {0}")]
    Answer(String),
}

/// `v0=` and the hex HMAC-SHA256, under `secret`, of `v0:<timestamp>:<body>`.
fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn local_part(email: &str) -> &str {
    email.split('@').next().unwrap_or_default()
}

/// One `POST` over HTTP/1.1 with `Connection: close`: the status and the body.
async fn post_http(
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), ClickError> {
    let url =
        url::Url::parse(target).map_err(|err| ClickError::Url(format!("{target:?}: {err}")))?;
    if url.scheme() != "http" {
        return Err(ClickError::Url(format!(
            "{target:?}: only http:// targets are supported"
        )));
    }
    let Some(host) = url.host_str() else {
        return Err(ClickError::Url(format!("{target:?}: no host")));
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        stream
            .take(CLICK_MAX_ANSWER)
            .read_to_end(&mut answer)
            .await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(CLICK_TIMEOUT, exchange)
        .await
        .map_err(|_| ClickError::Timeout(CLICK_TIMEOUT))??;
    parse_answer(&answer)
}

/// Status and body of a complete HTTP/1.x answer (identity, `Content-Length` or chunked).
fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), ClickError> {
    let bad = |why: &str| ClickError::Answer(why.to_owned());
    let end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let rest = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(status_line));
    }
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad(status_line))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    if chunked {
        return Ok((
            status,
            dechunk(rest).ok_or_else(|| bad("bad chunked body"))?,
        ));
    }
    let body = match length {
        Some(length) => rest
            .get(..length)
            .ok_or_else(|| bad("body shorter than Content-Length"))?,
        None => rest,
    };
    Ok((status, body.to_vec()))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
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
        thread_ts: None,
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

    /// `limit` (default 100) clamped to 1–999 and to the page cap.
    fn page_limit(&self, args: &Value) -> Result<usize, &'static str> {
        let limit = match args.get("limit") {
            None => 100,
            Some(Value::Number(limit)) => limit
                .as_u64()
                .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX))
                .ok_or("invalid_limit")?,
            Some(Value::String(limit)) => limit.parse::<usize>().map_err(|_| "invalid_limit")?,
            Some(_) => return Err("invalid_limit"),
        };
        Ok(limit
            .clamp(1, 999)
            .min(self.history_page_limit.unwrap_or(usize::MAX)))
    }

    /// A message as listings show it: a replied-to parent carries its thread's summary.
    fn listed_json(&self, message: &SimMessage, with_metadata: bool) -> Value {
        let mut shown = message_json(message, with_metadata);
        if message.thread_ts.is_none() {
            let replies: Vec<&SimMessage> = self
                .messages
                .iter()
                .filter(|reply| {
                    reply.channel == message.channel
                        && reply.thread_ts.as_deref() == Some(message.ts.as_str())
                })
                .collect();
            if let Some(latest) = replies.last() {
                shown["thread_ts"] = json!(message.ts);
                shown["reply_count"] = json!(replies.len());
                shown["latest_reply"] = json!(latest.ts);
            }
        }
        shown
    }

    /// A channel of the config or the direct-message conversation of a member.
    fn knows_conversation(&self, channel: &str) -> bool {
        self.config.channels.iter().any(|known| known == channel)
            || self
                .config
                .users
                .values()
                .any(|id| format!("D{}", id.trim_start_matches(['U', 'W'])) == channel)
    }

    /// The call's arguments once its token is accepted, else the Web API error code.
    fn authorized_arguments(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        body: &Bytes,
    ) -> Result<Value, &'static str> {
        if let Some(code) = self.auth_error(headers) {
            return Err(code);
        }
        arguments(headers, uri, body)
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
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
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
    // Form-encoded calls carry blocks as a JSON string.
    let blocks = match blocks_argument(&args) {
        Ok(blocks) => blocks,
        Err(code) => return api_error(code),
    };
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() {
        return api_error("no_text");
    }
    if text.as_deref().is_some_and(|t| t.chars().count() > 40_000) {
        return api_error("msg_too_long");
    }
    let metadata = match metadata_argument(&args) {
        Ok(metadata) => metadata,
        Err(code) => return api_error(code),
    };
    let thread_ts = match string_arg(&args, "thread_ts").filter(|ts| !ts.is_empty()) {
        None => None,
        Some(asked) => {
            let parent = workspace
                .messages
                .iter()
                .find(|message| message.channel == conversation && message.ts == asked);
            match parent {
                Some(parent) => Some(
                    parent
                        .thread_ts
                        .clone()
                        .unwrap_or_else(|| parent.ts.clone()),
                ),
                None => return api_error("thread_not_found"),
            }
        }
    };
    let ts = workspace.next_ts();
    workspace.posts.push(SlackPost {
        via: SlackVia::WebApi,
        channel: conversation.clone(),
        ts: ts.clone(),
        thread_ts: thread_ts.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
    });
    let message = SimMessage {
        channel: conversation.clone(),
        ts: ts.clone(),
        thread_ts,
        text,
        blocks,
        metadata,
        edits: 0,
    };
    let answer = message_json(&message, true);
    workspace.messages.push(message);
    axum::Json(json!({
        "ok": true,
        "channel": conversation,
        "ts": ts,
        "message": answer,
    }))
    .into_response()
}

/// `blocks` from a JSON array or, in form-encoded calls, a JSON string; `Ok(None)` when absent.
fn blocks_argument(args: &Value) -> Result<Option<Value>, &'static str> {
    match args.get("blocks") {
        None => Ok(None),
        Some(Value::Array(blocks)) => Ok(Some(Value::Array(blocks.clone()))),
        Some(Value::String(raw)) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(blocks)) => Ok(Some(Value::Array(blocks))),
            _ => Err("invalid_blocks"),
        },
        Some(_) => Err("invalid_blocks"),
    }
}

/// `metadata` as `{event_type: string, event_payload: object}`, an object or a JSON string.
fn metadata_argument(args: &Value) -> Result<Option<Value>, &'static str> {
    let metadata = match args.get("metadata") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(raw)) => {
            serde_json::from_str::<Value>(raw).map_err(|_| "invalid_metadata_format")?
        }
        Some(other) => other.clone(),
    };
    let well_formed = metadata
        .get("event_type")
        .and_then(Value::as_str)
        .is_some_and(|kind| !kind.is_empty())
        && metadata.get("event_payload").is_some_and(Value::is_object);
    if well_formed {
        Ok(Some(metadata))
    } else {
        Err("invalid_metadata_format")
    }
}

/// A message as the Web API shows it; `metadata` only when asked for.
fn message_json(message: &SimMessage, with_metadata: bool) -> Value {
    let mut shown = json!({
        "type": "message",
        "subtype": "bot_message",
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "text": message.text,
        "ts": message.ts,
    });
    if let Some(thread_ts) = &message.thread_ts {
        shown["thread_ts"] = json!(thread_ts);
    }
    if let Some(blocks) = &message.blocks {
        shown["blocks"] = blocks.clone();
    }
    if with_metadata && let Some(metadata) = &message.metadata {
        shown["metadata"] = metadata.clone();
    }
    if message.edits > 0 {
        shown["edited"] = json!({"user": BOT_ID, "ts": message.ts});
    }
    shown
}

/// A message `ts` as microseconds, for ordering: `<seconds>[.<up to 6 digits>]`.
fn ts_micros(ts: &str) -> Option<u128> {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if seconds.is_empty() || !digits(seconds) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let seconds: u128 = seconds.parse().ok()?;
    let micros: u128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

fn truthy(args: &Value, name: &str) -> bool {
    match args.get(name) {
        Some(Value::Bool(value)) => *value,
        Some(Value::String(value)) => value == "true" || value == "1",
        Some(Value::Number(value)) => value.as_u64() == Some(1),
        _ => false,
    }
}

fn string_arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

async fn update_message(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut workspace = state(&workspace);
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let Some(channel) = string_arg(&args, "channel").map(str::to_owned) else {
        return api_error("channel_not_found");
    };
    if !workspace.knows_conversation(&channel) {
        return api_error("channel_not_found");
    }
    let Some(ts) = string_arg(&args, "ts").map(str::to_owned) else {
        return api_error("message_not_found");
    };
    let text = string_arg(&args, "text").map(str::to_owned);
    let blocks = match blocks_argument(&args) {
        Ok(blocks) => blocks,
        Err(code) => return api_error(code),
    };
    let metadata = match metadata_argument(&args) {
        Ok(metadata) => metadata,
        Err(code) => return api_error(code),
    };
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() {
        return api_error("no_text");
    }
    if text.as_deref().is_some_and(|t| t.chars().count() > 40_000) {
        return api_error("msg_too_long");
    }
    let Some(message) = workspace
        .messages
        .iter_mut()
        .find(|message| message.channel == channel && message.ts == ts)
    else {
        return api_error("message_not_found");
    };
    if text.is_some() {
        message.text = text;
    }
    if let Some(blocks) = blocks {
        // An empty array removes the blocks.
        message.blocks = blocks
            .as_array()
            .is_some_and(|blocks| !blocks.is_empty())
            .then_some(blocks);
    }
    if metadata.is_some() {
        message.metadata = metadata;
    }
    message.edits += 1;
    let shown = message_json(message, false);
    axum::Json(json!({
        "ok": true,
        "channel": channel,
        "ts": ts,
        "text": shown["text"],
        "message": shown,
    }))
    .into_response()
}

/// `conversations.history`: newest first, paged by a `next_ts:` cursor.
async fn history(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let workspace = state(&workspace);
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let Some(channel) = string_arg(&args, "channel") else {
        return api_error("channel_not_found");
    };
    if !workspace.knows_conversation(channel) {
        return api_error("channel_not_found");
    }
    let bound = |name: &str, code: &'static str| match string_arg(&args, name) {
        None | Some("") => Ok(None),
        Some(ts) => ts_micros(ts).map(Some).ok_or(code),
    };
    let (oldest, latest) = match (
        bound("oldest", "invalid_ts_oldest"),
        bound("latest", "invalid_ts_latest"),
    ) {
        (Ok(oldest), Ok(latest)) => (oldest, latest),
        (Err(code), _) | (_, Err(code)) => return api_error(code),
    };
    let inclusive = truthy(&args, "inclusive");
    let (before, limit) = match (cursor_argument(&args), workspace.page_limit(&args)) {
        (Ok(before), Ok(limit)) => (before, limit),
        (Err(code), _) | (_, Err(code)) => return api_error(code),
    };
    let with_metadata = truthy(&args, "include_all_metadata");
    let mut matching: Vec<(u128, &SimMessage)> = workspace
        .messages
        .iter()
        .filter(|message| message.channel == channel && message.thread_ts.is_none())
        .filter_map(|message| Some((ts_micros(&message.ts)?, message)))
        .filter(|(at, _)| {
            oldest.is_none_or(|oldest| {
                if inclusive {
                    *at >= oldest
                } else {
                    *at > oldest
                }
            }) && latest.is_none_or(|latest| {
                if inclusive {
                    *at <= latest
                } else {
                    *at < latest
                }
            }) && before.is_none_or(|before| *at < before)
        })
        .collect();
    matching.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let has_more = matching.len() > limit;
    matching.truncate(limit);
    let messages: Vec<Value> = matching
        .iter()
        .map(|(_, message)| workspace.listed_json(message, with_metadata))
        .collect();
    let mut answer = json!({
        "ok": true,
        "messages": messages,
        "has_more": has_more,
        "pin_count": 0,
    });
    if has_more && let Some((last, _)) = matching.last() {
        answer["response_metadata"] = json!({"next_cursor": encode_cursor(*last)});
    }
    axum::Json(answer).into_response()
}

/// `conversations.replies`: a thread oldest first, the parent leading, paged forward by a
/// `next_ts:` cursor.
async fn replies(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let workspace = state(&workspace);
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let Some(channel) = string_arg(&args, "channel") else {
        return api_error("channel_not_found");
    };
    if !workspace.knows_conversation(channel) {
        return api_error("channel_not_found");
    }
    let Some(ts) = string_arg(&args, "ts") else {
        return api_error("thread_not_found");
    };
    let Some(parent) = workspace
        .messages
        .iter()
        .find(|message| message.channel == channel && message.ts == ts)
    else {
        return api_error("thread_not_found");
    };
    let (after, limit) = match (cursor_argument(&args), workspace.page_limit(&args)) {
        (Ok(after), Ok(limit)) => (after, limit),
        (Err(code), _) | (_, Err(code)) => return api_error(code),
    };
    let with_metadata = truthy(&args, "include_all_metadata");
    let mut thread: Vec<(u128, &SimMessage)> = std::iter::once(parent)
        .chain(workspace.messages.iter().filter(|message| {
            parent.thread_ts.is_none()
                && message.channel == channel
                && message.thread_ts.as_deref() == Some(ts)
        }))
        .filter_map(|message| Some((ts_micros(&message.ts)?, message)))
        .filter(|(at, _)| after.is_none_or(|after| *at > after))
        .collect();
    thread.sort_by_key(|(at, _)| *at);
    let has_more = thread.len() > limit;
    thread.truncate(limit);
    let messages: Vec<Value> = thread
        .iter()
        .map(|(_, message)| workspace.listed_json(message, with_metadata))
        .collect();
    let mut answer = json!({"ok": true, "messages": messages, "has_more": has_more});
    if has_more && let Some((last, _)) = thread.last() {
        answer["response_metadata"] = json!({"next_cursor": encode_cursor(*last)});
    }
    axum::Json(answer).into_response()
}

/// `cursor` as the ts it points at; `None` for the first page.
fn cursor_argument(args: &Value) -> Result<Option<u128>, &'static str> {
    match string_arg(args, "cursor").filter(|cursor| !cursor.is_empty()) {
        None => Ok(None),
        Some(cursor) => decode_cursor(cursor).map(Some).ok_or("invalid_cursor"),
    }
}

/// Slack's cursor shape: base64 of `next_ts:<ts digits>`; here, the last ts returned.
fn encode_cursor(micros: u128) -> String {
    BASE64.encode(format!("next_ts:{micros}"))
}

fn decode_cursor(cursor: &str) -> Option<u128> {
    let decoded = BASE64.decode(cursor).ok()?;
    let text = std::str::from_utf8(&decoded).ok()?;
    text.strip_prefix("next_ts:")?.parse().ok()
}

async fn user_info(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let workspace = state(&workspace);
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
        Ok(args) => args,
        Err(code) => return api_error(code),
    };
    let Some(user) = string_arg(&args, "user").filter(|user| !user.is_empty()) else {
        return api_error("invalid_arguments");
    };
    let Some((email, id)) = workspace.config.users.iter().find(|(_, id)| *id == user) else {
        return api_error("user_not_found");
    };
    let name = local_part(email);
    let mut profile = json!({"real_name": name, "display_name": name});
    if !workspace.config.hidden_emails.contains(id) {
        profile["email"] = json!(email);
    }
    axum::Json(json!({
        "ok": true,
        "user": {
            "id": id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": name,
            "deleted": false,
            "is_bot": false,
            "profile": profile,
        }
    }))
    .into_response()
}

/// A click's `response_url`: accepted and recorded, no effect.
async fn response_url() -> Response {
    axum::Json(json!({"ok": true})).into_response()
}

async fn lookup_by_email(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let workspace = state(&workspace);
    let args = match workspace.authorized_arguments(&headers, &uri, &body) {
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
            let name = local_part(email);
            axum::Json(json!({
                "ok": true,
                "user": {
                    "id": id,
                    "team_id": TEAM_ID,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signature_matches_the_documented_example() {
        // The worked example of Slack's "Verifying requests from Slack".
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&\
                    channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&\
                    user_name=roadrunner&command=%2Fwebhook-collect&text=&\
                    response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F\
                    397700885554%2F96rGlfmibIGlgcZRskXaIFfN&\
                    trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            slack_signature(
                "8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn timestamps_order_and_cursors_round_trip() {
        assert_eq!(ts_micros("1700000000.000101"), Some(1_700_000_000_000_101));
        assert_eq!(ts_micros("1700000000.5"), Some(1_700_000_000_500_000));
        assert_eq!(ts_micros("1700000000"), Some(1_700_000_000_000_000));
        for bad in ["", ".5", "17e9", "1.1234567", "1.-2"] {
            assert_eq!(ts_micros(bad), None, "{bad:?}");
        }
        let cursor = encode_cursor(1_700_000_000_000_101);
        assert_eq!(
            BASE64.decode(&cursor).ok().as_deref(),
            Some(b"next_ts:1700000000000101".as_slice())
        );
        assert_eq!(decode_cursor(&cursor), Some(1_700_000_000_000_101));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&BASE64.encode("other:1")), None);
    }

    #[test]
    fn metadata_must_name_an_event_type_and_an_object_payload() {
        let good = json!({"event_type": "t", "event_payload": {"token": "x"}});
        assert_eq!(
            metadata_argument(&json!({"metadata": good})),
            Ok(Some(good.clone()))
        );
        assert_eq!(
            metadata_argument(&json!({"metadata": good.to_string()})),
            Ok(Some(good))
        );
        assert_eq!(metadata_argument(&json!({})), Ok(None));
        for bad in [
            json!({"metadata": {"event_payload": {}}}),
            json!({"metadata": {"event_type": "t", "event_payload": "x"}}),
            json!({"metadata": "{not json"}),
            json!({"metadata": 3}),
        ] {
            assert_eq!(metadata_argument(&bad), Err("invalid_metadata_format"));
        }
    }

    #[test]
    fn buttons_are_read_from_actions_blocks() {
        let message = SimMessage {
            channel: "C1".into(),
            ts: "1.000001".into(),
            text: Some("t".into()),
            blocks: Some(json!([
                {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}},
                {"type": "actions", "block_id": "b1", "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": "v1",
                    },
                    {"type": "static_select", "action_id": "pick"},
                    {
                        "type": "button",
                        "action_id": "deny",
                        "text": {"type": "plain_text", "text": "Deny"},
                        "value": "v2",
                    },
                ]},
            ])),
            thread_ts: None,
            metadata: None,
            edits: 0,
        };
        let buttons = message.buttons();
        assert_eq!(
            buttons
                .iter()
                .map(|b| b.action_id.as_str())
                .collect::<Vec<_>>(),
            ["approve", "deny"]
        );
        assert_eq!(
            message.button("approve"),
            Some(SimButton {
                block_id: Some("b1".into()),
                action_id: "approve".into(),
                text: Some("Approve".into()),
                style: Some("primary".into()),
                value: Some("v1".into()),
            })
        );
        assert_eq!(message.button("pick"), None);
        assert_eq!(message.section_texts(), ["hello"]);
        assert!(message.has_buttons());
        let plain = SimMessage {
            blocks: None,
            ..message
        };
        assert!(!plain.has_buttons());
    }

    #[test]
    fn answers_are_read_with_any_framing() {
        let fixed = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\nstale";
        assert_eq!(parse_answer(fixed).ok(), Some((401, b"stale".to_vec())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked).ok(), Some((200, b"abcde".to_vec())));
        let until_close = b"HTTP/1.0 204 No Content\r\n\r\n";
        assert_eq!(parse_answer(until_close).ok(), Some((204, Vec::new())));
        for bad in [
            b"garbage".as_slice(),
            b"SMTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                matches!(parse_answer(bad), Err(ClickError::Answer(_))),
                "{bad:?}"
            );
        }
    }
}
