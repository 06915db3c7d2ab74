//! Per-kind admission trials: a valid object of each kind is stored and read back with its
//! defaults, invalid objects are rejected with the rule's own message, and the status
//! subresource takes patches without touching the spec.

use std::fmt::Debug;

use chrono::Utc;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use libtest_mimic::Failed;
use opal_operator::crd::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{E2eTrial, TestContext};
use crate::support::crds::apply_crds;

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(role_mapping_admission),
        e2e_trial!(access_policy_admission),
        e2e_trial!(review_schedule_admission),
        e2e_trial!(lockdown_admission),
        e2e_trial!(status_subresource_keeps_spec_and_merges_conditions),
    ]
}

fn api<K>(ctx: &TestContext) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(ctx.client.clone(), &ctx.namespace)
}

/// Creates `manifest` (raw JSON, as `kubectl apply` would send it) and reads it back typed.
async fn create_valid<K>(client: &Client, namespace: &str, manifest: Value) -> Result<K, Failed>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = manifest["metadata"]["name"]
        .as_str()
        .ok_or("manifest without a name")?
        .to_owned();
    let object: K = serde_json::from_value(manifest).map_err(|e| format!("typed manifest: {e}"))?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|e| format!("valid {name} was rejected: {e}"))?;
    api.get(&name)
        .await
        .map_err(|e| format!("reading {name} back: {e}").into())
}

/// Sends `manifest` as raw JSON and expects admission to reject it with a message containing
/// every one of `expected`.
async fn expect_rejected<K>(
    ctx: &TestContext,
    manifest: Value,
    expected: &[&str],
) -> Result<(), Failed>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let api: Api<K> = api(ctx);
    let object: K = match serde_json::from_value(manifest.clone()) {
        Ok(object) => object,
        // Not even representable in Rust: send the raw JSON through the same endpoint.
        Err(_) => return expect_rejected_raw::<K>(ctx, manifest, expected).await,
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Err(format!("invalid {name} was accepted").into()),
        Err(kube::Error::Api(status)) => {
            check_rejection(&name, status.code, &status.message, expected)
        }
        Err(other) => Err(format!("{name}: unexpected error {other}").into()),
    }
}

async fn expect_rejected_raw<K>(
    ctx: &TestContext,
    manifest: Value,
    expected: &[&str],
) -> Result<(), Failed>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let url = K::url_path(&(), Some(&ctx.namespace));
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    match ctx.client.request::<Value>(request).await {
        Ok(_) => Err(format!("invalid {name} was accepted").into()),
        Err(kube::Error::Api(status)) => {
            check_rejection(&name, status.code, &status.message, expected)
        }
        Err(other) => Err(format!("{name}: unexpected error {other}").into()),
    }
}

fn check_rejection(name: &str, code: u16, message: &str, expected: &[&str]) -> Result<(), Failed> {
    if code != 422 {
        return Err(format!("{name}: expected 422 Invalid, got {code}: {message}").into());
    }
    for fragment in expected {
        if !message.contains(fragment) {
            return Err(format!("{name}: rejection lacks {fragment:?}: {message}").into());
        }
    }
    Ok(())
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn role_mapping_admission(ctx: TestContext) -> Result<(), Failed> {
    apply_crds(&ctx.client).await?;
    let valid = object(
        "RoleMapping",
        "eng-birthright",
        json!({
            "selector": {
                "matchLabels": {"department": "Engineering"},
                "matchExpressions": [{"key": "title", "operator": "Matches", "values": ["^(Senior )?SRE$"]}]
            },
            "grants": [
                {"group": {"name": "eng-all"}},
                {"resource": {"id": "8b0c7f5e-4d52-4a43-9a8e-2f1d6a3b9c10"},
                 "accessLevel": {"remoteId": "arn:aws:iam::123456789012:role/ReadOnly"}}
            ]
        }),
    );
    let stored: RoleMapping = create_valid(&ctx.client, &ctx.namespace, valid).await?;
    assert_eq!(
        stored.spec.membership,
        MembershipMode::Authoritative,
        "default membership"
    );
    assert_eq!(
        stored.spec.enforcement,
        Enforcement::Enforce,
        "default enforcement"
    );
    assert_eq!(stored.spec.grants.len(), 2);
    assert!(stored.spec.exceptions.is_empty());

    let cases = [
        (
            json!({"selector": {"matchLabels": {"department": "Eng"}}, "grants": [{"group": {"name": "a", "id": "8b0c7f5e-4d52-4a43-9a8e-2f1d6a3b9c10"}}]}),
            vec![
                "spec.grants[0].group",
                "exactly one of name or id must be set",
            ],
        ),
        (
            json!({"selector": {"matchLabels": {"department": "Eng"}}, "grants": [{"group": {"name": "a"}, "resource": {"name": "b"}}]}),
            vec!["exactly one of group or resource must be set"],
        ),
        (
            json!({"selector": {"matchLabels": {"department": "Eng"}}, "grants": []}),
            vec!["spec.grants"],
        ),
        (
            json!({"selector": {}, "grants": [{"group": {"name": "a"}}]}),
            vec!["selector must have at least one"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "department", "operator": "In"}]}, "grants": [{"group": {"name": "a"}}]}),
            vec!["operators In and NotIn require at least one value"],
        ),
        (
            json!({"selector": {"matchLabels": {"dept": "Eng"}}, "grants": [{"group": {"name": "a"}}]}),
            vec!["unknown attribute key"],
        ),
        (
            json!({"selector": {"matchLabels": {"department": "Eng"}}, "grants": [{"group": {"id": "not-a-uuid"}}]}),
            vec!["spec.grants[0].group.id"],
        ),
        (
            json!({"selector": {"matchLabels": {"department": "Eng"}}, "grants": [{"group": {"name": "a"}}], "membership": "Sometimes"}),
            vec!["spec.membership", "Unsupported value"],
        ),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        expect_rejected::<RoleMapping>(
            &ctx,
            object("RoleMapping", &format!("bad-{index}"), spec),
            &expected,
        )
        .await?;
    }
    Ok(())
}

async fn access_policy_admission(ctx: TestContext) -> Result<(), Failed> {
    apply_crds(&ctx.client).await?;
    let valid = object(
        "AccessPolicy",
        "baseline",
        json!({
            "safety": {"maxRevocations": 25, "maxRevocationPercent": 10, "protectedUsers": ["ceo@example.com"],
                       "hrisFloodGate": {"minEmployees": 100, "maxShrinkPercent": 5}},
            "offboarding": {"revoke": "All", "when": "After", "after": "24h", "notify": ["security-slack"]},
            "requests": [
                {"name": "short-readonly", "match": {"durationAtMost": "8h", "maxSensitivity": "Medium",
                  "businessHours": {"timeZone": "Europe/Berlin", "days": ["Mon", "Tue"], "start": "09:00", "end": "17:00"}},
                 "action": "AutoApprove"},
                {"name": "prod-to-oncall", "match": {"targetTags": {"env": "prod"}}, "action": "Route", "route": {"channel": "pagerduty"}}
            ],
            "resourceConfig": [{"targets": [{"group": {"name": "eng-all"}}],
                                "visibility": {"visibility": "Limited", "visibleToGroups": [{"name": "eng-all"}]}}],
            "incidentResponse": {"sources": ["Splunk"], "userField": "result.user", "lockdownDuration": "4h"},
            "tenancy": [{"namespaces": ["team-eng"], "targetTags": {"team": "eng"}}]
        }),
    );
    let stored: AccessPolicy = create_valid(&ctx.client, &ctx.namespace, valid).await?;
    let incident = stored
        .spec
        .incident_response
        .as_ref()
        .ok_or("incidentResponse lost")?;
    assert_eq!(
        incident.min_severity,
        AlertSeverity::High,
        "default minSeverity"
    );
    assert!(incident.restore_on_release, "default restoreOnRelease");
    assert_eq!(stored.spec.requests.len(), 2);

    let cases = [
        (
            json!({"safety": {"maxRevocationPercent": 150}}),
            vec![
                "spec.safety.maxRevocationPercent",
                "less than or equal to 100",
            ],
        ),
        (
            json!({"offboarding": {"when": "After"}}),
            vec!["after is required when `when` is After"],
        ),
        (
            json!({"offboarding": {"when": "After", "after": "3d"}}),
            vec!["after must be a positive duration"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "Route"}]}),
            vec!["route is required when action is Route"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "Route", "route": {"channel": "jsm", "waitAtMost": "1h", "escalation": {"pagerDuty": "pd", "after": "2h"}}}]}),
            vec!["escalation.after must be shorter than waitAtMost"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "Route", "route": {"channel": "jsm", "escalation": {"pagerDuty": "pd", "after": "-5m"}}}]}),
            vec!["escalation.after must be a positive duration"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "Deny", "grantAtMost": "1h"}]}),
            vec!["grantAtMost limits approvals"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "AutoApprove", "grantAtMost": "0s"}]}),
            vec!["grantAtMost must be a positive duration"],
        ),
        (
            json!({"requests": [{"name": "r", "action": "AutoApprove", "match": {"businessHours": {"timeZone": "UTC", "days": ["Mon"], "start": "18:00", "end": "09:00"}}}]}),
            vec!["start must be before end"],
        ),
        (
            json!({"resourceConfig": [{"targets": [{"group": {"name": "g"}}], "visibility": {"visibility": "Limited"}}]}),
            vec!["visibleToGroups must be non-empty"],
        ),
        (
            json!({"incidentResponse": {"sources": ["Splunk"], "userField": "user", "lockdownDuration": "soon"}}),
            vec!["lockdownDuration must be a positive duration"],
        ),
        (
            json!({"tenancy": [{"namespaces": ["team-a"]}]}),
            vec!["a tenancy rule must name targets"],
        ),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        expect_rejected::<AccessPolicy>(
            &ctx,
            object("AccessPolicy", &format!("bad-{index}"), spec),
            &expected,
        )
        .await?;
    }
    Ok(())
}

async fn review_schedule_admission(ctx: TestContext) -> Result<(), Failed> {
    apply_crds(&ctx.client).await?;
    let valid = object(
        "ReviewSchedule",
        "quarterly",
        json!({
            "schedule": "0 9 1 1,4,7,10 *",
            "timeZone": "America/New_York",
            "scope": {"tags": [{"key": "sox", "value": "in-scope"}], "groupTypes": ["OKTA_GROUP"]},
            "deadline": "14d",
            "reminders": {"daysBeforeDeadline": [7, 3, 1]},
            "escalation": {"afterHours": 48, "channel": "security-slack"}
        }),
    );
    let stored: ReviewSchedule = create_valid(&ctx.client, &ctx.namespace, valid).await?;
    assert_eq!(
        stored.spec.reviewer_assignment,
        ReviewerAssignment::ByManager,
        "default reviewer assignment"
    );
    assert!(stored.spec.notify_reviewers, "default notifyReviewers");

    let minimal = object(
        "ReviewSchedule",
        "minimal",
        json!({"schedule": "0 0 * * MON", "deadline": "72h"}),
    );
    let stored: ReviewSchedule = create_valid(&ctx.client, &ctx.namespace, minimal).await?;
    assert_eq!(stored.spec.time_zone, "UTC", "default time zone");

    let cases = [
        (
            json!({"schedule": "0 9 * *", "deadline": "14d"}),
            vec!["spec.schedule", "five-field cron"],
        ),
        (
            json!({"schedule": "0 25 * * *", "deadline": "14d"}),
            vec!["five-field cron"],
        ),
        (
            json!({"schedule": "0 9 * * *", "deadline": "2 weeks"}),
            vec!["spec.deadline"],
        ),
        (
            json!({"schedule": "0 9 * * *", "deadline": "14d", "reviewerAssignment": "ByAnyone"}),
            vec!["spec.reviewerAssignment", "Unsupported value"],
        ),
        (
            json!({"schedule": "0 9 * * *", "deadline": "14d", "reminders": {"daysBeforeDeadline": [400]}}),
            vec!["daysBeforeDeadline"],
        ),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        expect_rejected::<ReviewSchedule>(
            &ctx,
            object("ReviewSchedule", &format!("bad-{index}"), spec),
            &expected,
        )
        .await?;
    }
    Ok(())
}

async fn lockdown_admission(ctx: TestContext) -> Result<(), Failed> {
    apply_crds(&ctx.client).await?;
    let valid = object(
        "Lockdown",
        "inc-42",
        json!({
            "subjects": [{"email": "mallory@example.com"}, {"resource": {"name": "prod-db"}}],
            "breakGlass": ["oncall@example.com"],
            "reason": "credentials found in a public repository",
            "incident": "INC-42",
            "duration": "4h"
        }),
    );
    let stored: Lockdown = create_valid(&ctx.client, &ctx.namespace, valid).await?;
    assert!(stored.spec.restore_on_release, "default restoreOnRelease");
    assert_eq!(stored.spec.subjects.len(), 2);

    let cases = [
        (
            json!({"subjects": [{"email": "a@example.com"}], "reason": "x"}),
            vec!["exactly one of expiresAt or duration"],
        ),
        (
            json!({"subjects": [{"email": "a@example.com"}], "reason": "x", "duration": "1h", "expiresAt": "2030-01-01T00:00:00Z"}),
            vec!["exactly one of expiresAt or duration"],
        ),
        (
            json!({"subjects": [{"email": "a@example.com", "hrisId": "E1"}], "reason": "x", "duration": "1h"}),
            vec![
                "spec.subjects[0]",
                "exactly one of email, opalUserId, hrisId, group or resource",
            ],
        ),
        (
            json!({"subjects": [], "reason": "x", "duration": "1h"}),
            vec!["spec.subjects"],
        ),
        (
            json!({"subjects": [{"email": "a@example.com"}], "reason": "x", "duration": "14d"}),
            vec!["duration must be a positive duration"],
        ),
        (
            json!({"subjects": [{"email": "a@example.com"}], "reason": "x", "expiresAt": "tomorrow"}),
            vec!["spec.expiresAt"],
        ),
        (
            json!({"subjects": [{"email": "a@example.com"}], "reason": "x", "duration": "1h", "scope": {"mode": "Targets"}}),
            vec!["targets must be non-empty when mode is Targets"],
        ),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        expect_rejected::<Lockdown>(
            &ctx,
            object("Lockdown", &format!("bad-{index}"), spec),
            &expected,
        )
        .await?;
    }
    Ok(())
}

/// Status goes through `/status` only: a merge patch there sets conditions and counts without
/// bumping the generation, a second field manager's condition merges by type, and status sent
/// to the main endpoint is ignored.
async fn status_subresource_keeps_spec_and_merges_conditions(
    ctx: TestContext,
) -> Result<(), Failed> {
    apply_crds(&ctx.client).await?;
    let lockdowns: Api<Lockdown> = api(&ctx);
    let manifest = object(
        "Lockdown",
        "status-check",
        json!({"subjects": [{"hrisId": "E100"}], "reason": "drill", "duration": "30m"}),
    );
    let created: Lockdown = create_valid(&ctx.client, &ctx.namespace, manifest).await?;
    let generation = created.metadata.generation.ok_or("no generation")?;

    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {
        "phase": "Active",
        "revokedCount": 3,
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "LockdownActive",
                        "message": "3 grants revoked", "lastTransitionTime": now, "observedGeneration": generation}]
    }});
    lockdowns
        .patch_status(
            "status-check",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .map_err(|e| format!("patching status: {e}"))?;

    let other_manager = json!({
        "apiVersion": "opal-operator.io/v1alpha1", "kind": "Lockdown",
        "status": {"conditions": [{"type": "Audited", "status": "True", "reason": "Reviewed",
                                    "message": "", "lastTransitionTime": now}]}
    });
    lockdowns
        .patch_status(
            "status-check",
            &PatchParams::apply("auditor"),
            &Patch::Apply(&other_manager),
        )
        .await
        .map_err(|e| format!("second manager's status apply: {e}"))?;

    let read = lockdowns.get_status("status-check").await?;
    let status = read.status.ok_or("status missing after patch")?;
    assert_eq!(status.phase, Some(LockdownPhase::Active));
    assert_eq!(status.revoked_count, 3);
    let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert!(
        types.contains(&"Ready") && types.contains(&"Audited"),
        "conditions merged by type: {types:?}"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .ok_or("Ready lost")?;
    assert_eq!(ready.status, ConditionStatus::True);
    assert_eq!(ready.observed_generation, Some(generation));
    assert_eq!(
        read.metadata.generation,
        Some(generation),
        "status patch must not bump generation"
    );
    assert_eq!(read.spec, created.spec);

    let bad_condition = json!({"status": {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "X",
                                                           "lastTransitionTime": now}]}});
    let rejected = lockdowns
        .patch_status(
            "status-check",
            &PatchParams::default(),
            &Patch::Merge(&bad_condition),
        )
        .await;
    match rejected {
        Err(kube::Error::Api(status))
            if status.code == 422 && status.message.contains("Unsupported value") => {}
        other => {
            return Err(format!("condition status Maybe should be rejected: {other:?}").into());
        }
    }

    let spec_with_status =
        json!({"spec": {"reason": "drill (updated)"}, "status": {"phase": "Released"}});
    let updated = lockdowns
        .patch(
            "status-check",
            &PatchParams::default(),
            &Patch::Merge(&spec_with_status),
        )
        .await
        .map_err(|e| format!("patching spec: {e}"))?;
    assert_eq!(
        updated.metadata.generation,
        Some(generation + 1),
        "spec change bumps generation"
    );
    assert_eq!(
        updated.status.and_then(|s| s.phase),
        Some(LockdownPhase::Active),
        "status sent to the main endpoint is ignored"
    );
    lockdowns
        .delete("status-check", &DeleteParams::default())
        .await?;
    Ok(())
}
