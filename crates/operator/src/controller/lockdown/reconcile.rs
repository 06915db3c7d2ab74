//! The Lockdown controller: the finalizer that releases a deleted lockdown, and its status view.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};

use crate::controller::objects::{Kind, generation, key_of};
use crate::controller::{ReconcileError, ReportContext, apply_status, status};
use crate::crd::{Lockdown, LockdownPhase};

pub(crate) async fn reconcile_lockdown(
    object: Arc<Lockdown>,
    context: Arc<ReportContext>,
) -> Result<Action, ReconcileError> {
    if !context.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let key = key_of(&*object);
    let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &key.namespace);
    finalizer(&api, super::FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => report_lockdown(&object, &context, &api).await,
            FinalizerEvent::Cleanup(object) => {
                let released = object
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(LockdownPhase::Released));
                if released {
                    Ok(Action::await_change())
                } else {
                    context.trigger.full("Lockdown deleted");
                    Err(ReconcileError::ReleasePending)
                }
            }
        }
    })
    .await
    .map_err(|error| match error {
        kube::runtime::finalizer::Error::ApplyFailed(error)
        | kube::runtime::finalizer::Error::CleanupFailed(error) => error,
        other => ReconcileError::Finalizer(other.to_string()),
    })
}

pub(super) async fn report_lockdown(
    object: &Lockdown,
    context: &ReportContext,
    api: &Api<Lockdown>,
) -> Result<Action, ReconcileError> {
    let Some(view) = context.view_for(Kind::Lockdown, object) else {
        return Ok(Action::await_change());
    };
    let current = object.status.clone().unwrap_or_default();
    let report = status::lockdown_status(
        &view,
        &key_of(object),
        generation(object),
        &current,
        Utc::now(),
    );
    if report != status::LockdownReport::shown_in(&current) {
        apply_status(api, &object.name_any(), &report).await?;
    }
    // An active lockdown must be released when it expires, even if nothing else happens.
    if let (Some(at), Some(LockdownPhase::Active)) = (report.expires_at, current.phase) {
        return Ok(match (at - Utc::now()).to_std() {
            Ok(wait) => Action::requeue(wait + Duration::from_millis(200)),
            Err(_) => {
                context.trigger.full("Lockdown expired");
                Action::requeue(Duration::from_secs(5))
            }
        });
    }
    Ok(Action::await_change())
}
