//! Lockdowns against the running operator: every grant of the locked user is revoked at once
//! (governed or not), none comes back while the lockdown holds, and the recorded set is
//! restored exactly when the Lockdown is deleted or expires.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use libtest_mimic::Failed;
use opal_operator::controller::LOCKDOWN_FINALIZER;
use opal_operator::crd::{Lockdown, LockdownPhase, TargetKind};
use opal_operator::sim::opal::{AccessLevel, GrantSnapshot, GrantTarget, SimUser};
use serde_json::json;

use super::harness::{
    InProcessOperator, OperatorOptions, Org, api, converged, events_for, eventually, is_true,
    membership_writes, sync_rounds,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(lockdown_revokes_everything_and_restores_on_delete),
        e2e_trial!(an_expiring_lockdown_is_released),
    ]
}

const INTERVAL: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(60);
/// The ungoverned target the locked user is given on top of their birthright access.
const UNGOVERNED_RESOURCE: &str = "Legacy Jenkins";
/// A RoleMapping whose status shows each sync.
const WITNESS: &str = "all-employees";

/// A grant as the simulator and the Lockdown record both name it.
type GrantKey = (TargetKind, String, String);

fn key_of_snapshot(grant: &GrantSnapshot) -> GrantKey {
    let (kind, id) = match &grant.target {
        GrantTarget::Group(id) => (TargetKind::Group, id.clone()),
        GrantTarget::Resource(id) => (TargetKind::Resource, id.clone()),
    };
    (kind, id, grant.access_level.remote_id.clone())
}

fn grants_of(org: &Org, user_id: &str) -> BTreeSet<GrantKey> {
    org.opal
        .state()
        .user_grants(user_id)
        .iter()
        .map(key_of_snapshot)
        .collect()
}

/// Opal ids of the groups and resources the sample RoleMappings name.
fn governed_targets(org: &Org) -> BTreeSet<(TargetKind, String)> {
    let state = org.opal.state();
    let mut governed = BTreeSet::new();
    for mapping in &org.manifests.role_mappings {
        for grant in &mapping.spec.grants {
            let group = grant.group.as_ref().and_then(|g| g.name.as_deref());
            let resource = grant.resource.as_ref().and_then(|r| r.name.as_deref());
            if let Some(id) = group.and_then(|name| state.group_id(name)) {
                governed.insert((TargetKind::Group, id));
            }
            if let Some(id) = resource.and_then(|name| state.resource_id(name)) {
                governed.insert((TargetKind::Resource, id));
            }
        }
    }
    governed
}

/// The user with the most permanent grants, holding at least two groups and two resources
/// the RoleMappings govern, then given `UNGOVERNED_RESOURCE` directly. Returns the user and
/// every grant they hold.
fn locked_user(org: &Org) -> Result<(SimUser, BTreeSet<GrantKey>), Failed> {
    let state = org.opal.state();
    let governed = governed_targets(org);
    let protected: BTreeSet<String> = org
        .manifests
        .access_policies
        .iter()
        .filter_map(|p| p.spec.safety.as_ref())
        .flat_map(|s| s.protected_users.iter().map(|e| e.to_lowercase()))
        .collect();
    let jenkins = state
        .resource_id(UNGOVERNED_RESOURCE)
        .ok_or("the sample org has no Legacy Jenkins")?;
    if governed.contains(&(TargetKind::Resource, jenkins.clone())) {
        return Err(format!("{UNGOVERNED_RESOURCE} is governed by a RoleMapping").into());
    }
    let candidate = state
        .users()
        .into_iter()
        .filter(|user| !protected.contains(&user.email.to_lowercase()))
        .filter_map(|user| {
            let grants = state.user_grants(&user.user_id);
            if grants.iter().any(|g| g.expiration_date.is_some()) {
                return None;
            }
            let keys: Vec<GrantKey> = grants.iter().map(key_of_snapshot).collect();
            let governed_of = |kind| {
                keys.iter()
                    .filter(|(k, id, _)| *k == kind && governed.contains(&(kind, id.clone())))
                    .count()
            };
            let holds_jenkins = keys.iter().any(|(_, id, _)| *id == jenkins);
            (governed_of(TargetKind::Group) >= 2
                && governed_of(TargetKind::Resource) >= 2
                && !holds_jenkins)
                .then_some((keys.len(), user))
        })
        .max_by(|(a, ua), (b, ub)| a.cmp(b).then_with(|| ub.email.cmp(&ua.email)))
        .map(|(_, user)| user)
        .ok_or("no user holds two governed groups and two governed resources")?;
    state
        .add_resource_user(&jenkins, &candidate.user_id, AccessLevel::default(), None)
        .map_err(|e| format!("granting {UNGOVERNED_RESOURCE}: {e}"))?;
    let grants = grants_of(org, &candidate.user_id);
    if !grants.iter().any(|(_, id, _)| *id == jenkins) {
        return Err("the ungoverned grant did not land in the simulator".into());
    }
    Ok((candidate, grants))
}

fn lockdown_manifest(
    namespace: &str,
    name: &str,
    email: &str,
    duration: &str,
) -> Result<Lockdown, Failed> {
    let manifest = serde_json::from_value(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "subjects": [{"email": email}],
            "reason": "e2e: suspected credential compromise",
            "incident": "INC-4242",
            "duration": duration,
            "restoreOnRelease": true,
        }
    }))?;
    Ok(manifest)
}

fn recorded(lockdown: &Lockdown) -> BTreeSet<GrantKey> {
    lockdown
        .status
        .iter()
        .flat_map(|s| &s.revoked)
        .map(|g| {
            (
                g.kind,
                g.target_id.clone(),
                g.access_level_remote_id.clone(),
            )
        })
        .collect()
}

fn phase(lockdown: &Lockdown) -> Option<LockdownPhase> {
    lockdown.status.as_ref().and_then(|s| s.phase)
}

/// Starts the operator on the sample org and waits until Opal has converged.
async fn converged_org(ctx: &TestContext) -> Result<(Org, InProcessOperator), Failed> {
    let org = Org::start(&ctx.namespace, "2s").await?;
    org.apply_manifests(&ctx.client).await?;
    let operator = InProcessOperator::start(
        ctx,
        &org,
        OperatorOptions {
            interval: INTERVAL,
            lease: false,
            identity: "e2e-lockdown".into(),
        },
    )
    .await?;
    converged(&ctx.client, &org, &operator, SETTLE).await?;
    Ok((org, operator))
}

/// Waits until the Lockdown is `Active` with its Active condition and checks what it revoked
/// against what the user held.
async fn wait_active(
    ctx: &TestContext,
    org: &Org,
    operator: &InProcessOperator,
    name: &str,
    user: &SimUser,
    held: &BTreeSet<GrantKey>,
) -> Result<Lockdown, Failed> {
    let lockdowns = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let active = eventually("the Lockdown is Active", SETTLE, || {
        let lockdowns = lockdowns.clone();
        async move {
            operator.check_running()?;
            let lockdown = lockdowns.get(name).await?;
            let ready = phase(&lockdown) == Some(LockdownPhase::Active)
                && lockdown
                    .status
                    .as_ref()
                    .is_some_and(|s| is_true(&s.conditions, "Active"));
            Ok(ready.then_some(lockdown))
        }
    })
    .await?;
    let left = grants_of(org, &user.user_id);
    if !left.is_empty() {
        return Err(format!("{} still holds {left:?} while locked", user.email).into());
    }
    let status = active.status.as_ref().ok_or("no status")?;
    if usize::try_from(status.revoked_count).ok() != Some(held.len()) {
        return Err(format!(
            "revokedCount is {}, the user held {} grant(s)",
            status.revoked_count,
            held.len()
        )
        .into());
    }
    if recorded(&active) != *held {
        return Err(format!(
            "status.revoked {:?} differs from what the user held {held:?}",
            recorded(&active)
        )
        .into());
    }
    if status.revoked.iter().any(|g| g.email != user.email) {
        return Err("status.revoked names someone other than the locked user".into());
    }
    if status.time_to_lockdown_ms.is_none_or(|ms| ms < 0) {
        return Err(format!("timeToLockdownMs is {:?}", status.time_to_lockdown_ms).into());
    }
    if status.activated_at.is_none() {
        return Err("activatedAt is not set".into());
    }
    if !active.finalizers().iter().any(|f| f == LOCKDOWN_FINALIZER) {
        return Err(format!(
            "the finalizer {LOCKDOWN_FINALIZER} is missing: {:?}",
            active.finalizers()
        )
        .into());
    }
    let (_, revoke_calls) = membership_writes(&org.opal.counters());
    if revoke_calls != held.len() as u64 {
        return Err(format!(
            "{revoke_calls} revoke call(s) for {} grant(s): each should be revoked exactly once",
            held.len()
        )
        .into());
    }
    Ok(active)
}

async fn lockdown_revokes_everything_and_restores_on_delete(
    ctx: TestContext,
) -> Result<(), Failed> {
    let (org, operator) = converged_org(&ctx).await?;
    let running = &operator;
    let (user, held) = locked_user(&org)?;
    org.opal.reset_counters();

    let lockdowns = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let name = "suspend-user";
    lockdowns
        .create(
            &PostParams::default(),
            &lockdown_manifest(&ctx.namespace, name, &user.email, "1h")?,
        )
        .await?;
    let active = wait_active(&ctx, &org, &operator, name, &user, &held).await?;
    eventually("Events on the Lockdown", Duration::from_secs(20), || {
        let client = ctx.client.clone();
        let active = active.clone();
        async move {
            let reasons: BTreeSet<String> = events_for(&client, &active)
                .await?
                .into_iter()
                .map(|(reason, _)| reason)
                .collect();
            Ok((reasons.contains("Revoked") && reasons.contains("Active")).then_some(()))
        }
    })
    .await?;

    // Resyncs while the lockdown holds: the mappings still select the user, yet nothing of
    // theirs comes back and no grant call is made at all (Opal had converged).
    let grants_before = membership_writes(&org.opal.counters()).0;
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        WITNESS,
        2,
        INTERVAL * 6 + Duration::from_secs(10),
        || {
            running.check_running()?;
            let regranted = grants_of(&org, &user.user_id);
            if !regranted.is_empty() {
                return Err(format!("re-granted while locked: {regranted:?}").into());
            }
            Ok(())
        },
    )
    .await?;
    let grants_after = membership_writes(&org.opal.counters()).0;
    if grants_after != grants_before {
        return Err(format!(
            "{} grant call(s) while the lockdown held",
            grants_after - grants_before
        )
        .into());
    }
    let still = lockdowns.get(name).await?;
    if phase(&still) != Some(LockdownPhase::Active) {
        return Err(format!("phase changed to {:?} while in force", phase(&still)).into());
    }
    one_writer_per_status_field(&ctx, &still).await?;

    lockdowns.delete(name, &DeleteParams::default()).await?;
    eventually(
        "the deleted Lockdown is released and removed",
        SETTLE,
        || {
            let lockdowns = lockdowns.clone();
            async move {
                running.check_running()?;
                Ok(lockdowns.get_opt(name).await?.is_none().then_some(()))
            }
        },
    )
    .await?;
    let restored = grants_of(&org, &user.user_id);
    if restored != held {
        let missing: Vec<_> = held.difference(&restored).collect();
        let extra: Vec<_> = restored.difference(&held).collect();
        return Err(format!(
            "after release the user's grants differ from those revoked: missing {missing:?}, extra {extra:?}"
        )
        .into());
    }
    let (grant_calls, _) = membership_writes(&org.opal.counters());
    if grant_calls != held.len() as u64 {
        return Err(format!(
            "{grant_calls} grant call(s) to restore {} grant(s): each should be made exactly once",
            held.len()
        )
        .into());
    }
    eventually("a Released Event", Duration::from_secs(20), || {
        let client = ctx.client.clone();
        let active = active.clone();
        async move {
            let events = events_for(&client, &active).await?;
            Ok(events
                .iter()
                .any(|(reason, note)| reason == "Released" && note.contains("restored"))
                .then_some(()))
        }
    })
    .await?;
    // The restored grants stay: nothing revokes them on the next syncs either.
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        WITNESS,
        1,
        INTERVAL * 4 + Duration::from_secs(10),
        || Ok(()),
    )
    .await?;
    if grants_of(&org, &user.user_id) != held {
        return Err("restored grants did not survive the next sync".into());
    }
    operator.stop().await
}

async fn an_expiring_lockdown_is_released(ctx: TestContext) -> Result<(), Failed> {
    let (org, operator) = converged_org(&ctx).await?;
    let running = &operator;
    let (user, held) = locked_user(&org)?;
    org.opal.reset_counters();

    let lockdowns = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let name = "brief-suspension";
    lockdowns
        .create(
            &PostParams::default(),
            &lockdown_manifest(&ctx.namespace, name, &user.email, "5s")?,
        )
        .await?;
    let active = wait_active(&ctx, &org, &operator, name, &user, &held).await?;
    let activated_at = active
        .status
        .as_ref()
        .and_then(|s| s.activated_at)
        .ok_or("no activatedAt")?;

    let released = eventually(
        "the expired Lockdown is Released",
        Duration::from_secs(5) + INTERVAL * 4 + Duration::from_secs(20),
        || {
            let lockdowns = lockdowns.clone();
            async move {
                running.check_running()?;
                let lockdown = lockdowns.get(name).await?;
                Ok((phase(&lockdown) == Some(LockdownPhase::Released)).then_some(lockdown))
            }
        },
    )
    .await?;
    let status = released.status.as_ref().ok_or("no status")?;
    let released_at = status.released_at.ok_or("releasedAt is not set")?;
    if released_at < activated_at + chrono::Duration::seconds(5) {
        return Err(format!(
            "released at {released_at}, before the 5s duration from activation at {activated_at} ran out"
        )
        .into());
    }
    if status.restored_count <= 0 {
        return Err(format!("restoredCount is {}", status.restored_count).into());
    }
    if usize::try_from(status.restored_count).ok() != Some(held.len()) {
        return Err(format!(
            "restoredCount is {}, the lockdown revoked {}",
            status.restored_count,
            held.len()
        )
        .into());
    }
    let restored = grants_of(&org, &user.user_id);
    if restored != held {
        let missing: Vec<_> = held.difference(&restored).collect();
        return Err(format!("after expiry, grants not restored: {missing:?}").into());
    }
    let (grant_calls, _) = membership_writes(&org.opal.counters());
    if grant_calls != held.len() as u64 {
        return Err(format!(
            "{grant_calls} grant call(s) to restore {} grant(s): each should be made exactly once",
            held.len()
        )
        .into());
    }
    if released
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, "Active"))
    {
        // The condition follows the phase on the next report.
        eventually(
            "Active=False after release",
            Duration::from_secs(20),
            || {
                let lockdowns = lockdowns.clone();
                async move {
                    let lockdown = lockdowns.get(name).await?;
                    Ok((!lockdown
                        .status
                        .as_ref()
                        .is_some_and(|s| is_true(&s.conditions, "Active")))
                    .then_some(()))
                }
            },
        )
        .await?;
    }
    // The object stays (only deletion removes it), and stays released over further syncs.
    sync_rounds(
        &ctx.client,
        &ctx.namespace,
        WITNESS,
        1,
        INTERVAL * 4 + Duration::from_secs(10),
        || Ok(()),
    )
    .await?;
    let after = lockdowns
        .get_opt(name)
        .await?
        .ok_or("the released Lockdown disappeared")?;
    if phase(&after) != Some(LockdownPhase::Released) {
        return Err(format!("phase went from Released to {:?}", phase(&after)).into());
    }
    if grants_of(&org, &user.user_id) != held {
        return Err("the user lost restored access after release".into());
    }
    operator.stop().await
}

/// Each part of the status has exactly one field manager, so a writer that works from a stale
/// cache cannot undo another's fields: replaying the Lockdown controller's part as it looked
/// before the record (what a lagging cache holds) leaves the record and the phase alone, and
/// the activation is announced once.
async fn one_writer_per_status_field(ctx: &TestContext, active: &Lockdown) -> Result<(), Failed> {
    let expected: [(&str, &[&str]); 3] = [
        (
            "opal-operator/status",
            &["conditions", "expiresAt", "failures", "observedGeneration"],
        ),
        (
            "opal-operator/lockdown-record",
            &["recordComplete", "revoked", "revokedCount"],
        ),
        (
            "opal-operator/lockdown-lifecycle",
            &[
                "activatedAt",
                "phase",
                "releaseFailures",
                "restoredCount",
                "timeToLockdownMs",
            ],
        ),
    ];
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in active.metadata.managed_fields.iter().flatten() {
        if entry.subresource.as_deref() != Some("status") {
            continue;
        }
        let fields = entry
            .fields_v1
            .as_ref()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        let status = fields.get("f:status").and_then(|s| s.as_object());
        let names = status
            .into_iter()
            .flat_map(|s| s.keys())
            .filter_map(|k| k.strip_prefix("f:").map(str::to_owned));
        owners
            .entry(entry.manager.clone().unwrap_or_default())
            .or_default()
            .extend(names);
    }
    for (manager, fields) in expected {
        let owned = owners.remove(manager).unwrap_or_default();
        let want: BTreeSet<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        if owned != want {
            return Err(format!("{manager} owns {owned:?}, expected {want:?}").into());
        }
    }
    if !owners.is_empty() {
        return Err(format!("other status writers: {owners:?}").into());
    }

    let lockdowns = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let name = active.name_any();
    let stale = json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "status": {"conditions": [], "observedGeneration": 1, "failures": []},
    });
    lockdowns
        .patch_status(
            &name,
            &PatchParams::apply("opal-operator/status").force(),
            &Patch::Apply(&stale),
        )
        .await?;
    let after = lockdowns.get(&name).await?;
    let (before, now) = (active.status.clone(), after.status.clone());
    let record = |s: &Option<opal_operator::crd::LockdownStatus>| {
        s.as_ref()
            .map(|s| (s.phase, s.revoked.clone(), s.revoked_count, s.activated_at))
    };
    if record(&before) != record(&now) {
        return Err("a stale status write changed the record or the phase".into());
    }
    // The controller restores its own part; the activation is still announced only once.
    eventually("the conditions are written again", SETTLE, || async {
        let object = lockdowns.get(&name).await?;
        Ok(object
            .status
            .is_some_and(|s| is_true(&s.conditions, "Active"))
            .then_some(()))
    })
    .await?;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let announced: Vec<_> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Active")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
        })
        .collect();
    if announced.len() != 1 || announced.iter().any(|e| e.series.is_some()) {
        return Err(format!(
            "the activation was announced {} time(s) or repeated",
            announced.len()
        )
        .into());
    }
    Ok(())
}
