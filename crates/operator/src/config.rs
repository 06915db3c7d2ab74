//! The operator's configuration file (YAML): where Opal and the HR system are, how often to
//! sync, and the notification channels CRs may name. Secrets are references (environment
//! variable or file), never values.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::crd::{ALERT_FIELD_PATH_MAX_CHARS, ALERT_FIELD_PATH_PATTERN, SafetySpec};
use crate::engine::GoDuration;
use crate::hris::HrisConfig;
use crate::notify::NotifyConfig;
use crate::opal::ClientConfig;
use crate::secret::LocalSecretRef;

/// Why a configuration cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Invalid { .. } => "invalid",
        }
    }

    fn invalid(field: &str, message: impl ToString) -> Self {
        ConfigError::Invalid {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The whole configuration file.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    /// Namespace whose AccessPolicies shape the global plan (tenancy, safety, offboarding).
    #[serde(default = "default_operator_namespace")]
    pub operator_namespace: String,
    pub opal: OpalSettings,
    pub hris: HrisConfig,
    #[serde(default)]
    pub sync: SyncSettings,
    /// Safety rails in force even when no AccessPolicy sets them (revocation breaker, HR
    /// flood gate, protected users). AccessPolicies in the operator namespace can only make
    /// them stricter: the strictest limit wins and protected users add up.
    #[serde(default)]
    pub safety_defaults: Option<SafetySpec>,
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// The HTTP server for metrics, health probes and inbound webhooks.
    #[serde(default)]
    pub server: ServerSettings,
    /// Credentials of the inbound webhooks; a hook without them answers 404. BambooHR's key
    /// lives with its source, at `hris.webhook`.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// How AccessPolicies' `requests` rules are applied to pending Opal access requests.
    #[serde(default)]
    pub requests: RequestSettings,
}

/// The just-in-time request decider.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestSettings {
    /// Go duration between reads of Opal's pending requests (`0s` turns the decider off;
    /// the Opal event-stream doorbell still triggers a read at once).
    #[serde(default = "default_request_poll_interval")]
    pub poll_interval: GoDuration,
    /// Go duration a grant the operator approved may still show in Opal after its window
    /// before the operator removes it (Opal's own expiry gets this long to act).
    #[serde(default = "default_expiry_grace")]
    pub expiry_grace: GoDuration,
    /// Go duration a decided request's ledger entry is kept after it was claimed, once Opal no
    /// longer shows the request pending and nothing about it is followed any more (`0s`
    /// keeps entries forever).
    #[serde(default = "default_ledger_retention")]
    pub ledger_retention: GoDuration,
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            poll_interval: default_request_poll_interval(),
            expiry_grace: default_expiry_grace(),
            ledger_retention: default_ledger_retention(),
        }
    }
}

fn default_ledger_retention() -> GoDuration {
    GoDuration::from_secs(7 * 24 * 3600)
}

fn default_expiry_grace() -> GoDuration {
    GoDuration::from_secs(600)
}

impl RequestSettings {
    /// The grace after an approved window before a grant still shown is removed.
    pub fn expiry_grace(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.expiry_grace.to_std()).unwrap_or(chrono::Duration::MAX)
    }

    /// How long decided entries are kept; `None` keeps them forever.
    pub fn ledger_retention(&self) -> Option<chrono::Duration> {
        let retention = self.ledger_retention.to_std();
        (!retention.is_zero())
            .then(|| chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX))
    }

    /// The poll interval; `None` when turned off.
    pub fn poll_interval(&self) -> Option<Duration> {
        let poll = self.poll_interval.to_std();
        (!poll.is_zero()).then_some(poll)
    }
}

fn default_request_poll_interval() -> GoDuration {
    GoDuration::from_secs(15)
}

/// Where the HTTP server listens and how much it reads.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSettings {
    /// `ip:port`, e.g. `0.0.0.0:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Larger request bodies are refused with 413 before anything reads them as JSON.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

impl ServerSettings {
    /// The listen address (validated by [`OperatorConfig::validate`]).
    pub fn listen_address(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!("{:?} is not an ip:port address", self.listen),
            )
        })
    }
}

/// Shared credentials of the inbound webhooks other than BambooHR's.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSettings {
    /// `POST /webhooks/workday`, signed with HMAC-SHA256 of the body.
    #[serde(default)]
    pub workday: Option<WorkdayHookSettings>,
    /// `POST /webhooks/alerts/splunk`, authenticated with a shared token.
    #[serde(default)]
    pub splunk: Option<SplunkAlertSettings>,
    /// `POST /webhooks/alerts/datadog`, authenticated with a shared secret.
    #[serde(default)]
    pub datadog: Option<DatadogAlertSettings>,
    /// `POST /webhooks/alerts/generic` for EDR and other tools that can POST JSON, signed with
    /// HMAC-SHA256 of the body.
    #[serde(default)]
    pub generic: Option<GenericAlertSettings>,
    /// `POST /webhooks/opal/events`, an Opal event stream's webhook, signed with HMAC-SHA256
    /// over `v0:<timestamp>:<body>`. A verified delivery only makes the operator read pending
    /// requests and audit events at once; its content is never trusted.
    #[serde(default)]
    pub opal_events: Option<OpalEventsHookSettings>,
    /// `POST /webhooks/jira`, a Jira webhook saved with a secret (`X-Hub-Signature:
    /// sha256=<hex HMAC-SHA256 of the body>`). A verified delivery only makes the operator
    /// poll its routed requests' approvals at once; its content is never trusted.
    #[serde(default)]
    pub jira: Option<OpalEventsHookSettings>,
    /// `POST /webhooks/slack/interactivity`, the Slack app's interactivity request URL, signed
    /// by Slack with the app's signing secret (`X-Slack-Signature: v0=<hex HMAC-SHA256 of
    /// v0:<timestamp>:<body>>`, refused more than 300 s from now). A verified Approve or Deny
    /// click is only recorded; the decision is taken later by the leader.
    #[serde(default)]
    pub slack: Option<SlackHookSettings>,
}

/// The Slack interactivity hook.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackHookSettings {
    /// The Slack app's signing secret (Basic Information → App Credentials).
    pub signing_secret: LocalSecretRef,
}

/// A doorbell hook: the Opal event stream's, or Jira's.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpalEventsHookSettings {
    /// The signing secret.
    pub secret: LocalSecretRef,
}

/// The Workday change hook.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkdayHookSettings {
    /// Key of the HMAC-SHA256 signature the sender puts on every body.
    pub secret: LocalSecretRef,
}

/// The Splunk alert hook.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplunkAlertSettings {
    /// Token Splunk presents (bearer header or `?token=` in the alert action's URL).
    pub token: LocalSecretRef,
}

/// The Datadog alert hook.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatadogAlertSettings {
    /// Secret Datadog sends in a custom header (or uses to sign the body).
    pub secret: LocalSecretRef,
}

/// The generic alert hook.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenericAlertSettings {
    /// Key of the HMAC-SHA256 signature the sender puts on every body.
    pub secret: LocalSecretRef,
    /// Where in the body the alert's fields are.
    #[serde(default)]
    pub fields: AlertFieldPaths,
}

/// Dot paths into a generic alert's JSON body (`detection.user.email`, `users.0`); each is
/// optional.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertFieldPaths {
    /// The user's email; unset: the AccessPolicy's `incidentResponse.userField`.
    #[serde(default)]
    pub user: Option<String>,
    /// The severity word (`critical`, `high`, …, `P1`–`P5`); unset or absent from the body:
    /// the alert counts as meeting `minSeverity`.
    #[serde(default)]
    pub severity: Option<String>,
    /// The alert's identity, stable across redeliveries; unset or absent: a hash of the body.
    #[serde(default)]
    pub id: Option<String>,
    /// The title quoted in the Lockdown's reason; unset or absent: "Generic alert".
    #[serde(default)]
    pub title: Option<String>,
}

impl AlertFieldPaths {
    /// Every path is what the alert hooks' dot-path walker can follow (the same shape as
    /// `incidentResponse.userField`), so a typo fails at startup rather than on every alert.
    fn validate(&self) -> Result<(), ConfigError> {
        let pattern = regex::Regex::new(ALERT_FIELD_PATH_PATTERN).expect("static pattern compiles");
        for (field, path) in [
            ("webhooks.generic.fields.user", &self.user),
            ("webhooks.generic.fields.severity", &self.severity),
            ("webhooks.generic.fields.id", &self.id),
            ("webhooks.generic.fields.title", &self.title),
        ] {
            if let Some(path) = path
                && (path.chars().count() > ALERT_FIELD_PATH_MAX_CHARS || !pattern.is_match(path))
            {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "must be a dot path such as `detection.user.email`: letters, digits, \
                         `_` and `-` between single dots, at most {ALERT_FIELD_PATH_MAX_CHARS} \
                         characters"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How to reach Opal.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpalSettings {
    /// The API token: `{env: NAME}` or `{file: /path}`.
    pub token: LocalSecretRef,
    /// Base URL, limits, retries and timeouts.
    #[serde(default)]
    pub client: ClientConfig,
}

/// When and how hard to sync.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncSettings {
    /// Go duration between syncs, e.g. `5m`.
    #[serde(default = "default_interval")]
    pub interval: GoDuration,
    /// Each wait is shortened or lengthened by up to this share, so replicas and restarts do
    /// not sync in lockstep.
    #[serde(default = "default_jitter_percent")]
    pub jitter_percent: u8,
    /// Opal listings and changes in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How often Opal's audit events are read to catch changes made outside the operator
    /// between resyncs (Go duration; `0s` turns it off).
    #[serde(default = "default_events_poll_interval")]
    pub events_poll_interval: GoDuration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            jitter_percent: default_jitter_percent(),
            concurrency: default_concurrency(),
            events_poll_interval: default_events_poll_interval(),
        }
    }
}

impl SyncSettings {
    /// The interval between full syncs (validated by [`OperatorConfig::validate`]).
    pub fn interval(&self) -> Result<Duration, ConfigError> {
        let interval = self.interval.to_std();
        if interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid("sync.interval", "must be at least 1s"));
        }
        Ok(interval)
    }

    /// The events poll interval; `None` when turned off.
    pub fn events_poll_interval(&self) -> Option<Duration> {
        let poll = self.events_poll_interval.to_std();
        (!poll.is_zero()).then_some(poll)
    }
}

fn default_events_poll_interval() -> GoDuration {
    GoDuration::from_secs(30)
}

fn default_operator_namespace() -> String {
    "opal-system".to_owned()
}

fn default_listen() -> String {
    "0.0.0.0:8080".to_owned()
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_interval() -> GoDuration {
    GoDuration::from_secs(300)
}

fn default_jitter_percent() -> u8 {
    10
}

fn default_concurrency() -> usize {
    16
}

impl OperatorConfig {
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Parses and validates; errors name the offending field by its path.
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = error.path().to_string();
            ConfigError::invalid(&field, hide_values(&error.into_inner().to_string()))
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.operator_namespace.is_empty() {
            return Err(ConfigError::invalid(
                "operatorNamespace",
                "must not be empty",
            ));
        }
        self.opal
            .client
            .validate()
            .map_err(|error| ConfigError::invalid("opal.client", error))?;
        self.hris
            .validate()
            .map_err(|error| ConfigError::invalid("hris", error))?;
        self.sync.interval()?;
        if self.sync.jitter_percent > 50 {
            return Err(ConfigError::invalid(
                "sync.jitterPercent",
                "must be at most 50",
            ));
        }
        if let Some(safety) = &self.safety_defaults {
            let percent = |value: Option<i32>| value.is_some_and(|v| !(0..=100).contains(&v));
            if safety.max_revocations.is_some_and(|v| v < 0) {
                return Err(ConfigError::invalid(
                    "safetyDefaults.maxRevocations",
                    "must not be negative",
                ));
            }
            if percent(safety.max_revocation_percent) {
                return Err(ConfigError::invalid(
                    "safetyDefaults.maxRevocationPercent",
                    "must be between 0 and 100",
                ));
            }
            if percent(
                safety
                    .hris_flood_gate
                    .as_ref()
                    .and_then(|g| g.max_shrink_percent),
            ) {
                return Err(ConfigError::invalid(
                    "safetyDefaults.hrisFloodGate.maxShrinkPercent",
                    "must be between 0 and 100",
                ));
            }
        }
        if self.sync.concurrency == 0 {
            return Err(ConfigError::invalid(
                "sync.concurrency",
                "must be at least 1",
            ));
        }
        if let Some(notify) = &self.notify {
            notify
                .validate()
                .map_err(|error| ConfigError::invalid("notify", error))?;
        }
        self.server.listen_address()?;
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.maxBodyBytes",
                "must be at least 1",
            ));
        }
        if let Some(generic) = &self.webhooks.generic {
            generic.fields.validate()?;
        }
        // The hook's employee IDs are looked up in the HR source, so they must be Workday's.
        if self.webhooks.workday.is_some() && !matches!(self.hris, HrisConfig::Workday(_)) {
            return Err(ConfigError::invalid(
                "webhooks.workday",
                "needs `hris.source: workday`",
            ));
        }
        Ok(())
    }
}

/// A value in the wrong place may be a secret pasted inline: parse errors name the field and
/// the expected type, never the value.
fn hide_values(message: &str) -> String {
    let quoted = regex::Regex::new(r#"(invalid (?:type|value): string) "(?:[^"\\]|\\.)*""#)
        .expect("static pattern compiles");
    quoted
        .replace_all(message, "$1 (value hidden)")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
operatorNamespace: security
opal:
  token: {env: OPAL_TOKEN}
  client:
    baseUrl: https://api.opal.dev/v1
hris:
  source: file
  location: examples/demo/employees.csv
sync:
  interval: 10m
safetyDefaults:
  maxRevocationPercent: 5
  hrisFloodGate: {maxShrinkPercent: 10}
"#;

    #[test]
    fn a_valid_config_parses_with_defaults() {
        let config = OperatorConfig::from_yaml_str(VALID).expect("valid config");
        assert_eq!(config.operator_namespace, "security");
        assert_eq!(config.sync.interval().ok(), Some(Duration::from_secs(600)));
        assert_eq!(config.sync.jitter_percent, 10);
        assert_eq!(
            config.sync.events_poll_interval(),
            Some(Duration::from_secs(30))
        );
        assert!(config.notify.is_none());
        let safety = config.safety_defaults.expect("safety defaults");
        assert_eq!(safety.max_revocation_percent, Some(5));
    }

    #[test]
    fn the_events_poll_turns_off_with_zero_and_rejects_nonsense() {
        let off = VALID.replace("interval: 10m", "interval: 10m\n  eventsPollInterval: 0s");
        let config = OperatorConfig::from_yaml_str(&off).expect("valid config");
        assert_eq!(config.sync.events_poll_interval(), None);
        let bad = VALID.replace("interval: 10m", "interval: 10m\n  eventsPollInterval: soon");
        assert!(error_of(&bad).contains("sync.eventsPollInterval"));
    }

    fn error_of(text: &str) -> String {
        match OperatorConfig::from_yaml_str(text) {
            Ok(_) => panic!("config should be rejected"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let typo = VALID.replace("interval: 10m", "intervall: 10m");
        let message = error_of(&typo);
        assert!(
            message.contains("`sync.intervall`") && message.contains("unknown field"),
            "{message}"
        );

        let bad_interval = VALID.replace("interval: 10m", "interval: 10 minutes");
        let message = error_of(&bad_interval);
        assert!(message.contains("`sync.interval`"), "{message}");

        let inline_token = VALID.replace("{env: OPAL_TOKEN}", "hunter2");
        let message = error_of(&inline_token);
        assert!(message.contains("`opal.token`"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the value must not be echoed: {message}"
        );

        let percent = VALID.replace("maxRevocationPercent: 5", "maxRevocationPercent: 500");
        let message = error_of(&percent);
        assert!(
            message.contains("`safetyDefaults.maxRevocationPercent`"),
            "{message}"
        );

        let unknown_source = VALID.replace("source: file", "source: gusto");
        let message = error_of(&unknown_source);
        assert!(
            message.contains("hris") && message.contains("gusto"),
            "{message}"
        );
    }

    const WORKDAY_HRIS: &str = r#"
hris:
  source: workday
  baseUrl: https://wd2-impl-services1.workday.com
  tenant: acme
  clientId: client-1
  clientSecret: {env: WD_SECRET}
  refreshToken: {env: WD_REFRESH}
"#;

    #[test]
    fn server_and_webhooks_default_to_listening_on_8080_with_no_hooks() {
        let config = OperatorConfig::from_yaml_str(VALID).expect("valid config");
        assert_eq!(config.server, ServerSettings::default());
        assert_eq!(config.server.listen, "0.0.0.0:8080");
        assert_eq!(config.server.max_body_bytes, 1_048_576);
        assert_eq!(
            config.server.listen_address().ok(),
            Some(SocketAddr::from(([0, 0, 0, 0], 8080)))
        );
        assert_eq!(config.webhooks, WebhookSettings::default());
    }

    #[test]
    fn server_and_webhook_sections_parse() {
        let text = VALID.replace(
            "\nhris:\n  source: file\n  location: examples/demo/employees.csv\n",
            WORKDAY_HRIS,
        ) + r#"
server:
  listen: "[::1]:9090"
  maxBodyBytes: 4096
webhooks:
  workday: {secret: {env: WORKDAY_HOOK_SECRET}}
  splunk: {token: {file: /run/secrets/splunk-token}}
  datadog: {secret: {env: DATADOG_HOOK_SECRET}}
  generic:
    secret: {env: EDR_HOOK_SECRET}
    fields:
      user: detection.users.0.email
      severity: detection.severity_name
      id: detection.id
      title: detection.name
"#;
        let config = OperatorConfig::from_yaml_str(&text).expect("valid config");
        assert_eq!(
            config.server.listen_address().ok(),
            Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9090)))
        );
        assert_eq!(config.server.max_body_bytes, 4096);
        assert_eq!(
            config.webhooks.workday.map(|hook| hook.secret),
            Some(LocalSecretRef::Env("WORKDAY_HOOK_SECRET".into()))
        );
        assert_eq!(
            config.webhooks.splunk.map(|hook| hook.token),
            Some(LocalSecretRef::File("/run/secrets/splunk-token".into()))
        );
        assert_eq!(
            config.webhooks.datadog.map(|hook| hook.secret),
            Some(LocalSecretRef::Env("DATADOG_HOOK_SECRET".into()))
        );
        assert_eq!(
            config.webhooks.generic,
            Some(GenericAlertSettings {
                secret: LocalSecretRef::Env("EDR_HOOK_SECRET".into()),
                fields: AlertFieldPaths {
                    user: Some("detection.users.0.email".into()),
                    severity: Some("detection.severity_name".into()),
                    id: Some("detection.id".into()),
                    title: Some("detection.name".into()),
                },
            })
        );

        // Every path is optional.
        let bare = OperatorConfig::from_yaml_str(&format!(
            "{VALID}webhooks: {{generic: {{secret: {{env: EDR_HOOK_SECRET}}}}}}\n"
        ))
        .expect("valid config");
        assert_eq!(
            bare.webhooks.generic.map(|hook| hook.fields),
            Some(AlertFieldPaths::default())
        );
    }

    #[test]
    fn the_slack_hook_takes_a_signing_secret_and_nothing_else() {
        let config = OperatorConfig::from_yaml_str(&format!(
            "{VALID}webhooks: {{slack: {{signingSecret: {{env: SLACK_SIGNING_SECRET}}}}}}\n"
        ))
        .expect("valid config");
        assert_eq!(
            config.webhooks.slack,
            Some(SlackHookSettings {
                signing_secret: LocalSecretRef::Env("SLACK_SIGNING_SECRET".into()),
            })
        );

        let message = error_of(&format!(
            "{VALID}webhooks: {{slack: {{secret: {{env: SLACK_SIGNING_SECRET}}}}}}\n"
        ));
        assert!(
            message.contains("`webhooks.slack.secret`") && message.contains("unknown field"),
            "{message}"
        );
    }

    #[test]
    fn server_and_webhook_errors_name_the_field_and_hide_secrets() {
        let message = error_of(&format!("{VALID}server: {{listen: localhost-8080}}\n"));
        assert!(
            message.contains("`server.listen`") && message.contains("ip:port"),
            "{message}"
        );

        let message = error_of(&format!("{VALID}server: {{maxBodyBytes: 0}}\n"));
        assert!(message.contains("`server.maxBodyBytes`"), "{message}");

        let message = error_of(&format!("{VALID}server: {{maxBodyBytes: lots}}\n"));
        assert!(message.contains("`server.maxBodyBytes`"), "{message}");

        let message = error_of(&format!(
            "{VALID}webhooks: {{splunk: {{secret: {{env: S}}}}}}\n"
        ));
        assert!(
            message.contains("`webhooks.splunk.secret`") && message.contains("unknown field"),
            "{message}"
        );

        let message = error_of(&format!(
            "{VALID}webhooks: {{datadog: {{secret: hunter2}}}}\n"
        ));
        assert!(message.contains("`webhooks.datadog.secret`"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the value must not be echoed: {message}"
        );

        for (fields, field) in [
            ("{user: 'detection..user'}", "webhooks.generic.fields.user"),
            (
                "{severity: 'severity name'}",
                "webhooks.generic.fields.severity",
            ),
            ("{id: ''}", "webhooks.generic.fields.id"),
            ("{title: '$.title'}", "webhooks.generic.fields.title"),
        ] {
            let message = error_of(&format!(
                "{VALID}webhooks: {{generic: {{secret: {{env: G}}, fields: {fields}}}}}\n"
            ));
            assert!(
                message.contains(&format!("`{field}`")) && message.contains("dot path"),
                "{fields}: {message}"
            );
        }
        let too_long = format!("a.{}", "b".repeat(ALERT_FIELD_PATH_MAX_CHARS));
        let message = error_of(&format!(
            "{VALID}webhooks: {{generic: {{secret: {{env: G}}, fields: {{user: {too_long}}}}}}}\n"
        ));
        assert!(
            message.contains("`webhooks.generic.fields.user`"),
            "{message}"
        );

        let message = error_of(&format!(
            "{VALID}webhooks: {{generic: {{secret: {{env: G}}, fields: {{email: user}}}}}}\n"
        ));
        assert!(
            message.contains("`webhooks.generic.fields.email`")
                && message.contains("unknown field"),
            "{message}"
        );

        let message = error_of(&format!(
            "{VALID}webhooks: {{generic: {{secret: hunter2}}}}\n"
        ));
        assert!(message.contains("`webhooks.generic.secret`"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the value must not be echoed: {message}"
        );

        let message = error_of(&format!(
            "{VALID}webhooks: {{workday: {{secret: {{env: W}}}}}}\n"
        ));
        assert!(
            message.contains("`webhooks.workday`") && message.contains("hris.source: workday"),
            "{message}"
        );
    }
}
