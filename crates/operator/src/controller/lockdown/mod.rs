//! Lockdown lifecycle: the revocation record, phase and time-to-lockdown, and release with
//! restore on expiry or deletion (finalizer).
//!
//! The record that restores read is a Secret in the operator namespace, one per Lockdown
//! (named after its UID), written only by the operator and before it revokes anything: a
//! tenant who may edit Lockdowns, their status or Secrets in their own namespace can never
//! make a restore grant what the operator did not revoke. The status keeps a sample for
//! people to read. Each part of the status has one writer, a server-side apply field
//! manager of its own, so a writer working from a lagging cache never overwrites another's
//! fields.

mod reconcile;

pub(crate) use reconcile::reconcile_lockdown;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::objects::{Inputs, key_of};
use super::sync::SyncContext;
use crate::crd::{Lockdown, LockdownPhase, RevokedGrant, TargetKind};
use crate::engine::{GrantKey, ObjectKey, Plan, RestoreSkip, World, plan_restore};
use crate::opal::model::GrantSpec;

/// Holds a Lockdown until its release (and restore) is done.
pub const FINALIZER: &str = "opal-operator.io/lockdown-release";

/// Revoked grants shown in status; the record itself has no limit.
pub const STATUS_RECORD_LIMIT: usize = 100;

/// Key of the record in its Secret.
pub const RECORD_KEY: &str = "revoked.json";

/// Annotations binding a record Secret to its Lockdown.
pub const RECORD_UID_ANNOTATION: &str = "opal-operator.io/lockdown-uid";
pub const RECORD_OWNER_ANNOTATION: &str = "opal-operator.io/lockdown";

/// Field manager of `status.revoked`, `revokedCount` and `recordComplete`.
const RECORD_MANAGER: &str = "opal-operator/lockdown-record";
/// Field manager of the phase and the activation and release fields.
const LIFECYCLE_MANAGER: &str = "opal-operator/lockdown-lifecycle";
/// Field manager of the record Secrets.
const SECRET_MANAGER: &str = "opal-operator";

/// Why the record could not be read, trusted or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Lockdown has no UID yet")]
    NoUid,
    #[error(
        "record Secret {namespace}/{name} is missing although {count} revoked grant(s) were recorded; nothing is restored (restore by hand from status.revoked, or set restoreOnRelease: false to release without restoring)"
    )]
    Missing {
        namespace: String,
        name: String,
        count: i32,
    },
    #[error(
        "record Secret {namespace}/{name} failed verification ({problem}); nothing is restored (restore by hand from status.revoked, or set restoreOnRelease: false to release without restoring)"
    )]
    Rejected {
        namespace: String,
        name: String,
        problem: String,
    },
}

impl RecordError {
    /// The record exists but cannot be trusted (as opposed to a Kubernetes API failure).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            RecordError::Missing { .. } | RecordError::Rejected { .. }
        )
    }
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
    /// The record failed verification: nothing was restored.
    pub record_rejected: bool,
}

impl RestoreReport {
    pub fn summary(&self) -> String {
        if !self.restore_requested {
            return "released; restoreOnRelease is false, nothing restored".into();
        }
        if self.record_rejected {
            return self.failures.first().cloned().unwrap_or_default();
        }
        let mut text = format!("released; restored {} grant(s)", self.restored);
        if !self.skipped.is_empty() {
            text.push_str(&format!(
                ", skipped {} (first: {})",
                self.skipped.len(),
                self.skipped[0]
            ));
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

/// Name of the record Secret of the Lockdown with `uid`.
pub fn record_secret_name(uid: &str) -> String {
    format!("lockdown-record-{uid}")
}

/// The operator's lockdown records, in the operator namespace.
pub struct Records<'a> {
    secrets: Api<Secret>,
    namespace: &'a str,
}

impl<'a> Records<'a> {
    pub fn new(client: &kube::Client, operator_namespace: &'a str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), operator_namespace),
            namespace: operator_namespace,
        }
    }

    /// The verified record of `lockdown`, read fresh from the API. No Secret is an empty
    /// record only while the status shows nothing revoked.
    pub async fn load(&self, lockdown: &Lockdown) -> Result<Vec<RevokedGrant>, RecordError> {
        let uid = lockdown.uid().ok_or(RecordError::NoUid)?;
        let name = record_secret_name(&uid);
        let Some(secret) = self.secrets.get_opt(&name).await? else {
            let count = lockdown.status.as_ref().map_or(0, |s| s.revoked_count);
            if count > 0 {
                return Err(RecordError::Missing {
                    namespace: self.namespace.to_owned(),
                    name,
                    count,
                });
            }
            return Ok(Vec::new());
        };
        let rejected = |problem: String| RecordError::Rejected {
            namespace: self.namespace.to_owned(),
            name: name.clone(),
            problem,
        };
        let annotations = secret.annotations();
        let owner = key_of(lockdown).to_string();
        if annotations.get(RECORD_UID_ANNOTATION) != Some(&uid)
            || annotations.get(RECORD_OWNER_ANNOTATION) != Some(&owner)
        {
            return Err(rejected(format!(
                "it is not bound to Lockdown {owner} ({uid})"
            )));
        }
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(RECORD_KEY))
            .ok_or_else(|| rejected(format!("no {RECORD_KEY}")))?;
        serde_json::from_slice(&bytes.0).map_err(|error| rejected(error.to_string()))
    }

    /// Adds `new` grants to the record (deduplicated) and returns the whole record.
    pub async fn append(
        &self,
        lockdown: &Lockdown,
        new: Vec<RevokedGrant>,
    ) -> Result<Vec<RevokedGrant>, RecordError> {
        let mut record = self.load(lockdown).await?;
        let before = record.len();
        let mut seen: BTreeSet<GrantKey> = record.iter().map(GrantKey::of_revoked).collect();
        for grant in new {
            if seen.insert(GrantKey::of_revoked(&grant)) {
                record.push(grant);
            }
        }
        if record.len() != before || before == 0 {
            self.write(lockdown, &record).await?;
        }
        Ok(record)
    }

    async fn write(&self, lockdown: &Lockdown, record: &[RevokedGrant]) -> Result<(), RecordError> {
        let uid = lockdown.uid().ok_or(RecordError::NoUid)?;
        let name = record_secret_name(&uid);
        let body = serde_json::to_vec(record).map_err(|error| RecordError::Rejected {
            namespace: self.namespace.to_owned(),
            name: name.clone(),
            problem: error.to_string(),
        })?;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "opal-operator".to_owned(),
                )])),
                annotations: Some(BTreeMap::from([
                    (RECORD_UID_ANNOTATION.to_owned(), uid),
                    (
                        RECORD_OWNER_ANNOTATION.to_owned(),
                        key_of(lockdown).to_string(),
                    ),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(RECORD_KEY.to_owned(), ByteString(body))])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        self.secrets
            .patch(
                &name,
                &PatchParams::apply(SECRET_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        Ok(())
    }

    /// Removes a released lockdown's record (already gone is fine).
    pub async fn delete(&self, lockdown: &Lockdown) -> Result<(), RecordError> {
        let uid = lockdown.uid().ok_or(RecordError::NoUid)?;
        match self
            .secrets
            .delete(&record_secret_name(&uid), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// Server-side applies `status` (a JSON object) to the Lockdown as `manager`.
async fn apply_status(
    context: &SyncContext,
    key: &ObjectKey,
    manager: &str,
    status: serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &key.namespace);
    let body = json!({
        "apiVersion": Lockdown::api_version(&()),
        "kind": Lockdown::kind(&()),
        "status": status,
    });
    api.patch_status(
        &key.name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

/// Adds `new` grants to the lockdown's record and shows the record in its status.
pub async fn append_record(
    context: &SyncContext,
    lockdown: &Lockdown,
    new: Vec<RevokedGrant>,
) -> Result<(), RecordError> {
    let records = Records::new(&context.kube, &context.sources.operator_namespace);
    let record = records.append(lockdown, new).await?;
    let shown: Vec<&RevokedGrant> = record.iter().take(STATUS_RECORD_LIMIT).collect();
    let status = json!({
        "revoked": shown,
        "revokedCount": i32::try_from(record.len()).unwrap_or(i32::MAX),
        "recordComplete": record.len() <= STATUS_RECORD_LIMIT,
    });
    apply_status(context, &key_of(lockdown), RECORD_MANAGER, status).await?;
    Ok(())
}

/// The fields the lifecycle writer owns. Server-side apply drops an owned field the writer
/// leaves out, so every write carries them all, read fresh from the API.
#[derive(Clone, Debug, Default)]
struct Lifecycle {
    phase: Option<LockdownPhase>,
    activated_at: Option<DateTime<Utc>>,
    time_to_lockdown_ms: Option<i64>,
    released_at: Option<DateTime<Utc>>,
    restored_count: i32,
    release_failures: Vec<String>,
}

impl Lifecycle {
    fn of(lockdown: &Lockdown) -> Self {
        let status = lockdown.status.clone().unwrap_or_default();
        Self {
            phase: status.phase,
            activated_at: status.activated_at,
            time_to_lockdown_ms: status.time_to_lockdown_ms,
            released_at: status.released_at,
            restored_count: status.restored_count,
            release_failures: status.release_failures,
        }
    }

    async fn apply(&self, context: &SyncContext, key: &ObjectKey) -> Result<(), kube::Error> {
        let mut status = serde_json::Map::new();
        let mut set = |field: &str, value: serde_json::Value| {
            if !value.is_null() {
                status.insert(field.to_owned(), value);
            }
        };
        set("phase", json!(self.phase));
        set("activatedAt", json!(self.activated_at));
        set("timeToLockdownMs", json!(self.time_to_lockdown_ms));
        set("releasedAt", json!(self.released_at));
        set("restoredCount", json!(self.restored_count));
        set("releaseFailures", json!(self.release_failures));
        apply_status(context, key, LIFECYCLE_MANAGER, status.into()).await
    }
}

/// The Lockdown as stored now, for a decision the cache may be too old for.
async fn fresh(context: &SyncContext, key: &ObjectKey) -> Result<Option<Lockdown>, kube::Error> {
    let api: Api<Lockdown> = Api::namespaced(context.kube.clone(), &key.namespace);
    api.get_opt(&key.name).await
}

/// After a sync: lockdowns in force whose revocations are all done become `Active` (with
/// time-to-lockdown, an Event, a notification and a metric sample, exactly once); ones with
/// revocations left are `Pending`. Decided from the object as stored, never from the cache.
pub async fn note_progress(
    context: &SyncContext,
    inputs: &Inputs,
    confirmation: &Plan,
    now: DateTime<Utc>,
) {
    for input in &inputs.lockdowns {
        let Some(findings) = confirmation.lockdowns.get(&input.key) else {
            continue;
        };
        let cached_phase = context
            .stores
            .lockdown(&input.key)
            .and_then(|o| o.status.as_ref().and_then(|s| s.phase));
        if !findings.active || cached_phase == Some(LockdownPhase::Active) {
            continue;
        }
        if findings.to_revoke > 0 && cached_phase.is_some() {
            continue;
        }
        let object = match fresh(context, &input.key).await {
            Ok(Some(object)) => object,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(lockdown = %input.key, %error, "cannot read lockdown");
                continue;
            }
        };
        let mut lifecycle = Lifecycle::of(&object);
        match lifecycle.phase {
            Some(LockdownPhase::Active | LockdownPhase::Released) => continue,
            _ if findings.to_revoke > 0 => {
                if lifecycle.phase.is_none() {
                    lifecycle.phase = Some(LockdownPhase::Pending);
                    if let Err(error) = lifecycle.apply(context, &input.key).await {
                        tracing::warn!(lockdown = %input.key, %error, "cannot mark lockdown Pending");
                    }
                }
                continue;
            }
            _ => {}
        }
        let created = object.meta().creation_timestamp.as_ref().map(|t| t.0);
        let elapsed_ms = created.map(|c| {
            let created =
                DateTime::<Utc>::from_timestamp(c.as_second(), c.subsec_nanosecond().max(0) as u32)
                    .unwrap_or(now);
            (now - created).num_milliseconds().max(0)
        });
        lifecycle.phase = Some(LockdownPhase::Active);
        lifecycle.activated_at = lifecycle.activated_at.or(Some(now));
        lifecycle.time_to_lockdown_ms = elapsed_ms;
        if let Err(error) = lifecycle.apply(context, &input.key).await {
            tracing::warn!(lockdown = %input.key, %error, "cannot mark lockdown Active");
            continue;
        }
        let status = object.status.clone().unwrap_or_default();
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
}

/// Releases a lockdown that expired or is being deleted: restores its verified record when
/// asked, as the engine decides (never to people HR shows terminated; grants another
/// lockdown in force holds are handed to that lockdown's record instead), then marks it
/// `Released` so the finalizer can go. `granted` holds what this sync's plan already granted.
pub async fn release(
    context: &SyncContext,
    lockdown: &Lockdown,
    world: &World,
    granted: &BTreeSet<GrantKey>,
    now: DateTime<Utc>,
) -> RestoreReport {
    let key = key_of(lockdown);
    let records = Records::new(&context.kube, &context.sources.operator_namespace);
    let mut report = RestoreReport {
        restore_requested: lockdown.spec.restore_on_release,
        ..RestoreReport::default()
    };
    if lockdown.spec.restore_on_release {
        match records.load(lockdown).await {
            Ok(record) => restore(context, record, world, granted, now, &mut report).await,
            Err(error) => {
                report.record_rejected = error.is_rejection();
                report
                    .failures
                    .push(format!("cannot use the record: {error}"));
            }
        }
    }
    let mut lifecycle = match fresh(context, &key).await {
        Ok(Some(object)) => Lifecycle::of(&object),
        Ok(None) => return report,
        Err(error) => {
            report
                .failures
                .push(format!("cannot read the lockdown: {error}"));
            return report;
        }
    };
    if !report.failures.is_empty() {
        // Keep the finalizer: the next sync tries again.
        lifecycle.phase = Some(LockdownPhase::Failed);
        lifecycle.release_failures = report.failures.clone();
        if let Err(error) = lifecycle.apply(context, &key).await {
            tracing::warn!(lockdown = %key, %error, "cannot record release failure");
        }
        return report;
    }
    lifecycle.phase = Some(LockdownPhase::Released);
    lifecycle.released_at = Some(now);
    lifecycle.restored_count = i32::try_from(report.restored).unwrap_or(i32::MAX);
    lifecycle.release_failures = Vec::new();
    match lifecycle.apply(context, &key).await {
        Ok(()) => {
            if let Err(error) = records.delete(lockdown).await {
                tracing::warn!(lockdown = %key, %error, "cannot delete the released record");
            }
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
    record: Vec<RevokedGrant>,
    world: &World,
    granted: &BTreeSet<GrantKey>,
    now: DateTime<Utc>,
    report: &mut RestoreReport,
) {
    let decision = match plan_restore(world, record, granted, now) {
        Ok(decision) => decision,
        Err(deferred) => {
            report.failures.push(deferred.to_string());
            return;
        }
    };
    let mut handed_over: BTreeMap<ObjectKey, Vec<RevokedGrant>> = BTreeMap::new();
    for (grant, skip) in decision.skipped {
        match skip {
            RestoreSkip::AlreadyGranted => report.restored += 1,
            RestoreSkip::HeldBy(holder) => {
                report.skipped.push(format!(
                    "{} → {}: {}",
                    grant.email,
                    grant.target_name,
                    RestoreSkip::HeldBy(holder.clone()).describe()
                ));
                handed_over.entry(holder).or_default().push(grant);
            }
            other => report.skipped.push(format!(
                "{} → {}: {}",
                grant.email,
                grant.target_name,
                other.describe()
            )),
        }
    }
    for (holder, grants) in handed_over {
        // The holder restores them when it is released; until it has them, this release
        // is not done.
        let result = match context.stores.lockdown(&holder) {
            Some(object) => append_record(context, &object, grants)
                .await
                .map_err(|error| error.to_string()),
            None => Err("it is not in the cache yet".to_owned()),
        };
        if let Err(error) = result {
            report.failures.push(format!(
                "cannot hand held grants to lockdown {holder}: {error}"
            ));
        }
    }
    let opal = &context.sources.opal;
    for grant in &decision.due {
        context
            .own_writes
            .record(grant.kind, &grant.target_id, &grant.user_id, true);
    }
    let results: Vec<Result<RevokedGrant, String>> = stream::iter(decision.due)
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

#[cfg(test)]
mod tests;
