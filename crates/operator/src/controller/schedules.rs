//! The ReviewSchedule controller: starts Opal access reviews on schedule or on demand and keeps
//! the campaigns in status. Independent of the global plan; only the leader acts.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::objects::{generation, key_of};
use super::review::{self, ReviewDecision};
use super::status::Conditions;
use super::{ReconcileError, ReportContext, apply_status};
use crate::crd::{ReviewSchedule, ReviewScheduleStatus, annotations, condition_types};

pub(super) async fn reconcile(
    object: Arc<ReviewSchedule>,
    context: Arc<ReportContext>,
) -> Result<Action, ReconcileError> {
    if !context.leadership.is_leader() {
        // A follower looks again later; when it takes over, it acts on what is due.
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let key = key_of(&*object);
    let now = Utc::now();
    let created_at = object
        .meta()
        .creation_timestamp
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or(now);
    let current = object.status.clone().unwrap_or_default();
    let mut status = current.clone();
    let run_now = object
        .annotations()
        .get(annotations::RUN_NOW)
        .map(String::as_str);
    let outcome = match review::decide(&object.spec, Some(&current), run_now, created_at, now) {
        Ok(decision) => act(&context, &object, &key, decision, &mut status, now).await,
        Err(error) => Err(error),
    };
    let mut conditions = Conditions::new(&current.conditions, generation(&*object), now);
    let requeue = match &outcome {
        Ok(requeue) => {
            let suspended = object.spec.suspend;
            conditions.set(
                condition_types::READY,
                true,
                if suspended { "Suspended" } else { "Scheduled" },
                status
                    .next_run
                    .map(|at| format!("next campaign {}", at.to_rfc3339()))
                    .unwrap_or_default(),
            );
            conditions.set(
                condition_types::SYNCED,
                true,
                "ReconcileSuccess",
                review::NO_COMPLETION_DATA,
            );
            *requeue
        }
        Err(error) => {
            context
                .metrics
                .reconcile_error("ReviewSchedule", error.label());
            conditions.set(
                condition_types::READY,
                false,
                "ReconcileError",
                error.to_string(),
            );
            conditions.set(
                condition_types::SYNCED,
                false,
                "ReconcileError",
                error.to_string(),
            );
            Duration::from_secs(30)
        }
    };
    status.conditions = conditions.into_vec();
    status.observed_generation = Some(generation(&*object));
    if status != current {
        let api: Api<ReviewSchedule> = Api::namespaced(context.kube.clone(), &key.namespace);
        apply_status(&api, &key.name, &status).await?;
    }
    Ok(Action::requeue(requeue))
}

/// Starts the campaign the decision calls for and refreshes the active ones; returns when to
/// look again.
async fn act(
    context: &ReportContext,
    object: &ReviewSchedule,
    key: &crate::engine::ObjectKey,
    decision: ReviewDecision,
    status: &mut ReviewScheduleStatus,
    now: chrono::DateTime<Utc>,
) -> Result<Duration, review::ReviewError> {
    let opal = &context.opal;
    if let Some(reason) = &decision.run {
        let users = review::resolve_scope_users(opal, &object.spec).await?;
        let request = review::uar_request(key, &object.spec, reason, now, &users)?;
        let campaign = review::start_campaign(opal, &request, now).await?;
        tracing::info!(schedule = %key, uar = %campaign.uar_id, "access review started");
        review::record_campaign(status, campaign, reason, decision.next_run);
    } else {
        status.next_run = Some(decision.next_run);
    }
    review::refresh_campaigns(opal, status, now).await?;
    Ok(decision.requeue_after)
}
