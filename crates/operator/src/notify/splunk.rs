//! Splunk HTTP Event Collector: batches of event envelopes, concatenated in one request body,
//! authenticated with `Authorization: Splunk <token>`.

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::HttpCaller;
use crate::secret::{Redactor, Secret};

/// HEC codes that mean "try again later": internal error and server busy.
const RETRYABLE_CODES: &[i64] = &[8, 9];

/// What HEC answered to an accepted batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HecAck {
    /// Present when the token has indexer acknowledgement enabled.
    pub ack_id: Option<u64>,
}

/// A refused batch. Events before `invalid_event` were indexed: HEC processes a batch in
/// order and stops at the first bad event.
#[derive(Clone, Debug)]
pub struct HecError {
    pub error: NotifyError,
    /// 0-based index of the event HEC rejected (codes 6, 12 and 13).
    pub invalid_event: Option<usize>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: i64,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number", default)]
    invalid_event_number: Option<usize>,
}

/// Sends events to one collector.
#[derive(Clone, Debug)]
pub struct HecClient {
    http: HttpCaller,
    url: String,
    authorization: HeaderValue,
    request_channel: Option<String>,
}

impl HecClient {
    /// `collector_url` is the collector root (`https://host:8088`); `request_channel` is the
    /// GUID required when indexer acknowledgement is on.
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        collector_url: &str,
        token: &Secret,
        request_channel: Option<String>,
    ) -> Result<Self, NotifyError> {
        let base = endpoint(collector_url, "url")
            .map_err(|problem| NotifyError::Config(format!("channel {channel:?}: {problem}")))?;
        let mut authorization = HeaderValue::from_str(&format!("Splunk {}", token.expose()))
            .map_err(|_| {
                NotifyError::Config(format!(
                    "channel {channel:?}: the token is not a valid header value"
                ))
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            http: HttpCaller::new(
                client,
                ChannelKind::SplunkHec,
                channel,
                Redactor::new().with(token),
            ),
            url: format!(
                "{}/services/collector/event",
                base.as_str().trim_end_matches('/')
            ),
            authorization,
            request_channel,
        })
    }

    /// Sends the envelopes as one body of concatenated JSON objects.
    pub async fn send(&self, envelopes: &[Value]) -> Result<HecAck, HecError> {
        const OPERATION: &str = "collector.event";
        let body = envelopes
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let mut request = self
            .http
            .client()
            .post(&self.url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(channel) = &self.request_channel {
            request = request.header("X-Splunk-Request-Channel", channel);
        }
        let plain = |error| HecError {
            error,
            invalid_event: None,
        };
        let response = self.http.send(OPERATION, request).await.map_err(plain)?;
        let answer: Option<Answer> = serde_json::from_slice(&response.body).ok();
        if response.is_success() {
            return match answer {
                Some(answer) if answer.code == 0 => Ok(HecAck {
                    ack_id: answer.ack_id,
                }),
                Some(answer) => Err(plain(self.http.rejected(
                    OPERATION,
                    &format!("code {}", answer.code),
                    &answer.text,
                    RETRYABLE_CODES.contains(&answer.code),
                ))),
                None => Err(plain(
                    self.http
                        .decode_error(OPERATION, "success answer is not HEC JSON"),
                )),
            };
        }
        let detail = answer.as_ref().map_or_else(
            || self.http.body_text(&response),
            |answer| format!("code {}: {}", answer.code, answer.text),
        );
        Err(HecError {
            error: self.http.failure(OPERATION, &response, &detail),
            invalid_event: answer.and_then(|answer| answer.invalid_event_number),
        })
    }
}
