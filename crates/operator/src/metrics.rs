//! The operator's Prometheus metrics: one `prometheus-client` registry (prefix `opal_operator`)
//! holding the reconcile loop's, the executor's, the Opal client's, the notification outbox's
//! and the webhook server's families, encoded as OpenMetrics text for `GET /metrics`.
//!
//! Every label is low-cardinality by construction: kinds, actions, outcomes, error labels,
//! operation names and status codes — never user, group or object names.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::notify::{NotifyMetrics, PrometheusMetrics};
use crate::opal::{CallAttempt, CallObserver};

/// Prefix of every series name.
pub const METRICS_PREFIX: &str = "opal_operator";

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileResultLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileErrorLabels {
    kind: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    hook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestDecisionLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpalCallLabels {
    operation: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpalOperationLabels {
    operation: &'static str,
}

type HistogramFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

/// Reconciles take milliseconds when nothing changed and up to a minute or so on a large org.
fn reconcile_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Revocations are measured from the trigger (webhook, poll, lockdown) to the last revoke call:
/// from 50 ms up to past 10 minutes.
fn time_to_revoke_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// One Opal round trip: a few ms against the simulator, seconds when Opal is slow.
fn opal_call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Counts every HTTP attempt of the Opal client.
#[derive(Debug)]
struct OpalCallMetrics {
    calls: Family<OpalCallLabels, Counter>,
    durations: HistogramFamily<OpalOperationLabels>,
}

impl CallObserver for OpalCallMetrics {
    fn on_attempt(&self, attempt: &CallAttempt) {
        self.calls
            .get_or_create(&OpalCallLabels {
                operation: attempt.operation,
                status: attempt.outcome.label(),
            })
            .inc();
        self.durations
            .get_or_create(&OpalOperationLabels {
                operation: attempt.operation,
            })
            .observe(attempt.latency.as_secs_f64());
    }
}

/// Every metric the operator exports. Share it as `Arc<Metrics>`; recording takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileResultLabels, Counter>,
    reconcile_durations: HistogramFamily<KindLabels>,
    reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    drift_operations: Family<DriftLabels, Gauge>,
    opal_operations: Family<OperationLabels, Counter>,
    time_to_revoke: HistogramFamily<TriggerLabels>,
    breaker_tripped: Gauge,
    leader: Gauge,
    webhook_requests: Family<WebhookLabels, Counter>,
    request_decisions: Family<RequestDecisionLabels, Counter>,
    request_window_grants: Family<OutcomeLabels, Counter>,
    request_ledger_removed: Counter,
    request_decision_latency: Histogram,
    opal_calls: Arc<OpalCallMetrics>,
    notify: Arc<PrometheusMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every family and registers it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        let reconciles = Family::<ReconcileResultLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles finished, by kind and result (success or error)",
            reconciles.clone(),
        );
        let reconcile_durations: HistogramFamily<KindLabels> =
            Family::new_with_constructor(reconcile_duration_histogram);
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by kind",
            reconcile_durations.clone(),
        );
        let reconcile_errors = Family::<ReconcileErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors, by kind and error label",
            reconcile_errors.clone(),
        );
        let drift_operations = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "drift_operations",
            "Operations the latest plan calls for, by action (grant or revoke)",
            drift_operations.clone(),
        );
        let opal_operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "opal_operations",
            "Planned Opal operations by action and outcome (applied, already_done, failed, withheld)",
            opal_operations.clone(),
        );
        let time_to_revoke: HistogramFamily<TriggerLabels> =
            Family::new_with_constructor(time_to_revoke_histogram);
        registry.register(
            "time_to_revoke_seconds",
            "Time from a trigger (webhook, poll, lockdown) to the last revoke call it caused",
            time_to_revoke.clone(),
        );
        let breaker_tripped = Gauge::default();
        registry.register(
            "breaker_tripped",
            "1 while the revocation circuit breaker holds revocations back",
            breaker_tripped.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Inbound webhook requests, by hook and outcome",
            webhook_requests.clone(),
        );
        let request_decisions = Family::<RequestDecisionLabels, Counter>::default();
        registry.register(
            "request_decisions",
            "Access requests decided by rule, by action (AutoApprove, Deny) and outcome (Applied, DecidedElsewhere)",
            request_decisions.clone(),
        );
        let request_window_grants = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "request_window_grants",
            "Grants of operator-approved requests acted on after approval, by outcome (Shortened to the rule's grantAtMost, Revoked after outliving the window, Failed)",
            request_window_grants.clone(),
        );
        let request_ledger_removed = Counter::default();
        registry.register(
            "request_ledger_entries_removed",
            "Ledger entries of decided requests removed after requests.ledgerRetention",
            request_ledger_removed.clone(),
        );
        let request_decision_latency = time_to_revoke_histogram();
        registry.register(
            "request_decision_latency_seconds",
            "Time from an access request's creation in Opal to the operator's decision applied",
            request_decision_latency.clone(),
        );
        let opal_calls = Arc::new(OpalCallMetrics {
            calls: Family::default(),
            durations: Family::new_with_constructor(opal_call_histogram),
        });
        registry.register(
            "opal_calls",
            "HTTP attempts to Opal, by operation and status (code or transport error)",
            opal_calls.calls.clone(),
        );
        registry.register(
            "opal_call_duration_seconds",
            "Duration of HTTP attempts to Opal, by operation",
            opal_calls.durations.clone(),
        );
        let notify = Arc::new(PrometheusMetrics::register(&mut registry));
        Self {
            registry,
            reconciles,
            reconcile_durations,
            reconcile_errors,
            drift_operations,
            opal_operations,
            time_to_revoke,
            breaker_tripped,
            leader,
            webhook_requests,
            request_decisions,
            request_window_grants,
            request_ledger_removed,
            request_decision_latency,
            opal_calls,
            notify,
        }
    }

    /// Every series as OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and the encoder reports nothing else.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .unwrap_or_else(|_| unreachable!("formatting into a String never fails"));
        text
    }

    /// One reconcile of `kind` (`RoleMapping`, `AccessPolicy`, …) ended.
    pub fn reconcile_finished(&self, kind: &str, success: bool, duration: Duration) {
        self.reconciles
            .get_or_create(&ReconcileResultLabels {
                kind: kind.to_owned(),
                result: if success { "success" } else { "error" }.to_owned(),
            })
            .inc();
        self.reconcile_durations
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .observe(duration.as_secs_f64());
    }

    /// A reconcile of `kind` failed with the error whose `label()` is `error`.
    pub fn reconcile_error(&self, kind: &str, error: &str) {
        self.reconcile_errors
            .get_or_create(&ReconcileErrorLabels {
                kind: kind.to_owned(),
                error: error.to_owned(),
            })
            .inc();
    }

    /// Operations the latest plan calls for.
    pub fn set_drift(&self, to_grant: usize, to_revoke: usize) {
        for (action, count) in [("grant", to_grant), ("revoke", to_revoke)] {
            self.drift_operations
                .get_or_create(&DriftLabels { action })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// `count` planned operations of `action` (grant, revoke, …) ended as `outcome`
    /// (`applied`, `already_done`, `failed`, `withheld`).
    pub fn operations_applied(&self, action: &str, outcome: &str, count: u64) {
        self.opal_operations
            .get_or_create(&OperationLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc_by(count);
    }

    /// Seconds from a `trigger` (`webhook`, `poll`, `lockdown`) to the last revoke it caused.
    pub fn observe_time_to_revoke(&self, trigger: &str, seconds: f64) {
        self.time_to_revoke
            .get_or_create(&TriggerLabels {
                trigger: trigger.to_owned(),
            })
            .observe(seconds);
    }

    /// Whether the revocation circuit breaker holds revocations back.
    pub fn set_breaker_tripped(&self, tripped: bool) {
        self.breaker_tripped.set(i64::from(tripped));
    }

    /// Whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// One inbound request to `hook` ended as `outcome`.
    pub fn webhook_request(&self, hook: &str, outcome: &str) {
        self.webhook_requests
            .get_or_create(&WebhookLabels {
                hook: hook.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// One access request settled by a rule.
    pub fn request_decision(&self, action: &str, outcome: &str) {
        self.request_decisions
            .get_or_create(&RequestDecisionLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// One grant of an approved request cut, removed after its window, or failed to follow.
    pub fn request_window(&self, outcome: &str) {
        self.request_window_grants
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Ledger entries removed after their retention.
    pub fn request_ledger_removed(&self, count: u64) {
        self.request_ledger_removed.inc_by(count);
    }

    /// Creation in Opal to the decision applied.
    pub fn request_decision_latency(&self, latency: std::time::Duration) {
        self.request_decision_latency.observe(latency.as_secs_f64());
    }

    /// The observer to give the Opal client (`Client::builder(..).observer(..)`).
    pub fn opal_observer(&self) -> Arc<dyn CallObserver> {
        self.opal_calls.clone()
    }

    /// The metrics to give the notification outbox (`Outbox::start(.., metrics)`).
    pub fn notify_metrics(&self) -> Arc<dyn NotifyMetrics> {
        self.notify.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::http::TransportErrorKind;
    use crate::notify::ChannelKind;
    use crate::opal::{AttemptOutcome, HttpMethod};

    use super::*;

    fn lines_of(metrics: &Metrics) -> Vec<String> {
        metrics.encode().lines().map(str::to_owned).collect()
    }

    fn has_line(lines: &[String], expected: &str) -> bool {
        lines.iter().any(|line| line == expected)
    }

    #[test]
    fn an_unused_registry_encodes_its_gauges_and_eof() {
        let metrics = Metrics::new();
        let lines = lines_of(&metrics);
        assert_eq!(lines.last().map(String::as_str), Some("# EOF"));
        for expected in [
            "# TYPE opal_operator_breaker_tripped gauge",
            "opal_operator_breaker_tripped 0",
            "# TYPE opal_operator_leader gauge",
            "opal_operator_leader 0",
        ] {
            assert!(
                has_line(&lines, expected),
                "missing {expected:?} in {lines:#?}"
            );
        }
    }

    #[test]
    fn reconciles_count_by_kind_and_result_and_record_durations() {
        let metrics = Metrics::new();
        metrics.reconcile_finished("RoleMapping", true, Duration::from_millis(30));
        metrics.reconcile_finished("RoleMapping", true, Duration::from_millis(50));
        metrics.reconcile_finished("RoleMapping", false, Duration::from_millis(20));
        metrics.reconcile_error("RoleMapping", "opal_api");
        let lines = lines_of(&metrics);
        for expected in [
            "# TYPE opal_operator_reconcile counter",
            "# TYPE opal_operator_reconcile_duration_seconds histogram",
            r#"opal_operator_reconcile_total{kind="RoleMapping",result="success"} 2"#,
            r#"opal_operator_reconcile_total{kind="RoleMapping",result="error"} 1"#,
            r#"opal_operator_reconcile_duration_seconds_count{kind="RoleMapping"} 3"#,
            r#"opal_operator_reconcile_duration_seconds_sum{kind="RoleMapping"} 0.1"#,
            r#"opal_operator_reconcile_duration_seconds_bucket{le="0.04",kind="RoleMapping"} 2"#,
            r#"opal_operator_reconcile_errors_total{kind="RoleMapping",error="opal_api"} 1"#,
        ] {
            assert!(
                has_line(&lines, expected),
                "missing {expected:?} in {lines:#?}"
            );
        }
    }

    #[test]
    fn drift_operations_breaker_and_leader_are_gauges_that_follow_the_latest_value() {
        let metrics = Metrics::new();
        metrics.set_drift(7, 3);
        metrics.set_drift(4, 0);
        metrics.operations_applied("grant", "applied", 4);
        metrics.operations_applied("revoke", "withheld", 2);
        metrics.operations_applied("grant", "applied", 1);
        metrics.set_breaker_tripped(true);
        metrics.set_leader(true);
        metrics.set_leader(false);
        let lines = lines_of(&metrics);
        for expected in [
            r#"opal_operator_drift_operations{action="grant"} 4"#,
            r#"opal_operator_drift_operations{action="revoke"} 0"#,
            r#"opal_operator_opal_operations_total{action="grant",outcome="applied"} 5"#,
            r#"opal_operator_opal_operations_total{action="revoke",outcome="withheld"} 2"#,
            "opal_operator_breaker_tripped 1",
            "opal_operator_leader 0",
        ] {
            assert!(
                has_line(&lines, expected),
                "missing {expected:?} in {lines:#?}"
            );
        }
    }

    #[test]
    fn time_to_revoke_buckets_span_50_ms_to_past_10_minutes() {
        let metrics = Metrics::new();
        metrics.observe_time_to_revoke("webhook", 0.04);
        metrics.observe_time_to_revoke("webhook", 700.0);
        let lines = lines_of(&metrics);
        for expected in [
            r#"opal_operator_time_to_revoke_seconds_bucket{le="0.05",trigger="webhook"} 1"#,
            r#"opal_operator_time_to_revoke_seconds_bucket{le="409.6",trigger="webhook"} 1"#,
            r#"opal_operator_time_to_revoke_seconds_bucket{le="819.2",trigger="webhook"} 2"#,
            r#"opal_operator_time_to_revoke_seconds_count{trigger="webhook"} 2"#,
        ] {
            assert!(
                has_line(&lines, expected),
                "missing {expected:?} in {lines:#?}"
            );
        }
    }

    #[test]
    fn webhook_requests_count_by_hook_and_outcome() {
        let metrics = Metrics::new();
        metrics.webhook_request("splunk", "created");
        metrics.webhook_request("splunk", "unauthorized");
        metrics.webhook_request("splunk", "unauthorized");
        let lines = lines_of(&metrics);
        assert!(has_line(
            &lines,
            r#"opal_operator_webhook_requests_total{hook="splunk",outcome="created"} 1"#
        ));
        assert!(has_line(
            &lines,
            r#"opal_operator_webhook_requests_total{hook="splunk",outcome="unauthorized"} 2"#
        ));
    }

    #[test]
    fn the_opal_observer_counts_attempts_by_operation_and_status() {
        let metrics = Metrics::new();
        let observer = metrics.opal_observer();
        let attempt = |outcome, latency_ms| CallAttempt {
            operation: "groups.users.add",
            method: HttpMethod::Post,
            outcome,
            latency: Duration::from_millis(latency_ms),
            attempt: 1,
            will_retry: false,
        };
        observer.on_attempt(&attempt(AttemptOutcome::Status(429), 4));
        observer.on_attempt(&attempt(AttemptOutcome::Status(200), 4));
        observer.on_attempt(&attempt(
            AttemptOutcome::Transport(TransportErrorKind::Timeout),
            500,
        ));
        let timeout = TransportErrorKind::Timeout.label();
        let lines = lines_of(&metrics);
        for expected in [
            r#"opal_operator_opal_calls_total{operation="groups.users.add",status="429"} 1"#
                .to_owned(),
            r#"opal_operator_opal_calls_total{operation="groups.users.add",status="200"} 1"#
                .to_owned(),
            format!(
                r#"opal_operator_opal_calls_total{{operation="groups.users.add",status="{timeout}"}} 1"#
            ),
            r#"opal_operator_opal_call_duration_seconds_count{operation="groups.users.add"} 3"#
                .to_owned(),
            r#"opal_operator_opal_call_duration_seconds_bucket{le="0.005",operation="groups.users.add"} 2"#
                .to_owned(),
        ] {
            assert!(has_line(&lines, &expected), "missing {expected:?} in {lines:#?}");
        }
    }

    #[test]
    fn notify_metrics_land_in_the_same_registry() {
        let metrics = Metrics::new();
        let notify = metrics.notify_metrics();
        notify.delivered("oncall", ChannelKind::Slack, 2);
        notify.queue_depth("oncall", 5);
        let kind = ChannelKind::Slack.label();
        let lines = lines_of(&metrics);
        let delivered = format!(
            r#"opal_operator_notify_messages_total{{channel="oncall",kind="{kind}",outcome="delivered"}} 2"#
        );
        assert!(
            has_line(&lines, &delivered),
            "missing {delivered:?} in {lines:#?}"
        );
        assert!(has_line(
            &lines,
            r#"opal_operator_notify_queue_depth{channel="oncall"} 5"#
        ));
    }
}
