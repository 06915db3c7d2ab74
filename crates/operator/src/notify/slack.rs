//! Slack: incoming webhooks and the Web API (`chat.postMessage`, `chat.update`,
//! `conversations.history`, `conversations.replies`, `users.lookupByEmail`, `users.info`), and
//! the parser of interactive button clicks.
//!
//! Webhooks answer with HTTP status codes and a plain-text error code. The Web API answers
//! HTTP 200 even when it refuses a call; the refusal is `{"ok": false, "error": "<code>"}` and is
//! an error here. Rate limiting is a 429 with `Retry-After` in both.
//!
//! # Approve / Deny buttons
//!
//! [`SlackApiClient::post_buttons`] posts a [`ButtonMessage`]: a section with the text, a section
//! with the detail lines, and an actions block with an Approve ([`SLACK_APPROVE_ACTION`], style
//! `primary`) and a Deny ([`SLACK_DENY_ACTION`], style `danger`) button carrying opaque values.
//! The message is tagged with Slack message metadata `{event_type: "opal_operator_route",
//! event_payload: {token}}`, so [`SlackApiClient::find_by_token`] can find it again through
//! `conversations.history` after a restart instead of posting twice.
//! [`SlackApiClient::update_message`] replaces the blocks with a plain section (removing the
//! buttons) once the request is decided. [`SlackApiClient::reply_once`] notes something in the
//! message's thread at most once, keyed by a marker it finds again in `conversations.replies`.
//! [`SlackApiClient::user_email`] maps the clicking member to an email with `users.info` (scope
//! `users:read.email`).
//!
//! Slack delivers a click to the app's interactivity URL as a form-encoded `payload` field
//! holding `block_actions` JSON, signed with `X-Slack-Signature`. [`parse_block_action`] reads
//! that body once the endpoint has verified the signature; it never verifies it itself.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::{HttpCaller, HttpResponse};
use super::render::{SlackMessage, truncate};
use crate::secret::{Redactor, Secret};

/// `action_id` of the Approve button [`SlackApiClient::post_buttons`] posts.
pub const SLACK_APPROVE_ACTION: &str = "approve";
/// `action_id` of the Deny button [`SlackApiClient::post_buttons`] posts.
pub const SLACK_DENY_ACTION: &str = "deny";
/// `event_type` of the message metadata that tags a button message with its token.
pub const SLACK_ROUTE_EVENT_TYPE: &str = "opal_operator_route";
/// `block_id` of the actions block holding the two buttons.
const ROUTE_BLOCK_ID: &str = "opal_operator_route_decision";
/// Messages asked for per `conversations.history` or `conversations.replies` page (Slack
/// recommends at most 200, and may answer fewer).
pub const SLACK_HISTORY_PAGE_LIMIT: usize = 200;
/// Pages [`SlackApiClient::find_by_token`] (of `conversations.history`) and
/// [`SlackApiClient::reply_once`] (of `conversations.replies`) read at most.
pub const SLACK_HISTORY_MAX_PAGES: usize = 10;
/// Largest interactivity body [`parse_block_action`] reads. The message Slack echoes back is
/// one of ours (a few small blocks), so real clicks stay far below it.
pub const SLACK_BLOCK_ACTION_MAX_BYTES: usize = 256 * 1024;

/// Slack caps a section's text at 3000 characters and a button's value at 2000.
const SECTION_CHARS: usize = 3000;
const BUTTON_VALUE_CHARS: usize = 2000;
/// Longest token accepted as a metadata tag, and longest thread marker.
const TOKEN_CHARS: usize = 255;
/// Longest channel accepted (IDs are ~11 characters, names at most 80).
const CHANNEL_CHARS: usize = 255;
/// Operation name in errors of [`parse_block_action`].
const BLOCK_ACTIONS: &str = "interactivity.block_actions";

/// Error codes Slack's Web API documents as temporary.
const RETRYABLE_CODES: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Posts to one incoming webhook. The URL is the credential.
#[derive(Clone, Debug)]
pub struct SlackWebhookClient {
    http: HttpCaller,
    url: Secret,
}

impl SlackWebhookClient {
    pub fn new(client: reqwest::Client, channel: &str, url: Secret) -> Result<Self, NotifyError> {
        let redactor = Redactor::new().with_url(&url);
        endpoint(url.expose(), "url").map_err(|problem| {
            NotifyError::Config(format!("channel {channel:?}: {}", redactor.clean(&problem)))
        })?;
        Ok(Self {
            http: HttpCaller::new(client, ChannelKind::SlackWebhook, channel, redactor),
            url,
        })
    }

    /// Posts a message; Slack answers `200 ok` or an error code with a 4xx/5xx status.
    pub async fn send(&self, message: &SlackMessage) -> Result<(), NotifyError> {
        let body = json!({"text": message.text, "blocks": message.blocks});
        let response = self
            .http
            .send(
                "webhook.post",
                self.http.client().post(self.url.expose()).json(&body),
            )
            .await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(self.http.failure_with_body("webhook.post", &response))
        }
    }
}

/// Where a Web API message was posted.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PostedMessage {
    pub channel: String,
    pub ts: String,
}

/// A workspace member found by email.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SlackUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub real_name: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warning: Option<String>,
}

#[derive(Deserialize)]
struct LookupAnswer {
    user: SlackUser,
}

/// An access request to post with Approve / Deny buttons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ButtonMessage {
    /// Channel ID (or name) to post to.
    pub channel: String,
    /// The headline, also the notification's fallback text. Escaped for mrkdwn.
    pub text: String,
    /// Opaque tag stored as message metadata, the key of [`SlackApiClient::find_by_token`]
    /// (1–255 characters, no control characters).
    pub token: String,
    /// Value of the Approve button (1–2000 characters), echoed back in its click.
    pub approve_value: String,
    /// Value of the Deny button (1–2000 characters), echoed back in its click.
    pub deny_value: String,
    /// Lines shown as one section under the text. Escaped for mrkdwn.
    pub details: Vec<String>,
}

/// One button click, read from a `block_actions` interactivity payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAction {
    /// The member who clicked (`U…` or `W…`).
    pub user_id: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    /// `ts` of the message holding the button.
    pub message_ts: Option<String>,
    /// [`SLACK_APPROVE_ACTION`] or [`SLACK_DENY_ACTION`] for the buttons of
    /// [`SlackApiClient::post_buttons`].
    pub action_id: String,
    /// The clicked button's value.
    pub value: String,
}

#[derive(Deserialize)]
struct HistoryPage {
    #[serde(default)]
    messages: Vec<HistoryMessage>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

#[derive(Deserialize)]
struct HistoryMessage {
    #[serde(default)]
    ts: Option<String>,
    /// The parent's `ts` on every message of a thread, the parent included.
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    metadata: Option<MessageMetadata>,
}

#[derive(Deserialize)]
struct MessageMetadata {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    event_payload: Option<Value>,
}

#[derive(Deserialize)]
struct ResponseMetadata {
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct UserInfoAnswer {
    user: UserInfo,
}

#[derive(Deserialize)]
struct UserInfo {
    id: String,
    #[serde(default)]
    profile: Option<UserProfile>,
}

#[derive(Deserialize)]
struct UserProfile {
    #[serde(default)]
    email: Option<String>,
}

/// Calls the Slack Web API with a bot token.
#[derive(Clone, Debug)]
pub struct SlackApiClient {
    http: HttpCaller,
    channel: Arc<str>,
    base: String,
    authorization: HeaderValue,
}

impl SlackApiClient {
    /// `api_url` is the method root, `https://slack.com/api` in production.
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        api_url: &str,
        token: &Secret,
    ) -> Result<Self, NotifyError> {
        let base = endpoint(api_url, "apiUrl")
            .map_err(|problem| NotifyError::Config(format!("channel {channel:?}: {problem}")))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| {
                NotifyError::Config(format!(
                    "channel {channel:?}: the token is not a valid header value"
                ))
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            http: HttpCaller::new(
                client,
                ChannelKind::Slack,
                channel,
                Redactor::new().with(token),
            ),
            channel: Arc::from(channel),
            base: base.as_str().trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// `chat.postMessage` to a channel ID, channel name or user ID (a direct message).
    pub async fn post_message(
        &self,
        channel: &str,
        message: &SlackMessage,
    ) -> Result<PostedMessage, NotifyError> {
        const OPERATION: &str = "chat.postMessage";
        let body = json!({
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": false,
        });
        let request = self
            .http
            .client()
            .post(format!("{}/chat.postMessage", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let response = self.http.send(OPERATION, request).await?;
        let answer = self.checked(OPERATION, &response)?;
        serde_json::from_value(answer)
            .map_err(|err| self.http.decode_error(OPERATION, &err.to_string()))
    }

    /// `users.lookupByEmail` (scope `users:read.email`).
    pub async fn lookup_user_by_email(&self, email: &str) -> Result<SlackUser, NotifyError> {
        const OPERATION: &str = "users.lookupByEmail";
        let request = self
            .http
            .client()
            .get(format!("{}/users.lookupByEmail", self.base))
            .query(&[("email", email)])
            .header(AUTHORIZATION, self.authorization.clone());
        let response = self.http.send(OPERATION, request).await?;
        let answer = self.checked(OPERATION, &response)?;
        let found: LookupAnswer = serde_json::from_value(answer)
            .map_err(|err| self.http.decode_error(OPERATION, &err.to_string()))?;
        Ok(found.user)
    }

    /// Sends a direct message to the member with this email.
    pub async fn direct_message(
        &self,
        email: &str,
        message: &SlackMessage,
    ) -> Result<PostedMessage, NotifyError> {
        let user = self.lookup_user_by_email(email).await?;
        self.post_message(&user.id, message).await
    }

    /// Posts `message` with Approve / Deny buttons and tags it with the metadata
    /// `{event_type: "opal_operator_route", event_payload: {token}}`. The message is checked
    /// (non-empty text and channel, token and values within Slack's limits) before any request;
    /// text and details are escaped for mrkdwn and cut to Slack's section limit.
    pub async fn post_buttons(
        &self,
        message: &ButtonMessage,
    ) -> Result<PostedMessage, NotifyError> {
        const OPERATION: &str = "chat.postMessage";
        self.checked_channel(&message.channel)?;
        self.checked_tag("a message token", &message.token)?;
        if message.text.trim().is_empty() {
            return Err(self.refused("a button message needs text"));
        }
        for (name, value) in [
            ("approve", &message.approve_value),
            ("deny", &message.deny_value),
        ] {
            if value.is_empty() || value.chars().count() > BUTTON_VALUE_CHARS {
                return Err(self.refused(&format!(
                    "the {name} button's value must be 1 to {BUTTON_VALUE_CHARS} characters"
                )));
            }
        }
        let text = truncate(&escape(&message.text), SECTION_CHARS);
        let mut blocks = vec![section(&text)];
        let details: Vec<String> = message
            .details
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| escape(line))
            .collect();
        if !details.is_empty() {
            blocks.push(section(&truncate(&details.join("\n"), SECTION_CHARS)));
        }
        blocks.push(json!({
            "type": "actions",
            "block_id": ROUTE_BLOCK_ID,
            "elements": [
                button(SLACK_APPROVE_ACTION, "Approve", "primary", &message.approve_value),
                button(SLACK_DENY_ACTION, "Deny", "danger", &message.deny_value),
            ],
        }));
        let body = json!({
            "channel": message.channel,
            "text": text,
            "blocks": blocks,
            "metadata": {
                "event_type": SLACK_ROUTE_EVENT_TYPE,
                "event_payload": {"token": message.token},
            },
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let answer = self.call_json(OPERATION, "chat.postMessage", &body).await?;
        serde_json::from_value(answer)
            .map_err(|err| self.http.decode_error(OPERATION, &err.to_string()))
    }

    /// The message [`post_buttons`](Self::post_buttons) posted with `token` in `channel` (the
    /// conversation ID it answered with), newest first through `conversations.history` with
    /// `include_all_metadata=true`, from `oldest` (a message `ts`, inclusive) when given. Reads
    /// at most [`SLACK_HISTORY_MAX_PAGES`] pages of [`SLACK_HISTORY_PAGE_LIMIT`]; `None` only
    /// when the whole history was read without a match. More pages than that, or a page that
    /// says there is more without a cursor, is an error, so a caller never posts a duplicate on
    /// a partial read. When several messages carry the token, the newest is returned.
    pub async fn find_by_token(
        &self,
        channel: &str,
        token: &str,
        oldest: Option<&str>,
    ) -> Result<Option<PostedMessage>, NotifyError> {
        const OPERATION: &str = "conversations.history";
        self.checked_channel(channel)?;
        self.checked_tag("a message token", token)?;
        if let Some(oldest) = oldest
            && !is_ts(oldest)
        {
            return Err(self.refused(&format!(
                "{:?} is not a Slack message timestamp",
                shown(oldest)
            )));
        }
        let limit = SLACK_HISTORY_PAGE_LIMIT.to_string();
        let mut query = vec![
            ("channel", channel),
            ("limit", limit.as_str()),
            ("include_all_metadata", "true"),
        ];
        if let Some(oldest) = oldest {
            query.extend([("oldest", oldest), ("inclusive", "true")]);
        }
        let mut cursor: Option<String> = None;
        for _ in 0..SLACK_HISTORY_MAX_PAGES {
            let page = self.read_page(OPERATION, &query, cursor.as_deref()).await?;
            let found = page.messages.into_iter().find_map(|message| {
                let metadata = message.metadata?;
                let tagged = metadata.event_type.as_deref() == Some(SLACK_ROUTE_EVENT_TYPE)
                    && metadata
                        .event_payload
                        .as_ref()
                        .and_then(|payload| payload.get("token"))
                        .and_then(Value::as_str)
                        == Some(token);
                tagged.then_some(message.ts).flatten()
            });
            if let Some(ts) = found {
                return Ok(Some(PostedMessage {
                    channel: channel.to_owned(),
                    ts,
                }));
            }
            match self.next_cursor(
                OPERATION,
                page.has_more,
                page.response_metadata,
                cursor.as_deref(),
            )? {
                None => return Ok(None),
                Some(next) => cursor = Some(next),
            }
        }
        Err(self.http.decode_error(
            OPERATION,
            &format!(
                "the history of {channel:?} spans more than {SLACK_HISTORY_MAX_PAGES} pages of \
                 {SLACK_HISTORY_PAGE_LIMIT} without the message; pass a later `oldest`"
            ),
        ))
    }

    /// `chat.update`: replaces message `ts` of `channel` with one plain section of `text`
    /// (escaped for mrkdwn), removing its buttons. Its metadata stays.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
    ) -> Result<(), NotifyError> {
        const OPERATION: &str = "chat.update";
        self.checked_channel(channel)?;
        if !is_ts(ts) {
            return Err(self.refused(&format!("{:?} is not a Slack message timestamp", shown(ts))));
        }
        if text.trim().is_empty() {
            return Err(self.refused("an updated message needs text"));
        }
        let text = truncate(&escape(text), SECTION_CHARS);
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": text,
            "blocks": [section(&text)],
        });
        self.call_json(OPERATION, "chat.update", &body).await?;
        Ok(())
    }

    /// Replies `text` in the thread of message `thread_ts` of `channel` (the conversation ID
    /// [`post_buttons`](Self::post_buttons) answered with) unless a reply there already holds
    /// `marker`, so a note survives retries and restarts without repeating: `Ok(true)` when it
    /// posted, `Ok(false)` when the marker was already there.
    ///
    /// The reply is `text`, escaped for mrkdwn and cut so that the marker always fits, then a
    /// space and `marker`. The marker is 1 to 255 characters without control characters or
    /// `&`, `<`, `>` (escaping would change it, and a changed marker is never found again).
    /// Arguments are checked before any request. The thread is read whole first, at most
    /// [`SLACK_HISTORY_MAX_PAGES`] pages of [`SLACK_HISTORY_PAGE_LIMIT`]; a longer thread, a
    /// page that says there is more without a cursor, a repeated cursor, or an answer that does
    /// not start with `thread_ts` as a thread's parent is an error, never a post.
    pub async fn reply_once(
        &self,
        channel: &str,
        thread_ts: &str,
        marker: &str,
        text: &str,
    ) -> Result<bool, NotifyError> {
        const OPERATION: &str = "chat.postMessage";
        self.checked_channel(channel)?;
        if !is_ts(thread_ts) {
            return Err(self.refused(&format!(
                "{:?} is not a Slack message timestamp",
                shown(thread_ts)
            )));
        }
        self.checked_tag("a thread marker", marker)?;
        if marker.contains(['&', '<', '>']) {
            return Err(self
                .refused("a thread marker cannot hold `&`, `<` or `>`: escaping would change it"));
        }
        if text.trim().is_empty() {
            return Err(self.refused("a thread reply needs text"));
        }
        if self.thread_has(channel, thread_ts, marker).await? {
            return Ok(false);
        }
        let room = SECTION_CHARS.saturating_sub(marker.chars().count() + 1);
        let body = json!({
            "channel": channel,
            "thread_ts": thread_ts,
            "text": format!("{} {marker}", truncate(&escape(text), room)),
            "unfurl_links": false,
        });
        self.call_json(OPERATION, "chat.postMessage", &body).await?;
        Ok(true)
    }

    /// Whether a reply of the thread `thread_ts` holds `marker`, from the whole thread only.
    async fn thread_has(
        &self,
        channel: &str,
        thread_ts: &str,
        marker: &str,
    ) -> Result<bool, NotifyError> {
        const OPERATION: &str = "conversations.replies";
        let limit = SLACK_HISTORY_PAGE_LIMIT.to_string();
        let query = [
            ("channel", channel),
            ("ts", thread_ts),
            ("limit", limit.as_str()),
        ];
        let mut cursor: Option<String> = None;
        for _ in 0..SLACK_HISTORY_MAX_PAGES {
            let page = self.read_page(OPERATION, &query, cursor.as_deref()).await?;
            if cursor.is_none() {
                // Slack answers the parent first; anything else (a reply's ts) is another
                // thread than the one the caller means.
                let parent = page.messages.first();
                let is_parent = parent.is_some_and(|message| {
                    message.ts.as_deref() == Some(thread_ts)
                        && message
                            .thread_ts
                            .as_deref()
                            .is_none_or(|parent| parent == thread_ts)
                });
                if !is_parent {
                    return Err(self.http.decode_error(
                        OPERATION,
                        &format!("the thread of {thread_ts:?} does not start with its parent"),
                    ));
                }
            }
            let found = page.messages.iter().any(|message| {
                message.ts.as_deref() != Some(thread_ts)
                    && message
                        .text
                        .as_deref()
                        .is_some_and(|text| text.contains(marker))
            });
            if found {
                return Ok(true);
            }
            match self.next_cursor(
                OPERATION,
                page.has_more,
                page.response_metadata,
                cursor.as_deref(),
            )? {
                None => return Ok(false),
                Some(next) => cursor = Some(next),
            }
        }
        Err(self.http.decode_error(
            OPERATION,
            &format!(
                "the thread of {thread_ts:?} in {channel:?} spans more than \
                 {SLACK_HISTORY_MAX_PAGES} pages of {SLACK_HISTORY_PAGE_LIMIT}"
            ),
        ))
    }

    /// The email of member `user_id` by `users.info` (scope `users:read.email`); `None` when
    /// Slack does not know the member (`user_not_found`) or shows no email. An id that is not
    /// `^[UW][A-Z0-9]{2,}$` is refused before any request.
    pub async fn user_email(&self, user_id: &str) -> Result<Option<String>, NotifyError> {
        const OPERATION: &str = "users.info";
        if !is_user_id(user_id) {
            return Err(self.refused(&format!(
                "{:?} is not a Slack user id; refusing to look it up",
                shown(user_id)
            )));
        }
        let request = self
            .http
            .client()
            .get(format!("{}/users.info", self.base))
            .query(&[("user", user_id)])
            .header(AUTHORIZATION, self.authorization.clone());
        let response = self.http.send(OPERATION, request).await?;
        let answer = match self.checked(OPERATION, &response) {
            Ok(answer) => answer,
            Err(NotifyError::Rejected { code, .. }) if code == "user_not_found" => return Ok(None),
            Err(err) => return Err(err),
        };
        let info: UserInfoAnswer = serde_json::from_value(answer)
            .map_err(|err| self.http.decode_error(OPERATION, &err.to_string()))?;
        if info.user.id != user_id {
            return Err(self.http.decode_error(
                OPERATION,
                &format!("asked for user {user_id:?}, got {:?}", shown(&info.user.id)),
            ));
        }
        Ok(info
            .user
            .profile
            .and_then(|profile| profile.email)
            .map(|email| email.trim().to_owned())
            .filter(|email| !email.is_empty()))
    }

    /// POSTs a JSON body to `method` and checks the answer.
    async fn call_json(
        &self,
        operation: &'static str,
        method: &str,
        body: &Value,
    ) -> Result<Value, NotifyError> {
        let request = self
            .http
            .client()
            .post(format!("{}/{method}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let response = self.http.send(operation, request).await?;
        self.checked(operation, &response)
    }

    /// GETs one page of the listing `operation` (also the method name), after `cursor`.
    async fn read_page(
        &self,
        operation: &'static str,
        query: &[(&str, &str)],
        cursor: Option<&str>,
    ) -> Result<HistoryPage, NotifyError> {
        let mut request = self
            .http
            .client()
            .get(format!("{}/{operation}", self.base))
            .query(query)
            .header(AUTHORIZATION, self.authorization.clone());
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let response = self.http.send(operation, request).await?;
        let answer = self.checked(operation, &response)?;
        serde_json::from_value(answer)
            .map_err(|err| self.http.decode_error(operation, &err.to_string()))
    }

    /// The cursor of the next page, `None` once the listing is complete. A page that says
    /// there is more without a cursor, or answers the cursor it was read with, is an error:
    /// callers decide on the whole listing, never on part of it.
    fn next_cursor(
        &self,
        operation: &'static str,
        has_more: bool,
        metadata: Option<ResponseMetadata>,
        current: Option<&str>,
    ) -> Result<Option<String>, NotifyError> {
        let next = metadata
            .and_then(|metadata| metadata.next_cursor)
            .filter(|next| !next.is_empty());
        match next {
            None if has_more => Err(self.http.decode_error(
                operation,
                "the page says there is more but has no next_cursor",
            )),
            Some(next) if current == Some(next.as_str()) => Err(self
                .http
                .decode_error(operation, "the listing answered the same cursor twice")),
            next => Ok(next),
        }
    }

    fn refused(&self, problem: &str) -> NotifyError {
        NotifyError::Config(format!("channel {:?}: {problem}", self.channel))
    }

    fn checked_channel(&self, channel: &str) -> Result<(), NotifyError> {
        if channel.trim().is_empty()
            || channel.chars().count() > CHANNEL_CHARS
            || channel.chars().any(char::is_control)
        {
            return Err(self.refused(&format!("{:?} is not a Slack channel", shown(channel))));
        }
        Ok(())
    }

    /// A token or marker: `what` names it in the refusal.
    fn checked_tag(&self, what: &str, tag: &str) -> Result<(), NotifyError> {
        if tag.is_empty() || tag.chars().count() > TOKEN_CHARS || tag.chars().any(char::is_control)
        {
            return Err(self.refused(&format!(
                "{what} must be 1 to {TOKEN_CHARS} characters without control characters"
            )));
        }
        Ok(())
    }

    /// Non-2xx statuses and `ok: false` bodies become errors.
    fn checked(
        &self,
        operation: &'static str,
        response: &HttpResponse,
    ) -> Result<Value, NotifyError> {
        if !response.is_success() {
            return Err(self.http.failure_with_body(operation, response));
        }
        let value: Value = self.http.decode(operation, response)?;
        let envelope: Envelope = serde_json::from_value(value.clone())
            .map_err(|err| self.http.decode_error(operation, &err.to_string()))?;
        if envelope.ok {
            if let Some(warning) = envelope.warning {
                tracing::debug!(operation, %warning, "Slack answered with a warning");
            }
            return Ok(value);
        }
        let code = envelope.error.unwrap_or_else(|| "unknown_error".to_owned());
        let retryable = RETRYABLE_CODES.contains(&code.as_str());
        Err(self.http.rejected(operation, &code, "", retryable))
    }
}

/// Reads a button click from the body Slack POSTs to the interactivity URL
/// (`application/x-www-form-urlencoded`, one field `payload` holding JSON). Call it only after
/// the request's `X-Slack-Signature` was verified over these exact bytes.
///
/// Accepted: a `block_actions` payload with exactly one action, of type `button`, with a
/// non-empty `action_id` and `value`, from a user whose id is `^[UW][A-Z0-9]{2,}$`. Anything
/// else, a body over [`SLACK_BLOCK_ACTION_MAX_BYTES`], or a body that is not form-encoded JSON,
/// is a [`NotifyError::Decode`].
pub fn parse_block_action(body: &[u8]) -> Result<BlockAction, NotifyError> {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        user: Option<User>,
        #[serde(default)]
        team: Option<Id>,
        #[serde(default)]
        channel: Option<Id>,
        #[serde(default)]
        message: Option<Message>,
        #[serde(default)]
        container: Option<Container>,
        #[serde(default)]
        actions: Option<Vec<Action>>,
    }
    #[derive(Deserialize)]
    struct User {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        team_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Id {
        #[serde(default)]
        id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        ts: Option<String>,
    }
    #[derive(Deserialize)]
    struct Container {
        #[serde(default)]
        message_ts: Option<String>,
        #[serde(default)]
        channel_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Action {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        action_id: Option<String>,
        #[serde(default)]
        value: Option<String>,
    }

    let fail = |message: String| NotifyError::Decode {
        service: ChannelKind::Slack,
        operation: BLOCK_ACTIONS,
        message,
    };
    if body.len() > SLACK_BLOCK_ACTION_MAX_BYTES {
        return Err(fail(format!(
            "the interaction body has {} bytes, more than {SLACK_BLOCK_ACTION_MAX_BYTES}",
            body.len()
        )));
    }
    let form = std::str::from_utf8(body)
        .map_err(|_| fail("the interaction body is not UTF-8".to_owned()))?;
    let mut payload = None;
    for (key, value) in url::form_urlencoded::parse(form.as_bytes()) {
        if key != "payload" {
            continue;
        }
        if payload.replace(value).is_some() {
            return Err(fail(
                "the interaction body has more than one payload field".to_owned(),
            ));
        }
    }
    let Some(payload) = payload else {
        return Err(fail(
            "the interaction body is not a form with a payload field".to_owned(),
        ));
    };
    let payload: Payload = serde_json::from_str(&payload)
        .map_err(|err| fail(format!("the interaction payload is not valid JSON: {err}")))?;
    if payload.kind != "block_actions" {
        return Err(fail(format!(
            "the interaction is {:?}, not block_actions",
            shown(&payload.kind)
        )));
    }
    let mut actions = payload.actions.unwrap_or_default();
    if actions.len() != 1 {
        return Err(fail(format!(
            "the interaction has {} actions, not exactly one",
            actions.len()
        )));
    }
    let action = actions.remove(0);
    if action.kind.as_deref() != Some("button") {
        return Err(fail(format!(
            "the action is {:?}, not a button",
            action.kind.as_deref().map(shown)
        )));
    }
    let action_id = action
        .action_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| fail("the button has no action_id".to_owned()))?;
    let value = action
        .value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| fail("the button has no value".to_owned()))?;
    let user = payload
        .user
        .ok_or_else(|| fail("the interaction names no user".to_owned()))?;
    let user_id = user
        .id
        .ok_or_else(|| fail("the interaction's user has no id".to_owned()))?;
    if !is_user_id(&user_id) {
        return Err(fail(format!(
            "{:?} is not a Slack user id",
            shown(&user_id)
        )));
    }
    let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
    let container = payload.container;
    let (container_ts, container_channel) = match container {
        Some(container) => (container.message_ts, container.channel_id),
        None => (None, None),
    };
    Ok(BlockAction {
        user_id,
        team_id: non_empty(user.team_id).or_else(|| non_empty(payload.team.and_then(|t| t.id))),
        channel_id: non_empty(payload.channel.and_then(|c| c.id))
            .or_else(|| non_empty(container_channel)),
        message_ts: non_empty(payload.message.and_then(|m| m.ts))
            .or_else(|| non_empty(container_ts)),
        action_id,
        value,
    })
}

/// `^[UW][A-Z0-9]{2,}$`: a member id (`W…` on Enterprise Grid).
fn is_user_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && id.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A message timestamp: `<seconds>` or `<seconds>.<fraction>`, digits only.
fn is_ts(ts: &str) -> bool {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, "0"));
    let digits = |part: &str| {
        !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
    };
    digits(seconds) && digits(fraction)
}

/// At most 64 characters of untrusted text, for error messages.
fn shown(text: &str) -> String {
    let mut cut: String = text.chars().take(64).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn button(action_id: &str, label: &str, style: &str, value: &str) -> Value {
    json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": false},
        "style": style,
        "value": value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_payload() -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": "T0SIM"},
            "api_app_id": "A0SIMAPP",
            "token": "verification",
            "container": {
                "type": "message",
                "message_ts": "1700000000.000101",
                "channel_id": "C0SECOPS",
                "is_ephemeral": false,
            },
            "trigger_id": "1.2.abc",
            "team": {"id": "T0SIM", "domain": "sim"},
            "channel": {"id": "C0SECOPS", "name": "secops"},
            "message": {"type": "message", "ts": "1700000000.000101", "text": "Access request"},
            "response_url": "https://hooks.slack.com/actions/T0SIM/1/abc",
            "actions": [{
                "action_id": "approve",
                "block_id": "opal_operator_route_decision",
                "type": "button",
                "value": "req-42:approve",
                "action_ts": "1700000001.000200",
            }],
        })
    }

    fn form(payload: &str) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", payload)
            .finish()
            .into_bytes()
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut payload = good_payload();
        edit(&mut payload);
        form(&payload.to_string())
    }

    #[test]
    fn reads_one_button_click_and_refuses_everything_else() {
        let expected = BlockAction {
            user_id: "U0ALICE".into(),
            team_id: Some("T0SIM".into()),
            channel_id: Some("C0SECOPS".into()),
            message_ts: Some("1700000000.000101".into()),
            action_id: "approve".into(),
            value: "req-42:approve".into(),
        };
        let second_action = good_payload()["actions"][0].clone();
        let oversized =
            with(|p| p["message"]["text"] = json!("x".repeat(SLACK_BLOCK_ACTION_MAX_BYTES)));
        let cases: Vec<(&str, Vec<u8>, Result<BlockAction, &str>)> = vec![
            ("good payload", with(|_| {}), Ok(expected.clone())),
            (
                "ts and channel from the container",
                with(|p| {
                    p.as_object_mut().map(|o| o.remove("message"));
                    p.as_object_mut().map(|o| o.remove("channel"));
                }),
                Ok(expected.clone()),
            ),
            (
                "team from the team object",
                with(|p| {
                    p["user"].as_object_mut().map(|o| o.remove("team_id"));
                }),
                Ok(expected.clone()),
            ),
            (
                "wrong type",
                with(|p| p["type"] = json!("view_submission")),
                Err("not block_actions"),
            ),
            (
                "no actions",
                with(|p| p["actions"] = json!([])),
                Err("0 actions"),
            ),
            (
                "actions missing",
                with(|p| {
                    p.as_object_mut().map(|o| o.remove("actions"));
                }),
                Err("0 actions"),
            ),
            (
                "two actions",
                with(|p| p["actions"] = json!([second_action.clone(), second_action.clone()])),
                Err("2 actions"),
            ),
            (
                "not a button",
                with(|p| p["actions"][0]["type"] = json!("static_select")),
                Err("not a button"),
            ),
            (
                "no value",
                with(|p| p["actions"][0]["value"] = json!("")),
                Err("no value"),
            ),
            (
                "no action_id",
                with(|p| {
                    p["actions"][0]
                        .as_object_mut()
                        .map(|o| o.remove("action_id"));
                }),
                Err("no action_id"),
            ),
            (
                "non-form body",
                good_payload().to_string().into_bytes(),
                Err("not a form"),
            ),
            ("empty body", Vec::new(), Err("not a form")),
            (
                "invalid JSON",
                form("{\"type\": \"block_actions\","),
                Err("not valid JSON"),
            ),
            (
                "JSON that is not an object",
                form("[1, 2]"),
                Err("not valid JSON"),
            ),
            (
                "missing user",
                with(|p| {
                    p.as_object_mut().map(|o| o.remove("user"));
                }),
                Err("names no user"),
            ),
            (
                "user without id",
                with(|p| p["user"] = json!({"username": "alice"})),
                Err("has no id"),
            ),
            (
                "malformed user id",
                with(|p| p["user"]["id"] = json!("alice")),
                Err("not a Slack user id"),
            ),
            (
                "two payload fields",
                [form("{}"), b"&".to_vec(), form("{}")].concat(),
                Err("more than one payload"),
            ),
            ("not UTF-8", vec![b'p', 0xff, 0xfe], Err("not UTF-8")),
            ("oversized", oversized, Err("more than")),
        ];
        for (name, body, expected) in cases {
            let parsed = parse_block_action(&body);
            match (parsed, expected) {
                (Ok(action), Ok(expected)) => assert_eq!(action, expected, "{name}"),
                (Err(err), Err(needle)) => {
                    assert!(
                        matches!(
                            err,
                            NotifyError::Decode {
                                operation: BLOCK_ACTIONS,
                                ..
                            }
                        ),
                        "{name}: {err:?}"
                    );
                    assert!(err.to_string().contains(needle), "{name}: {err}");
                }
                (parsed, expected) => panic!("{name}: got {parsed:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn checks_user_ids_and_timestamps() {
        for (id, ok) in [
            ("U0ALICE", true),
            ("W012AB3CD", true),
            ("U12", true),
            ("U1", false),
            ("u0alice", false),
            ("B0BOT", false),
            ("U0AL ICE", false),
            ("U0ALİCE", false),
            ("", false),
        ] {
            assert_eq!(is_user_id(id), ok, "{id:?}");
        }
        for (ts, ok) in [
            ("1700000000.000101", true),
            ("1700000000", true),
            ("1700000000.", false),
            (".5", false),
            ("17e9", false),
            ("", false),
        ] {
            assert_eq!(is_ts(ts), ok, "{ts:?}");
        }
    }
}
