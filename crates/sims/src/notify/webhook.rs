//! A generic webhook receiver that checks HMAC-SHA256 signatures the way a receiving service
//! would: `X-Opal-Operator-Signature: sha256=<hex>` over `<timestamp>.<body>`, timestamp within a
//! tolerance, constant-time comparison. Verification is written here independently of the
//! client's signer, so a test against it checks the scheme, not the code against itself.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::server::{SimServer, state};

/// Receiver settings.
#[derive(Clone, Debug)]
pub struct WebhookSimConfig {
    pub signing_key: String,
    /// Largest accepted difference between the signature timestamp and now.
    pub tolerance: Duration,
}

impl Default for WebhookSimConfig {
    fn default() -> Self {
        Self {
            signing_key: "sim-webhook-signing-key".to_owned(),
            tolerance: Duration::from_secs(300),
        }
    }
}

/// A delivery with a valid signature.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedWebhook {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub event: Option<String>,
    pub body: Value,
    /// An earlier delivery had the same idempotency key.
    pub duplicate: bool,
}

#[derive(Debug, Default)]
struct Receiver {
    config: Option<WebhookSimConfig>,
    accepted: Vec<ReceivedWebhook>,
    seen_keys: BTreeSet<String>,
    refused: u64,
}

type Shared = Arc<Mutex<Receiver>>;

/// The running receiver. Derefs to [`SimServer`].
#[derive(Debug)]
pub struct WebhookSim {
    server: SimServer,
    receiver: Shared,
}

impl Deref for WebhookSim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl WebhookSim {
    pub async fn start(config: WebhookSimConfig) -> std::io::Result<Self> {
        let receiver = Arc::new(Mutex::new(Receiver {
            config: Some(config),
            ..Receiver::default()
        }));
        let router = Router::new()
            .route("/{*path}", post(receive))
            .with_state(Arc::clone(&receiver));
        Ok(Self {
            server: SimServer::start(router).await?,
            receiver,
        })
    }

    /// URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Deliveries with valid signatures.
    pub fn accepted(&self) -> Vec<ReceivedWebhook> {
        state(&self.receiver).accepted.clone()
    }

    /// Deliveries refused for a missing, stale or wrong signature.
    pub fn refused(&self) -> u64 {
        state(&self.receiver).refused
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn signature_valid(
    key: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    tolerance: Duration,
) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if now.abs_diff(sent) > tolerance.as_secs() {
        return false;
    }
    let Some(Ok(given)) = signature.strip_prefix("sha256=").map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn receive(
    State(receiver): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut receiver = state(&receiver);
    let Some(config) = receiver.config.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let valid = match (
        header(&headers, "x-opal-operator-timestamp"),
        header(&headers, "x-opal-operator-signature"),
    ) {
        (Some(timestamp), Some(signature)) => signature_valid(
            config.signing_key.as_bytes(),
            timestamp,
            signature,
            &body,
            config.tolerance,
        ),
        _ => false,
    };
    if !valid {
        receiver.refused += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid or missing signature"})),
        )
            .into_response();
    }
    let Ok(document) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "body is not JSON"})),
        )
            .into_response();
    };
    let idempotency_key = header(&headers, "idempotency-key").map(str::to_owned);
    let duplicate = idempotency_key
        .as_ref()
        .is_some_and(|key| !receiver.seen_keys.insert(key.clone()));
    receiver.accepted.push(ReceivedWebhook {
        path: uri.path().to_owned(),
        idempotency_key,
        event: header(&headers, "x-opal-operator-event").map(str::to_owned),
        body: document,
        duplicate,
    });
    (StatusCode::OK, axum::Json(json!({"received": true}))).into_response()
}
