//! The `status.requests` of each AccessPolicy with `requests` rules: decisions counted by rule,
//! action and outcome as the decider announces them, the routed requests still waiting, the
//! latest decision, and the rules whose route the operator config cannot follow. Written once
//! per pass, by server-side apply under its own field manager, so the policy controller's
//! status writes never touch it. Counts start from what the status already says whenever this
//! replica (re)gains the lease, so a failover neither loses nor double-counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::ledger::Entry;
use crate::crd::{
    AccessPolicy, LastRequestDecision, RequestDecisionCount, RequestsStatus, WaitingRequest,
};
use crate::engine::{ObjectKey, PolicyRequestRules, RequestVerdict};

/// The field manager that owns `status.requests`.
const REQUESTS_MANAGER: &str = "opal-operator/requests";

/// Routed requests listed by name in the status; the rest are only counted.
const WAITING_LISTED: usize = 50;

/// One policy's counts as this replica knows them.
#[derive(Clone, Debug, Default)]
struct Tally {
    decisions: BTreeMap<(String, String, String), i64>,
    last: Option<LastRequestDecision>,
}

impl Tally {
    fn from_status(status: Option<&RequestsStatus>) -> Self {
        let Some(status) = status else {
            return Self::default();
        };
        Self {
            decisions: status
                .decisions
                .iter()
                .map(|count| {
                    (
                        (
                            count.rule.clone(),
                            count.action.clone(),
                            count.outcome.clone(),
                        ),
                        count.count,
                    )
                })
                .collect(),
            last: status.last_decision.clone(),
        }
    }

    /// Counts one step of `entry` that came out as `outcome`.
    fn count(&mut self, entry: &Entry, outcome: &str, at: DateTime<Utc>) {
        let action = rule_action(entry);
        *self
            .decisions
            .entry((entry.rule.clone(), action.clone(), outcome.to_owned()))
            .or_default() += 1;
        self.last = Some(LastRequestDecision {
            request_id: entry.request_id.clone(),
            rule: entry.rule.clone(),
            action,
            outcome: outcome.to_owned(),
            at,
        });
    }
}

/// The outcome an announced reason counts as, if it counts.
fn outcome_of(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "RequestApproved" => "Approved",
        "RequestDenied" => "Denied",
        "RequestRouted" => "Routed",
        "RequestDecidedElsewhere" => "DecidedElsewhere",
        "RouteAnswerRefused" => "AnswerRefused",
        "RequestEscalated" => "Escalated",
        "ExpiredGrantRevoked" => "ExpiredGrantRevoked",
        _ => return None,
    })
}

/// The rule's own action for an entry: a routed request stays `Route` whatever its answer.
fn rule_action(entry: &Entry) -> String {
    if entry.route.is_some() {
        "Route".to_owned()
    } else {
        entry.action.clone()
    }
}

/// A policy's `status.requests` from its counts and this pass's findings.
fn requests_status(
    tally: &Tally,
    mut waiting: Vec<WaitingRequest>,
    unroutable: Vec<String>,
) -> RequestsStatus {
    waiting.sort_by(|a, b| (a.since, &a.request_id).cmp(&(b.since, &b.request_id)));
    let waiting_count = i32::try_from(waiting.len()).unwrap_or(i32::MAX);
    waiting.truncate(WAITING_LISTED);
    RequestsStatus {
        decisions: tally
            .decisions
            .iter()
            .map(|((rule, action, outcome), count)| RequestDecisionCount {
                rule: rule.clone(),
                action: action.clone(),
                outcome: outcome.clone(),
                count: *count,
            })
            .collect(),
        waiting,
        waiting_count,
        last_decision: tally.last.clone(),
        unroutable,
    }
}

/// Rules of `rules` whose route, or its escalation, names a channel the decider cannot use.
pub(super) fn unroutable_rules(
    rules: &PolicyRequestRules,
    desks: &BTreeSet<&str>,
    pagers: &BTreeSet<&str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in &rules.rules {
        let RequestVerdict::Route(plan) = &rule.verdict else {
            continue;
        };
        if !desks.contains(plan.channel.as_str()) {
            problems.push(format!(
                "rule {:?}: route.channel {:?} is not a jiraServiceManagement, jira (with decisions) or serviceNow channel of the operator config",
                rule.name, plan.channel
            ));
        }
        if let Some(escalation) = &plan.escalation
            && !pagers.contains(escalation.channel.as_str())
        {
            problems.push(format!(
                "rule {:?}: route.escalation.pagerDuty {:?} is not a pagerDuty channel with rest credentials in the operator config",
                rule.name, escalation.channel
            ));
        }
    }
    problems
}

/// Every policy's counts, kept between passes.
pub struct StatusBook {
    client: kube::Client,
    tallies: Mutex<BTreeMap<ObjectKey, Tally>>,
}

impl StatusBook {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    fn tallies(&self) -> MutexGuard<'_, BTreeMap<ObjectKey, Tally>> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every count, so that they are read again from the statuses (on a change of
    /// leadership: another replica may have counted meanwhile).
    pub fn forget(&self) {
        self.tallies().clear();
    }

    /// Counts an announced step of `entry` on its policy.
    pub(super) fn record(
        &self,
        policy: &AccessPolicy,
        key: ObjectKey,
        entry: &Entry,
        reason: &str,
        at: DateTime<Utc>,
    ) {
        let Some(outcome) = outcome_of(reason) else {
            return;
        };
        let mut tallies = self.tallies();
        tallies
            .entry(key)
            .or_insert_with(|| {
                Tally::from_status(policy.status.as_ref().and_then(|s| s.requests.as_ref()))
            })
            .count(entry, outcome, at);
    }

    /// Writes the `status.requests` of every policy with rules whose value changed.
    pub(super) async fn publish(
        &self,
        policies: &[std::sync::Arc<AccessPolicy>],
        mut waiting: BTreeMap<ObjectKey, Vec<WaitingRequest>>,
        mut unroutable: BTreeMap<ObjectKey, Vec<String>>,
    ) {
        for policy in policies {
            let key = super::key_of(policy.as_ref());
            let current = policy.status.as_ref().and_then(|s| s.requests.as_ref());
            let tally = self
                .tallies()
                .entry(key.clone())
                .or_insert_with(|| Tally::from_status(current))
                .clone();
            let status = requests_status(
                &tally,
                waiting.remove(&key).unwrap_or_default(),
                unroutable.remove(&key).unwrap_or_default(),
            );
            if current == Some(&status) {
                continue;
            }
            let api: Api<AccessPolicy> = Api::namespaced(self.client.clone(), &key.namespace);
            let body = json!({
                "apiVersion": "opal-operator.io/v1alpha1",
                "kind": "AccessPolicy",
                "status": {"requests": status},
            });
            if let Err(error) = api
                .patch_status(
                    &key.name,
                    &PatchParams::apply(REQUESTS_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                tracing::warn!(policy = %key, %error, "writing the requests status failed; retried next pass");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::requests::ledger::Phase;
    use crate::crd::AccessPolicySpec;
    use crate::engine::{RouteEscalation, RoutePlan};

    fn entry(request_id: &str, rule: &str, action: &str, routed: bool) -> Entry {
        Entry {
            request_id: request_id.to_owned(),
            phase: Phase::Applied,
            decided_by: "opal-system/jit".to_owned(),
            rule: rule.to_owned(),
            action: action.to_owned(),
            comment: String::new(),
            claimed_at: Utc::now(),
            outcome: String::new(),
            route: routed.then(|| {
                super::super::ledger::RouteRecord::from_plan(&RoutePlan {
                    channel: "jsm".to_owned(),
                    ..Default::default()
                })
            }),
            grant_at_most_seconds: None,
            window: None,
        }
    }

    fn policy(requests: Option<RequestsStatus>) -> AccessPolicy {
        let spec: AccessPolicySpec = serde_json::from_value(serde_json::json!({})).expect("spec");
        let mut policy = AccessPolicy::new("jit", spec);
        policy.status = Some(crate::crd::AccessPolicyStatus {
            requests,
            ..Default::default()
        });
        policy
    }

    #[test]
    fn steps_are_counted_by_rule_action_and_outcome_on_top_of_the_status() {
        let earlier = RequestsStatus {
            decisions: vec![RequestDecisionCount {
                rule: "short".to_owned(),
                action: "AutoApprove".to_owned(),
                outcome: "Approved".to_owned(),
                count: 4,
            }],
            ..Default::default()
        };
        let at = Utc::now();
        let mut book_tally = Tally::from_status(
            policy(Some(earlier))
                .status
                .as_ref()
                .and_then(|s| s.requests.as_ref()),
        );
        for (entry, reason) in [
            (
                entry("r1", "short", "AutoApprove", false),
                "RequestApproved",
            ),
            (entry("r2", "desk", "Approve", true), "RequestRouted"),
            (entry("r2", "desk", "Approve", true), "RequestApproved"),
            (entry("r3", "short", "AutoApprove", false), "SyncFailed"),
        ] {
            if let Some(outcome) = outcome_of(reason) {
                book_tally.count(&entry, outcome, at);
            }
        }
        let status = requests_status(&book_tally, Vec::new(), Vec::new());
        let counts: Vec<(&str, &str, &str, i64)> = status
            .decisions
            .iter()
            .map(|c| {
                (
                    c.rule.as_str(),
                    c.action.as_str(),
                    c.outcome.as_str(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("desk", "Route", "Approved", 1),
                ("desk", "Route", "Routed", 1),
                ("short", "AutoApprove", "Approved", 5),
            ]
        );
        let last = status.last_decision.expect("last");
        assert_eq!(
            (last.request_id.as_str(), last.outcome.as_str()),
            ("r2", "Approved")
        );
    }

    #[test]
    fn waiting_requests_are_listed_oldest_first_and_counted_beyond_the_list() {
        let start = Utc::now();
        let waiting: Vec<WaitingRequest> = (0..60)
            .rev()
            .map(|i| WaitingRequest {
                request_id: format!("r{i:02}"),
                since: Some(start + chrono::Duration::seconds(i)),
                ..Default::default()
            })
            .collect();
        let status = requests_status(&Tally::default(), waiting, Vec::new());
        assert_eq!(status.waiting_count, 60);
        assert_eq!(status.waiting.len(), WAITING_LISTED);
        assert_eq!(status.waiting[0].request_id, "r00");
        assert_eq!(status.waiting[49].request_id, "r49");
    }

    #[test]
    fn routes_to_channels_the_config_lacks_are_named() {
        let spec: AccessPolicySpec = serde_json::from_value(serde_json::json!({"requests": [
            {"name": "ok", "action": "Route", "route": {"channel": "jsm",
                "escalation": {"pagerDuty": "pd", "after": "30m"}}},
            {"name": "slack", "action": "Route", "route": {"channel": "secops-slack"}},
            {"name": "no-pager", "action": "Route", "route": {"channel": "jsm",
                "escalation": {"pagerDuty": "missing", "after": "30m"}}},
            {"name": "plain", "action": "Deny"},
        ]}))
        .expect("spec");
        let rules = spec.request_rules(ObjectKey::new("opal-system", "jit"));
        assert!(matches!(
            &rules.rules[0].verdict,
            RequestVerdict::Route(RoutePlan {
                escalation: Some(RouteEscalation { .. }),
                ..
            })
        ));
        let problems = unroutable_rules(&rules, &BTreeSet::from(["jsm"]), &BTreeSet::from(["pd"]));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"slack\"") && problems[0].contains("secops-slack"));
        assert!(problems[1].contains("\"no-pager\"") && problems[1].contains("escalation"));
    }
}
