//! ReviewSchedule live: the status shows the next scheduled run; the run-now annotation starts
//! exactly one Opal access review, recorded in status; the same value never starts another.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use libtest_mimic::Failed;
use opal_operator::crd::{ReviewSchedule, annotations};
use opal_operator::opal::{ApiToken, Client};
use serde_json::json;

use super::harness::{InProcessOperator, OperatorOptions, Org, api, eventually, is_true};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![e2e_trial!(run_now_starts_one_access_review)]
}

async fn run_now_starts_one_access_review(ctx: TestContext) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "10m").await?;
    org.apply_manifests(&ctx.client).await?;
    let schedule = org
        .manifests
        .review_schedules
        .first()
        .ok_or("the sample org has a ReviewSchedule")?;
    let name = schedule.metadata.name.clone().ok_or("named")?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: false,
            identity: "e2e-review".into(),
        },
    )
    .await?;
    let schedules = api::<ReviewSchedule>(&ctx.client, &ctx.namespace);
    let scheduled = eventually(
        "the schedule reports its next run",
        Duration::from_secs(60),
        || async {
            operator.check_running()?;
            let object = schedules.get(&name).await?;
            Ok(object
                .status
                .filter(|s| s.next_run.is_some() && is_true(&s.conditions, "Ready")))
        },
    )
    .await?;
    let next_run = scheduled.next_run.ok_or("next run")?;
    if next_run <= chrono::Utc::now() {
        return Err(format!("next run {next_run} is not in the future").into());
    }
    if !scheduled.active_campaigns.is_empty() {
        return Err("a campaign started before it was due".into());
    }

    let opal = Client::new(
        opal_operator::opal::ClientConfig {
            base_url: org.opal.base_url(),
            ..Default::default()
        },
        ApiToken::new(org.opal.token())?,
    )?;
    let before = opal.list_uars().await?.len();
    let annotate =
        |value: &str| json!({"metadata": {"annotations": {annotations::RUN_NOW: value}}});
    schedules
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&annotate("e2e-1")),
        )
        .await?;
    let started = eventually(
        "the run-now review is recorded",
        Duration::from_secs(60),
        || async {
            operator.check_running()?;
            let object = schedules.get(&name).await?;
            Ok(object.status.filter(|s| {
                s.last_run_now.as_deref() == Some("e2e-1") && !s.active_campaigns.is_empty()
            }))
        },
    )
    .await?;
    let uars = opal.list_uars().await?;
    if uars.len() != before + 1 {
        return Err(format!(
            "expected one new access review, Opal has {} (was {before})",
            uars.len()
        )
        .into());
    }
    let campaign = &started.active_campaigns[0];
    let uar = uars
        .iter()
        .find(|u| u.uar_id == campaign.uar_id)
        .ok_or("the campaign in status is not in Opal")?;
    if uar
        .deadline
        .is_none_or(|d| d <= chrono::Utc::now() + chrono::TimeDelta::days(13))
    {
        return Err(format!("the 14d deadline did not reach Opal: {:?}", uar.deadline).into());
    }
    if uar.uar_scope.is_none() {
        return Err("the review was created without its scope".into());
    }

    // A spec edit with the run-now value still in place starts nothing new.
    let edited = schedules
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deadline": "15d"}})),
        )
        .await?;
    eventually(
        "the edited schedule is reconciled",
        Duration::from_secs(30),
        || async {
            let object = schedules.get(&name).await?;
            Ok(object
                .status
                .filter(|s| s.observed_generation == edited.metadata.generation)
                .map(|_| ()))
        },
    )
    .await?;
    if opal.list_uars().await?.len() != before + 1 {
        return Err("the same run-now value started a second review".into());
    }
    operator.stop().await
}
