//! Generic webhooks: JSON signed with HMAC-SHA256.
//!
//! Signature scheme (for receivers): `X-Opal-Operator-Timestamp` holds Unix seconds;
//! `X-Opal-Operator-Signature` is `sha256=` followed by the lowercase hex HMAC-SHA256, keyed with
//! the shared signing key, of the timestamp, a `.`, and the raw body bytes. Binding the timestamp
//! lets receivers reject replays outside a tolerance window. `Idempotency-Key` carries the
//! message's stable key so receivers can drop redelivered messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sha2::Sha256;

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::HttpCaller;
use crate::secret::{Redactor, Secret};

pub const TIMESTAMP_HEADER: &str = "X-Opal-Operator-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Opal-Operator-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
pub const EVENT_HEADER: &str = "X-Opal-Operator-Event";

/// `sha256=<hex>` over `timestamp.body`.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature in constant time and that the timestamp is within `tolerance` of `now`.
pub fn verify_signature(
    key: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: SystemTime,
    tolerance: Duration,
) -> bool {
    let Ok(seconds) = timestamp.trim().parse::<u64>() else {
        return false;
    };
    let sent = UNIX_EPOCH + Duration::from_secs(seconds);
    let skew = now
        .duration_since(sent)
        .unwrap_or_else(|err| err.duration());
    if skew > tolerance {
        return false;
    }
    let Some(hex_part) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Posts signed JSON to one endpoint.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: HttpCaller,
    url: Secret,
    signing_key: Secret,
}

impl WebhookClient {
    /// `url` is handled as a credential because it may embed one.
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        url: Secret,
        signing_key: Secret,
    ) -> Result<Self, NotifyError> {
        let redactor = Redactor::new().with_url(&url).with(&signing_key);
        endpoint(url.expose(), "url").map_err(|problem| {
            NotifyError::Config(format!("channel {channel:?}: {}", redactor.clean(&problem)))
        })?;
        Ok(Self {
            http: HttpCaller::new(client, ChannelKind::Webhook, channel, redactor),
            url,
            signing_key,
        })
    }

    /// Posts `document`; any 2xx is success. Returns the status.
    pub async fn send(
        &self,
        document: &Value,
        idempotency_key: &str,
        event_kind: &str,
    ) -> Result<u16, NotifyError> {
        const OPERATION: &str = "webhook.post";
        let body = document.to_string().into_bytes();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let signature = sign(self.signing_key.expose().as_bytes(), &timestamp, &body);
        let request = self
            .http
            .client()
            .post(self.url.expose())
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .header(EVENT_HEADER, event_kind)
            .body(body);
        let response = self.http.send(OPERATION, request).await?;
        if response.is_success() {
            Ok(response.status)
        } else {
            Err(self.http.failure_with_body(OPERATION, &response))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_tampering_and_staleness() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let signature = sign(b"k3y", "1700000000", b"{\"a\":1}");
        assert!(signature.starts_with("sha256="));
        let window = Duration::from_secs(300);
        assert!(verify_signature(
            b"k3y",
            "1700000000",
            b"{\"a\":1}",
            &signature,
            now,
            window
        ));
        assert!(!verify_signature(
            b"k3y",
            "1700000000",
            b"{\"a\":2}",
            &signature,
            now,
            window
        ));
        assert!(!verify_signature(
            b"other",
            "1700000000",
            b"{\"a\":1}",
            &signature,
            now,
            window
        ));
        let later = now + Duration::from_secs(301);
        assert!(!verify_signature(
            b"k3y",
            "1700000000",
            b"{\"a\":1}",
            &signature,
            later,
            window
        ));
        assert!(!verify_signature(
            b"k3y",
            "x",
            b"{\"a\":1}",
            &signature,
            now,
            window
        ));
    }
}
