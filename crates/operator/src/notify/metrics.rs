//! Per-channel metrics of the outbox: a small hook trait, and an implementation with
//! `prometheus-client` families registered into the operator's registry.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::config::ChannelKind;

/// Receives what the outbox does, per channel. Called inline by the workers: keep it cheap.
pub trait NotifyMetrics: Send + Sync {
    /// One delivery attempt ended; `outcome` is `ok` or an error label.
    fn attempt(&self, channel: &str, kind: ChannelKind, outcome: &str, latency: Duration);
    /// Messages delivered.
    fn delivered(&self, channel: &str, kind: ChannelKind, messages: u64);
    /// Messages given up on; `reason` is an error label.
    fn failed(&self, channel: &str, kind: ChannelKind, reason: &str, messages: u64);
    /// A message `enqueue` refused; `reason` is an [`super::EnqueueError`] label.
    fn rejected(&self, channel: &str, reason: &str);
    /// Messages waiting in the channel's queue.
    fn queue_depth(&self, channel: &str, depth: usize);
}

/// Metrics that go nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopMetrics;

impl NotifyMetrics for NoopMetrics {
    fn attempt(&self, _: &str, _: ChannelKind, _: &str, _: Duration) {}
    fn delivered(&self, _: &str, _: ChannelKind, _: u64) {}
    fn failed(&self, _: &str, _: ChannelKind, _: &str, _: u64) {}
    fn rejected(&self, _: &str, _: &str) {}
    fn queue_depth(&self, _: &str, _: usize) {}
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    channel: String,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    channel: String,
    reason: String,
}

/// Prometheus families:
/// `notify_attempts_total{channel,kind,outcome}`, `notify_messages_total{channel,kind,outcome}`
/// (outcome `delivered` or the failure's label), `notify_enqueue_rejected_total{channel,reason}`,
/// `notify_queue_depth{channel}` and `notify_attempt_duration_seconds{channel}`.
#[derive(Clone, Debug)]
pub struct PrometheusMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    messages: Family<OutcomeLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    queue_depth: Family<ChannelLabels, Gauge>,
    latency: Family<ChannelLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl PrometheusMetrics {
    /// Creates the families and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            attempts: Family::default(),
            messages: Family::default(),
            rejected: Family::default(),
            queue_depth: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "notify_attempts",
            "Notification delivery attempts by channel and outcome",
            metrics.attempts.clone(),
        );
        registry.register(
            "notify_messages",
            "Notifications delivered or given up on, by channel and outcome",
            metrics.messages.clone(),
        );
        registry.register(
            "notify_enqueue_rejected",
            "Notifications the outbox refused to queue",
            metrics.rejected.clone(),
        );
        registry.register(
            "notify_queue_depth",
            "Notifications waiting per channel",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "notify_attempt_duration_seconds",
            "Duration of notification delivery attempts",
            metrics.latency.clone(),
        );
        metrics
    }

    fn outcome(channel: &str, kind: ChannelKind, outcome: &str) -> OutcomeLabels {
        OutcomeLabels {
            channel: channel.to_owned(),
            kind: kind.label().to_owned(),
            outcome: outcome.to_owned(),
        }
    }
}

impl NotifyMetrics for PrometheusMetrics {
    fn attempt(&self, channel: &str, kind: ChannelKind, outcome: &str, latency: Duration) {
        self.attempts
            .get_or_create(&Self::outcome(channel, kind, outcome))
            .inc();
        self.latency
            .get_or_create(&ChannelLabels {
                channel: channel.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    fn delivered(&self, channel: &str, kind: ChannelKind, messages: u64) {
        self.messages
            .get_or_create(&Self::outcome(channel, kind, "delivered"))
            .inc_by(messages);
    }

    fn failed(&self, channel: &str, kind: ChannelKind, reason: &str, messages: u64) {
        self.messages
            .get_or_create(&Self::outcome(channel, kind, reason))
            .inc_by(messages);
    }

    fn rejected(&self, channel: &str, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                channel: channel.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn queue_depth(&self, channel: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&ChannelLabels {
                channel: channel.to_owned(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}
