//! Status views per kind, from hand-built sync views.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;

use super::*;
use crate::controller::sync::SyncFailure;
use crate::crd::{BreakerState, ChangeAction, OperationFailure, RoleMappingStatus};
use crate::engine::{BreakerFinding, MappingFindings, MappingProblem, ObjectKey, Plan};

fn key() -> ObjectKey {
    ObjectKey::new("team", "engineering")
}

fn view_with(findings: MappingFindings) -> SyncView {
    let mut plan = Plan::default();
    plan.mappings.insert(key(), findings);
    SyncView::of_plan(plan, BTreeMap::new())
}

fn enforced(to_grant: usize, to_revoke: usize) -> MappingFindings {
    MappingFindings {
        desired_grants: 10,
        actual_grants: 10 - to_grant,
        to_grant,
        to_revoke,
        enforced: true,
        ..MappingFindings::default()
    }
}

fn find<'a>(status: &'a RoleMappingStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

#[test]
fn a_converged_mapping_is_ready_synced_and_not_drifted() {
    let status = role_mapping_status(
        &view_with(enforced(0, 0)),
        &key(),
        3,
        false,
        None,
        Utc::now(),
    );
    assert_eq!(find(&status, "Ready").status, ConditionStatus::True);
    assert_eq!(find(&status, "Synced").reason, "ReconcileSuccess");
    assert_eq!(find(&status, "Drifted").status, ConditionStatus::False);
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.desired_grants, 10);
}

#[test]
fn unchanged_conditions_keep_their_transition_time() {
    let earlier = Utc::now() - TimeDelta::hours(1);
    let view = view_with(enforced(0, 0));
    let first = role_mapping_status(&view, &key(), 1, false, None, earlier);
    let second = role_mapping_status(&view, &key(), 1, false, Some(&first), Utc::now());
    assert_eq!(find(&second, "Ready").last_transition_time, earlier);
    let drifted = role_mapping_status(
        &view_with(enforced(2, 0)),
        &key(),
        1,
        false,
        Some(&first),
        Utc::now(),
    );
    assert!(find(&drifted, "Ready").last_transition_time > earlier);
    assert_eq!(find(&drifted, "Drifted").status, ConditionStatus::True);
}

#[test]
fn the_reason_says_why_a_mapping_is_not_synced() {
    let paused = role_mapping_status(
        &view_with(enforced(1, 0)),
        &key(),
        1,
        true,
        None,
        Utc::now(),
    );
    assert_eq!(find(&paused, "Synced").reason, "Paused");

    let mut observe = enforced(2, 1);
    observe.enforced = false;
    let observing = role_mapping_status(&view_with(observe), &key(), 1, false, None, Utc::now());
    assert_eq!(find(&observing, "Ready").reason, "ObserveOnly");

    let mut broken = enforced(0, 0);
    broken.problems = vec![MappingProblem::TargetNotFound("group Nope".into())];
    let not_found = role_mapping_status(&view_with(broken), &key(), 1, false, None, Utc::now());
    assert_eq!(find(&not_found, "Ready").reason, "TargetNotFound");
    assert!(find(&not_found, "Ready").message.contains("group Nope"));

    let mut failed_view = view_with(enforced(0, 0));
    failed_view.error = Some(SyncFailure {
        reason: "ReconcileError",
        message: "Opal users.list: HTTP 503 after 4 attempt(s): upstream down".into(),
    });
    let failed = role_mapping_status(&failed_view, &key(), 1, false, None, Utc::now());
    assert_eq!(find(&failed, "Synced").reason, "ReconcileError");
    assert!(find(&failed, "Synced").message.contains("HTTP 503"));

    let mut tripped_view = view_with(enforced(0, 5));
    let mut tripped_plan = (*tripped_view.plan).clone();
    tripped_plan.breaker = BreakerFinding {
        revocations: 5,
        governed_grants: 10,
        tripped: true,
        approved: false,
        reason: "5 revocations exceed maxRevocations 1".into(),
    };
    tripped_plan.revocation_hash = "0123abcd".into();
    tripped_view.plan = Arc::new(tripped_plan);
    let tripped = role_mapping_status(&tripped_view, &key(), 1, false, None, Utc::now());
    assert_eq!(find(&tripped, "Synced").reason, "BlastRadiusExceeded");
    assert!(find(&tripped, "Synced").message.contains("0123abcd"));
}

#[test]
fn failed_operations_carry_the_upstream_text() {
    let mut view = view_with(enforced(1, 0));
    let failure = |label| AttributedFailure {
        failure: OperationFailure {
            action: ChangeAction::Grant,
            user: "ada@example.com".into(),
            target: "group/Engineering".into(),
            message: "Opal groups.users.add: HTTP 429 after 5 attempt(s): slow down".into(),
        },
        label,
    };
    view.mapping_failures
        .insert(key(), vec![failure("rate_limited")]);
    let limited = role_mapping_status(&view, &key(), 1, false, None, Utc::now());
    assert_eq!(find(&limited, "Synced").reason, "RateLimited");
    assert!(find(&limited, "Synced").message.contains("slow down"));
    assert_eq!(limited.failed_operations, 1);

    view.mapping_failures.insert(
        key(),
        vec![failure("rate_limited"), failure("server_error")],
    );
    let partial = role_mapping_status(&view, &key(), 1, false, None, Utc::now());
    assert_eq!(find(&partial, "Synced").reason, "PartialSync");
}

#[test]
fn only_operator_namespace_policies_show_the_breaker() {
    let mut view = view_with(enforced(0, 3));
    let mut plan = (*view.plan).clone();
    plan.breaker.tripped = true;
    plan.breaker.revocations = 3;
    plan.revocation_hash = "feedbeef".into();
    plan.policies.insert(
        ObjectKey::new("opal-system", "baseline"),
        Default::default(),
    );
    view.plan = Arc::new(plan);
    let operator = access_policy_status(
        &view,
        &ObjectKey::new("opal-system", "baseline"),
        1,
        "opal-system",
        &no_request_rules(),
        None,
        Utc::now(),
    );
    let breaker = operator.breaker.expect("breaker shown");
    assert_eq!(breaker.state, BreakerState::Tripped);
    assert_eq!(breaker.plan_hash.as_deref(), Some("feedbeef"));
    assert_eq!(breaker.held_revocations, 3);
    let team = access_policy_status(
        &view,
        &ObjectKey::new("team", "local"),
        1,
        "opal-system",
        &no_request_rules(),
        None,
        Utc::now(),
    );
    assert!(team.breaker.is_none());
}

fn no_request_rules() -> crate::engine::PolicyRequestRules {
    crate::engine::PolicyRequestRules {
        policy: ObjectKey::new("opal-system", "baseline"),
        rules: Vec::new(),
        invalid: Vec::new(),
    }
}

#[test]
fn an_unreadable_request_rule_makes_the_policy_not_ready_and_is_listed() {
    let view = view_with(enforced(0, 3));
    let spec: crate::crd::AccessPolicySpec = serde_json::from_value(serde_json::json!({
        "requests": [
            {"name": "office-hours", "action": "AutoApprove", "match": {"businessHours": {
                "timeZone": "Mars/Olympus_Mons", "days": ["Mon"], "start": "09:00", "end": "17:00"}}},
            {"name": "rest", "action": "Deny"},
        ]
    }))
    .expect("spec");
    let key = ObjectKey::new("opal-system", "jit");
    let status = access_policy_status(
        &view,
        &key,
        1,
        "opal-system",
        &spec.request_rules(key.clone()),
        None,
        Utc::now(),
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::crd::condition_types::READY)
        .expect("Ready");
    assert_eq!(ready.status, crate::crd::ConditionStatus::False);
    assert_eq!(ready.reason, "InvalidRequestRule");
    assert!(
        ready.message.contains("requests[0]") && ready.message.contains("Mars/Olympus_Mons"),
        "{}",
        ready.message
    );
    let rules = status.request_rules.expect("request rules shown");
    assert_eq!(rules.rules, 2);
    assert_eq!(rules.invalid.len(), 1);

    let readable: crate::crd::AccessPolicySpec = serde_json::from_value(
        serde_json::json!({"requests": [{"name": "rest", "action": "Deny"}]}),
    )
    .expect("spec");
    let fine = access_policy_status(
        &view,
        &key,
        1,
        "opal-system",
        &readable.request_rules(key.clone()),
        None,
        Utc::now(),
    );
    assert_eq!(
        fine.request_rules.map(|r| (r.rules, r.invalid.len())),
        Some((1, 0))
    );
    assert!(
        fine.conditions
            .iter()
            .any(|c| c.type_ == crate::crd::condition_types::READY
                && c.status == crate::crd::ConditionStatus::True)
    );
}
