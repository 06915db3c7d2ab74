//! The apply step: plan, record lockdown revocations before making them, apply, release and
//! restore lockdowns, confirm with a second read, and build the view status is written from.

use super::*;

/// Plans `world`, records lockdown revocations, applies (only operations `only` covers
/// when given), restores released lockdowns (full syncs), confirms, and builds the view.
pub(super) async fn apply(
    context: &SyncContext,
    state: &mut LoopState,
    world: World,
    inputs: &Inputs,
    only: Option<Dirty>,
    batch: &Batch,
    started: Instant,
) -> SyncView {
    let now = Utc::now();
    let sources = &context.sources;
    let first = plan(&world, inputs.at);
    if let (HrState::Snapshot(employees), None) = (&world.hr, &first.hr_gate) {
        state.last_good_employee_count = Some(employees.len());
    }
    let operations: Vec<Operation> = first
        .operations
        .iter()
        .filter(|op| only.as_ref().is_none_or(|dirty| dirty.covers(op)))
        .cloned()
        .collect();

    record_lockdown_revocations(context, &world, &operations).await;
    // Noted before the calls: their audit events can be listed while the rest still run.
    for op in &operations {
        context.own_writes.record(
            op.kind,
            &op.target_id,
            &op.user_id,
            op.action == ChangeAction::Grant,
        );
    }
    let leadership = context.leadership.clone();
    let execution = Executor::new(sources.opal.clone(), sources.concurrency)
        .with_fence(Arc::new(move || leadership.is_leader()))
        .apply(&operations)
        .await;
    observe_time_to_revoke(context, &execution, batch, started);
    if let (Some(notifier), HrState::Snapshot(employees) | HrState::Incomplete { employees, .. }) =
        (&context.notifier, &world.hr)
    {
        notifier.offboarded(
            &execution,
            &inputs.access_policies,
            &sources.operator_namespace,
            employees,
            now,
        );
    }

    let mut restores = Vec::new();
    if only.is_none() {
        // A released user's birthright grants were just made by the plan; restoring them
        // again would double the calls.
        let granted: BTreeSet<GrantKey> = execution
            .outcomes
            .iter()
            .filter(|(op, outcome)| {
                op.action == ChangeAction::Grant
                    && matches!(
                        outcome,
                        OperationOutcome::Applied | OperationOutcome::AlreadyDone
                    )
            })
            .map(|(op, _)| op.grant_key())
            .collect();
        let present = context.stores.lockdown_uids();
        state.released.retain(|uid| present.contains(uid));
        for releasing in &inputs.releasing {
            let uid = releasing.metadata.uid.clone().unwrap_or_default();
            if state.released.contains(&uid) {
                continue;
            }
            let report = lockdown::release(context, releasing, &world, &granted, now).await;
            if report.failures.is_empty() {
                state.released.insert(uid);
            }
            restores.push((releasing.clone(), report));
        }
    }

    let changed = !operations.is_empty() || restores.iter().any(|(_, r)| r.restored > 0);
    let confirmed_world = if changed {
        match confirm(context, &world, inputs, only.as_ref()).await {
            Ok(world) => world,
            Err(error) => {
                let view = failed_view(state, inputs, &error);
                publish_events(context, &first, &execution, &restores);
                return view;
            }
        }
    } else {
        world
    };
    let confirmation = plan(&confirmed_world, inputs.at);
    lockdown::note_progress(context, inputs, &confirmation, now).await;
    publish_events(context, &first, &execution, &restores);
    record_metrics(context, &first, &confirmation, &execution);

    let breaker_tripped_at = if confirmation.breaker.tripped {
        state
            .last_view
            .as_ref()
            .filter(|v| {
                v.plan.breaker.tripped && v.plan.revocation_hash == confirmation.revocation_hash
            })
            .and_then(|v| v.breaker_tripped_at)
            .or(Some(now))
    } else {
        None
    };
    let (mapping_failures, lockdown_failures) = attribute_failures(&first, &execution);
    let hr_error = match &confirmed_world.hr {
        HrState::Failed(message) => Some(message.clone()),
        _ => None,
    };
    let employees: Arc<[Employee]> = Arc::from(confirmed_world.hr.employees().to_vec());
    state.cache = match confirmed_world.hr {
        HrState::Snapshot(employees) => Some(Cache {
            employees,
            hr_incomplete: None,
            opal: confirmed_world.opal,
        }),
        HrState::Incomplete { employees, reason } => Some(Cache {
            employees,
            hr_incomplete: Some(reason),
            opal: confirmed_world.opal,
        }),
        HrState::Failed(_) => None,
    };
    SyncView {
        finished_at: Utc::now(),
        fingerprints: inputs.fingerprints.clone(),
        plan: Arc::new(confirmation),
        mapping_failures,
        lockdown_failures,
        hr_error,
        error: None,
        breaker_tripped_at,
        notifications: notification_health(context),
        employees,
    }
}

pub(super) fn notification_health(context: &SyncContext) -> Option<Option<String>> {
    context
        .notifier
        .as_ref()
        .map(|notifier| notifier.degraded())
}

pub(super) async fn confirm(
    context: &SyncContext,
    world: &World,
    inputs: &Inputs,
    only: Option<&Dirty>,
) -> Result<World, OpalError> {
    let sources = &context.sources;
    let mut confirmed = world.clone();
    match only {
        Some(dirty) => {
            let targets = dirty.known_targets(&world.opal);
            refresh(sources, &mut confirmed.opal, dirty, targets).await?;
        }
        None => {
            let scope = observation_scope(context, inputs, &world.hr);
            confirmed.opal = observe_opal(&sources.opal, &scope, sources.concurrency).await?;
        }
    }
    Ok(confirmed)
}

/// Writes each lockdown's planned revocations into its record before they are made, so a
/// crash mid-apply never loses what must be restored.
pub(super) async fn record_lockdown_revocations(
    context: &SyncContext,
    world: &World,
    operations: &[Operation],
) {
    let mut by_lockdown: BTreeMap<ObjectKey, Vec<RevokedGrant>> = BTreeMap::new();
    for op in operations {
        if let (ChangeAction::Revoke, Cause::Lockdown(key)) = (op.action, &op.cause) {
            let expiration_date = world
                .opal
                .grants
                .iter()
                .find(|g| {
                    g.kind == op.kind
                        && g.target_id == op.target_id
                        && g.user_id == op.user_id
                        && g.access_level_remote_id == op.access_level_remote_id
                })
                .and_then(|g| g.expires_at);
            by_lockdown
                .entry(key.clone())
                .or_default()
                .push(RevokedGrant {
                    user_id: op.user_id.clone(),
                    email: op.user_email.clone(),
                    kind: op.kind,
                    target_id: op.target_id.clone(),
                    target_name: op.target_name.clone(),
                    access_level_remote_id: op.access_level_remote_id.clone(),
                    expiration_date,
                });
        }
    }
    for (key, grants) in by_lockdown {
        let Some(object) = context.stores.lockdown(&key) else {
            continue;
        };
        if let Err(error) = lockdown::append_record(context, &object, grants).await {
            // The incident outranks the record: revoke anyway, and say the record is short.
            tracing::error!(lockdown = %key, %error, "cannot record lockdown revocations");
            context.events.warning(
                &*object,
                "RecordFailed",
                "Record",
                format!("could not record revocations before making them: {error}"),
            );
        }
    }
}
