//! PagerDuty Events API v2: trigger and resolve alerts by `dedup_key`. The routing key in the
//! body is the credential; there is no auth header.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::HttpCaller;
use crate::secret::{Redactor, Secret};

/// What an event does to the alert with its `dedup_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

/// PagerDuty's severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    Critical,
    Error,
    Warning,
    Info,
}

/// The alert content, required for `trigger`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertPayload {
    /// At most 1024 characters.
    pub summary: String,
    pub source: String,
    pub severity: PagerDutySeverity,
    /// ISO 8601.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(rename = "class")]
    pub class: String,
    pub custom_details: Value,
}

/// One event; `payload` only for `trigger`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    pub action: EventAction,
    pub dedup_key: String,
    pub payload: Option<AlertPayload>,
    /// `(href, text)` pairs.
    pub links: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    dedup_key: Option<String>,
}

#[derive(Deserialize)]
struct Refused {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<String>,
}

/// Sends events to one PagerDuty integration.
#[derive(Clone, Debug)]
pub struct PagerDutyClient {
    http: HttpCaller,
    url: String,
    routing_key: Secret,
}

impl PagerDutyClient {
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        events_url: &str,
        routing_key: Secret,
    ) -> Result<Self, NotifyError> {
        let url = endpoint(events_url, "eventsUrl")
            .map_err(|problem| NotifyError::Config(format!("channel {channel:?}: {problem}")))?;
        Ok(Self {
            http: HttpCaller::new(
                client,
                ChannelKind::PagerDuty,
                channel,
                Redactor::new().with(&routing_key),
            ),
            url: url.to_string(),
            routing_key,
        })
    }

    /// `POST /v2/enqueue` → 202 with the `dedup_key` PagerDuty used.
    pub async fn send(&self, event: &AlertEvent) -> Result<String, NotifyError> {
        const OPERATION: &str = "events.enqueue";
        let mut body = json!({
            "routing_key": self.routing_key.expose(),
            "event_action": event.action,
            "dedup_key": event.dedup_key,
            "client": "opal-operator",
        });
        if let Some(payload) = &event.payload {
            body["payload"] = json!(payload);
        }
        if !event.links.is_empty() {
            body["links"] = event
                .links
                .iter()
                .map(|(href, text)| json!({"href": href, "text": text}))
                .collect();
        }
        let response = self
            .http
            .send(OPERATION, self.http.client().post(&self.url).json(&body))
            .await?;
        if response.status != 202 {
            let detail = serde_json::from_slice::<Refused>(&response.body)
                .ok()
                .map(|refused| {
                    std::iter::once(refused.message)
                        .chain(refused.errors)
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .filter(|detail| !detail.is_empty())
                .unwrap_or_else(|| self.http.body_text(&response));
            return Err(self.http.failure(OPERATION, &response, &detail));
        }
        let accepted: Accepted = self.http.decode(OPERATION, &response)?;
        Ok(accepted
            .dedup_key
            .unwrap_or_else(|| event.dedup_key.clone()))
    }
}
