//! The route handlers: health and metrics, HR hooks that trigger a re-read, alert hooks that
//! lock the user they name, doorbells, and Slack clicks handed to their sink. Each
//! authenticates before it parses.

use super::*;

pub(super) async fn metrics(State(state): State<Arc<WebhookState>>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

pub(super) async fn healthz(State(state): State<Arc<WebhookState>>) -> Response {
    if state.health.is_live() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the operator loop has stopped\n",
        )
            .into_response()
    }
}

pub(super) async fn readyz(State(state): State<Arc<WebhookState>>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// What an accepted webhook request did.
pub(super) enum HookSuccess {
    /// HR hook: this many employees handed to the sink.
    Accepted {
        employees: usize,
    },
    Ignored {
        reason: String,
    },
    Created {
        lockdown: ObjectKey,
    },
    AlreadyExists {
        lockdown: ObjectKey,
    },
    /// The Opal doorbell: pending requests and audit events are read now.
    Rung,
    /// Slack: the click sink recorded the click.
    ClickRecorded,
    /// Slack: the click sink had recorded this click before.
    ClickAlreadyRecorded,
    /// Slack: a click on another button, or one the sink had nothing to record for (200, where
    /// the other hooks' `Ignored` is 202, since Slack expects 200).
    ClickIgnored {
        reason: String,
    },
}

impl HookSuccess {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Ignored { .. } => "ignored",
            Self::Created { .. } => "created",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Rung => "rung",
            Self::ClickRecorded => "recorded",
            Self::ClickAlreadyRecorded => "already_recorded",
            Self::ClickIgnored { .. } => "ignored",
        }
    }
}

/// Counts the request and renders the answer.
pub(super) fn reply(
    state: &WebhookState,
    hook: &'static str,
    result: Result<HookSuccess, HookError>,
) -> Response {
    match result {
        Ok(success) => {
            let outcome = success.outcome();
            state.metrics.webhook_request(hook, outcome);
            let lockdown_json =
                |key: &ObjectKey| json!({"namespace": key.namespace, "name": key.name});
            let (status, body) = match &success {
                HookSuccess::Accepted { employees } => (
                    StatusCode::ACCEPTED,
                    json!({"outcome": outcome, "employees": employees}),
                ),
                HookSuccess::Ignored { reason } => (
                    StatusCode::ACCEPTED,
                    json!({"outcome": outcome, "reason": reason}),
                ),
                HookSuccess::Created { lockdown } => (
                    StatusCode::CREATED,
                    json!({"outcome": outcome, "lockdown": lockdown_json(lockdown)}),
                ),
                HookSuccess::AlreadyExists { lockdown } => (
                    StatusCode::OK,
                    json!({"outcome": outcome, "lockdown": lockdown_json(lockdown)}),
                ),
                HookSuccess::Rung => (StatusCode::ACCEPTED, json!({"outcome": outcome})),
                HookSuccess::ClickRecorded | HookSuccess::ClickAlreadyRecorded => {
                    (StatusCode::OK, json!({"outcome": outcome}))
                }
                HookSuccess::ClickIgnored { reason } => (
                    StatusCode::OK,
                    json!({"outcome": outcome, "reason": reason}),
                ),
            };
            (status, axum::Json(body)).into_response()
        }
        Err(error) => {
            let outcome = error.label();
            state.metrics.webhook_request(hook, outcome);
            if matches!(
                error,
                HookError::Unauthenticated(_)
                    | HookError::Unavailable
                    | HookError::LockdownFailed(_)
                    | HookError::ClickFailed(_)
            ) {
                tracing::warn!(hook, %error, "webhook request refused");
            } else {
                tracing::info!(hook, %error, "webhook request refused");
            }
            (
                error.status(),
                axum::Json(json!({"outcome": outcome, "error": error.to_string()})),
            )
                .into_response()
        }
    }
}

pub(super) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, HookError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HookError::BodyTooLarge { limit }
        } else {
            HookError::UnreadableBody(rejection.body_text())
        }
    })
}

pub(super) fn deliver_hr_change(
    state: &WebhookState,
    source: &'static str,
    employee_ids: BTreeSet<String>,
) -> Result<HookSuccess, HookError> {
    let sink = state.sinks.hr.as_ref().ok_or(HookError::Unavailable)?;
    let employees = employee_ids.len();
    if employees > 0 {
        sink.employees_changed(source, employee_ids);
    }
    Ok(HookSuccess::Accepted { employees })
}

pub(super) async fn bamboohr(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_bamboohr(&state, &headers, body);
    reply(&state, "bamboohr", result)
}

pub(super) fn accept_bamboohr(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let verifier = state.bamboohr.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    let notification = verifier
        .verify(headers, &body, Utc::now())
        .map_err(HookError::from_bamboohr)?;
    deliver_hr_change(state, "bamboohr", notification.employee_ids())
}

pub(super) async fn workday(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_workday(&state, &headers, body);
    reply(&state, "workday", result)
}

pub(super) fn accept_workday(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let secret = state.workday.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_signature(secret, headers, &body)?;
    let worker_ids = hr::parse_workday(&body)?;
    deliver_hr_change(state, "workday", worker_ids)
}

pub(super) async fn opal_events(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_opal_events(&state, &headers, body);
    reply(&state, "opal_events", result)
}

/// Opal's event-stream header names.
pub const OPAL_SIGNATURE_HEADER: &str = "x-opal-signature";
pub const OPAL_TIMESTAMP_HEADER: &str = "x-opal-request-timestamp";
/// How far a delivery's timestamp may be from now.
const OPAL_MAX_AGE_SECONDS: i64 = 300;

/// The body is never parsed: a verified delivery only rings the doorbell. A replay inside the
/// freshness window costs one extra read and changes nothing.
pub(super) fn accept_opal_events(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let secret = state.opal_events.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_timestamped_signature(
        secret,
        headers,
        &body,
        (OPAL_SIGNATURE_HEADER, OPAL_TIMESTAMP_HEADER),
        Utc::now(),
        OPAL_MAX_AGE_SECONDS,
    )?;
    ring(state)
}

fn ring(state: &WebhookState) -> Result<HookSuccess, HookError> {
    let doorbell = state
        .sinks
        .doorbell
        .as_ref()
        .ok_or(HookError::Unavailable)?;
    doorbell.ring();
    Ok(HookSuccess::Rung)
}

pub(super) async fn jira_events(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_jira_events(&state, &headers, body);
    reply(&state, "jira", result)
}

/// Jira's webhook signature header.
pub const JIRA_SIGNATURE_HEADER: &str = "x-hub-signature";

/// A verified Jira delivery only rings the doorbell: routed requests' approvals are re-read
/// from JSM, so a forged or repeated payload can decide nothing.
pub(super) fn accept_jira_events(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let secret = state.jira.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_signature_in(JIRA_SIGNATURE_HEADER, secret, headers, &body)?;
    ring(state)
}

pub(super) async fn slack_interactivity(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_slack_interactivity(&state, &headers, body).await;
    reply(&state, "slack", result)
}

/// Slack's request-signing header names.
pub const SLACK_SIGNATURE_HEADER: &str = "x-slack-signature";
pub const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// How far a click's timestamp may be from now (Slack's own advice).
const SLACK_MAX_AGE_SECONDS: i64 = 300;
/// Most characters of an unknown `action_id` quoted in an answer.
const SHOWN_ACTION_ID_CHARS: usize = 64;

/// Verifies the click over the raw body, reads it, and hands an Approve or Deny click to the
/// click sink, which only records it: nothing here calls Slack or Opal, since Slack wants its
/// answer within 3 s.
pub(super) async fn accept_slack_interactivity(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let secret = state.slack.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_slack_signature(
        secret,
        headers,
        &body,
        (SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER),
        Utc::now(),
        SLACK_MAX_AGE_SECONDS,
    )?;
    let click =
        parse_block_action(&body).map_err(|error| HookError::Malformed(error.to_string()))?;
    if click.action_id != SLACK_APPROVE_ACTION && click.action_id != SLACK_DENY_ACTION {
        let shown: String = click
            .action_id
            .chars()
            .take(SHOWN_ACTION_ID_CHARS)
            .collect();
        return Ok(HookSuccess::ClickIgnored {
            reason: format!(
                "action_id {shown:?} is neither {SLACK_APPROVE_ACTION:?} nor {SLACK_DENY_ACTION:?}"
            ),
        });
    }
    let sink = state.sinks.clicks.as_ref().ok_or(HookError::Unavailable)?;
    let (user, action) = (click.user_id.clone(), click.action_id.clone());
    match sink.record(click).await {
        Ok(ClickRecorded::Recorded) => {
            tracing::info!(%user, %action, "Slack click recorded");
            Ok(HookSuccess::ClickRecorded)
        }
        Ok(ClickRecorded::AlreadyRecorded) => Ok(HookSuccess::ClickAlreadyRecorded),
        Ok(ClickRecorded::Ignored { reason }) => Ok(HookSuccess::ClickIgnored { reason }),
        Err(error) => Err(HookError::ClickFailed(error)),
    }
}

pub(super) async fn splunk_alert(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_splunk_alert(&state, &headers, &uri, body).await;
    reply(&state, "splunk", result)
}

pub(super) async fn accept_splunk_alert(
    state: &WebhookState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let token = state.splunk.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_bearer_or_query_token(token, headers, uri)?;
    act_on_alert(state, alerts::parse_splunk(&body)?).await
}

pub(super) async fn datadog_alert(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_datadog_alert(&state, &headers, body).await;
    reply(&state, "datadog", result)
}

pub(super) async fn accept_datadog_alert(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let secret = state.datadog.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_token_or_signature(secret, headers, &body)?;
    act_on_alert(state, alerts::parse_datadog(&body)?).await
}

pub(super) async fn generic_alert(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = accept_generic_alert(&state, &headers, body).await;
    reply(&state, "generic", result)
}

pub(super) async fn accept_generic_alert(
    state: &WebhookState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HookSuccess, HookError> {
    let hook = state.generic.as_ref().ok_or(HookError::NotConfigured)?;
    let body = read_body(body, state.max_body_bytes)?;
    auth::verify_signature(&hook.secret, headers, &body)?;
    act_on_alert(state, alerts::parse_generic(&body, &hook.fields)?).await
}

pub(super) async fn act_on_alert(
    state: &WebhookState,
    alert: Alert,
) -> Result<HookSuccess, HookError> {
    let sink = state
        .sinks
        .incident
        .as_ref()
        .ok_or(HookError::Unavailable)?;
    let policy = sink.incident_policy().ok_or_else(|| {
        HookError::NoIncidentPolicy(format!(
            "no AccessPolicy in namespace {} sets incidentResponse",
            state.operator_namespace
        ))
    })?;
    let lockdown = match alert.decide(&policy, &state.operator_namespace)? {
        AlertDecision::Ignore(reason) => return Ok(HookSuccess::Ignored { reason }),
        AlertDecision::Lock(lockdown) => *lockdown,
    };
    let key = ObjectKey::new(
        state.operator_namespace.clone(),
        lockdown.metadata.name.clone().unwrap_or_default(),
    );
    match sink.create_lockdown(lockdown).await {
        Ok(LockdownCreated::Created) => {
            tracing::info!(lockdown = %key, "alert created a Lockdown");
            Ok(HookSuccess::Created { lockdown: key })
        }
        Ok(LockdownCreated::AlreadyExists) => Ok(HookSuccess::AlreadyExists { lockdown: key }),
        Err(error) => Err(HookError::LockdownFailed(error)),
    }
}
