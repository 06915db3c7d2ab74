//! Sending one HR request with retries: 429, 5xx, timeouts and connection failures are retried
//! with jittered backoff (a `Retry-After` answer is honoured), the body is read completely under a
//! size cap, and a final failure keeps the upstream error text.

use std::time::{Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::config::HttpConfig;
use super::error::{HrisError, SourceKind};
use crate::http::{RetryPolicy, TransportErrorKind, error_chain, parse_retry_after};
use crate::secret::Secret;

/// Upstream error text longer than this is cut.
const MAX_ERROR_TEXT: usize = 2_000;

/// A successful answer, body read in full.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Why one attempt failed.
enum AttemptError {
    Status {
        status: StatusCode,
        retry_after: Option<std::time::Duration>,
        message: String,
    },
    Transport {
        kind: TransportErrorKind,
        message: String,
    },
    /// The body exceeded the size cap; retrying would not help.
    BodyTooLarge { limit: u64 },
}

/// An HTTP client for one HR source.
#[derive(Debug, Clone)]
pub(crate) struct HttpFetcher {
    client: reqwest::Client,
    retry: RetryPolicy,
    system: SourceKind,
    max_body_bytes: u64,
    /// Credentials scrubbed from any error text before it leaves this module.
    secrets: Vec<Secret>,
}

impl HttpFetcher {
    pub(crate) fn new(
        system: SourceKind,
        config: &HttpConfig,
        secrets: Vec<Secret>,
    ) -> Result<Self, HrisError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .connect_timeout(config.connect_timeout())
            .user_agent(concat!("opal-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| HrisError::Config(format!("cannot build HTTP client: {err}")))?;
        Ok(Self {
            client,
            retry: RetryPolicy::new(&config.retry),
            system,
            max_body_bytes: config.max_body_bytes,
            secrets,
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |text, secret| secret.redact_from(&text))
    }

    /// Sends the request `build` makes (once per attempt) until it succeeds, fails permanently,
    /// or the retry budget is spent.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Fetched, HrisError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let failure = match self.attempt(build()).await {
                Ok(fetched) => return Ok(fetched),
                Err(failure) => failure,
            };
            let (retryable, retry_after) = match &failure {
                AttemptError::Status {
                    status,
                    retry_after,
                    ..
                } => (
                    *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                    *retry_after,
                ),
                AttemptError::Transport { .. } => (true, None),
                AttemptError::BodyTooLarge { .. } => (false, None),
            };
            let delay = retryable
                .then(|| {
                    self.retry
                        .next_delay(attempt, started.elapsed(), retry_after, &mut rand::rng())
                })
                .flatten();
            match delay {
                Some(delay) => {
                    tracing::debug!(
                        system = self.system.label(),
                        operation,
                        attempt,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "retrying HR request"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => return Err(self.final_error(operation, attempt, failure)),
            }
        }
    }

    fn final_error(
        &self,
        operation: &'static str,
        attempts: u32,
        failure: AttemptError,
    ) -> HrisError {
        match failure {
            AttemptError::Status {
                status, message, ..
            } => HrisError::Api {
                system: self.system,
                operation,
                status: status.as_u16(),
                message: self.redact(&message),
                attempts,
            },
            AttemptError::Transport { kind, message } => HrisError::Transport {
                system: self.system,
                operation,
                kind,
                message: self.redact(&message),
                attempts,
            },
            AttemptError::BodyTooLarge { limit } => HrisError::Malformed {
                system: self.system,
                operation,
                message: format!(
                    "response body exceeds the {limit} byte limit (http.maxBodyBytes)"
                ),
            },
        }
    }

    async fn attempt(&self, request: RequestBuilder) -> Result<Fetched, AttemptError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() as u64 + chunk.len() as u64 > self.max_body_bytes {
                return Err(AttemptError::BodyTooLarge {
                    limit: self.max_body_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(Fetched { headers, body });
        }
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        Err(AttemptError::Status {
            status,
            retry_after,
            message: upstream_error_text(&headers, &body),
        })
    }
}

fn transport_error(err: reqwest::Error) -> AttemptError {
    AttemptError::Transport {
        kind: TransportErrorKind::of(&err),
        message: error_chain(&err),
    }
}

/// The most informative text of an error answer: BambooHR's `x-bamboohr-error-message` header,
/// Workday's `error`/`errors[].error` fields, OAuth's `error_description`, or the raw body.
pub(crate) fn upstream_error_text(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(text) = headers
        .get("x-bamboohr-error-message")
        .and_then(|value| value.to_str().ok())
        .filter(|text| !text.trim().is_empty())
    {
        return truncate(text.trim());
    }
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) {
        let mut parts: Vec<String> = Vec::new();
        for key in ["error", "error_description", "message"] {
            if let Some(text) = object.get(key).and_then(serde_json::Value::as_str) {
                parts.push(text.to_owned());
            }
        }
        if let Some(errors) = object.get("errors").and_then(serde_json::Value::as_array) {
            for entry in errors {
                let text = entry.get("error").and_then(serde_json::Value::as_str);
                let field = entry.get("field").and_then(serde_json::Value::as_str);
                match (text, field) {
                    (Some(text), Some(field)) if !field.is_empty() => {
                        parts.push(format!("{text} (field {field})"));
                    }
                    (Some(text), _) => parts.push(text.to_owned()),
                    _ => {}
                }
            }
        }
        if !parts.is_empty() {
            return truncate(&parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(text)
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn error_text_prefers_header_then_json_fields_then_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-bamboohr-error-message",
            HeaderValue::from_static("Invalid field list"),
        );
        assert_eq!(
            upstream_error_text(&headers, b"<xml/>"),
            "Invalid field list"
        );
        let headers = HeaderMap::new();
        assert_eq!(
            upstream_error_text(
                &headers,
                br#"{"error":"invalid request","errors":[{"error":"limit too large","field":"limit"}]}"#
            ),
            "invalid request; limit too large (field limit)"
        );
        assert_eq!(
            upstream_error_text(
                &headers,
                br#"{"error":"invalid_grant","error_description":"expired"}"#
            ),
            "invalid_grant; expired"
        );
        assert_eq!(
            upstream_error_text(&headers, b"  Service down \n"),
            "Service down"
        );
        assert_eq!(upstream_error_text(&headers, b""), "(empty body)");
        let long = "é".repeat(MAX_ERROR_TEXT + 10);
        assert_eq!(
            upstream_error_text(&headers, long.as_bytes())
                .chars()
                .count(),
            MAX_ERROR_TEXT + 1
        );
    }
}
