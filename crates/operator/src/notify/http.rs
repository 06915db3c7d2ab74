//! HTTP plumbing shared by the clients: one attempt, its answer read in full, failures turned
//! into [`NotifyError`]s whose text went through the channel's redactor, and `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use super::config::{ChannelKind, OutboxConfig};
use super::error::NotifyError;
use crate::http::parse_retry_after;
use crate::http::{TransportErrorKind, error_chain};
use crate::secret::Redactor;

/// Longest piece of a server answer kept in an error.
const DETAIL_CHARS: usize = 500;

/// The HTTP client every channel shares (one connection pool), with the outbox's timeouts.
pub(crate) fn build_client(config: &OutboxConfig) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(config.request_timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .user_agent(concat!("opal-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| NotifyError::Config(format!("cannot build the HTTP client: {err}")))
}

/// A complete answer.
pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends requests for one channel and reports failures without its credentials.
#[derive(Clone, Debug)]
pub(crate) struct HttpCaller {
    client: reqwest::Client,
    service: ChannelKind,
    channel: Arc<str>,
    redactor: Redactor,
}

impl HttpCaller {
    pub(crate) fn new(
        client: reqwest::Client,
        service: ChannelKind,
        channel: &str,
        redactor: Redactor,
    ) -> Self {
        Self {
            client,
            service,
            channel: Arc::from(channel),
            redactor,
        }
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Makes one attempt and reads the whole answer, whatever its status.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpResponse, NotifyError> {
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Err(self.transport(operation, err)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|err| self.transport(operation, err))?
            .to_vec();
        tracing::debug!(
            channel = %self.channel,
            service = %self.service,
            operation,
            status,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "notification request answered"
        );
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn transport(&self, operation: &'static str, err: reqwest::Error) -> NotifyError {
        let kind = TransportErrorKind::of(&err);
        let message = self.redactor.clean(&error_chain(&err.without_url()));
        tracing::debug!(channel = %self.channel, service = %self.service, operation, kind = kind.label(), %message, "notification request failed");
        NotifyError::Transport {
            service: self.service,
            operation,
            kind,
            message,
        }
    }

    /// The answer's body as redacted, bounded text.
    pub(crate) fn body_text(&self, response: &HttpResponse) -> String {
        let text = String::from_utf8_lossy(&response.body);
        let text = self.redactor.clean(text.trim());
        if text.chars().count() > DETAIL_CHARS {
            let mut cut: String = text.chars().take(DETAIL_CHARS).collect();
            cut.push('…');
            cut
        } else {
            text
        }
    }

    /// A failure status as an error, with `detail` (already extracted from the body) redacted.
    pub(crate) fn failure(
        &self,
        operation: &'static str,
        response: &HttpResponse,
        detail: &str,
    ) -> NotifyError {
        NotifyError::Http {
            service: self.service,
            operation,
            status: response.status,
            detail: self.redactor.clean(detail),
            retry_after: response
                .headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now())),
        }
    }

    /// A failure status with the raw body as detail.
    pub(crate) fn failure_with_body(
        &self,
        operation: &'static str,
        response: &HttpResponse,
    ) -> NotifyError {
        let detail = self.body_text(response);
        self.failure(operation, response, &detail)
    }

    /// A body-level refusal (HTTP success, error inside).
    pub(crate) fn rejected(
        &self,
        operation: &'static str,
        code: &str,
        detail: &str,
        retryable: bool,
    ) -> NotifyError {
        NotifyError::Rejected {
            service: self.service,
            operation,
            code: self.redactor.clean(code),
            detail: self.redactor.clean(detail),
            retryable,
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        response: &HttpResponse,
    ) -> Result<T, NotifyError> {
        serde_json::from_slice(&response.body).map_err(|err| NotifyError::Decode {
            service: self.service,
            operation,
            message: self.redactor.clean(&err.to_string()),
        })
    }

    pub(crate) fn decode_error(&self, operation: &'static str, message: &str) -> NotifyError {
        NotifyError::Decode {
            service: self.service,
            operation,
            message: self.redactor.clean(message),
        }
    }

    pub(crate) fn workflow(&self, operation: &'static str, message: String) -> NotifyError {
        NotifyError::Workflow {
            service: self.service,
            operation,
            message: self.redactor.clean(&message),
        }
    }
}
