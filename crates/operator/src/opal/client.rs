//! The HTTP core of the Opal client: authentication, rate limiting, bounded concurrency, retries,
//! call observation and tracing. Endpoint methods live in `api/`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::Instrument;
use url::Url;

use super::call::{Call, Replay};
use super::config::ClientConfig;
use super::error::OpalError;
use super::limiter::OrgRateLimiter;
use super::observer::{AttemptOutcome, CallAttempt, CallObserver, NoopObserver};
use super::token::ApiToken;
use crate::http::{RetryPolicy, parse_retry_after};
use crate::http::{TransportErrorKind, error_chain};

/// Longest slice of an error response body kept in an [`OpalError`].
const MAX_ERROR_BODY_CHARS: usize = 2_048;

/// Client for Opal's REST API. Cheap to clone; clones share connections, limits and the observer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    authorization: HeaderValue,
    token: ApiToken,
    limiter: OrgRateLimiter,
    concurrency: Semaphore,
    max_concurrency: usize,
    retry: RetryPolicy,
    request_timeout: Duration,
    page_size: u32,
    max_pages: u32,
    observer: Arc<dyn CallObserver>,
}

/// Builds a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    config: ClientConfig,
    token: ApiToken,
    limiter: Option<OrgRateLimiter>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl ClientBuilder {
    /// Shares an organisation's limiter with other clients. Without it the client gets its own,
    /// built from `config.rate_limit`.
    pub fn rate_limiter(mut self, limiter: OrgRateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Receives every HTTP attempt (for metrics). Defaults to [`NoopObserver`].
    pub fn observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn build(self) -> Result<Client, OpalError> {
        let config = self.config;
        config.validate()?;
        let base_url = parse_base_url(&config.base_url)?;
        let limiter = match self.limiter {
            Some(limiter) => limiter,
            None => OrgRateLimiter::new(&config.rate_limit)?,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .user_agent(concat!("opal-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OpalError::Config(format!("cannot build HTTP client: {err}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                authorization: self.token.authorization_header()?,
                token: self.token,
                limiter,
                concurrency: Semaphore::new(config.max_concurrency),
                max_concurrency: config.max_concurrency,
                retry: RetryPolicy::new(&config.retry),
                request_timeout: config.request_timeout(),
                page_size: config.page_size,
                max_pages: config.max_pages,
                observer: self.observer.unwrap_or_else(|| Arc::new(NoopObserver)),
            }),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, OpalError> {
    let mut url = Url::parse(raw)
        .map_err(|err| OpalError::Config(format!("baseUrl {raw:?} is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(OpalError::Config(format!(
            "baseUrl {raw:?} must be an http(s) URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(OpalError::Config(format!(
            "baseUrl {raw:?} must not carry credentials, a query or a fragment"
        )));
    }
    url.path_segments_mut()
        .map_err(|()| OpalError::Config(format!("baseUrl {raw:?} cannot take a path")))?
        .pop_if_empty();
    Ok(url)
}

/// A response that arrived with any status.
struct RawResponse {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// What to do after one attempt.
enum Verdict {
    Success(Vec<u8>),
    Transient {
        error: OpalError,
        retry_after: Option<Duration>,
    },
    Permanent(OpalError),
}

impl Client {
    /// Starts building a client for `config.base_url` authenticated with `token`.
    pub fn builder(config: ClientConfig, token: ApiToken) -> ClientBuilder {
        ClientBuilder {
            config,
            token,
            limiter: None,
            observer: None,
        }
    }

    /// A client with its own rate limiter and no observer.
    pub fn new(config: ClientConfig, token: ApiToken) -> Result<Self, OpalError> {
        Self::builder(config, token).build()
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    pub fn rate_limiter(&self) -> &OrgRateLimiter {
        &self.inner.limiter
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    pub(crate) fn max_pages(&self) -> u32 {
        self.inner.max_pages
    }

    /// Sends `call` (with retries) and decodes the JSON response.
    pub(crate) async fn fetch<T: DeserializeOwned>(&self, call: &Call) -> Result<T, OpalError> {
        let body = self.send(call).await?;
        serde_json::from_slice(&body).map_err(|err| OpalError::Decode {
            operation: call.operation,
            message: self.inner.token.redact_from(&err.to_string()),
        })
    }

    /// Like [`Client::fetch`] but maps 404 to `None`.
    pub(crate) async fn fetch_optional<T: DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<Option<T>, OpalError> {
        match self.fetch(call).await {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Sends `call`, retrying transient failures, and returns the success body.
    pub(crate) async fn send(&self, call: &Call) -> Result<Vec<u8>, OpalError> {
        let span = tracing::debug_span!(
            "opal_call",
            operation = call.operation,
            method = call.method.as_str(),
            path = %call.path,
        );
        self.send_with_retries(call).instrument(span).await
    }

    async fn send_with_retries(&self, call: &Call) -> Result<Vec<u8>, OpalError> {
        let url = self.url_for(call)?;
        let path = call.path.to_string();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let Ok(permit) = self.inner.concurrency.acquire().await else {
                return Err(OpalError::Config(
                    "the client's request slots were closed".into(),
                ));
            };
            self.inner.limiter.acquire(call.method, &path).await;
            let sent_at = Instant::now();
            let result = self.attempt_once(call, &url).await;
            let latency = sent_at.elapsed();
            drop(permit);

            let (outcome, verdict) = self.judge(call, attempt, result);
            let delay = match &verdict {
                Verdict::Transient { retry_after, .. } => self.inner.retry.next_delay(
                    attempt,
                    started.elapsed(),
                    *retry_after,
                    &mut rand::rng(),
                ),
                Verdict::Success(_) | Verdict::Permanent(_) => None,
            };
            self.inner.observer.on_attempt(&CallAttempt {
                operation: call.operation,
                method: call.method,
                outcome,
                latency,
                attempt,
                will_retry: delay.is_some(),
            });
            tracing::debug!(
                attempt,
                outcome = %outcome.label(),
                latency_ms = latency.as_millis() as u64,
                will_retry = delay.is_some(),
                "Opal HTTP attempt finished"
            );
            match (verdict, delay) {
                (Verdict::Success(body), _) => return Ok(body),
                (Verdict::Transient { .. }, Some(delay)) => {
                    tracing::debug!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Opal call"
                    );
                    tokio::time::sleep(delay).await;
                }
                (Verdict::Transient { error, .. } | Verdict::Permanent(error), _) => {
                    tracing::debug!(attempt, error = %error, "Opal call failed");
                    return Err(error);
                }
            }
        }
    }

    fn url_for(&self, call: &Call) -> Result<Url, OpalError> {
        let mut url = self.inner.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| OpalError::Config("baseUrl cannot take a path".into()))?
            .extend(call.path.segments());
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter());
        }
        Ok(url)
    }

    async fn attempt_once(&self, call: &Call, url: &Url) -> Result<RawResponse, reqwest::Error> {
        let mut request = self
            .inner
            .http
            .request(call.method.to_reqwest(), url.clone())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .timeout(self.inner.request_timeout);
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let body = response.bytes().await?.to_vec();
        Ok(RawResponse {
            status,
            retry_after,
            body,
        })
    }

    fn judge(
        &self,
        call: &Call,
        attempts: u32,
        result: Result<RawResponse, reqwest::Error>,
    ) -> (AttemptOutcome, Verdict) {
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                let kind = TransportErrorKind::of(&err);
                let error = OpalError::Transport {
                    operation: call.operation,
                    kind,
                    message: self.inner.token.redact_from(&error_chain(&err)),
                    attempts,
                };
                let retryable = !err.is_builder()
                    && (kind == TransportErrorKind::Connect || call.replay == Replay::Safe);
                let verdict = if retryable {
                    Verdict::Transient {
                        error,
                        retry_after: None,
                    }
                } else {
                    Verdict::Permanent(error)
                };
                return (AttemptOutcome::Transport(kind), verdict);
            }
        };
        let status = response.status;
        let outcome = AttemptOutcome::Status(status.as_u16());
        if status.is_success() {
            return (outcome, Verdict::Success(response.body));
        }
        let error = OpalError::Api {
            operation: call.operation,
            status: status.as_u16(),
            body: self.error_body_text(&response.body),
            attempts,
        };
        let verdict = if status == StatusCode::TOO_MANY_REQUESTS
            || (call.replay == Replay::Safe && is_transient_status(status))
        {
            Verdict::Transient {
                error,
                retry_after: response.retry_after,
            }
        } else {
            Verdict::Permanent(error)
        };
        (outcome, verdict)
    }

    fn error_body_text(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = match text.char_indices().nth(MAX_ERROR_BODY_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.into_owned(),
        };
        self.inner.token.redact_from(text.trim())
    }
}

/// Statuses worth retrying: request timeout, and server errors other than "not implemented".
fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("token", &self.inner.token)
            .field("limiter", &self.inner.limiter)
            .field("max_concurrency", &self.inner.max_concurrency)
            .field("retry", &self.inner.retry)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_normalised_and_validated() {
        let url = parse_base_url("http://127.0.0.1:8080/v1/").expect("valid");
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1");
        assert!(parse_base_url("ftp://example.com/v1").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("https://user:pw@api.opal.dev/v1").is_err());
        assert!(parse_base_url("https://api.opal.dev/v1?x=1").is_err());
    }

    #[test]
    fn transient_statuses() {
        for code in [408u16, 500, 502, 503, 504] {
            assert!(is_transient_status(
                StatusCode::from_u16(code).expect("status")
            ));
        }
        for code in [400u16, 401, 403, 404, 409, 422, 501] {
            assert!(!is_transient_status(
                StatusCode::from_u16(code).expect("status")
            ));
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = ApiToken::new("very-secret-token-value").expect("token");
        let client = Client::new(ClientConfig::default(), token).expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }
}
