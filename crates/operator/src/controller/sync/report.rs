//! The report step: metrics, failures attributed to the objects that own them, and Events.

use super::*;

pub(super) fn observe_time_to_revoke(
    context: &SyncContext,
    execution: &ExecutionReport,
    batch: &Batch,
    started: Instant,
) {
    let revoked = execution.outcomes.iter().any(|(op, outcome)| {
        op.action == ChangeAction::Revoke
            && *outcome == OperationOutcome::Applied
            && !matches!(op.cause, Cause::Lockdown(_))
    });
    if !revoked {
        return;
    }
    // From the HR hook's arrival when one asked for this sync; otherwise from the sync's
    // start (a resync, or Opal's events feed).
    let (trigger, since) = match batch.earliest {
        Some(received) if !batch.employees.is_empty() => ("webhook", received),
        _ if batch.full.is_none() && !batch.targets.is_empty() => ("opal_events", started),
        _ => ("poll", started),
    };
    context
        .metrics
        .observe_time_to_revoke(trigger, since.elapsed().as_secs_f64());
}

pub(super) fn record_metrics(
    context: &SyncContext,
    first: &Plan,
    confirmation: &Plan,
    execution: &ExecutionReport,
) {
    let metrics = &context.metrics;
    let pending = |action| {
        confirmation
            .operations
            .iter()
            .chain(confirmation.withheld.iter().map(|(op, _)| op))
            .filter(|op| op.action == action)
            .count()
    };
    metrics.set_drift(pending(ChangeAction::Grant), pending(ChangeAction::Revoke));
    metrics.set_breaker_tripped(confirmation.breaker.tripped && !confirmation.breaker.approved);
    for action in [ChangeAction::Grant, ChangeAction::Revoke] {
        let label = action_label(action);
        let of_action = |outcome: fn(&OperationOutcome) -> bool| {
            execution
                .outcomes
                .iter()
                .filter(|(op, o)| op.action == action && outcome(o))
                .count() as u64
        };
        metrics.operations_applied(
            label,
            "applied",
            of_action(|o| *o == OperationOutcome::Applied),
        );
        metrics.operations_applied(
            label,
            "already_done",
            of_action(|o| *o == OperationOutcome::AlreadyDone),
        );
        metrics.operations_applied(
            label,
            "failed",
            of_action(|o| matches!(o, OperationOutcome::Failed { .. })),
        );
        let withheld = first
            .withheld
            .iter()
            .filter(|(op, _)| op.action == action)
            .count();
        metrics.operations_applied(label, "withheld", withheld as u64);
    }
}

pub(super) fn action_label(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Grant => "grant",
        ChangeAction::Revoke => "revoke",
    }
}

pub(super) fn attribute_failures(
    plan: &Plan,
    execution: &ExecutionReport,
) -> (
    BTreeMap<ObjectKey, Vec<AttributedFailure>>,
    BTreeMap<ObjectKey, Vec<AttributedFailure>>,
) {
    let mut mappings: BTreeMap<ObjectKey, Vec<AttributedFailure>> = BTreeMap::new();
    let mut lockdowns: BTreeMap<ObjectKey, Vec<AttributedFailure>> = BTreeMap::new();
    for (op, outcome) in &execution.outcomes {
        let OperationOutcome::Failed { label, message } = outcome else {
            continue;
        };
        let failure = AttributedFailure {
            failure: OperationFailure {
                action: op.action,
                user: op.user_email.clone(),
                target: op.target_label(),
                message: message.clone(),
            },
            label,
        };
        let owners = plan.owners_of(op);
        let into = match op.cause {
            Cause::Lockdown(_) => &mut lockdowns,
            _ => &mut mappings,
        };
        for owner in owners {
            into.entry(owner).or_default().push(failure.clone());
        }
    }
    (mappings, lockdowns)
}

pub(super) fn failed_view(state: &LoopState, inputs: &Inputs, error: &OpalError) -> SyncView {
    let reason = if error.status() == Some(429) {
        "RateLimited"
    } else {
        "ReconcileError"
    };
    view_with_error(
        state,
        inputs,
        SyncFailure {
            reason,
            message: error.to_string(),
        },
    )
}

pub(super) fn view_with_error(
    state: &LoopState,
    inputs: &Inputs,
    failure: SyncFailure,
) -> SyncView {
    tracing::warn!(reason = failure.reason, message = %failure.message, "sync failed");
    let previous = state.last_view.as_ref();
    SyncView {
        finished_at: Utc::now(),
        fingerprints: inputs.fingerprints.clone(),
        plan: previous.map_or_else(|| Arc::new(Plan::default()), |v| v.plan.clone()),
        mapping_failures: BTreeMap::new(),
        lockdown_failures: BTreeMap::new(),
        hr_error: previous.and_then(|v| v.hr_error.clone()),
        error: Some(failure),
        breaker_tripped_at: previous.and_then(|v| v.breaker_tripped_at),
        notifications: previous.and_then(|v| v.notifications.clone()),
        employees: previous.map_or_else(|| Arc::from(Vec::new()), |v| v.employees.clone()),
    }
}

/// Events for what this sync did: grant and revoke batches per mapping, "would" changes of
/// Observe mappings, breaker trips, lockdown releases, and failures.
pub(super) fn publish_events(
    context: &SyncContext,
    first: &Plan,
    execution: &ExecutionReport,
    restores: &[(crate::crd::Lockdown, RestoreReport)],
) {
    let applied = execution
        .outcomes
        .iter()
        .filter(|(op, outcome)| {
            *outcome == OperationOutcome::Applied && !matches!(op.cause, Cause::Lockdown(_))
        })
        .map(|(op, _)| op);
    publish_batches(
        context,
        first,
        applied,
        [("Granted", "granted"), ("Revoked", "revoked")],
        "Apply",
    );
    let would = first
        .withheld
        .iter()
        .filter(|(_, why)| *why == crate::engine::Withheld::Observe)
        .map(|(op, _)| op);
    publish_batches(
        context,
        first,
        would,
        [
            ("WouldGrant", "would grant"),
            ("WouldRevoke", "would revoke"),
        ],
        "Observe",
    );
    let mut failed: BTreeMap<ObjectKey, Vec<(&Operation, &str)>> = BTreeMap::new();
    for (op, message) in execution.failures() {
        for owner in first.owners_of(op) {
            failed.entry(owner).or_default().push((op, message));
        }
    }
    for (key, failures) in &failed {
        let (op, message) = failures[0];
        let note = format!(
            "{} operation(s) failed; first: {} {} on {}: {message}",
            failures.len(),
            action_label(op.action),
            op.user_email,
            op.target_label()
        );
        if let Some(object) = context.stores.role_mapping(key) {
            context
                .events
                .warning(&*object, "SyncFailed", "Apply", note);
        } else if let Some(object) = context.stores.lockdown(key) {
            context
                .events
                .warning(&*object, "SyncFailed", "Apply", note);
        }
    }
    let mut lockdown_revoked: BTreeMap<&ObjectKey, usize> = BTreeMap::new();
    for (op, outcome) in &execution.outcomes {
        if let (Cause::Lockdown(key), OperationOutcome::Applied) = (&op.cause, outcome) {
            *lockdown_revoked.entry(key).or_default() += 1;
        }
    }
    for (key, count) in lockdown_revoked {
        if let Some(object) = context.stores.lockdown(key) {
            context.events.normal(
                &*object,
                "Revoked",
                "Lockdown",
                format!("revoked {count} grant(s) of the locked subjects"),
            );
        }
    }
    // On the object as the sync read it: once released, the finalizer goes and the cache may
    // lose it before these Events are published.
    for (object, report) in restores {
        if report.failures.is_empty() {
            context
                .events
                .normal(object, "Released", "Release", report.summary());
        } else if report.record_rejected {
            context
                .events
                .warning(object, "RecordRejected", "Release", report.summary());
        } else {
            context
                .events
                .warning(object, "ReleaseFailed", "Release", report.summary());
        }
    }
    if first.breaker.tripped && !first.breaker.approved {
        for (key, _) in first
            .policies
            .iter()
            .filter(|(k, _)| k.namespace == context.sources.operator_namespace)
        {
            if let Some(object) = context.stores.access_policy(key) {
                context.events.warning(
                    &*object,
                    "BlastRadiusExceeded",
                    "Breaker",
                    format!(
                        "{}; {} revocation(s) held; approve plan {} with the opal-operator.io/approve-plan annotation",
                        first.breaker.reason, first.breaker.revocations, first.revocation_hash
                    ),
                );
            }
        }
    }
}

/// A sync that could not complete, as a Warning on every RoleMapping and on the operator
/// namespace's AccessPolicies (once per distinct error).
pub(super) fn publish_sync_error(context: &SyncContext, error: &SyncFailure) {
    for mapping in context.stores.role_mappings.state() {
        context
            .events
            .warning(&*mapping, error.reason, "Sync", error.message.clone());
    }
    for policy in context.stores.access_policies.state() {
        if policy.metadata.namespace.as_deref() == Some(context.sources.operator_namespace.as_str())
        {
            context
                .events
                .warning(&*policy, error.reason, "Sync", error.message.clone());
        }
    }
}

/// One Event per mapping and action for `operations`, attributed as [`Plan::owners_of`] says;
/// `labels` are (reason, verb) for grants, then for revocations.
pub(super) fn publish_batches<'a>(
    context: &SyncContext,
    plan: &Plan,
    operations: impl Iterator<Item = &'a Operation>,
    labels: [(&str, &str); 2],
    action: &str,
) {
    let mut by_owner: BTreeMap<ObjectKey, [Vec<&Operation>; 2]> = BTreeMap::new();
    for op in operations {
        let slot = match op.action {
            ChangeAction::Grant => 0,
            ChangeAction::Revoke => 1,
        };
        for owner in plan.owners_of(op) {
            by_owner.entry(owner).or_default()[slot].push(op);
        }
    }
    for (key, batches) in &by_owner {
        let Some(object) = context.stores.role_mapping(key) else {
            continue;
        };
        for ((reason, verb), ops) in labels.iter().zip(batches) {
            if !ops.is_empty() {
                context
                    .events
                    .normal(&*object, reason, action, batch_note(verb, ops));
            }
        }
    }
}

pub(super) fn batch_note(verb: &str, ops: &[&Operation]) -> String {
    const SHOWN: usize = 5;
    let sample: Vec<String> = ops
        .iter()
        .take(SHOWN)
        .map(|op| format!("{} → {}", op.user_email, op.target_label()))
        .collect();
    let more = ops.len().saturating_sub(SHOWN);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{verb} {} grant(s): {}{tail}", ops.len(), sample.join(", "))
}
