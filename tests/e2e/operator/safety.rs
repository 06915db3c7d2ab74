//! The safety rails against the running operator: Observe mode writes nothing yet reports the
//! drift, a paused mapping's changes are held back while the rest converges, and the
//! revocation breaker holds revocations until a person approves that exact plan hash.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use libtest_mimic::Failed;
use opal_operator::crd::{
    AccessPolicy, BreakerState, ChangeAction, ConditionStatus, Enforcement, RoleMapping,
    TargetKind, annotations,
};
use opal_operator::engine::{Cause, ObjectKey, Operation, Plan, Withheld};
use serde_json::json;

use super::harness::{
    InProcessOperator, OperatorOptions, Org, api, condition, converged, events_for, eventually,
    mappings_reported, membership_writes, merge, sync_rounds,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(observe_mode_makes_no_writes_but_reports_drift),
        e2e_trial!(pause_stops_writes),
        e2e_trial!(breaker_holds_revocations_until_the_plan_hash_is_approved),
    ]
}

const INTERVAL: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(60);

async fn start_operator(
    ctx: &TestContext,
    org: &Org,
    identity: &str,
) -> Result<InProcessOperator, Failed> {
    InProcessOperator::start(
        ctx,
        org,
        OperatorOptions {
            interval: INTERVAL,
            lease: false,
            identity: identity.into(),
        },
    )
    .await
}

/// Whether the simulator holds the grant `op` adds or removes.
fn holds(org: &Org, op: &Operation) -> bool {
    org.opal.state().user_grants(&op.user_id).iter().any(|g| {
        let (kind, id) = match &g.target {
            opal_operator::sim::opal::GrantTarget::Group(id) => (TargetKind::Group, id),
            opal_operator::sim::opal::GrantTarget::Resource(id) => (TargetKind::Resource, id),
        };
        kind == op.kind
            && *id == op.target_id
            && g.access_level.remote_id == op.access_level_remote_id
    })
}

fn count(plan_ops: &[&Operation], action: ChangeAction) -> usize {
    plan_ops.iter().filter(|op| op.action == action).count()
}

fn describe(op: &Operation) -> String {
    format!(
        "{:?} {} → {} ({:?})",
        op.action,
        op.user_email,
        op.target_label(),
        op.cause
    )
}

fn reason_of(conditions: &[opal_operator::crd::Condition], type_: &str) -> String {
    condition(conditions, type_)
        .map(|c| format!("{:?}/{}", c.status, c.reason))
        .unwrap_or_else(|| "absent".into())
}

async fn observe_mode_makes_no_writes_but_reports_drift(ctx: TestContext) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "2s").await?;
    for mapping in &mut org.manifests.role_mappings {
        mapping.spec.enforcement = Enforcement::Observe;
    }
    // Offboarding is the AccessPolicy's own action, not a RoleMapping's, and Observe does not
    // cover it; without it, nothing in this org may write.
    for policy in &mut org.manifests.access_policies {
        policy.spec.offboarding = None;
    }
    org.apply_manifests(&ctx.client).await?;
    let expected = org.independent_plan(&ctx.client).await?;
    if !expected.operations.is_empty() {
        return Err(format!(
            "with every mapping in Observe the plan should hold everything back; it applies {}",
            describe(&expected.operations[0])
        )
        .into());
    }
    let would: Vec<&Operation> = expected
        .withheld
        .iter()
        .filter(|(_, why)| *why == Withheld::Observe)
        .map(|(op, _)| op)
        .collect();
    if count(&would, ChangeAction::Grant) == 0 || count(&would, ChangeAction::Revoke) == 0 {
        return Err("the sample org should have both grants and revocations to report".into());
    }
    org.opal.reset_counters();

    let operator = start_operator(&ctx, &org, "e2e-observe").await?;
    let mappings = mappings_reported(&ctx.client, &ctx.namespace, &operator, SETTLE).await?;
    let counters = org.opal.counters();
    if membership_writes(&counters) != (0, 0) || counters.writes() != 0 {
        return Err(format!(
            "Observe mode wrote to Opal: {:?}",
            counters
                .by_route
                .iter()
                .filter(|(route, _)| !route.starts_with("GET "))
                .collect::<Vec<_>>()
        )
        .into());
    }

    let mut drifted = 0;
    for mapping in &mappings {
        let key = ObjectKey::new(&ctx.namespace, mapping.name_any());
        let findings = expected
            .mappings
            .get(&key)
            .ok_or_else(|| format!("{key} is missing from the plan"))?;
        let status = mapping.status.as_ref().ok_or("no status")?;
        let reported = (status.to_grant, status.to_revoke);
        let planned = (findings.to_grant as i32, findings.to_revoke as i32);
        if reported != planned {
            return Err(format!(
                "{key}: status says to grant/revoke {reported:?}, the plan {planned:?}"
            )
            .into());
        }
        let drift = findings.to_grant + findings.to_revoke > 0;
        let drift_condition =
            condition(&status.conditions, "Drifted").ok_or_else(|| format!("{key}: no Drifted"))?;
        let drift_shown = drift_condition.status == ConditionStatus::True;
        if drift_shown != drift {
            return Err(format!(
                "{key}: Drifted is {:?} but the plan has {} to grant and {} to revoke",
                drift_condition.status, findings.to_grant, findings.to_revoke
            )
            .into());
        }
        if drift && findings.problems.is_empty() {
            drifted += usize::from(findings.to_grant > 0);
            let ready = condition(&status.conditions, "Ready").ok_or("no Ready")?;
            if (ready.status, ready.reason.as_str()) != (ConditionStatus::False, "ObserveOnly") {
                return Err(format!(
                    "{key}: Ready is {}, expected False/ObserveOnly",
                    reason_of(&status.conditions, "Ready")
                )
                .into());
            }
        }
    }
    if drifted == 0 {
        return Err("no mapping reported grants to make".into());
    }

    // Every mapping a withheld grant belongs to says so in a WouldGrant Event.
    let owners: BTreeSet<ObjectKey> = would
        .iter()
        .filter(|op| op.action == ChangeAction::Grant)
        .filter_map(|op| match &op.cause {
            Cause::Mapping(key) => Some(key.clone()),
            _ => None,
        })
        .collect();
    for owner in &owners {
        let mapping = mappings
            .iter()
            .find(|m| m.name_any() == owner.name)
            .ok_or_else(|| format!("{owner} not in the cluster"))?;
        eventually(
            &format!("a WouldGrant Event on {owner}"),
            Duration::from_secs(20),
            || async {
                let events = events_for(&ctx.client, mapping).await?;
                Ok(events
                    .iter()
                    .any(|(reason, note)| reason == "WouldGrant" && note.contains("would grant"))
                    .then_some(()))
            },
        )
        .await?;
    }

    // Further syncs write nothing either.
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        &mappings[0].name_any(),
        2,
        INTERVAL * 6 + Duration::from_secs(10),
        || Ok(()),
    )
    .await?;
    let counters = org.opal.counters();
    if counters.writes() != 0 {
        return Err(format!("{} write(s) on later syncs", counters.writes()).into());
    }
    operator.stop().await
}

const PAUSED_MAPPING: &str = "site-reliability";

async fn pause_stops_writes(ctx: TestContext) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "2s").await?;
    let paused = org
        .manifests
        .role_mappings
        .iter_mut()
        .find(|m| m.name_any() == PAUSED_MAPPING)
        .ok_or("the sample has no site-reliability mapping")?;
    paused
        .annotations_mut()
        .insert(annotations::PAUSED.into(), "true".into());
    let paused_targets: BTreeSet<String> = paused
        .spec
        .grants
        .iter()
        .filter_map(|g| g.group.as_ref().or(g.resource.as_ref()))
        .filter_map(|t| t.name.clone())
        .collect();
    // Targets only the paused mapping governs: nobody else may change anything there.
    let elsewhere: BTreeSet<String> = org
        .manifests
        .role_mappings
        .iter()
        .filter(|m| m.name_any() != PAUSED_MAPPING)
        .flat_map(|m| &m.spec.grants)
        .filter_map(|g| g.group.as_ref().or(g.resource.as_ref()))
        .filter_map(|t| t.name.clone())
        .collect();
    let exclusive: BTreeSet<&String> = paused_targets.difference(&elsewhere).collect();
    if exclusive.is_empty() {
        return Err("every target of the paused mapping is shared".into());
    }
    org.apply_manifests(&ctx.client).await?;

    let paused_key = ObjectKey::new(&ctx.namespace, PAUSED_MAPPING);
    let expected = org.independent_plan(&ctx.client).await?;
    if let Some(op) = expected
        .operations
        .iter()
        .find(|op| op.cause == Cause::Mapping(paused_key.clone()))
    {
        return Err(format!("the plan applies for the paused mapping: {}", describe(op)).into());
    }
    let held: Vec<&Operation> = expected
        .withheld
        .iter()
        .filter(|(op, why)| {
            *why == Withheld::Observe
                && (op.cause == Cause::Mapping(paused_key.clone())
                    || exclusive.contains(&op.target_name))
        })
        .map(|(op, _)| op)
        .collect();
    if count(&held, ChangeAction::Grant) == 0 {
        return Err("the paused mapping should have grants to hold back".into());
    }
    let state = org.opal.state();
    let snapshot = |names: &BTreeSet<&String>| -> Vec<_> {
        names
            .iter()
            .flat_map(
                |name| match (state.group_id(name), state.resource_id(name)) {
                    (Some(id), _) => state.group_members(&id),
                    (None, Some(id)) => state.resource_direct_users(&id),
                    (None, None) => Vec::new(),
                },
            )
            .collect()
    };
    let before = snapshot(&exclusive);
    let all_ops: Vec<&Operation> = expected.operations.iter().collect();
    let (expected_grants, expected_revokes) = (
        count(&all_ops, ChangeAction::Grant) as u64,
        count(&all_ops, ChangeAction::Revoke) as u64,
    );
    org.opal.reset_counters();

    let operator = start_operator(&ctx, &org, "e2e-pause").await?;
    converged(&ctx.client, &org, &operator, SETTLE).await?;
    let writes = membership_writes(&org.opal.counters());
    if writes != (expected_grants, expected_revokes) {
        return Err(format!(
            "expected exactly {expected_grants} grant and {expected_revokes} revoke calls (the unpaused plan), Opal saw {writes:?}"
        )
        .into());
    }
    for op in &held {
        let present = holds(&org, op);
        let untouched = match op.action {
            ChangeAction::Grant => !present,
            ChangeAction::Revoke => present,
        };
        if !untouched {
            return Err(format!("a held change was made: {}", describe(op)).into());
        }
    }
    if snapshot(&exclusive) != before {
        return Err(format!("the paused mapping's own targets {exclusive:?} changed").into());
    }
    let mapping = api::<RoleMapping>(&ctx.client, &ctx.namespace)
        .get(PAUSED_MAPPING)
        .await?;
    let status = mapping.status.as_ref().ok_or("no status")?;
    let synced = condition(&status.conditions, "Synced").ok_or("no Synced")?;
    if (synced.status, synced.reason.as_str()) != (ConditionStatus::False, "Paused") {
        return Err(format!(
            "Synced is {}, expected False/Paused",
            reason_of(&status.conditions, "Synced")
        )
        .into());
    }
    if usize::try_from(status.to_grant).ok() != Some(count(&held, ChangeAction::Grant)) {
        return Err(format!(
            "status.toGrant is {}, {} grant(s) are held",
            status.to_grant,
            count(&held, ChangeAction::Grant)
        )
        .into());
    }
    // Nothing of it is made on later syncs either.
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        PAUSED_MAPPING,
        2,
        INTERVAL * 6 + Duration::from_secs(10),
        || Ok(()),
    )
    .await?;
    if membership_writes(&org.opal.counters()) != writes {
        return Err("later syncs wrote to Opal although it had converged".into());
    }
    if snapshot(&exclusive) != before {
        return Err("the paused mapping's targets changed on a later sync".into());
    }
    operator.stop().await
}

const POLICY: &str = "baseline";
const SHRUNK_MAPPING: &str = "legal";

fn breaker_of(policy: &AccessPolicy) -> Option<&opal_operator::crd::BreakerStatus> {
    policy.status.as_ref().and_then(|s| s.breaker.as_ref())
}

fn breaker_held(plan: &Plan) -> Vec<&Operation> {
    plan.withheld
        .iter()
        .filter(|(_, why)| *why == Withheld::Breaker)
        .map(|(op, _)| op)
        .collect()
}

async fn breaker_holds_revocations_until_the_plan_hash_is_approved(
    ctx: TestContext,
) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "2s").await?;
    org.apply_manifests(&ctx.client).await?;
    let operator = start_operator(&ctx, &org, "e2e-breaker").await?;
    let running = &operator;
    converged(&ctx.client, &org, &operator, SETTLE).await?;

    let policies = api::<AccessPolicy>(&ctx.client, &ctx.namespace);
    let patched = policies
        .patch(
            POLICY,
            &Default::default(),
            &merge(json!({"spec": {"safety": {"maxRevocations": 1}}})),
        )
        .await?;
    let generation = patched.metadata.generation;
    eventually(
        "the policy reports its new generation, breaker closed",
        SETTLE,
        || {
            let policies = policies.clone();
            async move {
                running.check_running()?;
                let policy = policies.get(POLICY).await?;
                let reported = policy
                    .status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == generation)
                    && breaker_of(&policy).is_some_and(|b| b.state == BreakerState::Closed);
                Ok(reported.then_some(()))
            }
        },
    )
    .await?;

    // Nobody matches the legal mapping any more: its members' grants become revocations.
    org.opal.reset_counters();
    api::<RoleMapping>(&ctx.client, &ctx.namespace)
        .patch(
            SHRUNK_MAPPING,
            &Default::default(),
            &merge(json!({"spec": {"selector": {"matchLabels": {"department": "Dissolved"}}}})),
        )
        .await?;
    let expected = org.independent_plan(&ctx.client).await?;
    let held = breaker_held(&expected);
    if held.len() < 2 || !expected.breaker.tripped || expected.breaker.approved {
        return Err(format!(
            "the plan should trip the breaker on at least 2 revocations: {} held, {:?}",
            held.len(),
            expected.breaker
        )
        .into());
    }
    if let Some(op) = expected
        .operations
        .iter()
        .find(|op| op.action == ChangeAction::Revoke)
    {
        return Err(format!("a revocation passes the tripped breaker: {}", describe(op)).into());
    }

    let tripped = eventually("the breaker trips", SETTLE, || {
        let policies = policies.clone();
        async move {
            running.check_running()?;
            let policy = policies.get(POLICY).await?;
            let tripped = breaker_of(&policy).is_some_and(|b| b.state == BreakerState::Tripped);
            Ok(tripped.then_some(policy))
        }
    })
    .await?;
    let breaker = breaker_of(&tripped).ok_or("no breaker status")?;
    let plan_hash = breaker.plan_hash.clone().ok_or("no planHash")?;
    if plan_hash != expected.revocation_hash {
        return Err(format!(
            "status planHash {plan_hash} differs from the independent plan's {}",
            expected.revocation_hash
        )
        .into());
    }
    if usize::try_from(breaker.held_revocations).ok() != Some(held.len()) {
        return Err(format!(
            "heldRevocations is {}, the plan holds {}",
            breaker.held_revocations,
            held.len()
        )
        .into());
    }
    let conditions = &tripped.status.as_ref().ok_or("no status")?.conditions;
    let synced = condition(conditions, "Synced").ok_or("no Synced")?;
    if (synced.status, synced.reason.as_str()) != (ConditionStatus::False, "BlastRadiusExceeded")
        || !synced.message.contains(&plan_hash)
    {
        return Err(format!(
            "Synced is {} ({}), expected False/BlastRadiusExceeded naming the plan hash",
            reason_of(conditions, "Synced"),
            synced.message
        )
        .into());
    }
    eventually(
        "a BlastRadiusExceeded Event on the policy",
        Duration::from_secs(20),
        || async {
            let events = events_for(&ctx.client, &tripped).await?;
            Ok(events
                .iter()
                .any(|(reason, note)| reason == "BlastRadiusExceeded" && note.contains(&plan_hash))
                .then_some(()))
        },
    )
    .await?;
    let mapping = api::<RoleMapping>(&ctx.client, &ctx.namespace);
    eventually(
        "the shrunk mapping reports BlastRadiusExceeded",
        Duration::from_secs(20),
        || {
            let mapping = mapping.clone();
            async move {
                let object = mapping.get(SHRUNK_MAPPING).await?;
                let conditions = object.status.map(|s| s.conditions).unwrap_or_default();
                Ok(condition(&conditions, "Synced")
                    .is_some_and(|c| {
                        c.status == ConditionStatus::False && c.reason == "BlastRadiusExceeded"
                    })
                    .then_some(()))
            }
        },
    )
    .await?;

    // Held over further syncs: no revocation reaches Opal.
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        SHRUNK_MAPPING,
        2,
        INTERVAL * 6 + Duration::from_secs(10),
        || {
            running.check_running()?;
            let (_, revokes) = membership_writes(&org.opal.counters());
            if revokes != 0 {
                return Err(format!("{revokes} revocation(s) passed the tripped breaker").into());
            }
            Ok(())
        },
    )
    .await?;
    if let Some(op) = held.iter().find(|op| !holds(&org, op)) {
        return Err(format!("held revocation made: {}", describe(op)).into());
    }

    // A wrong hash approves nothing.
    policies
        .patch(
            POLICY,
            &Default::default(),
            &merge(
                json!({"metadata": {"annotations": {annotations::APPROVE_PLAN: "0".repeat(64)}}}),
            ),
        )
        .await?;
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        SHRUNK_MAPPING,
        2,
        INTERVAL * 6 + Duration::from_secs(10),
        || Ok(()),
    )
    .await?;
    let (_, revokes) = membership_writes(&org.opal.counters());
    if revokes != 0 {
        return Err(format!("a wrong plan hash let {revokes} revocation(s) through").into());
    }

    policies
        .patch(
            POLICY,
            &Default::default(),
            &merge(json!({"metadata": {"annotations": {annotations::APPROVE_PLAN: plan_hash}}})),
        )
        .await?;
    eventually("the approved revocations are made", SETTLE, || async {
        running.check_running()?;
        Ok(held.iter().all(|op| !holds(&org, op)).then_some(()))
    })
    .await?;
    let (_, revokes) = membership_writes(&org.opal.counters());
    if revokes != held.len() as u64 {
        return Err(format!(
            "{revokes} revoke call(s) for the {} approved revocation(s)",
            held.len()
        )
        .into());
    }
    eventually("the breaker closes", SETTLE, || {
        let policies = policies.clone();
        async move {
            running.check_running()?;
            let policy = policies.get(POLICY).await?;
            let closed = breaker_of(&policy)
                .is_some_and(|b| b.state == BreakerState::Closed && b.plan_hash.is_none());
            let synced = policy
                .status
                .as_ref()
                .and_then(|s| condition(&s.conditions, "Synced").cloned())
                .is_some_and(|c| c.status == ConditionStatus::True);
            if closed && synced {
                Ok(Some(()))
            } else {
                // Shown when the wait runs out.
                Err(format!("status is {:?}", policy.status).into())
            }
        }
    })
    .await?;
    let after = org.independent_plan(&ctx.client).await?;
    if let Some(op) = after.operations.first() {
        return Err(format!("not converged after approval: {}", describe(op)).into());
    }
    operator.stop().await
}
