//! Lockdown lifecycle: the revocation record (status, overflowing into a Secret), phase and
//! time-to-lockdown, and release with restore on expiry or deletion (finalizer).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::objects::{Inputs, key_of};
use super::sync::SyncContext;
use crate::crd::{Lockdown, LockdownPhase, RevokedGrant, TargetKind};
use crate::engine::{HrState, Plan, World};
use crate::hris::EmploymentStatus;
use crate::opal::model::GrantSpec;

/// Holds a Lockdown until its release (and restore) is done.
pub const FINALIZER: &str = "opal-operator.io/lockdown-release";

/// Revoked grants kept in status; the full record goes to `recordSecretName` beyond this.
pub const STATUS_RECORD_LIMIT: usize = 100;

/// Key of the full record in the record Secret.
pub const RECORD_KEY: &str = "revoked.json";

const FIELD_MANAGER: &str = "opal-operator";

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("record Secret {name} holds no readable {RECORD_KEY}: {message}")]
    Unreadable { name: String, message: String },
}

/// What a release restored.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub restored: usize,
    /// The grants that are back.
    pub restored_grants: Vec<RevokedGrant>,
    /// Grants not restored, with why (terminated in HR, still locked, expired).
    pub skipped: Vec<String>,
    pub failures: Vec<String>,
    pub restore_requested: bool,
}

impl RestoreReport {
    pub fn summary(&self) -> String {
        if !self.restore_requested {
            return "released; restoreOnRelease is false, nothing restored".into();
        }
        let mut text = format!("released; restored {} grant(s)", self.restored);
        if !self.skipped.is_empty() {
            text.push_str(&format!(", skipped {}", self.skipped.len()));
        }
        if !self.failures.is_empty() {
            text.push_str(&format!(
                ", {} failed (first: {})",
                self.failures.len(),
                self.failures[0]
            ));
        }
        text
    }
}

fn grant_key(grant: &RevokedGrant) -> (TargetKind, String, String, String) {
    (
        grant.kind,
        grant.target_id.clone(),
        grant.user_id.clone(),
        grant.access_level_remote_id.clone(),
    )
}

/// The full record: status, or the Secret when the status holds only the first part.
pub async fn load_record(
    client: &kube::Client,
    lockdown: &Lockdown,
) -> Result<Vec<RevokedGrant>, RecordError> {
    let Some(status) = &lockdown.status else {
        return Ok(Vec::new());
    };
    let in_status = status.revoked.clone();
    let Some(secret_name) = &lockdown.spec.record_secret_name else {
        return Ok(in_status);
    };
    if usize::try_from(status.revoked_count).unwrap_or_default() <= in_status.len() {
        return Ok(in_status);
    }
    let secrets: Api<Secret> =
        Api::namespaced(client.clone(), &lockdown.namespace().unwrap_or_default());
    let secret = secrets.get(secret_name).await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(RECORD_KEY))
        .map(|b| b.0.clone())
        .ok_or_else(|| RecordError::Unreadable {
            name: secret_name.clone(),
            message: "key missing".into(),
        })?;
    serde_json::from_slice(&bytes).map_err(|error| RecordError::Unreadable {
        name: secret_name.clone(),
        message: error.to_string(),
    })
}

/// Adds `new` grants to the lockdown's record (deduplicated) and marks it Pending until the
/// revocations are confirmed.
pub async fn append_record(
    context: &SyncContext,
    lockdown: &Lockdown,
    new: Vec<RevokedGrant>,
) -> Result<(), RecordError> {
    let mut record = load_record(&context.kube, lockdown).await?;
    let mut seen: BTreeSet<_> = record.iter().map(grant_key).collect();
    for grant in new {
        if seen.insert(grant_key(&grant)) {
            record.push(grant);
        }
    }
    let namespace = lockdown.namespace().unwrap_or_default();
    if record.len() > STATUS_RECORD_LIMIT
        && let Some(secret_name) = &lockdown.spec.record_secret_name
    {
        write_record_secret(context, lockdown, &namespace, secret_name, &record).await?;
    }
    let shown: Vec<&RevokedGrant> = record.iter().take(STATUS_RECORD_LIMIT).collect();
    let phase = lockdown
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(LockdownPhase::Pending);
    let patch = json!({
        "status": {
            "phase": phase,
            "revoked": shown,
            "revokedCount": i32::try_from(record.len()).unwrap_or(i32::MAX),
            "recordComplete": record.len() <= STATUS_RECORD_LIMIT,
        }
    });
    let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &namespace);
    api.patch_status(
        &lockdown.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

async fn write_record_secret(
    context: &SyncContext,
    lockdown: &Lockdown,
    namespace: &str,
    name: &str,
    record: &[RevokedGrant],
) -> Result<(), RecordError> {
    let body = serde_json::to_vec(record).map_err(|error| RecordError::Unreadable {
        name: name.to_owned(),
        message: error.to_string(),
    })?;
    let owner = lockdown.controller_owner_ref(&());
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "opal-operator".to_owned(),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(RECORD_KEY.to_owned(), ByteString(body))])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(context.kube.clone(), namespace);
    secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(())
}

/// After a sync: lockdowns whose revocations are all done become `Active` (with
/// time-to-lockdown); ones with revocations left stay `Pending`.
pub async fn note_progress(
    context: &SyncContext,
    inputs: &Inputs,
    confirmation: &Plan,
    now: DateTime<Utc>,
) {
    for input in inputs.lockdowns.iter().filter(|l| !l.released) {
        let Some(findings) = confirmation.lockdowns.get(&input.key) else {
            continue;
        };
        let cached_phase = context
            .stores
            .lockdown(&input.key)
            .and_then(|o| o.status.as_ref().and_then(|s| s.phase));
        if !findings.active || findings.to_revoke > 0 || cached_phase == Some(LockdownPhase::Active)
        {
            continue;
        }
        let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &input.key.namespace);
        // The cache may lag this sync's own record write; the activation is decided (and
        // announced) once, from the object as stored.
        let object = match api.get(&input.key.name).await {
            Ok(object) => object,
            Err(error) => {
                tracing::warn!(lockdown = %input.key, %error, "cannot read lockdown");
                continue;
            }
        };
        let status = object.status.clone().unwrap_or_default();
        if status.phase == Some(LockdownPhase::Active) {
            continue;
        }
        let created = object.meta().creation_timestamp.as_ref().map(|t| t.0);
        let elapsed_ms = created.map(|c| {
            let created =
                DateTime::<Utc>::from_timestamp(c.as_second(), c.subsec_nanosecond().max(0) as u32)
                    .unwrap_or(now);
            (now - created).num_milliseconds().max(0)
        });
        let patch = json!({
            "status": {
                "phase": LockdownPhase::Active,
                "activatedAt": status.activated_at.unwrap_or(now),
                "timeToLockdownMs": elapsed_ms,
                "recordComplete": usize::try_from(status.revoked_count).unwrap_or_default() <= status.revoked.len(),
            }
        });
        let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &input.key.namespace);
        match api
            .patch_status(
                &input.key.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                if let Some(notifier) = &context.notifier {
                    notifier.lockdown_activated(&object, &input.key, &status.revoked, now);
                }
                if let Some(ms) = elapsed_ms {
                    context
                        .metrics
                        .observe_time_to_revoke("lockdown", ms as f64 / 1000.0);
                }
                context.events.normal(
                    &object,
                    "Active",
                    "Lockdown",
                    format!(
                        "lockdown in force: {} user(s), {} target(s), {} grant(s) revoked",
                        findings.locked_users, findings.locked_targets, status.revoked_count
                    ),
                );
            }
            Err(error) => {
                tracing::warn!(lockdown = %input.key, %error, "cannot mark lockdown Active")
            }
        }
    }
}

/// Releases a lockdown that expired or is being deleted: restores its record when asked
/// (except to people HR shows terminated and to subjects another lockdown still holds), then
/// marks it `Released` so the finalizer can go. `granted` holds the grants this sync's plan
/// already made or found (keyed like the record): they count as restored without a second call.
pub async fn release(
    context: &SyncContext,
    lockdown: &Lockdown,
    world: &World,
    inputs: &Inputs,
    granted: &BTreeSet<(TargetKind, String, String, String)>,
    now: DateTime<Utc>,
) -> RestoreReport {
    let key = key_of(lockdown);
    let mut report = RestoreReport {
        restore_requested: lockdown.spec.restore_on_release,
        ..RestoreReport::default()
    };
    if lockdown.spec.restore_on_release {
        match load_record(&context.kube, lockdown).await {
            Ok(record) => {
                let (done, record): (Vec<_>, Vec<_>) = record
                    .into_iter()
                    .partition(|grant| granted.contains(&grant_key(grant)));
                report.restored += done.len();
                restore(context, &key, record, world, inputs, now, &mut report).await
            }
            Err(error) => report
                .failures
                .push(format!("cannot read the record: {error}")),
        }
    }
    if !report.failures.is_empty() {
        // Keep the finalizer: the next sync tries again.
        let patch =
            json!({"status": {"phase": LockdownPhase::Failed, "failures": report.failures}});
        let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &key.namespace);
        if let Err(error) = api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(lockdown = %key, %error, "cannot record release failure");
        }
        return report;
    }
    let patch = json!({
        "status": {
            "phase": LockdownPhase::Released,
            "releasedAt": now,
            "restoredCount": i32::try_from(report.restored).unwrap_or(i32::MAX),
            "failures": [],
        }
    });
    let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &key.namespace);
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            if let Some(notifier) = &context.notifier {
                notifier.lockdown_released(lockdown, &key, &report.restored_grants, now);
            }
        }
        Err(error) => report
            .failures
            .push(format!("cannot mark released: {error}")),
    }
    report
}

async fn restore(
    context: &SyncContext,
    key: &crate::engine::ObjectKey,
    record: Vec<RevokedGrant>,
    world: &World,
    inputs: &Inputs,
    now: DateTime<Utc>,
    report: &mut RestoreReport,
) {
    if let HrState::Failed(message) = &world.hr {
        // Restoring could hand access back to someone HR has since terminated: wait.
        report
            .failures
            .push(format!("HR unavailable, release deferred: {message}"));
        return;
    }
    let terminated: BTreeSet<String> = match &world.hr {
        HrState::Snapshot(employees) | HrState::Incomplete { employees, .. } => employees
            .iter()
            .filter(|e| e.status == EmploymentStatus::Terminated)
            .map(|e| e.email.to_lowercase())
            .collect(),
        HrState::Failed(_) => BTreeSet::new(),
    };
    let mut still_locked_users = BTreeSet::new();
    let mut still_locked_targets = BTreeSet::new();
    for other in inputs
        .lockdowns
        .iter()
        .filter(|l| !l.released && l.key != *key)
    {
        for subject in &other.spec.subjects {
            still_locked_users.extend(subject.email.iter().map(|e| e.to_lowercase()));
            still_locked_users.extend(subject.opal_user_id.iter().cloned());
            for reference in subject.group.iter().chain(subject.resource.iter()) {
                still_locked_targets.extend(reference.id.iter().cloned());
                still_locked_targets.extend(reference.name.iter().cloned());
            }
        }
    }
    let mut due = Vec::new();
    for grant in record {
        let why_not = if terminated.contains(&grant.email.to_lowercase()) {
            Some("terminated in HR")
        } else if still_locked_users.contains(&grant.email.to_lowercase())
            || still_locked_users.contains(&grant.user_id)
            || still_locked_targets.contains(&grant.target_id)
            || still_locked_targets.contains(&grant.target_name)
        {
            Some("another lockdown holds it")
        } else if grant.expiration_date.is_some_and(|at| at <= now) {
            Some("its time-bound grant has expired")
        } else {
            None
        };
        match why_not {
            Some(reason) => report
                .skipped
                .push(format!("{} → {}: {reason}", grant.email, grant.target_name)),
            None => due.push(grant),
        }
    }
    let opal = &context.sources.opal;
    for grant in &due {
        context
            .own_writes
            .record(grant.kind, &grant.target_id, &grant.user_id, true);
    }
    let results: Vec<Result<RevokedGrant, String>> = stream::iter(due)
        .map(|grant| async move {
            // A time-bound grant comes back with the time it had left.
            let duration_minutes = grant
                .expiration_date
                .map(|at| (at - now).num_minutes().max(1))
                .unwrap_or(0);
            let spec = GrantSpec {
                duration_minutes,
                access_level_remote_id: Some(grant.access_level_remote_id.clone())
                    .filter(|l| !l.is_empty()),
            };
            let result = match grant.kind {
                TargetKind::Group => opal
                    .grant_group_user(&grant.target_id, &grant.user_id, &spec)
                    .await
                    .map(|_| ()),
                TargetKind::Resource => opal
                    .grant_resource_user(&grant.target_id, &grant.user_id, &spec)
                    .await
                    .map(|_| ()),
            };
            result
                .map(|()| grant.clone())
                .map_err(|error| format!("{} → {}: {error}", grant.email, grant.target_name))
        })
        .buffer_unordered(context.sources.concurrency.max(1))
        .collect()
        .await;
    for result in results {
        match result {
            Ok(grant) => {
                report.restored += 1;
                report.restored_grants.push(grant);
            }
            Err(message) => report.failures.push(message),
        }
    }
}
