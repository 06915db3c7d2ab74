//! The AccessPolicy controller: reports each policy's findings from the global plan.

use std::sync::Arc;

use chrono::Utc;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::objects::{Kind, generation, key_of};
use super::{ReconcileError, ReportContext, apply_status, status};
use crate::crd::{AccessPolicy, AccessPolicyStatus};

pub(super) async fn reconcile_access_policy(
    object: Arc<AccessPolicy>,
    context: Arc<ReportContext>,
) -> Result<Action, ReconcileError> {
    if !context.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let Some(view) = context.view_for(Kind::AccessPolicy, &*object) else {
        return Ok(Action::await_change());
    };
    let key = key_of(&*object);
    let status = status::access_policy_status(
        &view,
        &key,
        generation(&*object),
        &context.operator_namespace,
        &object.spec.request_rules(key.clone()),
        object.status.as_ref(),
        Utc::now(),
    );
    // The decider owns `requests`; this controller neither sends nor compares it.
    let current = object.status.clone().map(|current| AccessPolicyStatus {
        requests: None,
        ..current
    });
    if current.as_ref() != Some(&status) {
        let api: Api<AccessPolicy> = Api::namespaced(context.kube.clone(), &key.namespace);
        apply_status(&api, &key.name, &status).await?;
    }
    Ok(Action::await_change())
}
