//! Applying the sample manifests converges Opal exactly; Ready reflects it per object; drift
//! made straight in Opal is repaired by the next resync and shows up in Events.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use libtest_mimic::Failed;
use opal_operator::crd::{AccessPolicy, ChangeAction, ConditionStatus, RoleMapping, TargetKind};
use opal_operator::engine::{Cause, ObjectKey};

use super::harness::{
    InProcessOperator, OperatorOptions, Org, accepted_membership_writes, api, condition, converged,
    events_for, eventually,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(examples_converge_exactly_and_drift_is_repaired),
        e2e_trial!(a_change_made_in_opal_is_repaired_from_the_events_feed),
        e2e_trial!(deleting_a_mapping_with_revoke_on_delete_revokes_what_only_it_granted),
    ]
}

const INTERVAL: Duration = Duration::from_secs(4);

async fn examples_converge_exactly_and_drift_is_repaired(ctx: TestContext) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "4s").await?;
    org.apply_manifests(&ctx.client).await?;
    let expected = org.independent_plan(&ctx.client).await?;
    let expected_grants = expected
        .operations
        .iter()
        .filter(|op| op.action == ChangeAction::Grant)
        .count() as u64;
    let expected_revokes = expected
        .operations
        .iter()
        .filter(|op| op.action == ChangeAction::Revoke)
        .count() as u64;
    if expected_grants == 0 {
        return Err(format!(
            "the sample org should need grants on its first sync; plan: {} operations, {} withheld, HR gate {:?}, mappings {:?}",
            expected.operations.len(),
            expected.withheld.len(),
            expected.hr_gate,
            expected.mappings.iter().map(|(k, f)| (k.to_string(), f.matched_employees, f.problems.clone())).collect::<Vec<_>>()
        )
        .into());
    }
    org.opal.reset_counters();

    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: INTERVAL,
            lease: true,
            identity: "e2e-converge".into(),
        },
    )
    .await?;
    let mappings_api = api::<RoleMapping>(&ctx.client, &ctx.namespace);
    let operator_ref = &operator;
    let mappings = eventually(
        "every RoleMapping reports its current generation",
        Duration::from_secs(90),
        || {
            let mappings_api = mappings_api.clone();
            async move {
                let operator = operator_ref;
                operator_alive(operator)?;
                let list = mappings_api.list(&ListParams::default()).await?.items;
                let all_current = list.iter().all(|m| {
                    m.status.as_ref().is_some_and(|s| {
                        s.observed_generation == m.metadata.generation
                            && condition(&s.conditions, "Ready").is_some()
                    })
                });
                Ok(all_current.then_some(list))
            }
        },
    )
    .await?;

    let after = org.independent_plan(&ctx.client).await?;
    if !after.operations.is_empty() {
        return Err(format!(
            "Opal has not converged: {} operation(s) remain, first {:?}",
            after.operations.len(),
            after.operations[0]
        )
        .into());
    }
    let (grant_calls, revoke_calls) = accepted_membership_writes(&org.opal.counters());
    if (grant_calls, revoke_calls) != (expected_grants, expected_revokes) {
        return Err(format!(
            "expected exactly {expected_grants} grant and {expected_revokes} revoke calls, Opal saw {grant_calls} and {revoke_calls}"
        )
        .into());
    }

    for mapping in &mappings {
        let key = ObjectKey::new(&ctx.namespace, mapping.name_any());
        let findings = after
            .mappings
            .get(&key)
            .ok_or("mapping missing from the plan")?;
        let status = mapping.status.as_ref().ok_or("no status")?;
        let ready = condition(&status.conditions, "Ready").ok_or("no Ready")?;
        let should_be_ready =
            findings.problems.is_empty() && findings.to_grant + findings.to_revoke == 0;
        let is_ready = ready.status == ConditionStatus::True;
        if is_ready != should_be_ready {
            return Err(format!(
                "{key}: Ready is {:?} ({}: {}) but the plan says ready={should_be_ready}",
                ready.status, ready.reason, ready.message
            )
            .into());
        }
        if ready.observed_generation != mapping.metadata.generation {
            return Err(format!("{key}: Ready condition is from an older generation").into());
        }
        if usize::try_from(status.desired_grants).ok() != Some(findings.desired_grants) {
            return Err(format!(
                "{key}: status says {} desired grants, the plan {}",
                status.desired_grants, findings.desired_grants
            )
            .into());
        }
    }

    // Drift: take away one membership the operator granted.
    let granted = expected
        .operations
        .iter()
        .find(|op| {
            op.action == ChangeAction::Grant
                && op.kind == TargetKind::Group
                && matches!(op.cause, Cause::Mapping(_))
        })
        .ok_or("no group grant in the first plan")?;
    let Cause::Mapping(owner) = &granted.cause else {
        return Err("unreachable: filtered on Mapping".into());
    };
    let state = org.opal.state();
    if !state.remove_group_member(
        &granted.target_id,
        &granted.user_id,
        &granted.access_level_remote_id,
    ) {
        return Err("the granted membership is not in the simulator".into());
    }
    let repaired_within = INTERVAL * 3 + Duration::from_secs(10);
    eventually(
        "the removed membership is granted again",
        repaired_within,
        || async {
            operator_alive(&operator)?;
            Ok(state
                .group_members(&granted.target_id)
                .iter()
                .any(|m| m.user_id == granted.user_id)
                .then_some(()))
        },
    )
    .await?;
    let owner_object = mappings_api.get(&owner.name).await?;
    eventually(
        "a Granted Event names the repaired grant",
        Duration::from_secs(20),
        || {
            let client = ctx.client.clone();
            let owner_object = owner_object.clone();
            let email = granted.user_email.clone();
            async move {
                let events = events_for(&client, &owner_object).await?;
                Ok(events
                    .iter()
                    .any(|(reason, note)| reason == "Granted" && note.contains(&email))
                    .then_some(()))
            }
        },
    )
    .await?;
    let final_plan = org.independent_plan(&ctx.client).await?;
    if !final_plan.operations.is_empty() {
        return Err("Opal drifted again after the repair".into());
    }
    operator.stop().await
}

/// With a resync interval far away, only the events feed can explain a quick repair of a
/// membership someone removed through Opal's API.
async fn a_change_made_in_opal_is_repaired_from_the_events_feed(
    ctx: TestContext,
) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "10m").await?;
    org.apply_manifests(&ctx.client).await?;
    let expected = org.independent_plan(&ctx.client).await?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: false,
            identity: "e2e-events".into(),
        },
    )
    .await?;
    // Converged and reported: the first sync, its confirming read included, is over.
    converged(&ctx.client, &org, &operator, Duration::from_secs(90)).await?;
    let granted = expected
        .operations
        .iter()
        .find(|op| {
            op.action == ChangeAction::Grant
                && op.kind == TargetKind::Group
                && matches!(op.cause, Cause::Mapping(_))
        })
        .ok_or("no group grant in the first plan")?;
    // A person removes the membership through Opal's API, which records an audit event.
    let admin = opal_operator::opal::Client::new(
        opal_operator::opal::ClientConfig {
            base_url: org.opal.base_url(),
            ..Default::default()
        },
        opal_operator::opal::ApiToken::new(org.opal.token())?,
    )?;
    let level = Some(granted.access_level_remote_id.as_str()).filter(|l| !l.is_empty());
    admin
        .revoke_group_user(&granted.target_id, &granted.user_id, level)
        .await?;
    let reads_before = org.opal.counters().calls("GET /groups/{group_id}/users");
    let state = org.opal.state();
    eventually(
        "the membership is granted again",
        Duration::from_secs(20),
        || async {
            operator.check_running()?;
            Ok(state
                .group_members(&granted.target_id)
                .iter()
                .any(|m| m.user_id == granted.user_id)
                .then_some(()))
        },
    )
    .await?;
    // Targeted: only the changed group was listed again, not every governed target.
    let reads = org.opal.counters().calls("GET /groups/{group_id}/users") - reads_before;
    if reads > 3 {
        return Err(
            format!("the repair listed {reads} groups; only the changed one was needed").into(),
        );
    }
    operator.stop().await
}

fn operator_alive(operator: &InProcessOperator) -> Result<(), Failed> {
    operator.check_running()
}

/// `revokeOnDelete` holds an Authoritative mapping (finalizer) until the grants only it
/// desired are revoked; a mapping without it is deleted at once and leaves Opal alone.
async fn deleting_a_mapping_with_revoke_on_delete_revokes_what_only_it_granted(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "3s").await?;
    for mapping in &mut org.manifests.role_mappings {
        if mapping.metadata.name.as_deref() == Some("legal") {
            mapping.spec.revoke_on_delete = true;
        }
    }
    org.apply_manifests(&ctx.client).await?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: INTERVAL,
            lease: false,
            identity: "e2e-revoke-on-delete".into(),
        },
    )
    .await?;
    converged(&ctx.client, &org, &operator, Duration::from_secs(90)).await?;
    let mappings = api::<RoleMapping>(&ctx.client, &ctx.namespace);
    let legal = eventually(
        "legal carries the finalizer",
        Duration::from_secs(30),
        || async {
            let legal = mappings.get("legal").await?;
            Ok(legal
                .finalizers()
                .iter()
                .any(|f| f == "opal-operator.io/revoke-on-delete")
                .then_some(legal))
        },
    )
    .await?;
    if mappings
        .get("finance")
        .await?
        .finalizers()
        .iter()
        .any(|f| f.contains("revoke-on-delete"))
    {
        return Err("finance has no revokeOnDelete and must not carry the finalizer".into());
    }
    let state = org.opal.state();
    let legal_group = state.group_id("Legal").ok_or("group Legal")?;
    let finance_group = state.group_id("Finance").ok_or("group Finance")?;
    let members = |group: &str| -> Vec<String> {
        state
            .group_members(group)
            .into_iter()
            .filter(|m| m.expiration_date.is_none())
            .map(|m| m.user_id)
            .collect()
    };
    let legal_before = members(&legal_group);
    let finance_before = members(&finance_group);
    if legal_before.is_empty() || finance_before.is_empty() {
        return Err("the sample org should grant Legal and Finance".into());
    }

    mappings.delete("finance", &Default::default()).await?;
    mappings.delete("legal", &Default::default()).await?;
    // Ten revocations at once exceed the sample's 5% limit: the deletion waits for a person
    // to approve that exact plan, like any other revocation.
    let policies = api::<AccessPolicy>(&ctx.client, &ctx.namespace);
    let hash = eventually(
        "the breaker holds the deletion",
        Duration::from_secs(30),
        || async {
            let policy = policies.get("baseline").await?;
            Ok(policy
                .status
                .and_then(|s| s.breaker)
                .and_then(|b| b.plan_hash))
        },
    )
    .await?;
    if mappings
        .get("legal")
        .await?
        .metadata
        .finalizers
        .is_none_or(|f| f.is_empty())
    {
        return Err("legal went before its revocations were approved".into());
    }
    let held_events = events_for(&ctx.client, &mappings.get("legal").await?).await?;
    if !held_events
        .iter()
        .any(|(reason, note)| reason == "DeletionHeld" && note.contains(&hash))
    {
        return Err(format!("no DeletionHeld Event naming plan {hash}: {held_events:?}").into());
    }
    policies
        .patch(
            "baseline",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"opal-operator.io/approve-plan": hash}}})),
        )
        .await?;
    let gone = eventually(
        "legal is gone once its grants are revoked",
        Duration::from_secs(60),
        || async {
            operator.check_running()?;
            Ok(mappings.get_opt("legal").await?.is_none().then_some(()))
        },
    )
    .await;
    if let Err(error) = gone {
        let legal = mappings.get_opt("legal").await?;
        return Err(format!(
            "{error:?}: {:?}",
            legal.map(|l| (l.metadata.finalizers, l.status))
        )
        .into());
    }
    let protected = [
        "breakglass-admin@acme.example",
        "it-automation@acme.example",
    ];
    let left: Vec<String> = members(&legal_group)
        .into_iter()
        .filter(|id| {
            state
                .user(id)
                .is_none_or(|u| !protected.contains(&u.email.as_str()))
        })
        .collect();
    if !left.is_empty() {
        return Err(format!(
            "{} of {} permanent Legal memberships survived the deletion: {left:?}",
            left.len(),
            legal_before.len()
        )
        .into());
    }
    if members(&finance_group) != finance_before {
        return Err("deleting finance (no revokeOnDelete) changed its group".into());
    }
    if legal.metadata.uid.is_none() {
        return Err("legal had no uid".into());
    }
    operator.stop().await
}
