//! Two operator processes (the built binary) compete for the Lease: one leads and converges
//! Opal, the leader is killed with SIGKILL, the other takes over within the lease duration and
//! repairs new drift, and no write is ever made twice.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use libtest_mimic::Failed;
use opal_operator::crd::{ChangeAction, TargetKind};
use opal_operator::engine::Cause;

use super::harness::{Org, accepted_membership_writes, eventually, spawn_operator_binary};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![e2e_trial!(
        a_follower_takes_over_when_the_leader_dies_and_no_write_is_doubled
    )]
}

const LEASE_SECONDS: u64 = 4;

fn write_calls(org: &Org) -> (u64, u64) {
    accepted_membership_writes(&org.opal.counters())
}

async fn holder(leases: &Api<Lease>) -> Result<Option<String>, Failed> {
    Ok(leases
        .get_opt("opal-operator")
        .await?
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity))
}

async fn a_follower_takes_over_when_the_leader_dies_and_no_write_is_doubled(
    ctx: TestContext,
) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "3s").await?;
    org.apply_manifests(&ctx.client).await?;
    let expected = org.independent_plan(&ctx.client).await?;
    let count = |action| {
        expected
            .operations
            .iter()
            .filter(|op| op.action == action)
            .count() as u64
    };
    let expected_writes = (count(ChangeAction::Grant), count(ChangeAction::Revoke));
    org.opal.reset_counters();

    // Mutex: the polling closures only need a moment's mutable access to ask for an exit.
    let first = Mutex::new(spawn_operator_binary(
        &ctx,
        &org,
        "operator-a",
        LEASE_SECONDS,
    )?);
    let second = Mutex::new(spawn_operator_binary(
        &ctx,
        &org,
        "operator-b",
        LEASE_SECONDS,
    )?);
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let leader = eventually(
        "one process holds the lease",
        Duration::from_secs(30),
        || async { Ok(holder(&leases).await?.filter(|h| !h.is_empty())) },
    )
    .await?;
    eventually(
        "Opal converges under the leader",
        Duration::from_secs(90),
        || async {
            for child in [&first, &second] {
                if let Some(status) = child.lock().map_err(|_| "poisoned")?.try_wait()? {
                    return Err(format!("an operator process exited: {status}").into());
                }
            }
            Ok(org
                .independent_plan(&ctx.client)
                .await?
                .operations
                .is_empty()
                .then_some(()))
        },
    )
    .await?;
    if write_calls(&org) != expected_writes {
        return Err(format!(
            "two replicas made {:?} (grant, revoke) calls; the plan needed exactly {expected_writes:?}",
            write_calls(&org)
        )
        .into());
    }

    let (dead, survivor, survivor_name) = if leader == "operator-a" {
        (
            first.into_inner().map_err(|_| "poisoned")?,
            second,
            "operator-b",
        )
    } else {
        (
            second.into_inner().map_err(|_| "poisoned")?,
            first,
            "operator-a",
        )
    };
    let mut dead = dead;
    dead.start_kill()?;
    dead.wait().await?;
    let takeover_limit = Duration::from_secs(LEASE_SECONDS * 3 + 5);
    eventually("the survivor takes the lease", takeover_limit, || async {
        Ok((holder(&leases).await?.as_deref() == Some(survivor_name)).then_some(()))
    })
    .await?;

    // New drift only the new leader can repair.
    let granted = expected
        .operations
        .iter()
        .find(|op| {
            op.action == ChangeAction::Grant
                && op.kind == TargetKind::Group
                && matches!(op.cause, Cause::Mapping(_))
        })
        .ok_or("no group grant in the first plan")?;
    let state = org.opal.state();
    if !state.remove_group_member(
        &granted.target_id,
        &granted.user_id,
        &granted.access_level_remote_id,
    ) {
        return Err("the granted membership is not in the simulator".into());
    }
    eventually(
        "the new leader repairs the drift",
        Duration::from_secs(30),
        || async {
            if let Some(status) = survivor.lock().map_err(|_| "poisoned")?.try_wait()? {
                return Err(format!("the surviving operator exited: {status}").into());
            }
            Ok(state
                .group_members(&granted.target_id)
                .iter()
                .any(|m| m.user_id == granted.user_id)
                .then_some(()))
        },
    )
    .await?;
    let writes = write_calls(&org);
    if writes != (expected_writes.0 + 1, expected_writes.1) {
        return Err(format!(
            "after the takeover Opal saw {writes:?} (grant, revoke) calls; exactly {:?} were needed",
            (expected_writes.0 + 1, expected_writes.1)
        )
        .into());
    }
    let mut survivor = survivor.into_inner().map_err(|_| "poisoned")?;
    survivor.start_kill()?;
    survivor.wait().await?;
    Ok(())
}
