//! The operator binary is killed with SIGKILL several times in the middle of applying hundreds
//! of writes, against an Opal that answers slowly and loses a tenth of its write answers (the
//! change is made, the reply never arrives). Each new process starts from what Opal holds: the
//! end state is exactly the planned one, and every write Opal acted on more than once is
//! explained by an answer it lost.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use libtest_mimic::Failed;
use opal_operator::crd::{ChangeAction, TargetKind};
use opal_operator::engine::Plan;
use opal_operator::sim::opal::{CounterSnapshot, FaultConfig, GrantTarget};

use super::harness::{Org, eventually, spawn_operator_binary};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![e2e_trial!(
        killed_mid_apply_under_lost_answers_it_converges_exactly_and_repeats_only_lost_writes
    )]
}

const LEASE_SECONDS: u64 = 3;
/// Processes killed before the one left to finish.
const KILLS: u64 = 3;
const LOST_ANSWER_RATE: f64 = 0.1;
const LATENCY: Duration = Duration::from_millis(30);
/// The birthright group every active employee holds; emptying it makes hundreds of grants due.
const BIRTHRIGHT_GROUP: &str = "All Employees";
const FEWEST_PLANNED_WRITES: u64 = 300;

/// A direct grant: target, user id, access level remote id.
type Holding = (GrantTarget, String, String);

fn holdings(org: &Org) -> BTreeSet<Holding> {
    org.opal
        .state()
        .all_grants()
        .into_iter()
        .map(|grant| (grant.target, grant.user_id, grant.access_level.remote_id))
        .collect()
}

/// What Opal holds once every operation of the plan has been made, each exactly once.
fn planned_end_state(mut held: BTreeSet<Holding>, plan: &Plan) -> BTreeSet<Holding> {
    for op in &plan.operations {
        let target = match op.kind {
            TargetKind::Group => GrantTarget::Group(op.target_id.clone()),
            TargetKind::Resource => GrantTarget::Resource(op.target_id.clone()),
        };
        let holding = (
            target,
            op.user_id.clone(),
            op.access_level_remote_id.clone(),
        );
        match op.action {
            ChangeAction::Grant => held.insert(holding),
            ChangeAction::Revoke => held.remove(&holding),
        };
    }
    held
}

/// Distinct membership writes Opal acted on (a repeat counts once).
fn distinct_membership_writes(counters: &CounterSnapshot) -> usize {
    counters
        .handled_writes
        .keys()
        .filter(|write| {
            let path = write.split(' ').nth(1).unwrap_or_default();
            let segments: Vec<&str> = path
                .split('?')
                .next()
                .unwrap_or_default()
                .split('/')
                .collect();
            matches!(
                segments.as_slice(),
                ["", "v1", "groups" | "resources", _, "users", _]
            )
        })
        .count()
}

async fn killed_mid_apply_under_lost_answers_it_converges_exactly_and_repeats_only_lost_writes(
    ctx: TestContext,
) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "3s").await?;
    let state = org.opal.state();
    let birthright = state
        .group_id(BIRTHRIGHT_GROUP)
        .ok_or("the sample org has no birthright group")?;
    for member in state.group_members(&birthright) {
        state.remove_group_member(&birthright, &member.user_id, &member.access_level.remote_id);
    }
    org.apply_manifests(&ctx.client).await?;
    let plan = org.independent_plan(&ctx.client).await?;
    let planned_writes = plan.operations.len() as u64;
    if planned_writes < FEWEST_PLANNED_WRITES {
        return Err(format!(
            "the plan has {planned_writes} writes; the trial needs at least {FEWEST_PLANNED_WRITES}"
        )
        .into());
    }
    let expected = planned_end_state(holdings(&org), &plan);
    org.opal.set_latency(LATENCY);
    org.opal.set_faults(FaultConfig {
        lost_answer_rate: LOST_ANSWER_RATE,
        ..FaultConfig::none()
    });
    org.opal.reset_counters();

    for round in 1..=KILLS {
        let identity = format!("operator-{round}");
        let operator = Mutex::new(spawn_operator_binary(&ctx, &org, &identity, LEASE_SECONDS)?);
        let threshold = planned_writes * round / (KILLS + 1);
        eventually(
            &format!("{identity} brings Opal's handled writes to {threshold}"),
            Duration::from_secs(60),
            || async {
                if let Some(status) = operator.lock().map_err(|_| "poisoned")?.try_wait()? {
                    return Err(format!("{identity} exited: {status}").into());
                }
                Ok((org.opal.counters().handled_write_count() >= threshold).then_some(()))
            },
        )
        .await?;
        let mut operator = operator.into_inner().map_err(|_| "poisoned")?;
        operator.start_kill()?;
        operator.wait().await?;
        if holdings(&org) == expected {
            return Err(format!("{identity} finished applying before it was killed").into());
        }
    }

    let last = Mutex::new(spawn_operator_binary(
        &ctx,
        &org,
        "operator-last",
        LEASE_SECONDS,
    )?);
    eventually(
        "the last process brings Opal to the planned end state",
        Duration::from_secs(120),
        || async {
            if let Some(status) = last.lock().map_err(|_| "poisoned")?.try_wait()? {
                return Err(format!("the last operator exited: {status}").into());
            }
            Ok((holdings(&org) == expected).then_some(()))
        },
    )
    .await?;
    let mut last = last.into_inner().map_err(|_| "poisoned")?;
    last.start_kill()?;
    last.wait().await?;

    let counters = org.opal.counters();
    let repeats = counters.unexplained_repeats();
    if !repeats.is_empty() {
        return Err(format!("writes repeated without a lost answer: {repeats:?}").into());
    }
    if counters.lost_answers == 0 {
        return Err("no answer was lost: the fault under test never fired".into());
    }
    let distinct = distinct_membership_writes(&counters) as u64;
    if distinct != planned_writes {
        return Err(format!(
            "Opal acted on {distinct} distinct membership writes; the plan had {planned_writes}"
        )
        .into());
    }
    org.opal.set_faults(FaultConfig::none());
    org.opal.set_latency(Duration::ZERO);
    let after = org.independent_plan(&ctx.client).await?;
    if !after.operations.is_empty() {
        return Err(format!(
            "an independent plan still finds {} operations",
            after.operations.len()
        )
        .into());
    }
    Ok(())
}
