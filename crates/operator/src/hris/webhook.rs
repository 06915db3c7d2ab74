//! BambooHR webhooks: signature verification and payload parsing, both pure.
//!
//! BambooHR signs each delivery with HMAC-SHA256 keyed by the webhook's private key over the raw
//! body bytes immediately followed by the `X-BambooHR-Timestamp` header value, and sends the
//! lowercase hex digest in `X-BambooHR-Signature`. Deliveries whose timestamp is too far from
//! now are refused so a captured request cannot be replayed later.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;

use super::config::BambooHrWebhookConfig;
use super::snapshot::{ChangeAction, EmployeeChange};
use crate::secret::Secret;

/// Header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-bamboohr-signature";
/// Header carrying the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-bamboohr-timestamp";

type HmacSha256 = Hmac<Sha256>;

/// A webhook delivery that must be answered with a 4xx and otherwise ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp {0:?} is neither Unix seconds nor RFC 3339")]
    MalformedTimestamp(String),
    #[error(
        "timestamp is {age_seconds} s away from now, more than the {max_age_seconds} s allowed"
    )]
    StaleTimestamp {
        age_seconds: i64,
        max_age_seconds: u64,
    },
    #[error("signature is not a hex SHA-256 digest")]
    MalformedSignature,
    #[error("signature does not match")]
    SignatureMismatch,
    #[error("payload: {0}")]
    MalformedPayload(String),
}

impl WebhookError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedTimestamp(_) => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::MalformedPayload(_) => "malformed_payload",
        }
    }
}

/// The lowercase hex signature BambooHR would send for `body` signed at `timestamp`.
pub fn sign(private_key: &[u8], body: &[u8], timestamp: &str) -> String {
    hex::encode(mac(private_key, body, timestamp).finalize().into_bytes())
}

fn mac(private_key: &[u8], body: &[u8], timestamp: &str) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(private_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

fn parse_signing_time(timestamp: &str) -> Result<DateTime<Utc>, WebhookError> {
    let trimmed = timestamp.trim();
    let malformed = || WebhookError::MalformedTimestamp(timestamp.chars().take(64).collect());
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = trimmed.parse().map_err(|_| malformed())?;
        return DateTime::from_timestamp(seconds, 0).ok_or_else(malformed);
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| malformed())
}

/// Checks one delivery: the timestamp lies within `max_age` of `now` (either side), and the
/// signature matches in constant time.
pub fn verify_signature(
    private_key: &[u8],
    body: &[u8],
    timestamp: &str,
    signature: &str,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<(), WebhookError> {
    let signed_at = parse_signing_time(timestamp)?;
    let age_seconds = now.signed_duration_since(signed_at).num_seconds();
    if age_seconds.unsigned_abs() > max_age.as_secs() {
        return Err(WebhookError::StaleTimestamp {
            age_seconds,
            max_age_seconds: max_age.as_secs(),
        });
    }
    let presented = hex::decode(signature.trim()).map_err(|_| WebhookError::MalformedSignature)?;
    mac(private_key, body, timestamp)
        .verify_slice(&presented)
        .map_err(|_| WebhookError::SignatureMismatch)
}

/// Which employees one webhook delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookNotification {
    /// `employee.updated`, `company.deleted`, …; `None` for the legacy
    /// `employee_with_fields.*` shape, which carries no event name in the body.
    pub event: Option<String>,
    pub changes: Vec<EmployeeChange>,
}

impl WebhookNotification {
    /// The IDs of every employee mentioned.
    pub fn employee_ids(&self) -> BTreeSet<String> {
        self.changes
            .iter()
            .map(|change| change.employee_id.clone())
            .collect()
    }
}

fn id_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(id) => Some(id.trim().to_owned()).filter(|id| !id.is_empty()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

fn string_list(value: Option<&serde_json::Value>) -> Vec<String> {
    value
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn timestamp_of(value: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    value
        .and_then(serde_json::Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
        .map(|at| at.with_timezone(&Utc))
}

/// Parses either payload shape: the current `{"type", "timestamp", "data": {"employeeId", …}}`
/// or the legacy `{"employees": [{"id", "action", "timestamp", "changedFields", …}]}`.
pub fn parse_notification(body: &[u8]) -> Result<WebhookNotification, WebhookError> {
    let malformed = |message: String| WebhookError::MalformedPayload(message);
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| malformed(format!("not JSON: {err}")))?;
    if let Some(event) = value.get("type").and_then(serde_json::Value::as_str) {
        let data = value.get("data");
        let mut changes = Vec::new();
        if let Some(kind) = event.strip_prefix("employee.") {
            let employee_id = id_text(data.and_then(|data| data.get("employeeId")))
                .ok_or_else(|| malformed(format!("{event} without data.employeeId")))?;
            changes.push(EmployeeChange {
                employee_id,
                action: ChangeAction::parse(kind),
                changed_at: timestamp_of(value.get("timestamp")),
                changed_fields: string_list(data.and_then(|data| data.get("changedFields"))),
            });
        }
        return Ok(WebhookNotification {
            event: Some(event.to_owned()),
            changes,
        });
    }
    let Some(entries) = value.get("employees").and_then(serde_json::Value::as_array) else {
        return Err(malformed(
            "neither a `type` (current shape) nor an `employees` array (legacy shape)".into(),
        ));
    };
    let mut changes = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let employee_id = id_text(entry.get("id"))
            .ok_or_else(|| malformed(format!("employees[{index}] has no id")))?;
        let action = entry
            .get("action")
            .and_then(serde_json::Value::as_str)
            .map(ChangeAction::parse)
            .ok_or_else(|| malformed(format!("employees[{index}] has no action")))?;
        changes.push(EmployeeChange {
            employee_id,
            action,
            changed_at: timestamp_of(entry.get("timestamp")),
            changed_fields: string_list(entry.get("changedFields")),
        });
    }
    Ok(WebhookNotification {
        event: None,
        changes,
    })
}

/// Verifies and parses deliveries for one webhook.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    private_key: Secret,
    max_age: Duration,
}

impl WebhookVerifier {
    pub fn new(private_key: Secret, max_age: Duration) -> Self {
        Self {
            private_key,
            max_age,
        }
    }

    /// Checks the signature headers against the raw body, then parses it.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookNotification, WebhookError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(WebhookError::MissingHeader(name))
        };
        let timestamp = header(TIMESTAMP_HEADER)?;
        let signature = header(SIGNATURE_HEADER)?;
        verify_signature(
            self.private_key.expose().as_bytes(),
            body,
            timestamp,
            signature,
            now,
            self.max_age,
        )?;
        parse_notification(body)
    }
}

impl BambooHrWebhookConfig {
    /// Reads the referenced private key and builds the verifier.
    pub fn verifier(&self) -> Result<WebhookVerifier, crate::secret::SecretError> {
        Ok(WebhookVerifier::new(
            self.private_key.resolve()?,
            Duration::from_secs(self.max_age_seconds),
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    use super::*;

    const KEY: &[u8] = b"bhr-private-key";
    const BODY: &[u8] = br#"{"type":"employee.updated","timestamp":"2026-01-01T00:00:00Z","data":{"companyId":"1","employeeId":"42","changedFields":["jobTitle"]}}"#;
    const TIMESTAMP: &str = "1767225600";
    /// `printf '%s' "$BODY$TIMESTAMP" | openssl dgst -sha256 -hmac bhr-private-key`
    const SIGNATURE: &str = "a14c4b213f9018648f85dc8c82a5a0c1d5caac738ca7ec47cf1f83c3e5ae1f67";

    fn signed_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).expect("time")
    }

    fn window() -> Duration {
        Duration::from_secs(300)
    }

    #[test]
    fn signature_matches_an_independently_computed_digest() {
        assert_eq!(sign(KEY, BODY, TIMESTAMP), SIGNATURE);
        verify_signature(KEY, BODY, TIMESTAMP, SIGNATURE, signed_at(), window()).expect("valid");
        verify_signature(
            KEY,
            BODY,
            TIMESTAMP,
            &SIGNATURE.to_uppercase(),
            signed_at(),
            window(),
        )
        .expect("hex case does not matter");
    }

    #[test]
    fn any_change_to_body_timestamp_key_or_signature_is_refused() {
        let now = signed_at();
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify_signature(KEY, &body, TIMESTAMP, SIGNATURE, now, window()),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify_signature(KEY, BODY, "1767225601", SIGNATURE, now, window()),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify_signature(b"other-key", BODY, TIMESTAMP, SIGNATURE, now, window()),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify_signature(KEY, BODY, TIMESTAMP, &SIGNATURE[..62], now, window()),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify_signature(KEY, BODY, TIMESTAMP, "zz", now, window()),
            Err(WebhookError::MalformedSignature)
        );
        // The digest of the body alone (without the timestamp) is not accepted.
        let body_only = hex::encode(
            {
                let mut mac = <HmacSha256 as Mac>::new_from_slice(KEY).expect("key");
                mac.update(BODY);
                mac
            }
            .finalize()
            .into_bytes(),
        );
        assert_eq!(
            verify_signature(KEY, BODY, TIMESTAMP, &body_only, now, window()),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_at_the_window_edge() {
        let at = |offset: i64| signed_at() + chrono::Duration::seconds(offset);
        verify_signature(KEY, BODY, TIMESTAMP, SIGNATURE, at(300), window()).expect("edge");
        verify_signature(KEY, BODY, TIMESTAMP, SIGNATURE, at(-300), window()).expect("edge");
        assert_eq!(
            verify_signature(KEY, BODY, TIMESTAMP, SIGNATURE, at(301), window()),
            Err(WebhookError::StaleTimestamp {
                age_seconds: 301,
                max_age_seconds: 300
            })
        );
        assert!(matches!(
            verify_signature(KEY, BODY, TIMESTAMP, SIGNATURE, at(-301), window()),
            Err(WebhookError::StaleTimestamp { .. })
        ));
        assert!(
            verify_signature(
                KEY,
                BODY,
                TIMESTAMP,
                SIGNATURE,
                at(10),
                Duration::from_secs(5)
            )
            .is_err()
        );
        for bad in ["", "soon", "-5", "99999999999999999999999"] {
            assert!(matches!(
                verify_signature(KEY, BODY, bad, SIGNATURE, at(0), window()),
                Err(WebhookError::MalformedTimestamp(_))
            ));
        }
    }

    #[test]
    fn verifier_reads_headers_and_parses_the_body() {
        let verifier = WebhookVerifier::new(
            Secret::new(std::str::from_utf8(KEY).expect("utf8")).expect("key"),
            window(),
        );
        let mut headers = HeaderMap::new();
        assert_eq!(
            verifier.verify(&headers, BODY, signed_at()),
            Err(WebhookError::MissingHeader(TIMESTAMP_HEADER))
        );
        headers.insert("X-BambooHR-Timestamp", HeaderValue::from_static(TIMESTAMP));
        assert_eq!(
            verifier.verify(&headers, BODY, signed_at()),
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        );
        headers.insert("X-BambooHR-Signature", HeaderValue::from_static(SIGNATURE));
        let notification = verifier.verify(&headers, BODY, signed_at()).expect("valid");
        assert_eq!(notification.event.as_deref(), Some("employee.updated"));
        assert_eq!(notification.changes[0].changed_fields, ["jobTitle"]);
        assert_eq!(
            notification.employee_ids().into_iter().collect::<Vec<_>>(),
            ["42"]
        );
    }

    #[test]
    fn parses_the_current_and_legacy_shapes() {
        let created = parse_notification(
            br#"{"type":"employee.created","timestamp":"2026-01-01T00:00:00Z","data":{"companyId":"1","employeeId":7}}"#,
        )
        .expect("created");
        assert_eq!(created.changes[0].employee_id, "7");
        assert_eq!(created.changes[0].action, ChangeAction::Created);
        assert!(created.changes[0].changed_at.is_some());

        let company = parse_notification(
            br#"{"type":"company.updated","timestamp":"2026-01-01T00:00:00Z","data":{"companyId":"1"}}"#,
        )
        .expect("company event");
        assert!(company.changes.is_empty());

        let legacy = parse_notification(
            br#"{"employees":[
                {"id":"5","action":"Updated","timestamp":"2026-01-01T00:00:00+00:00","changedFields":["status","terminationDate"],"fields":{"Status":"Inactive"}},
                {"id":6,"action":"Deleted"},
                {"id":"8","action":"Created"}
            ]}"#,
        )
        .expect("legacy");
        assert_eq!(legacy.event, None);
        let actions: Vec<_> = legacy
            .changes
            .iter()
            .map(|c| (c.employee_id.as_str(), c.action.clone()))
            .collect();
        assert_eq!(
            actions,
            [
                ("5", ChangeAction::Updated),
                ("6", ChangeAction::Deleted),
                ("8", ChangeAction::Created)
            ]
        );
        assert_eq!(
            legacy.changes[0].changed_fields,
            ["status", "terminationDate"]
        );
    }

    #[test]
    fn payloads_without_employee_ids_are_refused() {
        for body in [
            &br#"{"type":"employee.updated","data":{}}"#[..],
            br#"{"employees":[{"action":"Updated"}]}"#,
            br#"{"employees":[{"id":"1"}]}"#,
            br#"{"employees":{}}"#,
            br#"[]"#,
            b"id=5&action=Updated",
        ] {
            assert_eq!(
                parse_notification(body).expect_err("malformed").label(),
                "malformed_payload"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parser_and_verifier_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            timestamp in any::<String>(),
            signature in any::<String>(),
            now in any::<i32>(),
            max_age in any::<u64>(),
        ) {
            let _ = parse_notification(&body);
            let now = DateTime::from_timestamp(i64::from(now), 0).unwrap_or_default();
            let _ = verify_signature(KEY, &body, &timestamp, &signature, now, Duration::from_secs(max_age));
        }

        #[test]
        fn signed_bodies_always_verify(body in proptest::collection::vec(any::<u8>(), 0..256), seconds in 0i64..4_000_000_000) {
            let timestamp = seconds.to_string();
            let signature = sign(KEY, &body, &timestamp);
            let now = DateTime::from_timestamp(seconds, 0).unwrap_or_default();
            prop_assert_eq!(verify_signature(KEY, &body, &timestamp, &signature, now, window()), Ok(()));
        }
    }
}
