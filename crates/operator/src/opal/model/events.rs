//! Audit events.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::wire;

/// One entry of Opal's audit log. Event types are free strings in Opal's API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Event {
    pub event_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub actor_user_id: String,
    /// Untyped in the spec, so any scalar is accepted.
    #[serde(default, deserialize_with = "wire::string")]
    pub actor_name: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub actor_email: Option<String>,
    #[serde(default, deserialize_with = "wire::string")]
    pub event_type: String,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub actor_ip_address: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub api_token_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub api_token_preview: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub sub_events: Vec<SubEvent>,
}

/// Detail of an event; besides its type it carries open-ended fields (`user_id`, `resource_id`, …).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubEvent {
    #[serde(default, deserialize_with = "wire::string")]
    pub sub_event_type: String,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl SubEvent {
    /// A detail field as text, when present and a string.
    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(serde_json::Value::as_str)
    }
}
