//! Slack: incoming webhooks and the Web API (`chat.postMessage`, `users.lookupByEmail`).
//!
//! Webhooks answer with HTTP status codes and a plain-text error code. The Web API answers
//! HTTP 200 even when it refuses a call; the refusal is `{"ok": false, "error": "<code>"}` and is
//! an error here. Rate limiting is a 429 with `Retry-After` in both.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::{HttpCaller, HttpResponse};
use super::render::SlackMessage;
use crate::secret::{Redactor, Secret};

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

/// Calls the Slack Web API with a bot token.
#[derive(Clone, Debug)]
pub struct SlackApiClient {
    http: HttpCaller,
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
