//! The one HTTP server: metrics, health probes, and inbound webhooks (HR change hooks, SIEM
//! and EDR alerts, Opal and Jira doorbells, Slack button clicks).
//!
//! | Route | Answers |
//! |---|---|
//! | `GET /metrics` | OpenMetrics text of [`Metrics`] |
//! | `GET /healthz` | 200 while the operator loop lives, else 503 |
//! | `GET /readyz` | 200 when ready, else 503 with the reason |
//! | `POST /webhooks/bamboohr` | BambooHR employee changes → [`HrChangeSink`], 202 |
//! | `POST /webhooks/workday` | Workday worker changes → [`HrChangeSink`], 202 |
//! | `POST /webhooks/alerts/splunk` | Splunk alert → Lockdown, 201 (200 if it exists) |
//! | `POST /webhooks/alerts/datadog` | Datadog alert → Lockdown, 201 (200 if it exists) |
//! | `POST /webhooks/alerts/generic` | any tool's signed JSON alert → Lockdown, 201 (200 if it exists) |
//! | `POST /webhooks/opal/events` | an Opal event stream's delivery → [`Doorbell`], 202 |
//! | `POST /webhooks/jira` | a Jira webhook delivery (`X-Hub-Signature`) → [`Doorbell`], 202 |
//! | `POST /webhooks/slack/interactivity` | a Slack Approve/Deny click (`X-Slack-Signature`) → [`ClickSink`], 200 |
//!
//! Every webhook request is handled in the same order, and nothing is acted on before the
//! sender is authenticated: a hook without credentials in the configuration answers 404; a
//! body over `server.maxBodyBytes` 413; missing or wrong credentials 401; a body that cannot be
//! read as the hook's format 400. Errors answer `{"outcome": "<label>", "error": "<why>"}` and
//! never quote a secret. Each request is counted in
//! `opal_operator_webhook_requests_total{hook, outcome}` with the same outcome label.
//!
//! # BambooHR
//! BambooHR's own signed webhooks: `X-BambooHR-Signature` is the hex HMAC-SHA256 (key: the
//! webhook's private key, `hris.webhook.privateKey`) of the raw body followed by the
//! `X-BambooHR-Timestamp` value, and timestamps older than `hris.webhook.maxAgeSeconds` are
//! refused. Both the current (`employee.updated`, …) and the legacy
//! (`employee_with_fields.*`) payloads are read; see [`crate::hris::webhook`].
//!
//! # Workday
//! Workday has no standard signed outbound webhook, so this hook defines one for whatever
//! integration (Studio, EIB, a relay) reports worker changes:
//! ```text
//! POST /webhooks/workday
//! Content-Type: application/json
//! X-Opal-Operator-Signature: sha256=<lowercase hex HMAC-SHA256 of the raw body, keyed by webhooks.workday.secret>
//!
//! {"workerIds": ["21001", "21002"]}
//! ```
//! There is no timestamp: the hook only names workers to re-read from Workday, so a replay
//! costs one refresh and changes nothing else.
//!
//! # Alerts
//! The alert hooks turn an alert into a `Lockdown` of one user as the `incidentResponse` of the
//! AccessPolicy in the operator namespace says (via [`IncidentSink`]):
//! * no such policy → 422 `no_policy`; the source not in its `sources` → 422;
//! * a recovery notification, or a severity below `minSeverity` → 202 `ignored`. An alert that
//!   states no severity counts as meeting `minSeverity`: wiring an alert to this hook is the
//!   decision, and severity only filters alerts that carry one. A severity that is not one of
//!   `critical high medium low info` (also `P1`–`P5`, `error`, `warning`, …) → 400;
//! * the user's email is read at `userField`, a dot path from the root of the JSON body
//!   (array elements by index). For Splunk a path not found at the root is also tried inside
//!   `result`, so `result.user` and `user` both name the result row's `user` column. A value
//!   that is a Datadog tag list (`env:prod,user:alice@example.com`) yields its first
//!   email-valued tag. No email there → 400;
//! * otherwise a Lockdown named `<splunk|datadog|generic>-alert-<16 hex>` (a hash of the source, the
//!   alert's identity and the email) is created in the operator namespace → 201, or found to
//!   exist already (a redelivery) → 200. Its spec has one `email` subject, `reason`
//!   `"<Source> alert: <title>"`, `incident` (the alert's link, else its identity), `duration`
//!   = `lockdownDuration`, `restoreOnRelease` and `notify` from the policy; labels
//!   `app.kubernetes.io/managed-by: opal-operator` and `opal-operator.io/alert-source`. A failed
//!   creation → 503 with the error, so Datadog (which retries 5xx) tries again.
//!
//! ## Splunk
//! Splunk's webhook alert action cannot sign or set headers, so it authenticates with the
//! shared token `webhooks.splunk.token`, sent as `Authorization: Bearer <token>` or in the
//! alert action's URL as `?token=<token>` (which then appears in Splunk's configuration and
//! any proxy's access log: prefer the header where the sender can set it). The body is
//! Splunk's: `{"result": {…first result row…}, "sid", "search_name", "results_link", …}`;
//! identity `sid` (else a hash of the body), title `search_name`, link `results_link`,
//! severity `result.severity` or `result.urgency`.
//!
//! ## Datadog
//! Datadog does not sign webhooks. The hook takes the shared secret `webhooks.datadog.secret`
//! in the `X-Opal-Operator-Token` header (set it in the webhook's custom headers), or an
//! `X-Opal-Operator-Signature` as for Workday from a relay that can sign. The body is the
//! webhook's JSON template; these fields are read (the first present wins):
//! identity `alert_cycle_key`, `alert_id`, `id` (else a hash of the body); title `title`,
//! `alert_title`, `event_title`; severity `severity`, `priority`; link `link`; a `transition`
//! (or `alert_transition`) of `Recovered` is ignored. A template that fits:
//! ```json
//! {"alert_id": "$ALERT_ID", "alert_cycle_key": "$ALERT_CYCLE_KEY", "title": "$EVENT_TITLE",
//!  "transition": "$ALERT_TRANSITION", "priority": "$ALERT_PRIORITY", "link": "$LINK",
//!  "scope": "$ALERT_SCOPE"}
//! ```
//! with a monitor grouped by a `user` tag and `userField: scope`.
//!
//! ## Generic (EDR and other threat-detection tools)
//! For CrowdStrike, SentinelOne or anything else that can POST JSON, directly or through a
//! relay (a SOAR playbook, a Lambda) that signs. The body is signed as for Workday, with
//! `webhooks.generic.secret`:
//! ```text
//! POST /webhooks/alerts/generic
//! Content-Type: application/json
//! X-Opal-Operator-Signature: sha256=<lowercase hex HMAC-SHA256 of the raw body>
//! ```
//! The body is any JSON object; `webhooks.generic.fields` says where its fields are, each a
//! dot path as for `userField`: `user` (the email; unset: the policy's `userField`),
//! `severity` (a word as above, or `P1`–`P5`; a bare number is refused, since tools' numeric
//! scales run in opposite directions), `id` (the identity; else a hash of the body, so only an
//! identical redelivery finds the same Lockdown) and `title`. A path the body lacks counts as
//! unstated, except the user's. The source is `Generic`, which the policy's `sources` must
//! list. There is no timestamp: a replayed body can only lock the same user again.
//!
//! # Slack
//! The Slack app's interactivity request URL, where Slack sends a click on the Approve and
//! Deny buttons of [`SlackApiClient::post_buttons`](crate::notify::SlackApiClient::post_buttons)
//! as a form with one `payload` field holding `block_actions` JSON. Slack signs every request
//! with the app's signing secret (`webhooks.slack.signingSecret`): [`SLACK_SIGNATURE_HEADER`]
//! is `v0=` and the hex HMAC-SHA256 of `v0:<timestamp>:<raw body>`, with the timestamp from
//! [`SLACK_TIMESTAMP_HEADER`]. Both are checked over the raw bytes before anything is parsed:
//! a missing, malformed or wrong signature, or a timestamp more than 300 s from now (a replay),
//! answers 401. A verified body that is not a single-button `block_actions` payload answers
//! 400; a click on any button other than `approve` / `deny` answers 200 `ignored` and goes no
//! further.
//!
//! An Approve or Deny click is only handed to the [`ClickSink`], which records it durably and
//! answers at once: 200 `recorded`, 200 `already_recorded` (Slack's retry, or a second click),
//! or 200 `ignored` with its reason. Slack wants its 200 within 3 s, so nothing here waits for
//! Slack, Opal or the decision. A sink that fails answers 503 `click_failed`, and with no sink
//! in this process 503 `unavailable`; either way Slack shows the clicker an error. The click
//! decides nothing by itself: the leader takes the decision later from the recorded click and
//! checks again that the clicker may decide that request.

mod alerts;
mod auth;
mod health;
mod hr;
mod routes;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::json;

pub use alerts::{
    ACCESS_POLICY_ANNOTATION, ALERT_ID_ANNOTATION, ALERT_SOURCE_LABEL, IncidentPolicy,
    IncidentSink, LockdownCreated,
};
pub use auth::{SIGNATURE_HEADER, TOKEN_HEADER};
pub use health::Health;
pub use hr::HrChangeSink;
pub use routes::{
    JIRA_SIGNATURE_HEADER, OPAL_SIGNATURE_HEADER, OPAL_TIMESTAMP_HEADER, SLACK_SIGNATURE_HEADER,
    SLACK_TIMESTAMP_HEADER,
};

use crate::config::{AlertFieldPaths, OperatorConfig};
use crate::engine::ObjectKey;
use crate::hris::{HrisConfig, WebhookError, WebhookVerifier};
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use crate::notify::{BlockAction, SLACK_APPROVE_ACTION, SLACK_DENY_ACTION, parse_block_action};
use crate::secret::Secret;
use alerts::{Alert, AlertDecision};

/// Why a webhook request was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The configuration has no credentials for this hook (404).
    #[error("this webhook is not configured")]
    NotConfigured,
    /// The body exceeds `server.maxBodyBytes` (413).
    #[error("the request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    /// The body could not be received (400).
    #[error("cannot read the request body: {0}")]
    UnreadableBody(String),
    /// Missing, malformed or wrong credentials, or a stale timestamp (401).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// An authenticated body that is not the hook's format (400).
    #[error("bad payload: {0}")]
    Malformed(String),
    /// No AccessPolicy in the operator namespace sets `incidentResponse` (422).
    #[error("{0}")]
    NoIncidentPolicy(String),
    /// The alert's source is not among the policy's `sources` (422).
    #[error("the incident policy does not accept alerts from {0}")]
    SourceNotAccepted(&'static str),
    /// The hook is configured but this process has no sink for it (503).
    #[error("nothing receives this webhook's events in this process")]
    Unavailable,
    /// The sink failed to create the Lockdown (503, so senders that retry do).
    #[error("cannot create the Lockdown: {0}")]
    LockdownFailed(String),
    /// The sink failed to record a Slack click (503: Slack shows the clicker an error).
    #[error("cannot record the click: {0}")]
    ClickFailed(String),
}

impl HookError {
    /// Stable low-cardinality name for metrics (and the `outcome` of the answer).
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::BodyTooLarge { .. } => "too_large",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::Unauthenticated(_) => "unauthorized",
            Self::Malformed(_) => "malformed",
            Self::NoIncidentPolicy(_) => "no_policy",
            Self::SourceNotAccepted(_) => "source_not_accepted",
            Self::Unavailable => "unavailable",
            Self::LockdownFailed(_) => "lockdown_failed",
            Self::ClickFailed(_) => "click_failed",
        }
    }

    /// The HTTP status the sender gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotConfigured => StatusCode::NOT_FOUND,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnreadableBody(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::NoIncidentPolicy(_) | Self::SourceNotAccepted(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Unavailable | Self::LockdownFailed(_) | Self::ClickFailed(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// BambooHR's verifier checks the signature before parsing, so only a payload error comes
    /// from an authenticated request.
    fn from_bamboohr(error: WebhookError) -> Self {
        match error {
            WebhookError::MalformedPayload(_) => Self::Malformed(error.to_string()),
            _ => Self::Unauthenticated(error.to_string()),
        }
    }
}

/// A webhook's credential could not be read at startup.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The credential reference at `field` could not be resolved.
    #[error("config field `{field}`: {source}")]
    Secret {
        field: &'static str,
        #[source]
        source: crate::secret::SecretError,
    },
}

impl WebhookSetupError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Secret { .. } => "secret",
        }
    }
}

/// Where the webhooks deliver what they accept.
#[derive(Clone, Default)]
pub struct WebhookSinks {
    /// Receives the employee IDs of the BambooHR and Workday hooks.
    pub hr: Option<Arc<dyn HrChangeSink>>,
    /// Supplies the incident policy and creates the alert hooks' Lockdowns.
    pub incident: Option<Arc<dyn IncidentSink>>,
    /// Woken by verified Opal event-stream deliveries.
    pub doorbell: Option<Arc<dyn Doorbell>>,
    /// Records verified Slack Approve and Deny clicks.
    pub clicks: Option<Arc<dyn ClickSink>>,
}

/// Something that reads Opal at once when rung (the payload is never handed over).
pub trait Doorbell: Send + Sync {
    fn ring(&self);
}

/// What recording a Slack click did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClickRecorded {
    Recorded,
    /// The same click was recorded before (Slack's retry, or the button clicked again).
    AlreadyRecorded,
    /// Nothing to record, e.g. the button's request is decided already.
    Ignored {
        reason: String,
    },
}

/// Where verified Slack button clicks go (the operator records them durably, then decides).
pub trait ClickSink: Send + Sync {
    /// Records an Approve or Deny click; must answer quickly (Slack waits at most 3 s for the
    /// whole request), so it records and decides nothing.
    fn record(&self, click: BlockAction) -> BoxFuture<'_, Result<ClickRecorded, String>>;
}

/// Everything the handlers share: metrics, health, the hooks' credentials (a hook without them
/// answers 404) and the sinks.
pub struct WebhookState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    bamboohr: Option<WebhookVerifier>,
    workday: Option<Secret>,
    splunk: Option<Secret>,
    datadog: Option<Secret>,
    generic: Option<GenericHook>,
    opal_events: Option<Secret>,
    jira: Option<Secret>,
    slack: Option<Secret>,
    sinks: WebhookSinks,
    max_body_bytes: usize,
    operator_namespace: String,
}

/// The generic alert hook's signing key and where its alerts keep their fields.
struct GenericHook {
    secret: Secret,
    fields: AlertFieldPaths,
}

/// Body limit when none is configured (matches `server.maxBodyBytes`' default).
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl WebhookState {
    /// No hook configured, no sinks, a 1 MiB body limit; add them with the `with_*` methods.
    pub fn new(
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        operator_namespace: impl Into<String>,
    ) -> Self {
        Self {
            metrics,
            health,
            bamboohr: None,
            workday: None,
            splunk: None,
            datadog: None,
            generic: None,
            opal_events: None,
            jira: None,
            slack: None,
            sinks: WebhookSinks::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            operator_namespace: operator_namespace.into(),
        }
    }

    /// Reads every configured hook credential now (`hris.webhook.privateKey` when the HR source
    /// is BambooHR, `webhooks.*`), failing with the field whose reference cannot be read.
    pub fn from_config(
        config: &OperatorConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        sinks: WebhookSinks,
    ) -> Result<Self, WebhookSetupError> {
        let secret = |field: &'static str, reference: &crate::secret::LocalSecretRef| {
            reference
                .resolve()
                .map_err(|source| WebhookSetupError::Secret { field, source })
        };
        let mut state = Self::new(metrics, health, config.operator_namespace.clone())
            .with_max_body_bytes(config.server.max_body_bytes)
            .with_sinks(sinks);
        if let HrisConfig::BambooHr(bamboohr) = &config.hris
            && let Some(webhook) = &bamboohr.webhook
        {
            let verifier = webhook
                .verifier()
                .map_err(|source| WebhookSetupError::Secret {
                    field: "hris.webhook.privateKey",
                    source,
                })?;
            state = state.with_bamboohr(verifier);
        }
        let hooks = &config.webhooks;
        if let Some(workday) = &hooks.workday {
            state = state.with_workday_secret(secret("webhooks.workday.secret", &workday.secret)?);
        }
        if let Some(splunk) = &hooks.splunk {
            state = state.with_splunk_token(secret("webhooks.splunk.token", &splunk.token)?);
        }
        if let Some(datadog) = &hooks.datadog {
            state = state.with_datadog_secret(secret("webhooks.datadog.secret", &datadog.secret)?);
        }
        if let Some(generic) = &hooks.generic {
            state = state.with_generic_alerts(
                secret("webhooks.generic.secret", &generic.secret)?,
                generic.fields.clone(),
            );
        }
        if let Some(opal_events) = &hooks.opal_events {
            state = state.with_opal_events_secret(secret(
                "webhooks.opalEvents.secret",
                &opal_events.secret,
            )?);
        }
        if let Some(jira) = &hooks.jira {
            state = state.with_jira_secret(secret("webhooks.jira.secret", &jira.secret)?);
        }
        if let Some(slack) = &hooks.slack {
            state = state.with_slack_signing_secret(secret(
                "webhooks.slack.signingSecret",
                &slack.signing_secret,
            )?);
        }
        Ok(state)
    }

    /// Enables `POST /webhooks/slack/interactivity`, signed with the Slack app's signing
    /// secret.
    pub fn with_slack_signing_secret(mut self, secret: Secret) -> Self {
        self.slack = Some(secret);
        self
    }

    /// Enables `POST /webhooks/jira`, signed with this webhook secret.
    pub fn with_jira_secret(mut self, secret: Secret) -> Self {
        self.jira = Some(secret);
        self
    }

    /// Enables `POST /webhooks/opal/events`, signed with this event-stream secret.
    pub fn with_opal_events_secret(mut self, secret: Secret) -> Self {
        self.opal_events = Some(secret);
        self
    }

    /// Enables `POST /webhooks/bamboohr`.
    pub fn with_bamboohr(mut self, verifier: WebhookVerifier) -> Self {
        self.bamboohr = Some(verifier);
        self
    }

    /// Enables `POST /webhooks/workday`, signed with this key.
    pub fn with_workday_secret(mut self, secret: Secret) -> Self {
        self.workday = Some(secret);
        self
    }

    /// Enables `POST /webhooks/alerts/splunk`, authenticated with this token.
    pub fn with_splunk_token(mut self, token: Secret) -> Self {
        self.splunk = Some(token);
        self
    }

    /// Enables `POST /webhooks/alerts/datadog`, authenticated with this secret.
    pub fn with_datadog_secret(mut self, secret: Secret) -> Self {
        self.datadog = Some(secret);
        self
    }

    /// Enables `POST /webhooks/alerts/generic`, signed with this key, its alerts read at these
    /// paths.
    pub fn with_generic_alerts(mut self, secret: Secret, fields: AlertFieldPaths) -> Self {
        self.generic = Some(GenericHook { secret, fields });
        self
    }

    /// Replaces every sink.
    pub fn with_sinks(mut self, sinks: WebhookSinks) -> Self {
        self.sinks = sinks;
        self
    }

    /// Where the HR hooks deliver employee IDs.
    pub fn with_hr_sink(mut self, sink: Arc<dyn HrChangeSink>) -> Self {
        self.sinks.hr = Some(sink);
        self
    }

    /// Where the alert hooks find their policy and create Lockdowns.
    pub fn with_incident_sink(mut self, sink: Arc<dyn IncidentSink>) -> Self {
        self.sinks.incident = Some(sink);
        self
    }

    /// Where the Slack hook records Approve and Deny clicks.
    pub fn with_click_sink(mut self, sink: Arc<dyn ClickSink>) -> Self {
        self.sinks.clicks = Some(sink);
        self
    }

    /// Larger request bodies are answered 413.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// The routes listed in the module documentation.
pub fn router(state: Arc<WebhookState>) -> Router {
    use routes::*;
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/webhooks/bamboohr", post(bamboohr))
        .route("/webhooks/workday", post(workday))
        .route("/webhooks/alerts/splunk", post(splunk_alert))
        .route("/webhooks/alerts/datadog", post(datadog_alert))
        .route("/webhooks/alerts/generic", post(generic_alert))
        .route("/webhooks/opal/events", post(opal_events))
        .route("/webhooks/jira", post(jira_events))
        .route("/webhooks/slack/interactivity", post(slack_interactivity))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn secret_file(value: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "{value}").expect("write");
        file
    }

    fn config(
        bamboohr_key: &std::path::Path,
        splunk_token: &std::path::Path,
        datadog: &str,
        generic_secret: &std::path::Path,
    ) -> OperatorConfig {
        OperatorConfig::from_yaml_str(&format!(
            "operatorNamespace: security
opal:
  token: {{env: OPAL_TOKEN}}
hris:
  source: bambooHr
  companyDomain: acme
  apiKey: {{env: BAMBOOHR_API_KEY}}
  webhook:
    privateKey: {{file: {}}}
server:
  maxBodyBytes: 2048
webhooks:
  splunk: {{token: {{file: {}}}}}
  datadog: {{secret: {datadog}}}
  generic:
    secret: {{file: {}}}
    fields: {{user: detection.user.email, id: detection.id}}
",
            bamboohr_key.display(),
            splunk_token.display(),
            generic_secret.display(),
        ))
        .expect("valid config")
    }

    #[test]
    fn from_config_reads_every_configured_credential() {
        let bamboohr_key = secret_file("bhr-key");
        let splunk_token = secret_file("splunk-token");
        let datadog = secret_file("datadog-secret");
        let generic = secret_file("generic-secret");
        let state = WebhookState::from_config(
            &config(
                bamboohr_key.path(),
                splunk_token.path(),
                &format!("{{file: {}}}", datadog.path().display()),
                generic.path(),
            ),
            Arc::new(Metrics::new()),
            Arc::new(Health::new()),
            WebhookSinks::default(),
        )
        .expect("state");
        assert!(state.bamboohr.is_some());
        assert!(state.workday.is_none());
        assert_eq!(
            state.splunk.as_ref().map(Secret::expose),
            Some("splunk-token")
        );
        assert_eq!(
            state.datadog.as_ref().map(Secret::expose),
            Some("datadog-secret")
        );
        let hook = state.generic.as_ref().expect("generic hook");
        assert_eq!(hook.secret.expose(), "generic-secret");
        assert_eq!(
            hook.fields,
            AlertFieldPaths {
                user: Some("detection.user.email".into()),
                id: Some("detection.id".into()),
                ..AlertFieldPaths::default()
            }
        );
        assert_eq!(state.max_body_bytes, 2048);
        assert_eq!(state.operator_namespace, "security");
    }

    #[test]
    fn from_config_names_the_credential_it_cannot_read() {
        let bamboohr_key = secret_file("bhr-key");
        let splunk_token = secret_file("splunk-token");
        let generic = secret_file("generic-secret");
        let error = WebhookState::from_config(
            &config(
                bamboohr_key.path(),
                splunk_token.path(),
                "{env: OPAL_OPERATOR_TEST_SURELY_UNSET_DATADOG_SECRET}",
                generic.path(),
            ),
            Arc::new(Metrics::new()),
            Arc::new(Health::new()),
            WebhookSinks::default(),
        )
        .err()
        .expect("unset variable");
        assert_eq!(error.label(), "secret");
        let message = error.to_string();
        assert!(
            message.contains("`webhooks.datadog.secret`")
                && message.contains("OPAL_OPERATOR_TEST_SURELY_UNSET_DATADOG_SECRET"),
            "{message}"
        );
    }

    #[test]
    fn from_config_reads_the_slack_signing_secret_and_names_it_when_unreadable() {
        let signing_secret = secret_file("slack-signing-secret");
        let yaml = |reference: &str| {
            format!(
                "operatorNamespace: security
opal:
  token: {{env: OPAL_TOKEN}}
hris:
  source: file
  location: examples/demo/employees.csv
webhooks:
  slack: {{signingSecret: {reference}}}
"
            )
        };
        let state = |reference: &str| {
            WebhookState::from_config(
                &OperatorConfig::from_yaml_str(&yaml(reference)).expect("valid config"),
                Arc::new(Metrics::new()),
                Arc::new(Health::new()),
                WebhookSinks::default(),
            )
        };
        let configured =
            state(&format!("{{file: {}}}", signing_secret.path().display())).expect("state");
        assert_eq!(
            configured.slack.as_ref().map(Secret::expose),
            Some("slack-signing-secret")
        );
        let error = state("{env: OPAL_OPERATOR_TEST_SURELY_UNSET_SLACK_SECRET}")
            .err()
            .expect("unset variable");
        let message = error.to_string();
        assert!(
            message.contains("`webhooks.slack.signingSecret`")
                && message.contains("OPAL_OPERATOR_TEST_SURELY_UNSET_SLACK_SECRET"),
            "{message}"
        );
    }

    #[test]
    fn every_error_maps_to_its_status() {
        for (error, status, label) in [
            (HookError::NotConfigured, 404, "not_configured"),
            (HookError::BodyTooLarge { limit: 1 }, 413, "too_large"),
            (
                HookError::UnreadableBody(String::new()),
                400,
                "unreadable_body",
            ),
            (
                HookError::Unauthenticated(String::new()),
                401,
                "unauthorized",
            ),
            (HookError::Malformed(String::new()), 400, "malformed"),
            (HookError::NoIncidentPolicy(String::new()), 422, "no_policy"),
            (
                HookError::SourceNotAccepted("splunk"),
                422,
                "source_not_accepted",
            ),
            (HookError::Unavailable, 503, "unavailable"),
            (
                HookError::LockdownFailed(String::new()),
                503,
                "lockdown_failed",
            ),
            (HookError::ClickFailed(String::new()), 503, "click_failed"),
        ] {
            assert_eq!((error.status().as_u16(), error.label()), (status, label));
        }
        assert!(matches!(
            HookError::from_bamboohr(WebhookError::MalformedPayload("x".into())),
            HookError::Malformed(_)
        ));
        assert!(matches!(
            HookError::from_bamboohr(WebhookError::SignatureMismatch),
            HookError::Unauthenticated(_)
        ));
    }
}
