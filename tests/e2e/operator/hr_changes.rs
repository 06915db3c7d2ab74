//! HR changes reach Opal: a role change and a termination announced by a signed BambooHR
//! webhook are applied long before the next resync could explain them, and a termination
//! nobody announces is picked up by polling. Both record time-to-revoke by trigger.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use libtest_mimic::Failed;
use opal_operator::crd::ChangeAction;
use opal_operator::engine::Plan;

use super::harness::{
    HeldGrant, InProcessOperator, OperatorOptions, Org, converged, eventually, held_grants,
    metric_sample, notify_bamboohr_change, opal_user_id, operation_grant, scrape_metrics,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(role_change_and_termination_by_webhook),
        e2e_trial!(termination_by_polling),
    ]
}

const CONVERGENCE: Duration = Duration::from_secs(90);
/// Far longer than any trial: only a webhook can explain a change.
const LONG_INTERVAL: Duration = Duration::from_secs(600);
/// How long a webhook-driven change may take (a targeted sync is milliseconds of work).
const WEBHOOK_LIMIT: Duration = Duration::from_secs(20);

/// An SRE in San Francisco who moves to Sales.
const MOVER_ID: &str = "1062";
const MOVER_EMAIL: &str = "katarzyna.chen@acme.example";
/// A San Francisco engineer who also holds ungoverned legacy access (`legacy-vpn-users`).
const LEAVER_ID: &str = "1072";
const LEAVER_EMAIL: &str = "anja.eriksson@acme.example";
/// A New York engineer, terminated without a webhook.
const POLLED_LEAVER_ID: &str = "1049";
const POLLED_LEAVER_EMAIL: &str = "sakura.banerjee@acme.example";

const TIME_TO_REVOKE_COUNT: &str = "opal_operator_time_to_revoke_seconds_count";

async fn time_to_revoke_samples(
    operator: &InProcessOperator,
    trigger: &str,
) -> Result<f64, Failed> {
    let (_, text) = scrape_metrics(operator).await?;
    Ok(metric_sample(&text, TIME_TO_REVOKE_COUNT, &[("trigger", trigger)]).unwrap_or(0.0))
}

/// The grants `plan` adds and removes, failing when it touches anyone but `user_id`.
fn planned_changes(
    plan: &Plan,
    user_id: &str,
    what: &str,
) -> Result<(BTreeSet<HeldGrant>, BTreeSet<HeldGrant>), Failed> {
    if let Some(other) = plan.operations.iter().find(|op| op.user_id != user_id) {
        return Err(format!(
            "{what}: the plan also changes someone else: {} {} on {}",
            if other.action == ChangeAction::Grant {
                "grant"
            } else {
                "revoke"
            },
            other.user_email,
            other.target_label()
        )
        .into());
    }
    let of = |action| {
        plan.operations
            .iter()
            .filter(|op| op.action == action)
            .map(operation_grant)
            .collect::<BTreeSet<_>>()
    };
    Ok((of(ChangeAction::Grant), of(ChangeAction::Revoke)))
}

fn names_of(plan: &Plan, action: ChangeAction) -> BTreeSet<String> {
    plan.operations
        .iter()
        .filter(|op| op.action == action)
        .map(|op| op.target_name.clone())
        .collect()
}

async fn role_change_and_termination_by_webhook(ctx: TestContext) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "10m").await?;
    org.apply_manifests(&ctx.client).await?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: LONG_INTERVAL,
            lease: true,
            identity: "e2e-hr-webhook".into(),
        },
    )
    .await?;
    converged(&ctx.client, &org, &operator, CONVERGENCE).await?;

    // A role change: Engineering SRE → Sales Account Executive.
    let mover = opal_user_id(&org, MOVER_EMAIL)?;
    let before = held_grants(&org, &mover);
    let roster = org.hr.roster();
    if !roster.update(MOVER_ID, |employee| {
        employee.department = Some("Sales".into());
        employee.title = Some("Account Executive".into());
    }) {
        return Err(format!("employee {MOVER_ID} is not in the HR simulator").into());
    }
    let expected = org.independent_plan(&ctx.client).await?;
    let (to_grant, to_revoke) = planned_changes(&expected, &mover, "role change")?;
    let granted_names = names_of(&expected, ChangeAction::Grant);
    let revoked_names = names_of(&expected, ChangeAction::Revoke);
    for name in ["Sales", "Salesforce"] {
        if !granted_names.contains(name) {
            return Err(format!(
                "the role change should grant {name}; plan grants {granted_names:?}"
            )
            .into());
        }
    }
    // Authoritative mappings on the old role's targets take those grants away.
    for name in [
        "Engineering",
        "SRE On-Call",
        "GitHub: acme/monorepo",
        "PagerDuty",
    ] {
        if !revoked_names.contains(name) {
            return Err(format!(
                "the role change should revoke {name}; plan revokes {revoked_names:?}"
            )
            .into());
        }
    }
    if !to_revoke.is_subset(&before) || !to_grant.is_disjoint(&before) {
        return Err("the independent plan disagrees with the simulator's grants".into());
    }
    let after_move: BTreeSet<HeldGrant> = before
        .difference(&to_revoke)
        .cloned()
        .chain(to_grant.iter().cloned())
        .collect();

    let sent = Instant::now();
    notify_bamboohr_change(&operator, MOVER_ID, &["department", "jobTitle"]).await?;
    eventually(
        "the mover's grants follow the new role",
        WEBHOOK_LIMIT,
        || async {
            operator.check_running()?;
            Ok((held_grants(&org, &mover) == after_move).then_some(()))
        },
    )
    .await?;
    let took = sent.elapsed();
    let remaining = org.independent_plan(&ctx.client).await?;
    if !remaining.operations.is_empty() {
        return Err(format!(
            "after the role change {} operation(s) remain, first {:?}",
            remaining.operations.len(),
            remaining.operations[0]
        )
        .into());
    }
    let webhook_samples = time_to_revoke_samples(&operator, "webhook").await?;
    if webhook_samples < 1.0 {
        return Err(
            "the role change revoked grants but no webhook time-to-revoke was recorded".into(),
        );
    }
    eprintln!("role change applied {took:?} after the webhook");

    // A termination, effective today: offboarding revokes everything (`revoke: All`).
    let leaver = opal_user_id(&org, LEAVER_EMAIL)?;
    let held = held_grants(&org, &leaver);
    let legacy_vpn = org
        .opal
        .state()
        .group_id("legacy-vpn-users")
        .ok_or("no legacy-vpn-users group")?;
    if !held.iter().any(|(_, id, _)| *id == legacy_vpn) {
        return Err(format!("{LEAVER_EMAIL} should hold the ungoverned legacy VPN group").into());
    }
    if !roster.terminate(LEAVER_ID, Utc::now().date_naive()) {
        return Err(format!("employee {LEAVER_ID} is not in the HR simulator").into());
    }
    let expected = org.independent_plan(&ctx.client).await?;
    let (to_grant, to_revoke) = planned_changes(&expected, &leaver, "termination")?;
    if !to_grant.is_empty() || to_revoke != held {
        return Err(format!(
            "offboarding should revoke exactly the {} grant(s) the leaver holds; plan grants {} and revokes {}",
            held.len(),
            to_grant.len(),
            to_revoke.len()
        )
        .into());
    }
    let sent = Instant::now();
    notify_bamboohr_change(
        &operator,
        LEAVER_ID,
        &["employmentHistoryStatus", "terminationDate"],
    )
    .await?;
    eventually(
        "every grant of the leaver is revoked",
        WEBHOOK_LIMIT,
        || async {
            operator.check_running()?;
            Ok(held_grants(&org, &leaver).is_empty().then_some(()))
        },
    )
    .await?;
    let took = sent.elapsed();
    let remaining = org.independent_plan(&ctx.client).await?;
    if !remaining.operations.is_empty() {
        return Err(format!(
            "after the termination {} operation(s) remain, first {:?}",
            remaining.operations.len(),
            remaining.operations[0]
        )
        .into());
    }
    if held_grants(&org, &mover) != after_move {
        return Err("the termination changed the mover's grants".into());
    }
    eventually(
        "a webhook time-to-revoke sample for the termination",
        Duration::from_secs(5),
        || async {
            let samples = time_to_revoke_samples(&operator, "webhook").await?;
            Ok((samples >= webhook_samples + 1.0).then_some(()))
        },
    )
    .await?;
    eprintln!("termination applied {took:?} after the webhook");
    operator.stop().await
}

async fn termination_by_polling(ctx: TestContext) -> Result<(), Failed> {
    const INTERVAL: Duration = Duration::from_secs(3);
    let org = Org::start(&ctx.namespace, "3s").await?;
    org.apply_manifests(&ctx.client).await?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: INTERVAL,
            lease: true,
            identity: "e2e-hr-poll".into(),
        },
    )
    .await?;
    converged(&ctx.client, &org, &operator, CONVERGENCE).await?;
    // Convergence itself may have revoked (seeded leavers): count only what comes after.
    let poll_samples = time_to_revoke_samples(&operator, "poll").await?;
    let webhook_samples = time_to_revoke_samples(&operator, "webhook").await?;

    let leaver = opal_user_id(&org, POLLED_LEAVER_EMAIL)?;
    let held = held_grants(&org, &leaver);
    if held.is_empty() {
        return Err(format!("{POLLED_LEAVER_EMAIL} should hold grants after convergence").into());
    }
    if !org
        .hr
        .roster()
        .terminate(POLLED_LEAVER_ID, Utc::now().date_naive())
    {
        return Err(format!("employee {POLLED_LEAVER_ID} is not in the HR simulator").into());
    }
    let terminated = Instant::now();
    eventually(
        "the leaver's grants are revoked by polling",
        INTERVAL * 3 + Duration::from_secs(5),
        || async {
            operator.check_running()?;
            Ok(held_grants(&org, &leaver).is_empty().then_some(()))
        },
    )
    .await?;
    eprintln!(
        "termination picked up by polling after {:?}",
        terminated.elapsed()
    );
    let remaining = org.independent_plan(&ctx.client).await?;
    if !remaining.operations.is_empty() {
        return Err(format!(
            "after the termination {} operation(s) remain, first {:?}",
            remaining.operations.len(),
            remaining.operations[0]
        )
        .into());
    }
    eventually(
        "a poll time-to-revoke sample for the termination",
        Duration::from_secs(5),
        || async {
            let samples = time_to_revoke_samples(&operator, "poll").await?;
            Ok((samples >= poll_samples + 1.0).then_some(()))
        },
    )
    .await?;
    if time_to_revoke_samples(&operator, "webhook").await? != webhook_samples {
        return Err("no webhook was sent, yet a webhook time-to-revoke was recorded".into());
    }
    operator.stop().await
}
