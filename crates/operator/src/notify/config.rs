//! The `notify` section of the operator config: named channels with their credentials by
//! reference, and the outbox's queue and retry settings.
//!
//! ```yaml
//! channels:
//!   secops-slack:
//!     type: slack
//!     token: {secretKeyRef: {name: slack-bot, key: token}}
//!     channel: C0123SECOPS
//!     directMessages: true
//!   it-tickets:
//!     type: serviceNow
//!     instanceUrl: https://acme.service-now.com
//!     username: opal-operator
//!     password: {env: SERVICENOW_PASSWORD}
//! outbox:
//!   queueCapacity: 1000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::NotifyError;
use crate::http::RetryConfig;
use crate::secret::SecretRef;

/// Everything the operator config says about notifications.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyConfig {
    /// Channels by the name custom resources use to reference them.
    pub channels: BTreeMap<String, ChannelConfig>,
    pub outbox: OutboxConfig,
}

/// The kind of service a channel talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    SlackWebhook,
    Slack,
    Email,
    Jira,
    JiraServiceManagement,
    ServiceNow,
    PagerDuty,
    SplunkHec,
    Webhook,
}

impl ChannelKind {
    /// Stable low-cardinality name for metrics and messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::SlackWebhook => "slack-webhook",
            Self::Slack => "slack",
            Self::Email => "email",
            Self::Jira => "jira",
            Self::JiraServiceManagement => "jira-service-management",
            Self::ServiceNow => "servicenow",
            Self::PagerDuty => "pagerduty",
            Self::SplunkHec => "splunk-hec",
            Self::Webhook => "webhook",
        }
    }

    /// Whether the channel keeps tickets, which are opened once per thread and then updated.
    pub fn is_ticketing(self) -> bool {
        matches!(
            self,
            Self::Jira | Self::JiraServiceManagement | Self::ServiceNow
        )
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One channel. The `type` key selects the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChannelConfig {
    SlackWebhook(SlackWebhookConfig),
    Slack(SlackApiConfig),
    Email(EmailConfig),
    Jira(JiraConfig),
    JiraServiceManagement(JsmConfig),
    ServiceNow(ServiceNowConfig),
    PagerDuty(PagerDutyConfig),
    SplunkHec(SplunkHecConfig),
    Webhook(WebhookConfig),
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Self::SlackWebhook(_) => ChannelKind::SlackWebhook,
            Self::Slack(_) => ChannelKind::Slack,
            Self::Email(_) => ChannelKind::Email,
            Self::Jira(_) => ChannelKind::Jira,
            Self::JiraServiceManagement(_) => ChannelKind::JiraServiceManagement,
            Self::ServiceNow(_) => ChannelKind::ServiceNow,
            Self::PagerDuty(_) => ChannelKind::PagerDuty,
            Self::SplunkHec(_) => ChannelKind::SplunkHec,
            Self::Webhook(_) => ChannelKind::Webhook,
        }
    }
}

/// Slack incoming webhook. The URL is the credential, so it is read like one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackWebhookConfig {
    pub url: SecretRef,
}

/// Slack Web API with a bot token (`chat:write`, and `users:read.email` for direct messages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackApiConfig {
    #[serde(default = "default_slack_api_url")]
    pub api_url: String,
    pub token: SecretRef,
    /// Channel ID (or name) every message is posted to.
    #[serde(default)]
    pub channel: Option<String>,
    /// Also message each notification's recipients directly, found by email.
    #[serde(default)]
    pub direct_messages: bool,
}

fn default_slack_api_url() -> String {
    "https://slack.com/api".to_owned()
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS; refuses to send if the upgrade fails (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
    /// No encryption; only for a relay on the loopback interface and never with credentials.
    None,
}

/// Email over SMTP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    /// Defaults to 587 (STARTTLS), 465 (TLS) or 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Sender mailbox, e.g. `Opal Operator <opal-operator@example.com>`.
    pub from: String,
    /// Fixed recipients; each notification's own recipients are added.
    #[serde(default)]
    pub to: Vec<String>,
    /// PEM file with extra certificate authorities to trust (a private relay's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl EmailConfig {
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }
}

/// Jira Cloud (REST v3) with basic auth `email:api_token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JiraConfig {
    /// Site root, e.g. `https://acme.atlassian.net`.
    pub url: String,
    pub email: String,
    pub api_token: SecretRef,
    pub project_key: String,
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Extra labels on every issue.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Transition used to resolve an issue, by name; defaults to the first one leading to a
    /// status in the "done" category.
    #[serde(default)]
    pub resolve_transition: Option<String>,
    /// Lets the channel take routed access requests: moving an issue to `approveStatus`
    /// approves, to `denyStatus` denies, decided by whoever made that transition. Without it
    /// the channel only takes tickets.
    #[serde(default)]
    pub decisions: Option<JiraDecisionStatuses>,
}

/// The statuses that decide a routed request's Jira issue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JiraDecisionStatuses {
    pub approve_status: String,
    pub deny_status: String,
}

fn default_issue_type() -> String {
    "Task".to_owned()
}

/// Jira Service Management requests (created through the service desk API, then commented and
/// transitioned as Jira issues).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsmConfig {
    pub url: String,
    pub email: String,
    pub api_token: SecretRef,
    pub service_desk_id: String,
    pub request_type_id: String,
    /// Customer account ID the request is raised for.
    #[serde(default)]
    pub raise_on_behalf_of: Option<String>,
    #[serde(default)]
    pub resolve_transition: Option<String>,
}

/// ServiceNow Table API with basic auth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// Instance root, e.g. `https://acme.service-now.com`.
    pub instance_url: String,
    pub username: String,
    pub password: SecretRef,
    /// Table tickets are kept in (`incident`, `sc_task`, …).
    #[serde(default = "default_servicenow_table")]
    pub table: String,
    /// Fields set on every new record, e.g. `assignment_group`, `urgency`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Fields that close a record; `close_notes` is added from the notification.
    #[serde(default = "default_close_fields")]
    pub close_fields: BTreeMap<String, String>,
}

fn default_servicenow_table() -> String {
    "incident".to_owned()
}

fn default_close_fields() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("state".to_owned(), "6".to_owned()),
        ("close_code".to_owned(), "Solution provided".to_owned()),
    ])
}

/// PagerDuty Events API v2; the routing key is the credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PagerDutyConfig {
    #[serde(default = "default_pagerduty_url")]
    pub events_url: String,
    pub routing_key: SecretRef,
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// The REST API (on-call lookups, incidents), used only when set; the Events API above
    /// keeps working without it.
    #[serde(default)]
    pub rest: Option<PagerDutyRestConfig>,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_owned()
}

/// PagerDuty's REST API v2, authenticated with an API key (`Authorization: Token token=…`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PagerDutyRestConfig {
    /// The API root every path is appended to; the public one unless a proxy or a simulator
    /// stands in.
    #[serde(default = "default_pagerduty_api_url")]
    pub api_url: String,
    /// A general or user API key. Lookups only need read access; opening, annotating and
    /// resolving incidents need a key that may write.
    pub api_key: SecretRef,
    /// The email address of a PagerDuty user, sent as the `From` header that every write must
    /// carry; PagerDuty records the writes as that user's. Without it only lookups work.
    #[serde(default)]
    pub from_email: Option<String>,
    /// The service incidents are opened on. Without it no incident can be opened.
    #[serde(default)]
    pub service_id: Option<String>,
}

fn default_pagerduty_api_url() -> String {
    "https://api.pagerduty.com".to_owned()
}

fn default_source() -> String {
    "opal-operator".to_owned()
}

/// Splunk HTTP Event Collector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Collector root, e.g. `https://splunk.example.com:8088`.
    pub url: String,
    pub token: SecretRef,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    #[serde(default)]
    pub host: Option<String>,
    /// Channel GUID, required when the token has indexer acknowledgement enabled.
    #[serde(default)]
    pub channel: Option<String>,
    /// Most events sent in one request.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_sourcetype() -> String {
    "opal-operator:notification".to_owned()
}

fn default_max_batch() -> usize {
    100
}

/// A generic HTTPS endpoint receiving JSON signed with HMAC-SHA256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint, when it carries no secret.
    #[serde(default)]
    pub url: Option<String>,
    /// The endpoint read like a credential, when it embeds one.
    #[serde(default)]
    pub url_from: Option<SecretRef>,
    pub signing_key: SecretRef,
}

/// Queue and retry settings shared by all channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboxConfig {
    /// Messages each channel can hold before `enqueue` reports the queue full.
    pub queue_capacity: usize,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Per message; fields left out take [`RetryConfig::for_messages`] values.
    #[serde(deserialize_with = "crate::http::deserialize_message_retry")]
    pub retry: RetryConfig,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1000,
            request_timeout_ms: 15_000,
            connect_timeout_ms: 5_000,
            retry: RetryConfig::for_messages(),
        }
    }
}

impl NotifyConfig {
    /// Checks everything that can be checked without reading credentials.
    pub fn validate(&self) -> Result<(), NotifyError> {
        for (name, channel) in &self.channels {
            validate_channel_name(name)?;
            channel
                .validate()
                .map_err(|problem| NotifyError::Config(format!("channel {name:?}: {problem}")))?;
        }
        self.outbox.validate()
    }

    /// The configured channel names.
    pub fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// Fails with [`NotifyError::UnknownChannel`] naming every reference that is not configured.
    pub fn validate_channel_refs(&self, refs: &[&str]) -> Result<(), NotifyError> {
        validate_channel_refs(self.channel_names(), refs)
    }
}

/// Fails with [`NotifyError::UnknownChannel`] naming every entry of `refs` not in `known`.
pub fn validate_channel_refs<'a>(
    known: impl IntoIterator<Item = &'a str>,
    refs: &[&str],
) -> Result<(), NotifyError> {
    let known: BTreeSet<&str> = known.into_iter().collect();
    let unknown: BTreeSet<&str> = refs
        .iter()
        .copied()
        .filter(|name| !known.contains(name))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(NotifyError::UnknownChannel {
        unknown: unknown.into_iter().map(str::to_owned).collect(),
        known: known.into_iter().map(str::to_owned).collect(),
    })
}

fn validate_channel_name(name: &str) -> Result<(), NotifyError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(NotifyError::Config(format!(
            "channel name {name:?} must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

impl ChannelConfig {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::SlackWebhook(_) => Ok(()),
            Self::Slack(slack) => {
                endpoint(&slack.api_url, "apiUrl")?;
                if slack.channel.is_none() && !slack.direct_messages {
                    return Err("set channel, directMessages, or both".to_owned());
                }
                Ok(())
            }
            Self::Email(email) => email.validate(),
            Self::Jira(jira) => {
                endpoint(&jira.url, "url")?;
                required(&jira.email, "email")?;
                required(&jira.project_key, "projectKey")?;
                required(&jira.issue_type, "issueType")?;
                if let Some(label) = jira.labels.iter().find(|l| l.is_empty() || l.contains(' ')) {
                    return Err(format!("label {label:?} must be non-empty without spaces"));
                }
                if let Some(decisions) = &jira.decisions {
                    required(&decisions.approve_status, "decisions.approveStatus")?;
                    required(&decisions.deny_status, "decisions.denyStatus")?;
                    if decisions
                        .approve_status
                        .trim()
                        .eq_ignore_ascii_case(decisions.deny_status.trim())
                    {
                        return Err(
                            "decisions.approveStatus and decisions.denyStatus must differ"
                                .to_owned(),
                        );
                    }
                }
                Ok(())
            }
            Self::JiraServiceManagement(jsm) => {
                endpoint(&jsm.url, "url")?;
                required(&jsm.email, "email")?;
                required(&jsm.service_desk_id, "serviceDeskId")?;
                required(&jsm.request_type_id, "requestTypeId")
            }
            Self::ServiceNow(snow) => {
                endpoint(&snow.instance_url, "instanceUrl")?;
                required(&snow.username, "username")?;
                let table_ok = !snow.table.is_empty()
                    && snow
                        .table
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !table_ok {
                    return Err(format!("table {:?} is not a table name", snow.table));
                }
                Ok(())
            }
            Self::PagerDuty(pd) => {
                endpoint(&pd.events_url, "eventsUrl")?;
                required(&pd.source, "source")?;
                pd.rest
                    .as_ref()
                    .map_or(Ok(()), PagerDutyRestConfig::validate)
            }
            Self::SplunkHec(hec) => {
                endpoint(&hec.url, "url")?;
                if hec.max_batch == 0 {
                    return Err("maxBatch must be at least 1".to_owned());
                }
                Ok(())
            }
            Self::Webhook(hook) => match (&hook.url, &hook.url_from) {
                (Some(url), None) => endpoint(url, "url").map(drop),
                (None, Some(_)) => Ok(()),
                _ => Err("set exactly one of url and urlFrom".to_owned()),
            },
        }
    }
}

impl EmailConfig {
    fn validate(&self) -> Result<(), String> {
        required(&self.host, "host")?;
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|err| format!("from {:?}: {err}", self.from))?;
        for to in &self.to {
            to.parse::<lettre::message::Mailbox>()
                .map_err(|err| format!("to {to:?}: {err}"))?;
        }
        if self.password.is_some() != self.username.is_some() {
            return Err("set both username and password, or neither".to_owned());
        }
        if self.security == SmtpSecurity::None {
            if !is_loopback_host(&self.host) {
                return Err("security: none is only allowed for a relay on loopback".to_owned());
            }
            if self.username.is_some() {
                return Err("credentials are never sent without TLS".to_owned());
            }
        }
        Ok(())
    }
}

impl PagerDutyRestConfig {
    fn validate(&self) -> Result<(), String> {
        endpoint(&self.api_url, "rest.apiUrl")?;
        if let Some(from) = &self.from_email {
            let (local, domain) = from.split_once('@').unwrap_or_default();
            if local.is_empty() || domain.is_empty() || from.contains(char::is_whitespace) {
                return Err(format!("rest.fromEmail {from:?} is not an email address"));
            }
        }
        if let Some(service) = &self.service_id {
            required(service, "rest.serviceId")?;
        }
        Ok(())
    }
}

fn required(value: &str, field: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} is required"))
    } else {
        Ok(())
    }
}

/// Parses an endpoint URL: HTTPS, or plain HTTP on loopback (local relays and simulators).
pub(crate) fn endpoint(raw: &str, field: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|err| format!("{field} is not a URL: {err}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        _ => Err(format!(
            "{field} must use https (plain http only on loopback)"
        )),
    }
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl OutboxConfig {
    fn validate(&self) -> Result<(), NotifyError> {
        let problem = if self.queue_capacity == 0 {
            Some("outbox.queueCapacity must be at least 1")
        } else if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            Some("outbox timeouts must be greater than zero")
        } else if self.retry.max_attempts == 0 {
            Some("outbox.retry.maxAttempts must be at least 1")
        } else if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            Some("outbox.retry.initialBackoffMs must not exceed maxBackoffMs")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(NotifyError::Config(p.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
channels:
  secops-slack:
    type: slack
    token: {secretKeyRef: {name: slack-bot, key: token}}
    channel: C0123SECOPS
    directMessages: true
  hook:
    type: slackWebhook
    url: {env: SLACK_WEBHOOK_URL}
  mail:
    type: email
    host: smtp.example.com
    username: opal
    password: {file: /etc/opal/smtp-password}
    from: Opal Operator <opal@example.com>
    to: [secops@example.com]
  jira:
    type: jira
    url: https://acme.atlassian.net
    email: bot@acme.com
    apiToken: {env: JIRA_TOKEN}
    projectKey: SEC
  jsm:
    type: jiraServiceManagement
    url: https://acme.atlassian.net
    email: bot@acme.com
    apiToken: {env: JIRA_TOKEN}
    serviceDeskId: "1"
    requestTypeId: "10"
  snow:
    type: serviceNow
    instanceUrl: https://acme.service-now.com
    username: opal
    password: {env: SN_PASSWORD}
  pd:
    type: pagerDuty
    routingKey: {env: PD_KEY}
  hec:
    type: splunkHec
    url: https://splunk.example.com:8088
    token: {env: HEC_TOKEN}
    index: opal
  hook2:
    type: webhook
    url: https://hooks.example.com/opal
    signingKey: {env: HOOK_KEY}
outbox:
  queueCapacity: 50
"#;

    #[test]
    fn parses_every_channel_kind_with_defaults() {
        let config: NotifyConfig = serde_yaml::from_str(SAMPLE).expect("parse");
        config.validate().expect("valid");
        let kinds: BTreeSet<ChannelKind> =
            config.channels.values().map(ChannelConfig::kind).collect();
        assert_eq!(kinds.len(), 9);
        let Some(ChannelConfig::ServiceNow(snow)) = config.channels.get("snow") else {
            panic!("snow");
        };
        assert_eq!(snow.table, "incident");
        assert_eq!(
            snow.close_fields.get("state").map(String::as_str),
            Some("6")
        );
        let Some(ChannelConfig::Email(mail)) = config.channels.get("mail") else {
            panic!("mail");
        };
        assert_eq!(mail.effective_port(), 587);
        assert_eq!(config.outbox.queue_capacity, 50);
        assert_eq!(config.outbox.retry, RetryConfig::for_messages());
    }

    #[test]
    fn unknown_keys_and_types_are_rejected() {
        let typo = "channels:\n  a:\n    type: pagerDuty\n    routingKey: {env: X}\n    sourc: y\n";
        assert!(serde_yaml::from_str::<NotifyConfig>(typo).is_err());
        let kind = "channels:\n  a:\n    type: teams\n    url: x\n";
        assert!(serde_yaml::from_str::<NotifyConfig>(kind).is_err());
    }

    #[test]
    fn unknown_channel_references_name_the_culprits() {
        let config: NotifyConfig = serde_yaml::from_str(SAMPLE).expect("parse");
        config
            .validate_channel_refs(&["pd", "jira"])
            .expect("known");
        let err = config
            .validate_channel_refs(&["pd", "slak-ops", "mial"])
            .expect_err("unknown");
        assert_eq!(err.label(), "unknown_channel");
        let text = err.to_string();
        assert!(
            text.contains("\"slak-ops\"") && text.contains("\"mial\""),
            "{text}"
        );
        assert!(text.contains("\"secops-slack\""), "{text}");
        assert!(!text.contains("\"pd\", \"slak"), "{text}");
    }

    #[test]
    fn jira_decisions_need_two_distinct_statuses() {
        let yaml = |decisions: &str| {
            format!(
                "channels:\n  jira:\n    type: jira\n    url: https://acme.atlassian.net\n    email: bot@acme.com\n    apiToken: {{env: T}}\n    projectKey: SEC\n{decisions}"
            )
        };
        let good: NotifyConfig = serde_yaml::from_str(&yaml(
            "    decisions: {approveStatus: Approved, denyStatus: Declined}\n",
        ))
        .expect("parse");
        good.validate().expect("valid");
        let Some(ChannelConfig::Jira(jira)) = good.channels.get("jira") else {
            panic!("jira");
        };
        assert_eq!(
            jira.decisions
                .as_ref()
                .map(|d| (d.approve_status.as_str(), d.deny_status.as_str())),
            Some(("Approved", "Declined"))
        );
        for bad in [
            "    decisions: {approveStatus: Done, denyStatus: done}\n",
            "    decisions: {approveStatus: \"\", denyStatus: Declined}\n",
        ] {
            let config: NotifyConfig = serde_yaml::from_str(&yaml(bad)).expect(bad);
            assert_eq!(config.validate().expect_err(bad).label(), "config", "{bad}");
        }
        let typo = yaml("    decisions: {approve: Approved, denyStatus: Declined}\n");
        assert!(serde_yaml::from_str::<NotifyConfig>(&typo).is_err());
    }

    #[test]
    fn pagerduty_rest_section_is_optional_and_checked() {
        let config: NotifyConfig = serde_yaml::from_str(SAMPLE).expect("parse");
        let Some(ChannelConfig::PagerDuty(pd)) = config.channels.get("pd") else {
            panic!("pd");
        };
        assert_eq!(
            pd.rest, None,
            "a channel without rest keeps only the Events API"
        );

        let with_rest = "channels:\n  pd:\n    type: pagerDuty\n    routingKey: {env: K}\n    rest:\n      apiKey: {env: PD_API}\n      fromEmail: bot@example.com\n      serviceId: PSVC01\n";
        let config: NotifyConfig = serde_yaml::from_str(with_rest).expect("parse");
        config.validate().expect("valid");
        let Some(ChannelConfig::PagerDuty(pd)) = config.channels.get("pd") else {
            panic!("pd");
        };
        let rest = pd.rest.as_ref().expect("rest");
        assert_eq!(rest.api_url, "https://api.pagerduty.com");
        assert_eq!(rest.api_key, SecretRef::env("PD_API"));
        assert_eq!(rest.from_email.as_deref(), Some("bot@example.com"));
        assert_eq!(rest.service_id.as_deref(), Some("PSVC01"));

        let typo = "channels:\n  pd:\n    type: pagerDuty\n    routingKey: {env: K}\n    rest:\n      apiKey: {env: A}\n      fromMail: a@b.c\n";
        assert!(serde_yaml::from_str::<NotifyConfig>(typo).is_err());
        for bad in [
            "      apiUrl: http://api.example.com\n",
            "      fromEmail: not-an-address\n",
            "      serviceId: \" \"\n",
        ] {
            let yaml = format!(
                "channels:\n  pd:\n    type: pagerDuty\n    routingKey: {{env: K}}\n    rest:\n      apiKey: {{env: A}}\n{bad}"
            );
            let config: NotifyConfig = serde_yaml::from_str(&yaml).expect(&yaml);
            assert_eq!(
                config.validate().expect_err(&yaml).label(),
                "config",
                "{yaml}"
            );
        }
    }

    #[test]
    fn rejects_insecure_or_incomplete_channels() {
        let cases = [
            "channels:\n  a:\n    type: jira\n    url: http://jira.example.com\n    email: e\n    apiToken: {env: T}\n    projectKey: P\n",
            "channels:\n  a:\n    type: email\n    host: smtp.example.com\n    security: none\n    from: a@example.com\n",
            "channels:\n  a:\n    type: email\n    host: 127.0.0.1\n    security: none\n    username: u\n    password: {env: P}\n    from: a@example.com\n",
            "channels:\n  a:\n    type: email\n    host: h\n    from: not an address\n",
            "channels:\n  a:\n    type: slack\n    token: {env: T}\n",
            "channels:\n  a:\n    type: webhook\n    signingKey: {env: K}\n",
            "channels:\n  Bad Name:\n    type: pagerDuty\n    routingKey: {env: K}\n",
            "outbox:\n  queueCapacity: 0\n",
        ];
        for case in cases {
            let config: NotifyConfig = serde_yaml::from_str(case).expect(case);
            assert_eq!(
                config.validate().expect_err(case).label(),
                "config",
                "{case}"
            );
        }
        let loopback = "channels:\n  a:\n    type: jira\n    url: http://127.0.0.1:9000\n    email: e\n    apiToken: {env: T}\n    projectKey: P\n";
        let config: NotifyConfig = serde_yaml::from_str(loopback).expect("parse");
        config.validate().expect("loopback http is allowed");
    }
}
