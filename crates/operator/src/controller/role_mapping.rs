//! The RoleMapping controller: reports each mapping's part of the global plan in its status,
//! and holds a `revokeOnDelete` mapping being deleted until what only it desired is revoked.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::objects::{Kind, generation, key_of};
use super::{ReconcileError, ReportContext, apply_status, objects, status};
use crate::crd::{RoleMapping, annotations};

pub(super) async fn reconcile_role_mapping(
    object: Arc<RoleMapping>,
    context: Arc<ReportContext>,
) -> Result<Action, ReconcileError> {
    if !context.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let key = key_of(&*object);
    let api: Api<RoleMapping> = Api::namespaced(context.kube.clone(), &key.namespace);
    let holds = object
        .finalizers()
        .iter()
        .any(|f| f == objects::REVOKE_ON_DELETE_FINALIZER);
    if object.metadata.deletion_timestamp.is_some() {
        if holds {
            return retire_role_mapping(&object, &context, &api).await;
        }
        return Ok(Action::await_change());
    }
    if holds != object.spec.rules().revokes_on_delete() {
        let mut finalizers: Vec<String> = object
            .finalizers()
            .iter()
            .filter(|f| *f != objects::REVOKE_ON_DELETE_FINALIZER)
            .cloned()
            .collect();
        if !holds {
            finalizers.push(objects::REVOKE_ON_DELETE_FINALIZER.to_owned());
        }
        set_finalizers(&api, &object, finalizers).await?;
    }
    let Some(view) = context.view_for(Kind::RoleMapping, &*object) else {
        return Ok(Action::await_change());
    };
    let paused = object
        .annotations()
        .get(annotations::PAUSED)
        .map(String::as_str)
        == Some("true");
    let status = status::role_mapping_status(
        &view,
        &key,
        generation(&*object),
        paused,
        object.status.as_ref(),
        Utc::now(),
    );
    if object.status.as_ref() != Some(&status) {
        apply_status(&api, &key.name, &status).await?;
    }
    Ok(Action::await_change())
}

/// A RoleMapping with `revokeOnDelete` being deleted: it stays (finalizer) until a sync that
/// planned it as retiring left nothing of it to revoke.
pub(super) async fn retire_role_mapping(
    object: &RoleMapping,
    context: &ReportContext,
    api: &Api<RoleMapping>,
) -> Result<Action, ReconcileError> {
    let key = key_of(object);
    let Some(view) = context.view_for(Kind::RoleMapping, object) else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let done = view.error.is_none()
        && !view.mapping_failures.contains_key(&key)
        && view
            .plan
            .mappings
            .get(&key)
            .is_none_or(|findings| findings.to_revoke == 0 || !findings.enforced);
    if !done {
        // Held by a failure, the breaker or the HR gate: the next sync tries again.
        let reason = if view.plan.breaker.tripped && !view.plan.breaker.approved {
            format!(
                "held by the revocation breaker ({}); approve plan {} on the AccessPolicy",
                view.plan.breaker.reason, view.plan.revocation_hash
            )
        } else if let Some(gate) = &view.plan.hr_gate {
            format!("held by the HR flood gate: {gate}")
        } else if let Some(error) = &view.error {
            error.message.clone()
        } else {
            "revocations are still being made".to_owned()
        };
        context.events.warning(
            object,
            "DeletionHeld",
            "Delete",
            format!(
                "revokeOnDelete: the grants only this mapping desired are not revoked yet: {reason}"
            ),
        );
        context.trigger.full("RoleMapping being deleted");
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let finalizers = object
        .finalizers()
        .iter()
        .filter(|f| *f != objects::REVOKE_ON_DELETE_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, object, finalizers).await?;
    Ok(Action::await_change())
}

/// Replaces the finalizer list, guarded by the resource version so a concurrent change to the
/// list is retried rather than lost.
pub(super) async fn set_finalizers<K>(
    api: &Api<K>,
    object: &K,
    finalizers: Vec<String>,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": object.meta().resource_version,
        }
    });
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
#[path = "role_mapping_tests.rs"]
mod tests;
