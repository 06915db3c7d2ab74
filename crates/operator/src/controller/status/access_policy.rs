//! An AccessPolicy's status: what it governs and the breaker it shapes.

use chrono::{DateTime, Utc};

use super::{Conditions, count, sync_problem};
use crate::controller::sync::SyncView;
use crate::crd::{
    AccessPolicyStatus, BreakerState, BreakerStatus, RequestRulesStatus, condition_types,
};
use crate::engine::{ObjectKey, PolicyRequestRules};

/// An AccessPolicy's status from the view.
pub fn access_policy_status(
    view: &SyncView,
    key: &ObjectKey,
    generation: i64,
    operator_namespace: &str,
    request_rules: &PolicyRequestRules,
    previous: Option<&AccessPolicyStatus>,
    now: DateTime<Utc>,
) -> AccessPolicyStatus {
    let findings = view.plan.policies.get(key).cloned().unwrap_or_default();
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Conditions::new(previous_conditions, generation, now);
    let breaker = &view.plan.breaker;
    let in_operator_namespace = key.namespace == operator_namespace;
    let held = breaker.tripped && !breaker.approved && in_operator_namespace;
    if findings.outside_operator_namespace {
        conditions.set(
            condition_types::READY,
            true,
            "NamespaceScoped",
            format!(
                "outside the operator namespace {operator_namespace}: safety, offboarding and tenancy here are not applied"
            ),
        );
    } else if let Some(problem) = &findings.invalid_offboarding {
        conditions.set(
            condition_types::READY,
            false,
            "InvalidDuration",
            problem.clone(),
        );
    } else if let Some(problem) = &findings.invalid_safety {
        conditions.set(
            condition_types::READY,
            false,
            "InvalidSafety",
            problem.clone(),
        );
    } else if !request_rules.invalid.is_empty() {
        conditions.set(
            condition_types::READY,
            false,
            "InvalidRequestRule",
            format!(
                "{} (an unreadable rule matches no request)",
                invalid_rules(request_rules).join("; ")
            ),
        );
    } else {
        conditions.set(
            condition_types::READY,
            !held,
            if held {
                "BlastRadiusExceeded"
            } else {
                "Applied"
            },
            String::new(),
        );
    }
    let (synced, reason, message) = if let Some((reason, message)) = sync_problem(view) {
        (false, reason, message)
    } else if held {
        (
            false,
            "BlastRadiusExceeded",
            format!(
                "{}; {} revocation(s) held; approve plan {} with the opal-operator.io/approve-plan annotation",
                breaker.reason, breaker.revocations, view.plan.revocation_hash
            ),
        )
    } else {
        (true, "ReconcileSuccess", String::new())
    };
    conditions.set(condition_types::SYNCED, synced, reason, message);
    if let (true, Some(degraded)) = (in_operator_namespace, &view.notifications) {
        conditions.set(
            condition_types::NOTIFICATIONS_DEGRADED,
            degraded.is_some(),
            if degraded.is_some() {
                "ChannelFailing"
            } else {
                "ChannelsHealthy"
            },
            degraded.clone().unwrap_or_default(),
        );
    }
    let breaker_status = in_operator_namespace.then(|| BreakerStatus {
        state: if held {
            BreakerState::Tripped
        } else {
            BreakerState::Closed
        },
        held_revocations: if held { count(breaker.revocations) } else { 0 },
        plan_hash: held.then(|| view.plan.revocation_hash.clone()),
        tripped_at: if held { view.breaker_tripped_at } else { None },
        reason: if held {
            breaker.reason.clone()
        } else {
            String::new()
        },
    });
    AccessPolicyStatus {
        conditions: conditions.into_vec(),
        observed_generation: Some(generation),
        governed_mappings: count(findings.governed_mappings),
        governed_targets: count(findings.governed_targets),
        breaker: breaker_status,
        request_rules: (!request_rules.rules.is_empty() || !request_rules.invalid.is_empty()).then(
            || RequestRulesStatus {
                rules: count(request_rules.rules.len() + request_rules.invalid.len()),
                invalid: invalid_rules(request_rules),
            },
        ),
        // Written by the request decider under its own field manager.
        requests: None,
    }
}

fn invalid_rules(rules: &PolicyRequestRules) -> Vec<String> {
    rules.invalid.iter().map(|(_, why)| why.clone()).collect()
}
