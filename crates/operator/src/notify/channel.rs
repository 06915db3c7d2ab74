//! A configured channel: the client for its service plus what it does with a notification
//! (post, page, index, open/update/close a ticket), and the registry of channels by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::config::{
    ChannelConfig, ChannelKind, NotifyConfig, OutboxConfig, SplunkHecConfig, validate_channel_refs,
};
use super::desk::{TicketDesk, TicketSystem};
use super::email::EmailClient;
use super::error::NotifyError;
use super::http::build_client;
use super::jira::JiraClient;
use super::message::{Notification, Severity, TicketAction};
use super::pagerduty::{AlertEvent, AlertPayload, EventAction, PagerDutyClient, PagerDutySeverity};
use super::render;
use super::servicenow::ServiceNowClient;
use super::slack::{SlackApiClient, SlackWebhookClient};
use super::splunk::HecClient;
use super::webhook::WebhookClient;
use crate::secret::{KubeSecretSource, Secret, SecretRef};

/// What a successful delivery produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Slack: messages posted (the channel post and any direct messages).
    Posted { messages: usize },
    /// Email: the `Message-ID` sent.
    Sent { message_id: String },
    /// A ticket was opened (`created`) or found, then updated as `action` asks.
    Ticket {
        key: String,
        created: bool,
        action: TicketAction,
    },
    /// PagerDuty accepted the event(s) for this alert.
    Paged { dedup_key: String },
    /// Splunk HEC indexed this many events.
    Indexed { events: usize, ack_id: Option<u64> },
    /// The webhook answered with this 2xx status.
    Accepted { status: u16 },
}

/// Steps of one message already done, kept across its retries so a retry resumes instead of
/// repeating them (a ticket found or opened, a Slack post made, a PagerDuty trigger sent).
#[derive(Clone, Debug, Default)]
pub struct DeliveryProgress {
    done: BTreeMap<String, String>,
}

impl DeliveryProgress {
    pub(super) fn get(&self, step: &str) -> Option<&str> {
        self.done.get(step).map(String::as_str)
    }

    pub(super) fn record(&mut self, step: impl Into<String>, value: impl Into<String>) {
        self.done.insert(step.into(), value.into());
    }
}

/// A batch delivery that failed: the first `delivered` messages got through, the message at
/// `rejected` (if any) was refused for good, the rest may be retried.
#[derive(Clone, Debug)]
pub(crate) struct BatchFailure {
    pub error: NotifyError,
    pub delivered: usize,
    pub rejected: Option<usize>,
}

/// One configured channel.
#[derive(Debug)]
pub struct Channel {
    name: String,
    kind: ChannelKind,
    sender: Sender,
}

#[derive(Debug)]
enum Sender {
    SlackWebhook(SlackWebhookClient),
    Slack {
        client: SlackApiClient,
        channel: Option<String>,
        direct_messages: bool,
    },
    Email(Box<EmailClient>),
    Tickets(TicketDesk),
    PagerDuty {
        client: PagerDutyClient,
        source: String,
        component: Option<String>,
        group: Option<String>,
    },
    SplunkHec {
        client: HecClient,
        config: SplunkHecConfig,
    },
    Webhook(WebhookClient),
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Messages one request may carry (more than one only for Splunk HEC).
    pub fn max_batch(&self) -> usize {
        match &self.sender {
            Sender::SplunkHec { config, .. } => config.max_batch,
            _ => 1,
        }
    }

    /// Builds a channel from its configuration, reading its credentials.
    pub async fn from_config(
        name: &str,
        config: &ChannelConfig,
        outbox: &OutboxConfig,
        http: reqwest::Client,
        kube: &dyn KubeSecretSource,
    ) -> Result<Self, NotifyError> {
        let sender = match config {
            ChannelConfig::SlackWebhook(hook) => {
                let url = resolve_secret(name, &hook.url, kube).await?;
                Sender::SlackWebhook(SlackWebhookClient::new(http, name, url)?)
            }
            ChannelConfig::Slack(slack) => {
                let token = resolve_secret(name, &slack.token, kube).await?;
                Sender::Slack {
                    client: SlackApiClient::new(http, name, &slack.api_url, &token)?,
                    channel: slack.channel.clone(),
                    direct_messages: slack.direct_messages,
                }
            }
            ChannelConfig::Email(email) => {
                let password = match &email.password {
                    Some(reference) => Some(resolve_secret(name, reference, kube).await?),
                    None => None,
                };
                let timeout = Duration::from_millis(outbox.request_timeout_ms);
                Sender::Email(Box::new(
                    EmailClient::new(name, email, password, timeout).await?,
                ))
            }
            ChannelConfig::Jira(jira) => {
                let token = resolve_secret(name, &jira.api_token, kube).await?;
                let client = JiraClient::new(
                    http,
                    name,
                    ChannelKind::Jira,
                    &jira.url,
                    &jira.email,
                    &token,
                )?;
                Sender::Tickets(TicketDesk::new(TicketSystem::Jira {
                    client,
                    project_key: jira.project_key.clone(),
                    issue_type: jira.issue_type.clone(),
                    labels: jira.labels.clone(),
                    resolve_transition: jira.resolve_transition.clone(),
                }))
            }
            ChannelConfig::JiraServiceManagement(jsm) => {
                let token = resolve_secret(name, &jsm.api_token, kube).await?;
                let client = JiraClient::new(
                    http,
                    name,
                    ChannelKind::JiraServiceManagement,
                    &jsm.url,
                    &jsm.email,
                    &token,
                )?;
                Sender::Tickets(TicketDesk::new(TicketSystem::ServiceDesk {
                    client,
                    service_desk_id: jsm.service_desk_id.clone(),
                    request_type_id: jsm.request_type_id.clone(),
                    raise_on_behalf_of: jsm.raise_on_behalf_of.clone(),
                    resolve_transition: jsm.resolve_transition.clone(),
                }))
            }
            ChannelConfig::ServiceNow(snow) => {
                let password = resolve_secret(name, &snow.password, kube).await?;
                let client = ServiceNowClient::new(
                    http,
                    name,
                    &snow.instance_url,
                    &snow.username,
                    &password,
                )?;
                Sender::Tickets(TicketDesk::new(TicketSystem::ServiceNow {
                    client,
                    table: snow.table.clone(),
                    fields: snow.fields.clone(),
                    close_fields: snow.close_fields.clone(),
                }))
            }
            ChannelConfig::PagerDuty(pd) => {
                let key = resolve_secret(name, &pd.routing_key, kube).await?;
                Sender::PagerDuty {
                    client: PagerDutyClient::new(http, name, &pd.events_url, key)?,
                    source: pd.source.clone(),
                    component: pd.component.clone(),
                    group: pd.group.clone(),
                }
            }
            ChannelConfig::SplunkHec(hec) => {
                let token = resolve_secret(name, &hec.token, kube).await?;
                Sender::SplunkHec {
                    client: HecClient::new(http, name, &hec.url, &token, hec.channel.clone())?,
                    config: hec.clone(),
                }
            }
            ChannelConfig::Webhook(hook) => {
                let url = match (&hook.url, &hook.url_from) {
                    (_, Some(reference)) => resolve_secret(name, reference, kube).await?,
                    (Some(url), None) => Secret::new(url)?,
                    (None, None) => {
                        return Err(NotifyError::Config(format!(
                            "channel {name:?}: set url or urlFrom"
                        )));
                    }
                };
                let key = resolve_secret(name, &hook.signing_key, kube).await?;
                Sender::Webhook(WebhookClient::new(http, name, url, key)?)
            }
        };
        Ok(Self {
            name: name.to_owned(),
            kind: config.kind(),
            sender,
        })
    }

    /// Delivers one message. `progress` must be the same value across retries of the message.
    pub async fn deliver(
        &self,
        notification: &Notification,
        progress: &mut DeliveryProgress,
    ) -> Result<Receipt, NotifyError> {
        match &self.sender {
            Sender::SlackWebhook(client) => {
                client.send(&render::slack_message(notification)).await?;
                Ok(Receipt::Posted { messages: 1 })
            }
            Sender::Slack {
                client,
                channel,
                direct_messages,
            } => {
                let message = render::slack_message(notification);
                let mut posted = 0;
                if let Some(channel) = channel {
                    let step = format!("post:{channel}");
                    if progress.get(&step).is_none() {
                        let done = client.post_message(channel, &message).await?;
                        progress.record(step, done.ts);
                    }
                    posted += 1;
                }
                if *direct_messages {
                    for email in &notification.recipients {
                        let step = format!("dm:{email}");
                        if progress.get(&step).is_none() {
                            let done = client.direct_message(email, &message).await?;
                            progress.record(step, done.ts);
                        }
                        posted += 1;
                    }
                }
                Ok(Receipt::Posted { messages: posted })
            }
            Sender::Email(client) => {
                let message_id = client
                    .send(
                        &render::email(notification),
                        &notification.recipients,
                        notification.idempotency_key(),
                    )
                    .await?;
                Ok(Receipt::Sent { message_id })
            }
            Sender::Tickets(desk) => desk.deliver(notification, progress).await,
            Sender::PagerDuty {
                client,
                source,
                component,
                group,
            } => {
                let dedup_key = notification.thread().token();
                let links: Vec<(String, String)> = notification
                    .links
                    .iter()
                    .map(|link| (link.url.clone(), link.text.clone()))
                    .collect();
                let trigger = || AlertEvent {
                    action: EventAction::Trigger,
                    dedup_key: dedup_key.clone(),
                    payload: Some(AlertPayload {
                        summary: render::pagerduty_summary(notification),
                        source: source.clone(),
                        severity: match notification.severity() {
                            Severity::Critical => PagerDutySeverity::Critical,
                            Severity::Warning => PagerDutySeverity::Warning,
                            Severity::Info => PagerDutySeverity::Info,
                        },
                        timestamp: notification.occurred_at.to_rfc3339(),
                        component: component.clone(),
                        group: group.clone(),
                        class: notification.kind().to_owned(),
                        custom_details: render::pagerduty_details(notification),
                    }),
                    links: links.clone(),
                };
                let resolve = AlertEvent {
                    action: EventAction::Resolve,
                    dedup_key: dedup_key.clone(),
                    payload: None,
                    links: Vec::new(),
                };
                let steps: Vec<AlertEvent> = match notification.thread().action {
                    TicketAction::Open | TicketAction::Update => vec![trigger()],
                    TicketAction::Resolve => vec![resolve],
                    TicketAction::Record => vec![trigger(), resolve],
                };
                for event in steps {
                    let step = format!("pd:{:?}", event.action);
                    if progress.get(&step).is_none() {
                        let key = client.send(&event).await?;
                        progress.record(step, key);
                    }
                }
                Ok(Receipt::Paged { dedup_key })
            }
            Sender::SplunkHec { client, config } => {
                send_hec(client, config, std::slice::from_ref(notification))
                    .await
                    .map_err(|failure| failure.error)
            }
            Sender::Webhook(client) => {
                let status = client
                    .send(
                        &render::event_document(notification),
                        notification.idempotency_key(),
                        notification.kind(),
                    )
                    .await?;
                Ok(Receipt::Accepted { status })
            }
        }
    }

    /// Delivers several messages in one request (Splunk HEC); other channels take one at a time.
    pub(crate) async fn deliver_batch(
        &self,
        batch: &[Notification],
    ) -> Result<Receipt, BatchFailure> {
        let Sender::SplunkHec { client, config } = &self.sender else {
            let mut last = None;
            for (delivered, notification) in batch.iter().enumerate() {
                let mut progress = DeliveryProgress::default();
                match self.deliver(notification, &mut progress).await {
                    Ok(receipt) => last = Some(receipt),
                    Err(error) => {
                        return Err(BatchFailure {
                            error,
                            delivered,
                            rejected: None,
                        });
                    }
                }
            }
            return Ok(last.unwrap_or(Receipt::Indexed {
                events: 0,
                ack_id: None,
            }));
        };
        send_hec(client, config, batch).await
    }
}

/// Reads one of channel `channel`'s credentials.
pub(super) async fn resolve_secret(
    channel: &str,
    reference: &SecretRef,
    kube: &dyn KubeSecretSource,
) -> Result<Secret, NotifyError> {
    reference
        .resolve(kube)
        .await
        .map_err(|error| NotifyError::Secret {
            channel: channel.to_owned(),
            reason: error.to_string(),
        })
}

async fn send_hec(
    client: &HecClient,
    config: &SplunkHecConfig,
    batch: &[Notification],
) -> Result<Receipt, BatchFailure> {
    let envelopes: Vec<Value> = batch
        .iter()
        .map(|notification| hec_envelope(notification, config))
        .collect();
    match client.send(&envelopes).await {
        Ok(ack) => Ok(Receipt::Indexed {
            events: batch.len(),
            ack_id: ack.ack_id,
        }),
        Err(failure) => Err(BatchFailure {
            error: failure.error,
            delivered: failure.invalid_event.unwrap_or(0),
            rejected: failure.invalid_event,
        }),
    }
}

/// One HEC envelope; the message's idempotency key is the event `id` and an indexed field, so
/// searches can drop the duplicates an at-least-once retry may index.
fn hec_envelope(notification: &Notification, config: &SplunkHecConfig) -> Value {
    let micros = notification.occurred_at.timestamp_micros();
    // Fractional epoch seconds with microsecond precision.
    let time = micros.div_euclid(1_000_000) as f64 + micros.rem_euclid(1_000_000) as f64 / 1e6;
    let mut envelope = json!({
        "time": time,
        "source": config.source,
        "sourcetype": config.sourcetype,
        "event": render::event_document(notification),
        "fields": {
            "idempotency_key": notification.idempotency_key(),
            "kind": notification.kind(),
            "severity": notification.severity().label(),
        },
    });
    if let Some(index) = &config.index {
        envelope["index"] = json!(index);
    }
    if let Some(host) = &config.host {
        envelope["host"] = json!(host);
    }
    envelope
}

/// Every configured channel, by name, with credentials read.
#[derive(Debug, Clone)]
pub struct ChannelRegistry {
    channels: BTreeMap<String, Arc<Channel>>,
    outbox: OutboxConfig,
}

impl ChannelRegistry {
    /// Validates `config`, reads every channel's credentials and builds the clients (sharing
    /// one HTTP connection pool).
    pub async fn from_config(
        config: &NotifyConfig,
        kube: &dyn KubeSecretSource,
    ) -> Result<Self, NotifyError> {
        config.validate()?;
        let http = build_client(&config.outbox)?;
        let mut channels = BTreeMap::new();
        for (name, channel) in &config.channels {
            let built =
                Channel::from_config(name, channel, &config.outbox, http.clone(), kube).await?;
            channels.insert(name.clone(), Arc::new(built));
        }
        Ok(Self {
            channels,
            outbox: config.outbox.clone(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Channel>> {
        self.channels.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    pub fn channels(&self) -> impl Iterator<Item = &Arc<Channel>> {
        self.channels.values()
    }

    pub fn outbox_config(&self) -> &OutboxConfig {
        &self.outbox
    }

    /// Fails with [`NotifyError::UnknownChannel`] naming every reference not configured.
    pub fn validate_channel_refs(&self, refs: &[&str]) -> Result<(), NotifyError> {
        validate_channel_refs(self.names(), refs)
    }
}
