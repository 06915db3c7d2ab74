//! Tenancy attacks, as a namespace user would make them, against the operator watching every
//! namespace (on a cluster of this trial's own, so no other trial's objects are in view):
//! * a Lockdown in a namespace no policy lets lock revokes nothing;
//! * a permitted namespace locks only the targets it may lock, and a record forged in its own
//!   namespace grants nothing on release;
//! * a record that fails verification restores nothing;
//! * revocations on a target are never reported on a mapping that only names it.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use libtest_mimic::Failed;
use opal_operator::crd::{Lockdown, LockdownPhase, RoleMapping, TenancyRule};
use opal_operator::sim::opal::{AccessLevel, GrantTarget};
use serde_json::{Value, json};

use super::harness::{
    InProcessOperator, OperatorOptions, Org, api, condition, converged, events_for, eventually,
    membership_writes,
};
use crate::support::kube_cluster::KubeCluster;
use crate::trials::chart::ensure_namespace;
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![e2e_trial!(
        lockdowns_and_events_stay_within_what_a_namespace_may_govern
    )]
}

const SETTLE: Duration = Duration::from_secs(60);
/// May lock `LOCKED_GROUP` and `UNGOVERNED`, nothing else.
const TEAM: &str = "team-a";
/// No policy mentions it.
const ROGUE: &str = "rogue";
/// Names `LOCKED_GROUP` in a RoleMapping it may not govern.
const BYSTANDER: &str = "team-b";
const LOCKED_GROUP: &str = "Engineering";
const UNGOVERNED: &str = "Legacy Jenkins";
const TENANT: &str = "tenant";

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Failed> {
    Ok(serde_json::from_value(value)?)
}

fn members(org: &Org, group_id: &str) -> BTreeSet<String> {
    org.opal
        .state()
        .group_members(group_id)
        .into_iter()
        .map(|m| m.user_id)
        .collect()
}

fn holds(org: &Org, user_id: &str, target: &GrantTarget) -> bool {
    org.opal
        .state()
        .user_grants(user_id)
        .iter()
        .any(|g| g.target == *target)
}

/// A ServiceAccount in `TEAM` that may create, read and delete Lockdowns and do anything with
/// Secrets, in `TEAM` and `ROGUE` only: what a namespace admin has.
async fn tenant_client(ctx: &TestContext) -> Result<Client, Failed> {
    let admin = &ctx.client;
    Api::<ServiceAccount>::namespaced(admin.clone(), TEAM)
        .create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": TENANT}}))?,
        )
        .await?;
    for namespace in [TEAM, ROGUE] {
        let role: Role = typed(json!({
            "metadata": {"name": TENANT, "namespace": namespace},
            "rules": [
                {"apiGroups": ["opal-operator.io"], "resources": ["lockdowns"],
                 "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
                {"apiGroups": [""], "resources": ["secrets"],
                 "verbs": ["get", "list", "create", "update", "patch", "delete"]},
            ],
        }))?;
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await?;
        let binding: RoleBinding = typed(json!({
            "metadata": {"name": TENANT, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": TENANT},
            "subjects": [{"kind": "ServiceAccount", "name": TENANT, "namespace": TEAM}],
        }))?;
        Api::<RoleBinding>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await?;
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), TEAM)
        .create_token_request(TENANT, &PostParams::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or("TokenRequest returned no token")?;
    Ok(ctx.cluster.client_with_token(&token).await?)
}

fn lockdown(name: &str, subject: Value) -> Result<Lockdown, Failed> {
    typed(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "metadata": {"name": name},
        "spec": {
            "subjects": [subject],
            "reason": "e2e: tenancy",
            "duration": "4h",
        }
    }))
}

/// Creates `object` as the tenant, retrying while RBAC has not caught up.
async fn create_as_tenant(
    tenant: &Client,
    namespace: &str,
    object: &Lockdown,
) -> Result<(), Failed> {
    let lockdowns: Api<Lockdown> = Api::namespaced(tenant.clone(), namespace);
    eventually("the tenant may create Lockdowns", SETTLE, || async {
        match lockdowns.create(&PostParams::default(), object).await {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
            Err(error) => Err(error.into()),
        }
    })
    .await
}

/// Waits until the Lockdown's condition `type_` has `reason`, and returns the object.
async fn with_reason(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    reason: &str,
    operator: &InProcessOperator,
) -> Result<Lockdown, Failed> {
    let lockdowns: Api<Lockdown> = Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("{namespace}/{name} {type_} {reason}"),
        SETTLE,
        || async {
            operator.check_running()?;
            let object = lockdowns.get(name).await?;
            let matches = object
                .status
                .as_ref()
                .and_then(|s| condition(&s.conditions, type_))
                .is_some_and(|c| c.reason == reason);
            Ok(matches.then_some(object))
        },
    )
    .await
}

async fn gone(client: &Client, namespace: &str, name: &str) -> Result<(), Failed> {
    let lockdowns: Api<Lockdown> = Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("{namespace}/{name} is released and gone"),
        SETTLE,
        || async { Ok(lockdowns.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

async fn lockdowns_and_events_stay_within_what_a_namespace_may_govern(
    _shared: TestContext,
) -> Result<(), Failed> {
    let cluster = KubeCluster::start().await?;
    let ctx = TestContext::create(cluster.access().clone(), "tenancy").await?;
    let admin = ctx.client.clone();
    let mut org = Org::start(&ctx.namespace, "2s").await?;
    let baseline = org
        .manifests
        .access_policies
        .iter_mut()
        .find(|p| p.name_any() == "baseline")
        .ok_or("the sample has no baseline policy")?;
    baseline.spec.tenancy.push(TenancyRule {
        namespaces: vec![TEAM.to_owned()],
        target_tags: Default::default(),
        target_names: vec![LOCKED_GROUP.to_owned(), UNGOVERNED.to_owned()],
        target_ids: Vec::new(),
        allow_lockdowns: true,
    });
    org.apply_manifests(&admin).await?;
    for namespace in [TEAM, ROGUE, BYSTANDER] {
        ensure_namespace(&admin, namespace).await?;
    }
    let bystander: RoleMapping = typed(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "RoleMapping",
        "metadata": {"name": "names-engineering", "namespace": BYSTANDER},
        "spec": {
            "selector": {"matchLabels": {"department": "Sales"}},
            "grants": [{"group": {"name": LOCKED_GROUP}}],
            "membership": "Additive",
        }
    }))?;
    api::<RoleMapping>(&admin, BYSTANDER)
        .create(&PostParams::default(), &bystander)
        .await?;
    let tenant = tenant_client(&ctx).await?;

    let operator = InProcessOperator::start_cluster_wide(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(2),
            lease: false,
            identity: "e2e-tenancy".into(),
        },
    )
    .await?;
    converged(&admin, &org, &operator, SETTLE).await?;

    let state = org.opal.state();
    let group_id = state.group_id(LOCKED_GROUP).ok_or("no Engineering group")?;
    let jenkins = state.resource_id(UNGOVERNED).ok_or("no Legacy Jenkins")?;
    let engineers = members(&org, &group_id);
    let engineer = engineers
        .iter()
        .next()
        .cloned()
        .ok_or("Engineering has no members")?;
    let engineer_email = state.user(&engineer).ok_or("unknown engineer")?.email;
    let protected: BTreeSet<String> = org
        .manifests
        .access_policies
        .iter()
        .filter_map(|p| p.spec.safety.as_ref())
        .flat_map(|s| s.protected_users.iter().map(|e| e.to_lowercase()))
        .collect();
    let outsider = state
        .users()
        .into_iter()
        .find(|u| {
            !engineers.contains(&u.user_id)
                && !protected.contains(&u.email.to_lowercase())
                && !holds(&org, &u.user_id, &GrantTarget::Resource(jenkins.clone()))
        })
        .ok_or("no user outside Engineering")?;
    state.add_resource_user(&jenkins, &engineer, AccessLevel::default(), None)?;

    // 3. Drift on Engineering is revoked for the operator namespace's mapping and reported
    // there only, never on the bystander mapping that merely names the group (convergence
    // already revoked unwanted Engineering members once; this adds one more).
    state.add_group_member(&group_id, &outsider.user_id, AccessLevel::default(), None)?;
    eventually(
        "the unwanted Engineering member is revoked",
        SETTLE,
        || async {
            operator.check_running()?;
            Ok((!members(&org, &group_id).contains(&outsider.user_id)).then_some(()))
        },
    )
    .await?;
    let engineering: RoleMapping = api::<RoleMapping>(&admin, &ctx.namespace)
        .get("engineering")
        .await?;
    let reported = events_for(&admin, &engineering).await?;
    if !reported
        .iter()
        .any(|(reason, note)| reason == "Revoked" && note.contains(LOCKED_GROUP))
    {
        return Err(format!("the governing mapping has no Revoked Event: {reported:?}").into());
    }
    let bystander = api::<RoleMapping>(&admin, BYSTANDER)
        .get("names-engineering")
        .await?;
    let heard = events_for(&admin, &bystander).await?;
    if heard
        .iter()
        .any(|(reason, _)| reason == "Revoked" || reason == "SyncFailed")
    {
        return Err(format!("the bystander mapping heard of revocations: {heard:?}").into());
    }

    // 1. A namespace no policy lets lock: neither a user nor a whole group loses anything.
    let writes_before = membership_writes(&org.opal.counters());
    let held_before = org.opal.state().user_grants(&engineer).len();
    create_as_tenant(
        &tenant,
        ROGUE,
        &lockdown("lock-engineer", json!({"email": engineer_email}))?,
    )
    .await?;
    create_as_tenant(
        &tenant,
        ROGUE,
        &lockdown("lock-engineering", json!({"group": {"name": LOCKED_GROUP}}))?,
    )
    .await?;
    for name in ["lock-engineer", "lock-engineering"] {
        let refused = with_reason(&admin, ROGUE, name, "Ready", "NotPermitted", &operator).await?;
        let message = refused
            .status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if !message.contains("allowLockdowns") || !message.contains(ROGUE) {
            return Err(
                format!("{name}: the refusal does not say what is missing: {message}").into(),
            );
        }
        if refused.status.as_ref().is_some_and(|s| s.revoked_count > 0) {
            return Err(format!("{name} recorded revocations").into());
        }
    }
    if members(&org, &group_id) != engineers
        || org.opal.state().user_grants(&engineer).len() != held_before
        || membership_writes(&org.opal.counters()).1 != writes_before.1
    {
        return Err("a Lockdown in a namespace no policy permits revoked access".into());
    }

    // 2. team-a may lock Engineering: every member goes, nothing else of theirs does; a record
    // forged in team-a's own namespace grants nothing on release.
    create_as_tenant(
        &tenant,
        TEAM,
        &lockdown(
            "freeze-engineering",
            json!({"group": {"name": LOCKED_GROUP}}),
        )?,
    )
    .await?;
    let active = with_reason(
        &admin,
        TEAM,
        "freeze-engineering",
        "Active",
        "Active",
        &operator,
    )
    .await?;
    if !members(&org, &group_id).is_empty() {
        return Err("Engineering still has members under the lockdown".into());
    }
    if !holds(&org, &engineer, &GrantTarget::Resource(jenkins.clone())) {
        return Err("a group lockdown revoked a resource grant".into());
    }
    let uid = active.uid().ok_or("no UID")?;
    let record_name = format!("lockdown-record-{uid}");
    let records: Api<Secret> = Api::namespaced(admin.clone(), &ctx.namespace);
    let record = records.get(&record_name).await?;
    let recorded: Vec<Value> = serde_json::from_slice(
        &record
            .data
            .as_ref()
            .and_then(|d| d.get("revoked.json"))
            .ok_or("the record has no revoked.json")?
            .0,
    )?;
    if recorded.len() != engineers.len() {
        return Err(format!(
            "the record holds {} grants, Engineering had {} members",
            recorded.len(),
            engineers.len()
        )
        .into());
    }
    match Api::<Secret>::namespaced(tenant.clone(), &ctx.namespace)
        .get(&record_name)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => return Err(format!("the tenant could read the record: {other:?}").into()),
    }
    let mut forged = recorded.clone();
    forged.push(json!({
        "userId": outsider.user_id, "email": outsider.email, "kind": "Resource",
        "targetId": jenkins, "targetName": UNGOVERNED, "accessLevelRemoteId": "",
    }));
    let forged_secret: Secret = typed(json!({
        "metadata": {"name": record_name},
        "stringData": {"revoked.json": serde_json::to_string(&forged)?},
    }))?;
    Api::<Secret>::namespaced(tenant.clone(), TEAM)
        .create(&PostParams::default(), &forged_secret)
        .await?;
    Api::<Lockdown>::namespaced(tenant.clone(), TEAM)
        .delete("freeze-engineering", &DeleteParams::default())
        .await?;
    gone(&admin, TEAM, "freeze-engineering").await?;
    if members(&org, &group_id) != engineers {
        return Err("the release did not give Engineering back exactly".into());
    }
    if holds(
        &org,
        &outsider.user_id,
        &GrantTarget::Resource(jenkins.clone()),
    ) {
        return Err("the forged record granted access".into());
    }
    if records.get_opt(&record_name).await?.is_some() {
        return Err("the released lockdown's record was left behind".into());
    }

    // A record that fails verification (here another Lockdown's, replayed) restores nothing:
    // the Lockdown stays Failed with the reason and a Warning Event.
    create_as_tenant(
        &tenant,
        TEAM,
        &lockdown("freeze-engineer", json!({"email": engineer_email}))?,
    )
    .await?;
    let active = with_reason(
        &admin,
        TEAM,
        "freeze-engineer",
        "Active",
        "Active",
        &operator,
    )
    .await?;
    if holds(&org, &engineer, &GrantTarget::Resource(jenkins.clone())) {
        return Err("the user lockdown left a grant it may lock".into());
    }
    let record_name = format!("lockdown-record-{}", active.uid().ok_or("no UID")?);
    records
        .patch(
            &record_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "opal-operator.io/lockdown-uid": uid,
            }}})),
        )
        .await?;
    Api::<Lockdown>::namespaced(tenant.clone(), TEAM)
        .delete("freeze-engineer", &DeleteParams::default())
        .await?;
    let lockdowns: Api<Lockdown> = Api::namespaced(admin.clone(), TEAM);
    let failed = eventually("the replayed record is rejected", SETTLE, || async {
        operator.check_running()?;
        let object = lockdowns.get("freeze-engineer").await?;
        let status = object.status.clone().unwrap_or_default();
        Ok((status.phase == Some(LockdownPhase::Failed)
            && status
                .release_failures
                .iter()
                .any(|f| f.contains("failed verification")))
        .then_some(object))
    })
    .await?;
    eventually("a RecordRejected Warning Event", SETTLE, || async {
        let events = events_for(&admin, &failed).await?;
        Ok(events
            .iter()
            .any(|(reason, _)| reason == "RecordRejected")
            .then_some(()))
    })
    .await?;
    if holds(&org, &engineer, &GrantTarget::Resource(jenkins.clone())) {
        return Err("a record that failed verification restored a grant".into());
    }
    operator.stop().await
}
