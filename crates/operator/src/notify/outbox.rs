//! The outbox: one bounded queue and one worker per channel, so a slow or failing channel delays
//! only its own messages. `enqueue` never waits for delivery (a full queue is reported at once);
//! workers retry with jittered exponential backoff, honour `Retry-After`, keep each message's
//! progress across its retries, and report every outcome (health snapshot, metrics, a broadcast
//! of [`DeliveryReport`]s).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::channel::{BatchFailure, Channel, ChannelRegistry, DeliveryProgress, Receipt};
use super::config::ChannelKind;
use super::error::{EnqueueError, NotifyError};
use super::message::Notification;
use super::metrics::NotifyMetrics;
use crate::http::{RetryConfig, RetryPolicy};

/// Delivery reports buffered for slow subscribers before the oldest are dropped.
const REPORT_BUFFER: usize = 1024;

/// How one message (on one channel) ended.
#[derive(Clone, Debug)]
pub enum DeliveryOutcome {
    Delivered(Receipt),
    /// Given up: a permanent refusal, or retries ran out. The error says why.
    Failed(NotifyError),
}

/// The end of one message's delivery on one channel.
#[derive(Clone, Debug)]
pub struct DeliveryReport {
    pub channel: String,
    pub kind: ChannelKind,
    pub idempotency_key: String,
    /// The event type (`lockdownActivated`, …).
    pub event: &'static str,
    /// Attempts made, the first included.
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
}

impl DeliveryReport {
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, DeliveryOutcome::Delivered(_))
    }
}

/// Where a channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    /// The last message was delivered (or none was sent yet).
    Healthy,
    /// The current message failed and is waiting for a retry.
    Retrying,
    /// The last message was given up on.
    Failing,
}

/// A channel's health, as the controller's `NotificationsDegraded` condition reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelHealth {
    pub channel: String,
    pub kind: ChannelKind,
    pub state: ChannelState,
    /// Messages queued or being delivered.
    pub pending: usize,
    pub delivered: u64,
    pub failed: u64,
    /// Messages refused because the queue was full, since the last delivery.
    pub refused_since_delivery: u64,
    pub consecutive_failures: u32,
    /// The latest failure, redacted; kept until the next delivery.
    pub last_error: Option<String>,
    pub last_error_label: Option<&'static str>,
    pub last_delivery: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
}

impl ChannelHealth {
    fn new(channel: &str, kind: ChannelKind) -> Self {
        Self {
            channel: channel.to_owned(),
            kind,
            state: ChannelState::Healthy,
            pending: 0,
            delivered: 0,
            failed: 0,
            refused_since_delivery: 0,
            consecutive_failures: 0,
            last_error: None,
            last_error_label: None,
            last_delivery: None,
            last_failure: None,
        }
    }

    /// Failing, retrying, or refusing messages.
    pub fn is_degraded(&self) -> bool {
        self.state != ChannelState::Healthy || self.refused_since_delivery > 0
    }
}

/// Health of every channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    pub channels: Vec<ChannelHealth>,
}

impl HealthReport {
    pub fn degraded(&self) -> impl Iterator<Item = &ChannelHealth> {
        self.channels.iter().filter(|health| health.is_degraded())
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded().next().is_some()
    }

    /// A one-line summary for a `NotificationsDegraded` condition message, or `None` when all
    /// channels are healthy.
    pub fn condition_message(&self) -> Option<String> {
        let parts: Vec<String> = self
            .degraded()
            .map(|health| {
                let state = match (health.state, health.refused_since_delivery) {
                    (ChannelState::Healthy, refused) => format!("queue full, {refused} refused"),
                    (ChannelState::Retrying, _) => "retrying".to_owned(),
                    (ChannelState::Failing, _) => "failing".to_owned(),
                };
                match &health.last_error {
                    Some(error) => {
                        format!("{} ({}): {state}: {error}", health.channel, health.kind)
                    }
                    None => format!("{} ({}): {state}", health.channel, health.kind),
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

struct Shared {
    health: Mutex<BTreeMap<String, ChannelHealth>>,
    reports: broadcast::Sender<DeliveryReport>,
    metrics: Arc<dyn NotifyMetrics>,
}

impl Shared {
    fn with_health<T>(
        &self,
        channel: &str,
        change: impl FnOnce(&mut ChannelHealth) -> T,
    ) -> Option<T> {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.get_mut(channel).map(change)
    }
}

struct Queue {
    sender: mpsc::Sender<Notification>,
    capacity: usize,
}

/// Asynchronous, retried delivery of notifications to named channels.
pub struct Outbox {
    queues: BTreeMap<String, Queue>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("channels", &self.queues.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Starts one worker per channel of `registry`. Must be called inside a Tokio runtime.
    pub fn start(registry: &ChannelRegistry, metrics: Arc<dyn NotifyMetrics>) -> Self {
        let config = registry.outbox_config();
        let (reports, _) = broadcast::channel(REPORT_BUFFER);
        let shared = Arc::new(Shared {
            health: Mutex::new(
                registry
                    .channels()
                    .map(|channel| {
                        (
                            channel.name().to_owned(),
                            ChannelHealth::new(channel.name(), channel.kind()),
                        )
                    })
                    .collect(),
            ),
            reports,
            metrics,
        });
        let mut queues = BTreeMap::new();
        let mut workers = Vec::new();
        for channel in registry.channels() {
            let (sender, receiver) = mpsc::channel(config.queue_capacity);
            queues.insert(
                channel.name().to_owned(),
                Queue {
                    sender,
                    capacity: config.queue_capacity,
                },
            );
            let worker = Worker {
                channel: Arc::clone(channel),
                receiver,
                shared: Arc::clone(&shared),
                retry: config.retry.clone(),
            };
            workers.push(tokio::spawn(worker.run()));
        }
        Self {
            queues,
            shared,
            workers,
        }
    }

    /// Queues `notification` for `channel` without waiting. A full queue is refused at once
    /// ([`EnqueueError::QueueFull`]), counted, and shows in the channel's health.
    pub fn enqueue(&self, channel: &str, notification: Notification) -> Result<(), EnqueueError> {
        let queue = self.queue(channel)?;
        // Counted before sending: a fast worker may finish the message before `try_send`
        // returns, and its decrement must find the increment already there.
        self.adjust_pending(channel, true);
        let result = queue.sender.try_send(notification);
        if result.is_err() {
            self.adjust_pending(channel, false);
        }
        match result {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(self.refused(channel, queue.capacity)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EnqueueError::Closed),
        }
    }

    /// Like [`Outbox::enqueue`], but waits up to `max_wait` for room: back-pressure for callers
    /// that can afford to slow down (exports, reviews), never for access changes.
    pub async fn enqueue_wait(
        &self,
        channel: &str,
        notification: Notification,
        max_wait: Duration,
    ) -> Result<(), EnqueueError> {
        let queue = self.queue(channel)?;
        self.adjust_pending(channel, true);
        let result = queue.sender.send_timeout(notification, max_wait).await;
        if result.is_err() {
            self.adjust_pending(channel, false);
        }
        match result {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                Err(self.refused(channel, queue.capacity))
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(EnqueueError::Closed),
        }
    }

    /// Queues one notification for several channels; returns the refusals (empty when all
    /// were queued).
    pub fn enqueue_all(&self, channels: &[&str], notification: &Notification) -> Vec<EnqueueError> {
        channels
            .iter()
            .filter_map(|channel| self.enqueue(channel, notification.clone()).err())
            .collect()
    }

    fn queue(&self, channel: &str) -> Result<&Queue, EnqueueError> {
        self.queues.get(channel).ok_or_else(|| {
            self.shared.metrics.rejected(channel, "unknown_channel");
            EnqueueError::UnknownChannel {
                channel: channel.to_owned(),
            }
        })
    }

    fn adjust_pending(&self, channel: &str, increase: bool) {
        let pending = self.shared.with_health(channel, |health| {
            health.pending = if increase {
                health.pending + 1
            } else {
                health.pending.saturating_sub(1)
            };
            health.pending
        });
        if let Some(pending) = pending {
            self.shared.metrics.queue_depth(channel, pending);
        }
    }

    fn refused(&self, channel: &str, capacity: usize) -> EnqueueError {
        let error = EnqueueError::QueueFull {
            channel: channel.to_owned(),
            capacity,
        };
        self.shared.with_health(channel, |health| {
            health.refused_since_delivery += 1;
        });
        self.shared.metrics.rejected(channel, error.label());
        tracing::warn!(
            channel,
            capacity,
            "notification queue full; message refused"
        );
        error
    }

    /// Every channel's health.
    pub fn health(&self) -> HealthReport {
        let health = self
            .shared
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        HealthReport {
            channels: health.values().cloned().collect(),
        }
    }

    /// Receives a report for every message that reaches its end from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryReport> {
        self.shared.reports.subscribe()
    }

    /// Stops accepting messages, lets the workers finish what is queued for up to `grace`, then
    /// stops them. Returns how many messages were left undelivered.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.queues.clear();
        let deadline = tokio::time::Instant::now() + grace;
        for worker in &mut self.workers {
            if tokio::time::timeout_at(deadline, &mut *worker)
                .await
                .is_err()
            {
                worker.abort();
            }
        }
        self.health().channels.iter().map(|h| h.pending).sum()
    }
}

struct Worker {
    channel: Arc<Channel>,
    receiver: mpsc::Receiver<Notification>,
    shared: Arc<Shared>,
    retry: RetryConfig,
}

impl Worker {
    async fn run(mut self) {
        let max_batch = self.channel.max_batch().max(1);
        while let Some(first) = self.receiver.recv().await {
            if max_batch == 1 {
                self.deliver_one(first).await;
            } else {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match self.receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                self.deliver_batch(batch).await;
            }
        }
    }

    fn name(&self) -> &str {
        self.channel.name()
    }

    async fn deliver_one(&self, notification: Notification) {
        let backoff = RetryPolicy::new(&self.retry);
        let started = Instant::now();
        let mut progress = DeliveryProgress::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            let result = self.channel.deliver(&notification, &mut progress).await;
            let latency = attempt_started.elapsed();
            match result {
                Ok(receipt) => {
                    self.shared
                        .metrics
                        .attempt(self.name(), self.channel.kind(), "ok", latency);
                    self.finish(&notification, attempt, DeliveryOutcome::Delivered(receipt));
                    return;
                }
                Err(error) => {
                    self.shared.metrics.attempt(
                        self.name(),
                        self.channel.kind(),
                        error.label(),
                        latency,
                    );
                    let delay = if error.is_retryable() {
                        backoff.next_delay(
                            attempt,
                            started.elapsed(),
                            error.retry_after(),
                            &mut rand::rng(),
                        )
                    } else {
                        None
                    };
                    let Some(delay) = delay else {
                        self.finish(&notification, attempt, DeliveryOutcome::Failed(error));
                        return;
                    };
                    self.retrying(&notification, attempt, &error, delay);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Delivers a batch (Splunk HEC). Messages the service accepted before a rejected one are
    /// done; the rejected one fails; the rest are sent again.
    async fn deliver_batch(&self, batch: Vec<Notification>) {
        let backoff = RetryPolicy::new(&self.retry);
        let started = Instant::now();
        let mut remaining = batch;
        let mut attempt = 0;
        while !remaining.is_empty() {
            attempt += 1;
            let attempt_started = Instant::now();
            let result = self.channel.deliver_batch(&remaining).await;
            let latency = attempt_started.elapsed();
            match result {
                Ok(receipt) => {
                    self.shared
                        .metrics
                        .attempt(self.name(), self.channel.kind(), "ok", latency);
                    let count = remaining.len();
                    for notification in remaining.drain(..) {
                        let receipt = match &receipt {
                            Receipt::Indexed { ack_id, .. } => Receipt::Indexed {
                                events: count,
                                ack_id: *ack_id,
                            },
                            other => other.clone(),
                        };
                        self.finish(&notification, attempt, DeliveryOutcome::Delivered(receipt));
                    }
                }
                Err(BatchFailure {
                    error,
                    delivered,
                    rejected,
                }) => {
                    self.shared.metrics.attempt(
                        self.name(),
                        self.channel.kind(),
                        error.label(),
                        latency,
                    );
                    let delivered = delivered.min(remaining.len());
                    for notification in remaining.drain(..delivered) {
                        let receipt = Receipt::Indexed {
                            events: delivered,
                            ack_id: None,
                        };
                        self.finish(&notification, attempt, DeliveryOutcome::Delivered(receipt));
                    }
                    if rejected.is_some() && !remaining.is_empty() {
                        let refused = remaining.remove(0);
                        self.finish(&refused, attempt, DeliveryOutcome::Failed(error));
                        continue;
                    }
                    let delay = if error.is_retryable() {
                        backoff.next_delay(
                            attempt,
                            started.elapsed(),
                            error.retry_after(),
                            &mut rand::rng(),
                        )
                    } else {
                        None
                    };
                    let Some(delay) = delay else {
                        for notification in remaining.drain(..) {
                            self.finish(
                                &notification,
                                attempt,
                                DeliveryOutcome::Failed(error.clone()),
                            );
                        }
                        return;
                    };
                    if let Some(first) = remaining.first() {
                        self.retrying(first, attempt, &error, delay);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn retrying(
        &self,
        notification: &Notification,
        attempt: u32,
        error: &NotifyError,
        delay: Duration,
    ) {
        tracing::warn!(
            channel = self.name(),
            kind = %self.channel.kind(),
            key = notification.idempotency_key(),
            event = notification.kind(),
            attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "notification delivery failed; will retry"
        );
        self.shared.with_health(self.name(), |health| {
            health.state = ChannelState::Retrying;
            health.consecutive_failures += 1;
            health.last_error = Some(error.to_string());
            health.last_error_label = Some(error.label());
            health.last_failure = Some(Utc::now());
        });
    }

    fn finish(&self, notification: &Notification, attempts: u32, outcome: DeliveryOutcome) {
        let kind = self.channel.kind();
        let pending = self.shared.with_health(self.name(), |health| {
            health.pending = health.pending.saturating_sub(1);
            match &outcome {
                DeliveryOutcome::Delivered(_) => {
                    health.state = ChannelState::Healthy;
                    health.delivered += 1;
                    health.consecutive_failures = 0;
                    health.refused_since_delivery = 0;
                    health.last_error = None;
                    health.last_error_label = None;
                    health.last_delivery = Some(Utc::now());
                }
                DeliveryOutcome::Failed(error) => {
                    health.state = ChannelState::Failing;
                    health.failed += 1;
                    health.consecutive_failures += 1;
                    health.last_error = Some(error.to_string());
                    health.last_error_label = Some(error.label());
                    health.last_failure = Some(Utc::now());
                }
            }
            health.pending
        });
        if let Some(pending) = pending {
            self.shared.metrics.queue_depth(self.name(), pending);
        }
        match &outcome {
            DeliveryOutcome::Delivered(receipt) => {
                self.shared.metrics.delivered(self.name(), kind, 1);
                tracing::info!(
                    channel = self.name(),
                    kind = %kind,
                    key = notification.idempotency_key(),
                    event = notification.kind(),
                    attempts,
                    receipt = ?receipt,
                    "notification delivered"
                );
            }
            DeliveryOutcome::Failed(error) => {
                self.shared
                    .metrics
                    .failed(self.name(), kind, error.label(), 1);
                tracing::error!(
                    channel = self.name(),
                    kind = %kind,
                    key = notification.idempotency_key(),
                    event = notification.kind(),
                    attempts,
                    error = %error,
                    reason = error.label(),
                    "notification delivery failed for good"
                );
            }
        }
        // No subscriber is fine: reports are for whoever listens.
        let _ = self.shared.reports.send(DeliveryReport {
            channel: self.name().to_owned(),
            kind,
            idempotency_key: notification.idempotency_key().to_owned(),
            event: notification.kind(),
            attempts,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_message_names_degraded_channels_only() {
        let mut failing = ChannelHealth::new("pd", ChannelKind::PagerDuty);
        failing.state = ChannelState::Failing;
        failing.last_error = Some("pagerduty events.enqueue: HTTP 400: Invalid event".into());
        let mut full = ChannelHealth::new("slack", ChannelKind::Slack);
        full.refused_since_delivery = 3;
        let report = HealthReport {
            channels: vec![
                failing,
                full,
                ChannelHealth::new("mail", ChannelKind::Email),
            ],
        };
        assert!(report.is_degraded());
        let message = report.condition_message().expect("degraded");
        assert_eq!(
            message,
            "pd (pagerduty): failing: pagerduty events.enqueue: HTTP 400: Invalid event; slack (slack): queue full, 3 refused"
        );
        let healthy = HealthReport {
            channels: vec![ChannelHealth::new("mail", ChannelKind::Email)],
        };
        assert_eq!(healthy.condition_message(), None);
    }
}
