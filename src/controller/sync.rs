//! The one global sync: requests from CR changes, HR hooks, the Opal events feed and the
//! resync interval are coalesced into one plan at a time. Only the leader syncs.
//!
//! A full sync reads HR and Opal, plans, records lockdown revocations before making them,
//! applies, restores released lockdowns, and reads again to confirm. A targeted sync (an HR
//! hook naming employees, a new user lockdown) refreshes only those people in the cached world
//! and applies only their operations: two Opal reads per person instead of a full read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{mpsc, watch};

use super::events::EventSink;
use super::leader::Leadership;
use super::lockdown::{self, RestoreReport};
use super::objects::{Inputs, Kind, Stores};
use crate::crd::{ChangeAction, OperationFailure, RevokedGrant, TargetKind};
use crate::engine::{
    Cause, GrantKey, HrState, ObjectKey, OpalState, OpalTarget, Operation, Plan, World, plan,
};
use crate::hris::Employee;
use crate::metrics::Metrics;
use crate::opal::OpalError;
use crate::reconcile::{
    ExecutionReport, Executor, ObservationScope, OperationOutcome, observe_opal,
    observe_target_grants, observe_user_grants,
};
use crate::standalone::{Sources, read_hr, users_losing_everything};

/// Why the loop should plan again.
#[derive(Clone, Debug)]
pub enum SyncRequest {
    /// Re-read everything.
    Full { reason: &'static str },
    /// HR says these employees (HR ids) changed; `received` is when the hook arrived.
    Employees {
        ids: BTreeSet<String>,
        received: Instant,
    },
    /// A lockdown appeared or changed.
    Lockdown { key: ObjectKey },
    /// Opal's events feed says these targets' memberships changed.
    Targets {
        targets: BTreeSet<(TargetKind, String)>,
    },
}

/// Sends [`SyncRequest`]s to the loop; cheap to clone.
#[derive(Clone, Debug)]
pub struct SyncTrigger {
    sender: mpsc::UnboundedSender<SyncRequest>,
}

impl SyncTrigger {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<SyncRequest>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, receiver)
    }

    pub fn request(&self, request: SyncRequest) {
        // A closed channel means the loop has stopped with the process.
        let _ = self.sender.send(request);
    }

    pub fn full(&self, reason: &'static str) {
        self.request(SyncRequest::Full { reason });
    }
}

impl crate::webhooks::HrChangeSink for SyncTrigger {
    fn employees_changed(&self, _source: &'static str, employee_ids: BTreeSet<String>) {
        self.request(SyncRequest::Employees {
            ids: employee_ids,
            received: Instant::now(),
        });
    }
}

/// Timing of the loop.
#[derive(Clone, Debug)]
pub struct LoopTiming {
    /// Full resync interval.
    pub interval: Duration,
    /// Up to this percentage is added to or taken from each interval.
    pub jitter_percent: u32,
    /// Requests arriving within this window after the first join one sync.
    pub debounce: Duration,
}

/// A failed operation and the object it belongs to.
#[derive(Clone, Debug)]
pub struct AttributedFailure {
    pub failure: OperationFailure,
    pub label: &'static str,
}

/// What one sync found and did, for status: each object reads its part.
#[derive(Clone, Debug)]
pub struct SyncView {
    pub finished_at: DateTime<Utc>,
    /// What the plan saw of every object (see [`super::objects::fingerprint`]).
    pub fingerprints: BTreeMap<(Kind, ObjectKey), String>,
    /// What remains after this sync applied its operations (the confirming plan).
    pub plan: Arc<Plan>,
    /// Operations that failed, per RoleMapping.
    pub mapping_failures: BTreeMap<ObjectKey, Vec<AttributedFailure>>,
    /// Operations that failed, per Lockdown.
    pub lockdown_failures: BTreeMap<ObjectKey, Vec<AttributedFailure>>,
    /// Why HR data could not be used, if it could not.
    pub hr_error: Option<String>,
    /// Set when the sync could not complete (e.g. Opal unreadable); `plan` is then the last
    /// good one.
    pub error: Option<SyncFailure>,
    /// When the breaker first tripped on the current held plan.
    pub breaker_tripped_at: Option<DateTime<Utc>>,
    /// `None` without notification channels; otherwise why they are degraded, if they are.
    pub notifications: Option<Option<String>>,
}

/// A sync that could not complete.
#[derive(Clone, Debug)]
pub struct SyncFailure {
    pub reason: &'static str,
    pub message: String,
}

/// Everything the loop needs.
pub struct SyncContext {
    pub kube: kube::Client,
    pub sources: Sources,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    pub events: EventSink,
    pub views: watch::Sender<Option<Arc<SyncView>>>,
    pub notifier: super::notifications::SharedNotifier,
    /// What this operator changed, so the events feed does not re-read it.
    pub own_writes: super::opal_events::OwnWrites,
}

/// Last full read of HR and Opal, refreshed in place by targeted syncs.
struct Cache {
    employees: Vec<Employee>,
    hr_incomplete: Option<String>,
    opal: OpalState,
}

struct LoopState {
    cache: Option<Cache>,
    last_good_employee_count: Option<usize>,
    last_view: Option<Arc<SyncView>>,
    /// UIDs of lockdowns this process released whose `Released` phase the cache may not show
    /// yet: released once, never restored twice.
    released: BTreeSet<String>,
}

#[derive(Default)]
struct Batch {
    full: Option<&'static str>,
    employees: BTreeSet<String>,
    lockdowns: BTreeSet<ObjectKey>,
    targets: BTreeSet<(TargetKind, String)>,
    earliest: Option<Instant>,
}

/// What a targeted sync re-reads and may change: these users' grants and these targets.
#[derive(Clone, Debug, Default)]
struct Dirty {
    users: BTreeSet<String>,
    targets: BTreeSet<(TargetKind, String)>,
}

impl Dirty {
    fn covers(&self, op: &Operation) -> bool {
        self.users.contains(&op.user_id) || self.targets.contains(&(op.kind, op.target_id.clone()))
    }
}

impl Batch {
    fn add(&mut self, request: SyncRequest) {
        match request {
            SyncRequest::Full { reason } => {
                self.full.get_or_insert(reason);
            }
            SyncRequest::Employees { ids, received } => {
                self.employees.extend(ids);
                self.note(received);
            }
            SyncRequest::Lockdown { key } => {
                self.lockdowns.insert(key);
            }
            SyncRequest::Targets { targets } => self.targets.extend(targets),
        }
    }

    fn note(&mut self, received: Instant) {
        self.earliest = Some(self.earliest.map_or(received, |e| e.min(received)));
    }
}

/// Runs until `requests` closes. Syncs only while `leadership` says this process leads.
pub async fn run_sync_loop(
    context: Arc<SyncContext>,
    mut requests: mpsc::UnboundedReceiver<SyncRequest>,
    mut leadership: Leadership,
    timing: LoopTiming,
) {
    let mut state = LoopState {
        cache: None,
        last_good_employee_count: None,
        last_view: None,
        released: BTreeSet::new(),
    };
    let mut next_full = tokio::time::Instant::now();
    loop {
        let mut batch = Batch::default();
        if !leadership.is_leader() {
            // A follower keeps nothing: when it takes over it re-reads everything.
            state.cache = None;
            tokio::select! {
                _ = leadership.changed() => {}
                request = requests.recv() => if request.is_none() { return },
            }
            next_full = tokio::time::Instant::now();
            continue;
        }
        tokio::select! {
            request = requests.recv() => match request {
                Some(request) => batch.add(request),
                None => return,
            },
            _ = tokio::time::sleep_until(next_full) => batch.full = Some("interval"),
            _ = leadership.changed() => continue,
        }
        let deadline = tokio::time::Instant::now() + timing.debounce;
        while let Ok(Some(request)) = tokio::time::timeout_at(deadline, requests.recv()).await {
            batch.add(request);
        }
        let started = Instant::now();
        let full = batch.full.is_some() || state.cache.is_none();
        let view = if full {
            let reason = batch
                .full
                .unwrap_or("targeted sync needs a full read first");
            tracing::info!(reason, "full sync");
            full_sync(&context, &mut state, &batch).await
        } else {
            tracing::info!(
                employees = batch.employees.len(),
                lockdowns = batch.lockdowns.len(),
                targets = batch.targets.len(),
                "targeted sync"
            );
            targeted_sync(&context, &mut state, &batch).await
        };
        let success = view.error.is_none();
        context
            .metrics
            .reconcile_finished("sync", success, started.elapsed());
        if let Some(error) = &view.error {
            context.metrics.reconcile_error("sync", error.reason);
            let repeated = state
                .last_view
                .as_ref()
                .and_then(|v| v.error.as_ref())
                .is_some_and(|last| last.message == error.message);
            if !repeated {
                publish_sync_error(&context, error);
            }
        }
        let view = Arc::new(view);
        state.last_view = Some(view.clone());
        context.views.send_replace(Some(view));
        if full {
            next_full = tokio::time::Instant::now() + jittered(&timing);
        }
    }
}

fn jittered(timing: &LoopTiming) -> Duration {
    let jitter = timing.jitter_percent.min(100) as f64 / 100.0;
    let factor = 1.0 + rand::rng().random_range(-jitter..=jitter);
    timing.interval.mul_f64(factor.max(0.01))
}

fn world_from(
    context: &SyncContext,
    inputs: &Inputs,
    hr: HrState,
    opal: OpalState,
    last_good: Option<usize>,
) -> World {
    World {
        hr,
        last_good_employee_count: last_good,
        opal,
        mappings: inputs.mappings.clone(),
        policies: inputs.policies.clone(),
        lockdowns: inputs.lockdowns.clone(),
        operator_namespace: context.sources.operator_namespace.clone(),
    }
}

fn observation_scope(context: &SyncContext, inputs: &Inputs, hr: &HrState) -> ObservationScope {
    let leavers =
        users_losing_everything(&inputs.policies, hr, &context.sources.operator_namespace);
    // Released lockdowns stay in: their targets are observed for the restore.
    ObservationScope::new(&inputs.mappings, &inputs.lockdowns, leavers)
}

/// The custom resources as the caches hold them now, as planner inputs.
fn current_inputs(context: &SyncContext) -> Inputs {
    let sources = &context.sources;
    context.stores.inputs(
        &sources.operator_namespace,
        sources.safety_defaults.as_ref(),
        Utc::now(),
    )
}

async fn full_sync(context: &SyncContext, state: &mut LoopState, batch: &Batch) -> SyncView {
    let sources = &context.sources;
    let inputs = current_inputs(context);
    context.own_writes.full_read(Utc::now());
    let hr = read_hr(&sources.hr).await;
    let scope = observation_scope(context, &inputs, &hr);
    let opal = match observe_opal(&sources.opal, &scope, sources.concurrency).await {
        Ok(opal) => opal,
        Err(error) => return failed_view(state, &inputs, &error),
    };
    let world = world_from(context, &inputs, hr, opal, state.last_good_employee_count);
    let started = Instant::now();
    apply(context, state, world, &inputs, None, batch, started).await
}

async fn targeted_sync(context: &SyncContext, state: &mut LoopState, batch: &Batch) -> SyncView {
    let sources = &context.sources;
    let inputs = current_inputs(context);
    let Some(cache) = state.cache.as_mut() else {
        return full_sync(context, state, batch).await;
    };
    for id in &batch.employees {
        match sources.hr.employee(id).await {
            Ok(Some(employee)) => match cache.employees.iter_mut().find(|e| e.id == employee.id) {
                Some(slot) => *slot = employee,
                None => cache.employees.push(employee),
            },
            Ok(None) => {
                tracing::warn!(employee = %id, "HR hook named an employee HR does not know")
            }
            Err(error) => {
                let failure = SyncFailure {
                    reason: "HrisUnavailable",
                    message: format!("reading employee {id}: {error}"),
                };
                return view_with_error(state, &inputs, failure);
            }
        }
    }
    let mut emails: BTreeSet<String> = cache
        .employees
        .iter()
        .filter(|e| batch.employees.contains(&e.id))
        .map(|e| e.email.to_lowercase())
        .collect();
    let mut dirty = Dirty {
        users: BTreeSet::new(),
        targets: batch.targets.clone(),
    };
    for key in &batch.lockdowns {
        let Some(subjects) = lockdown_user_subjects(context, &inputs, key, &cache.employees) else {
            return full_sync(context, state, batch).await;
        };
        emails.extend(subjects.emails);
        dirty.users.extend(subjects.user_ids);
    }
    for email in &emails {
        if !cache
            .opal
            .users
            .iter()
            .any(|u| u.email.to_lowercase() == *email)
        {
            match sources.opal.user_by_email(email).await {
                Ok(Some(user)) => cache.opal.users.push(crate::engine::OpalUser {
                    id: user.user_id,
                    email: user.email,
                }),
                Ok(None) => {}
                Err(error) => return failed_view(state, &inputs, &error),
            }
        }
    }
    dirty.users.extend(
        cache
            .opal
            .users
            .iter()
            .filter(|u| emails.contains(&u.email.to_lowercase()))
            .map(|u| u.id.clone()),
    );
    let known_targets: Vec<OpalTarget> = cache
        .opal
        .targets
        .iter()
        .filter(|t| dirty.targets.contains(&(t.kind, t.id.clone())))
        .cloned()
        .collect();
    if known_targets.len() != dirty.targets.len() {
        // A target the last full read did not see (created since): read everything.
        return full_sync(context, state, batch).await;
    }
    if let Err(error) = refresh(sources, &mut cache.opal, &dirty, known_targets).await {
        return failed_view(state, &inputs, &error);
    }
    let hr = match &cache.hr_incomplete {
        Some(reason) => HrState::Incomplete {
            employees: cache.employees.clone(),
            reason: reason.clone(),
        },
        None => HrState::Snapshot(cache.employees.clone()),
    };
    let world = world_from(
        context,
        &inputs,
        hr,
        cache.opal.clone(),
        state.last_good_employee_count,
    );
    apply(
        context,
        state,
        world,
        &inputs,
        Some(dirty),
        batch,
        Instant::now(),
    )
    .await
}

/// Re-reads the dirty users' grants and the dirty targets' members into `opal`.
async fn refresh(
    sources: &Sources,
    opal: &mut OpalState,
    dirty: &Dirty,
    targets: Vec<OpalTarget>,
) -> Result<(), OpalError> {
    let (user_grants, target_grants) = futures::try_join!(
        observe_user_grants(&sources.opal, &dirty.users, sources.concurrency),
        observe_target_grants(&sources.opal, targets, sources.concurrency),
    )?;
    opal.replace_user_grants(&dirty.users, user_grants);
    opal.replace_target_grants(&dirty.targets, target_grants);
    Ok(())
}

struct LockdownUsers {
    emails: BTreeSet<String>,
    user_ids: BTreeSet<String>,
}

/// The users a lockdown names, when it names only users and is in force; `None` when it
/// needs a full sync (locked targets, release, or gone).
fn lockdown_user_subjects(
    context: &SyncContext,
    inputs: &Inputs,
    key: &ObjectKey,
    employees: &[Employee],
) -> Option<LockdownUsers> {
    let input = inputs.lockdowns.iter().find(|l| l.key == *key)?;
    if !input.in_force(inputs.at) || context.stores.lockdown(key).is_none() {
        return None;
    }
    let mut users = LockdownUsers {
        emails: BTreeSet::new(),
        user_ids: BTreeSet::new(),
    };
    for subject in &input.spec.subjects {
        if subject.group.is_some() || subject.resource.is_some() {
            return None;
        }
        if let Some(email) = &subject.email {
            users.emails.insert(email.to_lowercase());
        }
        if let Some(id) = &subject.opal_user_id {
            users.user_ids.insert(id.clone());
        }
        if let Some(hris_id) = &subject.hris_id {
            let employee = employees.iter().find(|e| e.id == *hris_id)?;
            users.emails.insert(employee.email.to_lowercase());
        }
    }
    Some(users)
}

/// Plans `world`, records lockdown revocations, applies (only operations `only` covers
/// when given), restores released lockdowns (full syncs), confirms, and builds the view.
async fn apply(
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
    let execution = Executor::new(sources.opal.clone(), sources.concurrency)
        .apply(&operations)
        .await;
    observe_time_to_revoke(context, &execution, batch, started);
    if let (Some(notifier), HrState::Snapshot(employees) | HrState::Incomplete { employees, .. }) =
        (&context.notifier, &world.hr)
    {
        notifier.offboarded(
            &execution,
            &inputs.policies,
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
    }
}

fn notification_health(context: &SyncContext) -> Option<Option<String>> {
    context
        .notifier
        .as_ref()
        .map(|notifier| notifier.degraded())
}

async fn confirm(
    context: &SyncContext,
    world: &World,
    inputs: &Inputs,
    only: Option<&Dirty>,
) -> Result<World, OpalError> {
    let sources = &context.sources;
    let mut confirmed = world.clone();
    match only {
        Some(dirty) => {
            let targets: Vec<OpalTarget> = world
                .opal
                .targets
                .iter()
                .filter(|t| dirty.targets.contains(&(t.kind, t.id.clone())))
                .cloned()
                .collect();
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
async fn record_lockdown_revocations(
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

fn observe_time_to_revoke(
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

fn record_metrics(
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

fn action_label(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Grant => "grant",
        ChangeAction::Revoke => "revoke",
    }
}

fn attribute_failures(
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

fn failed_view(state: &LoopState, inputs: &Inputs, error: &OpalError) -> SyncView {
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

fn view_with_error(state: &LoopState, inputs: &Inputs, failure: SyncFailure) -> SyncView {
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
    }
}

/// Events for what this sync did: grant and revoke batches per mapping, "would" changes of
/// Observe mappings, breaker trips, lockdown releases, and failures.
fn publish_events(
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
fn publish_sync_error(context: &SyncContext, error: &SyncFailure) {
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
fn publish_batches<'a>(
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

fn batch_note(verb: &str, ops: &[&Operation]) -> String {
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
