//! The demo's notifications: recording simulators of Slack, Jira and PagerDuty, their
//! credentials as an in-memory Secret, and the outbox the story queues on.

use super::*;

/// Recording simulators of Slack, Jira and PagerDuty, set up with the credentials, channel and
/// project the demo's notification channels use.
#[derive(Debug)]
pub struct NotificationSims {
    slack: SlackSim,
    jira: JiraSim,
    pagerduty: PagerDutySim,
}

impl NotificationSims {
    pub async fn start() -> Result<Self, DemoError> {
        let slack = SlackSim::start(SlackSimConfig {
            bot_token: credentials::SLACK_TOKEN.to_owned(),
            channels: vec![channels::SLACK_CONVERSATION.to_owned()],
            ..SlackSimConfig::default()
        })
        .await
        .map_err(DemoError::NotifySim)?;
        let jira = JiraSim::start(JiraSimConfig {
            email: credentials::JIRA_EMAIL.to_owned(),
            api_token: credentials::JIRA_TOKEN.to_owned(),
            projects: vec![channels::JIRA_PROJECT.to_owned()],
            service_desks: Vec::new(),
            ..JiraSimConfig::default()
        })
        .await
        .map_err(DemoError::NotifySim)?;
        let pagerduty = PagerDutySim::start(PagerDutySimConfig {
            routing_keys: vec![credentials::PAGERDUTY_ROUTING_KEY.to_owned()],
        })
        .await
        .map_err(DemoError::NotifySim)?;
        Ok(Self {
            slack,
            jira,
            pagerduty,
        })
    }

    pub fn slack(&self) -> &SlackSim {
        &self.slack
    }

    pub fn jira(&self) -> &JiraSim {
        &self.jira
    }

    pub fn pagerduty(&self) -> &PagerDutySim {
        &self.pagerduty
    }

    /// The operator config's `notify` section for the three channels.
    pub(super) fn config(&self) -> NotifyConfig {
        let secret = |key: &str| {
            SecretRef::SecretKeyRef(SecretKeySelector {
                name: credentials::SECRET.to_owned(),
                key: key.to_owned(),
            })
        };
        let channels = BTreeMap::from([
            (
                channels::SLACK.to_owned(),
                ChannelConfig::Slack(SlackApiConfig {
                    api_url: self.slack.api_url(),
                    token: secret("slack-token"),
                    channel: Some(channels::SLACK_CONVERSATION.to_owned()),
                    direct_messages: false,
                }),
            ),
            (
                channels::JIRA.to_owned(),
                ChannelConfig::Jira(JiraConfig {
                    url: self.jira.site_url(),
                    email: credentials::JIRA_EMAIL.to_owned(),
                    api_token: secret("jira-api-token"),
                    project_key: channels::JIRA_PROJECT.to_owned(),
                    issue_type: "Task".to_owned(),
                    labels: Vec::new(),
                    resolve_transition: None,
                    decisions: None,
                }),
            ),
            (
                channels::PAGERDUTY.to_owned(),
                ChannelConfig::PagerDuty(PagerDutyConfig {
                    events_url: self.pagerduty.events_url(),
                    routing_key: secret("pagerduty-routing-key"),
                    source: "opal-operator".to_owned(),
                    component: Some("access".to_owned()),
                    group: None,
                    rest: None,
                }),
            ),
        ]);
        NotifyConfig {
            channels,
            // Quick retries keep the story short; the simulators answer in microseconds.
            outbox: OutboxConfig {
                queue_capacity: 100,
                request_timeout_ms: 5_000,
                connect_timeout_ms: 1_000,
                retry: RetryConfig {
                    max_attempts: 5,
                    initial_backoff_ms: 50,
                    max_backoff_ms: 500,
                    max_total_delay_ms: 5_000,
                },
            },
        }
    }
}

/// The channels' credentials, served as keys of one in-memory Secret.
pub(super) struct DemoSecrets;

impl KubeSecretSource for DemoSecrets {
    fn read<'a>(&'a self, name: &'a str, key: &'a str) -> BoxFuture<'a, Result<String, String>> {
        let value = match (name, key) {
            (credentials::SECRET, "slack-token") => Some(credentials::SLACK_TOKEN),
            (credentials::SECRET, "jira-api-token") => Some(credentials::JIRA_TOKEN),
            (credentials::SECRET, "pagerduty-routing-key") => {
                Some(credentials::PAGERDUTY_ROUTING_KEY)
            }
            _ => None,
        };
        Box::pin(async move {
            value
                .map(str::to_owned)
                .ok_or_else(|| format!("Secret {name} has no key {key}"))
        })
    }
}

/// A message handed to the outbox, remembered to narrate its delivery.
pub(super) struct Queued {
    pub(super) step: Step,
    pub(super) title: String,
}

/// The outbox and what was queued on it.
pub(super) struct Notifier {
    pub(super) outbox: Outbox,
    pub(super) reports: broadcast::Receiver<DeliveryReport>,
    /// By idempotency key (one message may go to several channels under one key).
    pub(super) queued: BTreeMap<String, Queued>,
    pub(super) summary: NotificationSummary,
}

impl Notifier {
    pub(super) async fn start(sims: &NotificationSims) -> Result<Self, DemoError> {
        let registry = ChannelRegistry::from_config(&sims.config(), &DemoSecrets)
            .await
            .map_err(DemoError::NotifyChannels)?;
        // The first ticket is created but its answer is lost, as after a timeout.
        sims.jira.inject(
            Fault::status(503)
                .on("POST", "/rest/api/3/issue")
                .after_effect(),
        );
        let outbox = Outbox::start(&registry, std::sync::Arc::new(NoopMetrics));
        let reports = outbox.subscribe();
        Ok(Self {
            outbox,
            reports,
            queued: BTreeMap::new(),
            summary: NotificationSummary::default(),
        })
    }

    /// Queues `notification` for each of `channels` without waiting; returns the channels that
    /// took it. Refusals are recorded, never raised.
    pub(super) fn send(
        &mut self,
        step: Step,
        channels: &[&str],
        notification: Notification,
    ) -> Vec<String> {
        let mut accepted = Vec::new();
        for channel in channels {
            match self.outbox.enqueue(channel, notification.clone()) {
                Ok(()) => {
                    self.summary.queued += 1;
                    accepted.push((*channel).to_owned());
                }
                Err(error) => self.summary.refused.push(error.to_string()),
            }
        }
        self.queued.insert(
            notification.idempotency_key().to_owned(),
            Queued {
                step,
                title: notification.title(),
            },
        );
        accepted
    }

    /// Lets the outbox deliver what is queued (for up to `grace`), then tallies every report.
    pub(super) async fn finish(self, grace: Duration) -> NotificationSummary {
        let Self {
            outbox,
            mut reports,
            queued,
            mut summary,
        } = self;
        // What shutdown reports as pending can be off when a message is delivered before
        // its enqueue is counted, so the undelivered are the accepted ones without a report.
        outbox.shutdown(grace).await;
        loop {
            let report = match reports.try_recv() {
                Ok(report) => report,
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let Some(message) = queued.get(&report.idempotency_key) else {
                continue;
            };
            match report.outcome {
                DeliveryOutcome::Delivered(receipt) => {
                    summary.delivered.push(DeliveredNotification {
                        step: message.step,
                        channel: report.channel,
                        kind: report.kind,
                        event: report.event,
                        title: message.title.clone(),
                        attempts: report.attempts,
                        receipt,
                    });
                }
                DeliveryOutcome::Failed(error) => summary
                    .failed
                    .push(format!("{} {}: {error}", report.channel, report.event)),
            }
        }
        summary.delivered.sort_by_key(|note| (note.step, note.kind));
        summary.undelivered = summary
            .queued
            .saturating_sub(summary.delivered.len() + summary.failed.len());
        summary
    }
}
