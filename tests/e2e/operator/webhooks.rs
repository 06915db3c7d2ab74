//! The operator's HTTP server on the real apiserver: forged, unsigned, stale and oversized
//! hooks are refused and change nothing; a valid Splunk alert becomes a Lockdown that revokes
//! the user's access; `/metrics`, `/healthz` and `/readyz` answer with sensible values.

use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::{ListParams, PostParams};
use libtest_mimic::Failed;
use opal_operator::crd::{AccessPolicy, ChangeAction, Lockdown, LockdownPhase};
use serde_json::{Value, json};

use super::harness::{
    BAMBOOHR_WEBHOOK_KEY, InProcessOperator, OperatorOptions, Org, SPLUNK_TOKEN, api,
    bamboohr_signature, bamboohr_update_body, converged, eventually, held_grants, metric_sample,
    metric_samples, notify_bamboohr_change, opal_user_id, post_splunk_alert, post_to_operator,
    scrape_metrics,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(forged_unsigned_and_oversized_hooks_change_nothing),
        e2e_trial!(a_valid_alert_creates_a_lockdown),
        e2e_trial!(metrics_expose_the_named_series),
    ]
}

const CONVERGENCE: Duration = Duration::from_secs(90);
/// Far longer than any trial: nothing but a hook or a CR change makes the operator act.
const LONG_INTERVAL: Duration = Duration::from_secs(600);
/// `server.maxBodyBytes` in the harness configuration.
const MAX_BODY_BYTES: usize = 65536;

const SYNCS: &str = "opal_operator_reconcile_total";
const WEBHOOK_REQUESTS: &str = "opal_operator_webhook_requests_total";

/// The AccessPolicy that turns Splunk alerts into one-hour Lockdowns of `result.user`.
fn incident_response_policy(namespace: &str) -> Result<AccessPolicy, Failed> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": {"name": "incident-response", "namespace": namespace},
        "spec": {
            "incidentResponse": {
                "sources": ["Splunk"],
                "userField": "result.user",
                "minSeverity": "Medium",
                "lockdownDuration": "1h",
            },
        },
    }))?)
}

/// A Splunk webhook alert action's body about `user`.
fn splunk_alert(user: &str, sid: &str) -> Value {
    json!({
        "sid": sid,
        "search_name": "Impossible travel",
        "results_link": format!("https://splunk.acme.example/app/search/@go?sid={sid}"),
        "owner": "secops",
        "app": "search",
        "result": {"user": user, "severity": "high", "src_country": "NZ", "count": "3"},
    })
}

async fn start_operator(
    ctx: &TestContext,
    org: &Org,
    identity: &str,
) -> Result<InProcessOperator, Failed> {
    let operator = InProcessOperator::start(
        ctx,
        org,
        OperatorOptions {
            interval: LONG_INTERVAL,
            lease: true,
            identity: identity.into(),
        },
    )
    .await?;
    converged(&ctx.client, org, &operator, CONVERGENCE).await?;
    Ok(operator)
}

async fn lockdowns(ctx: &TestContext) -> Result<Vec<Lockdown>, Failed> {
    Ok(api::<Lockdown>(&ctx.client, &ctx.namespace)
        .list(&ListParams::default())
        .await?
        .items)
}

/// Checks a refusal: the status, and an `{"outcome", "error"}` answer whose error says why.
fn expect_refused(
    what: &str,
    (status, answer): (u16, String),
    expected_status: u16,
    outcome: &str,
    reason: &str,
) -> Result<(), Failed> {
    let body: Value = serde_json::from_str(&answer)
        .map_err(|e| format!("{what}: the answer is not JSON ({e}): {answer}"))?;
    let error = body["error"].as_str().unwrap_or_default();
    if status != expected_status || body["outcome"] != json!(outcome) || !error.contains(reason) {
        return Err(format!(
            "{what}: expected {expected_status} {outcome} with an error naming {reason:?}, got {status} {answer}"
        )
        .into());
    }
    Ok(())
}

async fn forged_unsigned_and_oversized_hooks_change_nothing(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "10m").await?;
    // With an incident policy in place a forged alert would otherwise lock someone down.
    org.manifests
        .access_policies
        .push(incident_response_policy(&ctx.namespace)?);
    org.apply_manifests(&ctx.client).await?;
    let operator = start_operator(&ctx, &org, "e2e-forged-hooks").await?;

    // HR terminates someone; only an authentic hook (or the resync in 10 minutes) may act on it.
    let leaver_id = "1038";
    let leaver = opal_user_id(&org, "lucia.schneider@acme.example")?;
    let held = held_grants(&org, &leaver);
    if held.is_empty() {
        return Err("the leaver should hold grants after convergence".into());
    }
    if !org
        .hr
        .roster()
        .terminate(leaver_id, Utc::now().date_naive())
    {
        return Err("employee 1038 is not in the HR simulator".into());
    }
    let pending = org.independent_plan(&ctx.client).await?;
    if pending.operations.is_empty()
        || pending
            .operations
            .iter()
            .any(|op| op.user_id != leaver || op.action != ChangeAction::Revoke)
    {
        return Err(format!(
            "the termination should call for revoking the leaver's grants only; plan: {:?}",
            pending.operations
        )
        .into());
    }
    let writes_before = org.opal.counters().writes();

    let hook = "/webhooks/bamboohr";
    let body = bamboohr_update_body(leaver_id, &["employmentHistoryStatus", "terminationDate"]);
    let now = Utc::now().timestamp();
    let forged = bamboohr_signature(body.as_bytes(), "not-the-webhook-key", now);
    expect_refused(
        "forged signature",
        post_to_operator(&operator, hook, body.clone(), &forged).await?,
        401,
        "unauthorized",
        "signature does not match",
    )?;
    let timestamp_only: Vec<_> = bamboohr_signature(body.as_bytes(), BAMBOOHR_WEBHOOK_KEY, now)
        .into_iter()
        .filter(|(name, _)| *name != "x-bamboohr-signature")
        .collect();
    expect_refused(
        "no signature",
        post_to_operator(&operator, hook, body.clone(), &timestamp_only).await?,
        401,
        "unauthorized",
        "missing header x-bamboohr-signature",
    )?;
    // Correctly signed, but an hour ago: a replay.
    let stale = bamboohr_signature(body.as_bytes(), BAMBOOHR_WEBHOOK_KEY, now - 3600);
    expect_refused(
        "stale timestamp",
        post_to_operator(&operator, hook, body.clone(), &stale).await?,
        401,
        "unauthorized",
        "more than the 300 s allowed",
    )?;
    // Correctly signed and fresh, but larger than the limit.
    let oversized = json!({
        "type": "employee.updated",
        "timestamp": Utc::now().to_rfc3339(),
        "data": {"employeeId": leaver_id, "changedFields": ["notes"], "notes": "x".repeat(MAX_BODY_BYTES)},
    })
    .to_string();
    let signed = bamboohr_signature(oversized.as_bytes(), BAMBOOHR_WEBHOOK_KEY, now);
    expect_refused(
        "oversized body",
        post_to_operator(&operator, hook, oversized, &signed).await?,
        413,
        "too_large",
        "larger than the 65536-byte limit",
    )?;

    // The alert hook: no token, a wrong bearer token, a wrong query token.
    let alert = splunk_alert("lucia.weber@acme.example", "forged-alert-1");
    expect_refused(
        "alert without a token",
        post_splunk_alert(&operator, &alert, None).await?,
        401,
        "unauthorized",
        "missing token",
    )?;
    expect_refused(
        "alert with a wrong token",
        post_splunk_alert(&operator, &alert, Some("not-the-splunk-token")).await?,
        401,
        "unauthorized",
        "token does not match",
    )?;
    expect_refused(
        "alert with a wrong query token",
        post_to_operator(
            &operator,
            "/webhooks/alerts/splunk?token=not-the-splunk-token",
            alert.to_string(),
            &[],
        )
        .await?,
        401,
        "unauthorized",
        "token does not match",
    )?;
    // Lockdowns are created inside the request, so a refused one would already be here.
    let found = lockdowns(&ctx).await?;
    if !found.is_empty() {
        return Err(format!(
            "refused alerts created Lockdown(s): {:?}",
            found.iter().map(|l| l.name_any()).collect::<Vec<_>>()
        )
        .into());
    }

    // A barrier: an authentic hook about someone unchanged. The loop handles requests in order,
    // so once its sync has finished, anything the refused hooks had slipped in was handled too.
    let (_, text) = scrape_metrics(&operator).await?;
    let syncs = metric_sample(&text, SYNCS, &[("kind", "sync"), ("result", "success")])
        .ok_or("no successful sync counted")?;
    notify_bamboohr_change(&operator, "1083", &["jobTitle"]).await?;
    eventually(
        "the barrier hook's sync finishes",
        Duration::from_secs(20),
        || async {
            let (_, text) = scrape_metrics(&operator).await?;
            let now = metric_sample(&text, SYNCS, &[("kind", "sync"), ("result", "success")]);
            Ok(now.is_some_and(|n| n > syncs).then_some(()))
        },
    )
    .await?;
    let writes = org.opal.counters().writes();
    if writes != writes_before {
        return Err(format!(
            "refused hooks led to {} Opal write(s)",
            writes - writes_before
        )
        .into());
    }
    if held_grants(&org, &leaver) != held {
        return Err("the leaver's grants changed although no authentic hook named them".into());
    }
    let still = org.independent_plan(&ctx.client).await?;
    if still.operations.len() != pending.operations.len() {
        return Err(format!(
            "the termination's {} revocation(s) should still be pending, the plan has {}",
            pending.operations.len(),
            still.operations.len()
        )
        .into());
    }
    let (_, text) = scrape_metrics(&operator).await?;
    for (hook, outcome, expected) in [
        ("bamboohr", "unauthorized", 3.0),
        ("bamboohr", "too_large", 1.0),
        ("splunk", "unauthorized", 3.0),
    ] {
        let counted = metric_sample(
            &text,
            WEBHOOK_REQUESTS,
            &[("hook", hook), ("outcome", outcome)],
        );
        if counted != Some(expected) {
            return Err(format!(
                "{WEBHOOK_REQUESTS}{{hook={hook},outcome={outcome}}} is {counted:?}, expected {expected}"
            )
            .into());
        }
    }

    // The same change, announced authentically, is acted on: the refusals above were not
    // the operator ignoring this employee.
    notify_bamboohr_change(
        &operator,
        leaver_id,
        &["employmentHistoryStatus", "terminationDate"],
    )
    .await?;
    eventually(
        "the authentic hook revokes the leaver's grants",
        Duration::from_secs(20),
        || async {
            operator.check_running()?;
            Ok(held_grants(&org, &leaver).is_empty().then_some(()))
        },
    )
    .await?;
    operator.stop().await
}

async fn a_valid_alert_creates_a_lockdown(ctx: TestContext) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "10m").await?;
    org.apply_manifests(&ctx.client).await?;
    let operator = start_operator(&ctx, &org, "e2e-alert").await?;

    let policies = api::<AccessPolicy>(&ctx.client, &ctx.namespace);
    policies
        .create(
            &PostParams::default(),
            &incident_response_policy(&ctx.namespace)?,
        )
        .await?;
    // Once the operator reports on the policy, its cache (which the alert hook reads) has it.
    eventually(
        "the incident-response policy is observed",
        Duration::from_secs(30),
        || {
            let policies = policies.clone();
            async move {
                let policy = policies.get("incident-response").await?;
                let observed = policy.status.as_ref().and_then(|s| s.observed_generation);
                Ok((observed.is_some() && observed == policy.metadata.generation).then_some(()))
            }
        },
    )
    .await?;

    let email = "lucia.weber@acme.example";
    let user = opal_user_id(&org, email)?;
    let held = held_grants(&org, &user);
    if held.len() < 3 {
        return Err(format!("{email} should hold several grants, holds {}", held.len()).into());
    }
    // Upper case as a SIEM may report it; the Lockdown names the address in lower case.
    let alert = splunk_alert(
        &email.to_uppercase(),
        "scheduler__secops__search__RMD5f00d_at_1764430000_17",
    );
    let (status, answer) = post_splunk_alert(&operator, &alert, Some(SPLUNK_TOKEN)).await?;
    let answer_json: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    if status != 201 || answer_json["outcome"] != json!("created") {
        return Err(format!("a valid alert: expected 201 created, got {status} {answer}").into());
    }
    let name = answer_json["lockdown"]["name"]
        .as_str()
        .ok_or("the answer names no Lockdown")?
        .to_owned();
    let created = lockdowns(&ctx).await?;
    let [lockdown] = created.as_slice() else {
        return Err(format!("expected exactly one Lockdown, found {}", created.len()).into());
    };
    let subjects: Vec<_> = lockdown
        .spec
        .subjects
        .iter()
        .map(|s| s.email.clone())
        .collect();
    if lockdown.name_any() != name
        || subjects != [Some(email.to_owned())]
        || lockdown.spec.duration.as_deref() != Some("1h")
        || !lockdown.spec.reason.contains("Impossible travel")
    {
        return Err(format!(
            "the Lockdown does not say what the alert and policy do: name {} (answer {name}), subjects {subjects:?}, duration {:?}, reason {:?}",
            lockdown.name_any(),
            lockdown.spec.duration,
            lockdown.spec.reason
        )
        .into());
    }

    eventually(
        "every grant of the locked user is revoked",
        Duration::from_secs(20),
        || async {
            operator.check_running()?;
            Ok(held_grants(&org, &user).is_empty().then_some(()))
        },
    )
    .await?;
    let lockdown_api = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let active = eventually(
        "the Lockdown reaches phase Active",
        Duration::from_secs(20),
        || {
            let lockdown_api = lockdown_api.clone();
            let name = name.clone();
            async move {
                let lockdown = lockdown_api.get(&name).await?;
                let active = lockdown
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(LockdownPhase::Active));
                Ok(active.then_some(lockdown))
            }
        },
    )
    .await?;
    let status = active.status.ok_or("no status")?;
    if usize::try_from(status.revoked_count).ok() != Some(held.len()) {
        return Err(format!(
            "the Lockdown reports {} revoked grant(s); the user held {}",
            status.revoked_count,
            held.len()
        )
        .into());
    }
    if status.time_to_lockdown_ms.is_none() {
        return Err("an Active Lockdown reports no time-to-lockdown".into());
    }
    let (_, text) = scrape_metrics(&operator).await?;
    let lockdown_samples = metric_sample(
        &text,
        "opal_operator_time_to_revoke_seconds_count",
        &[("trigger", "lockdown")],
    );
    if lockdown_samples.is_none_or(|count| count < 1.0) {
        return Err("no lockdown time-to-revoke sample in /metrics".into());
    }
    // The lock outranks the mappings: nothing is planned to give the access back.
    let plan = org.independent_plan(&ctx.client).await?;
    if let Some(op) = plan.operations.first() {
        return Err(format!("operations remain while locked: {op:?}").into());
    }

    let (status, answer) = post_splunk_alert(&operator, &alert, Some(SPLUNK_TOKEN)).await?;
    let answer_json: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    if status != 200
        || answer_json["outcome"] != json!("already_exists")
        || answer_json["lockdown"]["name"] != json!(name)
    {
        return Err(format!(
            "a redelivered alert: expected 200 already_exists naming {name}, got {status} {answer}"
        )
        .into());
    }
    let after = lockdowns(&ctx).await?;
    if after.len() != 1 {
        return Err(format!("a redelivery made {} Lockdowns", after.len()).into());
    }
    if !held_grants(&org, &user).is_empty() {
        return Err("the locked user was granted access again".into());
    }
    operator.stop().await
}

async fn metrics_expose_the_named_series(ctx: TestContext) -> Result<(), Failed> {
    let org = Org::start(&ctx.namespace, "10m").await?;
    org.apply_manifests(&ctx.client).await?;
    org.opal.reset_counters();
    let operator = start_operator(&ctx, &org, "e2e-metrics").await?;
    let converged = org.independent_plan(&ctx.client).await?;

    let (content_type, text) = scrape_metrics(&operator).await?;
    if !content_type.starts_with("application/openmetrics-text") {
        return Err(format!("/metrics content type is {content_type:?}").into());
    }
    if text.lines().last() != Some("# EOF") {
        return Err("/metrics does not end with # EOF".into());
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric_sample(&text, name, labels).ok_or_else(|| -> Failed {
            format!("/metrics has no {name} with labels {labels:?}").into()
        })
    };
    let syncs = value(SYNCS, &[("kind", "sync"), ("result", "success")])?;
    if syncs < 1.0 {
        return Err("no successful sync counted".into());
    }
    let timed = value(
        "opal_operator_reconcile_duration_seconds_count",
        &[("kind", "sync")],
    )?;
    if timed < syncs {
        return Err(format!("{syncs} syncs but only {timed} durations").into());
    }

    let counters = org.opal.counters();
    let ok_calls: Vec<(String, f64)> = metric_samples(&text, "opal_operator_opal_calls_total")
        .into_iter()
        .filter(|(labels, _)| labels.contains(r#"status="200""#))
        .collect();
    if !ok_calls.iter().any(|(_, v)| *v > 0.0) {
        return Err(format!("no Opal call answered 200 is counted: {ok_calls:?}").into());
    }
    for (operation, route) in [
        (
            "groups.users.add",
            "POST /groups/{group_id}/users/{user_id}",
        ),
        (
            "resources.users.add",
            "POST /resources/{resource_id}/users/{user_id}",
        ),
    ] {
        let counted = metric_sample(
            &text,
            "opal_operator_opal_calls_total",
            &[("operation", operation), ("status", "200")],
        )
        .unwrap_or(0.0);
        let seen = counters.calls_with_status(route, 200) as f64;
        if counted != seen || seen == 0.0 {
            return Err(format!(
                "opal_calls_total{{operation={operation},status=200}} is {counted}; the simulator answered {seen} such call(s) with 200"
            )
            .into());
        }
    }

    let grant_calls = counters.calls("POST /groups/{group_id}/users/{user_id}")
        + counters.calls("POST /resources/{resource_id}/users/{user_id}");
    let applied = value(
        "opal_operator_opal_operations_total",
        &[("action", "grant"), ("outcome", "applied")],
    )?;
    if applied != grant_calls as f64 {
        return Err(format!(
            "opal_operations_total{{action=grant,outcome=applied}} is {applied}; the simulator saw {grant_calls} grant call(s)"
        )
        .into());
    }

    // Drift counts what the latest plan calls for, including what Observe mode only reports.
    for action in [ChangeAction::Grant, ChangeAction::Revoke] {
        let label = if action == ChangeAction::Grant {
            "grant"
        } else {
            "revoke"
        };
        let expected = converged
            .operations
            .iter()
            .chain(converged.withheld.iter().map(|(op, _)| op))
            .filter(|op| op.action == action)
            .count() as f64;
        let drift = value("opal_operator_drift_operations", &[("action", label)])?;
        if drift != expected {
            return Err(format!(
                "drift_operations{{action={label}}} is {drift}; an independent plan finds {expected}"
            )
            .into());
        }
    }
    for (name, expected) in [
        ("opal_operator_breaker_tripped", 0.0),
        ("opal_operator_leader", 1.0),
    ] {
        let found = value(name, &[])?;
        if found != expected {
            return Err(format!("{name} is {found}, expected {expected}").into());
        }
    }

    for path in ["/healthz", "/readyz"] {
        let (status, body) = operator.get(path).await?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {body}").into());
        }
    }
    operator.stop().await
}
