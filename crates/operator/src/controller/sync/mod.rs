//! The one global sync: requests from CR changes, HR hooks, the Opal events feed and the
//! resync interval are coalesced into one plan at a time. Only the leader syncs.
//!
//! A full sync reads HR and Opal, plans, records lockdown revocations before making them,
//! applies, restores released lockdowns, and reads again to confirm. A targeted sync (an HR
//! hook naming employees, a new user lockdown) refreshes only those people in the cached world
//! and applies only their operations: two Opal reads per person instead of a full read.

mod apply;
mod read;
mod report;

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

use apply::apply;
use read::{current_inputs, lockdown_user_subjects, observation_scope, refresh, world_from};
use report::{
    attribute_failures, failed_view, observe_time_to_revoke, publish_events, publish_sync_error,
    record_metrics, view_with_error,
};

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
    /// The HR records the plan read (empty when HR could not be read), for the request
    /// decider's requester lookups.
    pub employees: Arc<[Employee]>,
}

#[cfg(test)]
impl SyncView {
    /// A clean view of `plan`, for tests of what reads views.
    pub fn of_plan(plan: Plan, fingerprints: BTreeMap<(Kind, ObjectKey), String>) -> Self {
        Self {
            finished_at: Utc::now(),
            fingerprints,
            plan: Arc::new(plan),
            mapping_failures: BTreeMap::new(),
            lockdown_failures: BTreeMap::new(),
            hr_error: None,
            error: None,
            breaker_tripped_at: None,
            notifications: None,
            employees: Arc::from(Vec::new()),
        }
    }
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
    /// Asked before every Opal write, so a replica that lost the lease mid-sync stops writing.
    pub leadership: Leadership,
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

    /// The dirty targets `opal` knows.
    fn known_targets(&self, opal: &OpalState) -> Vec<OpalTarget> {
        opal.targets
            .iter()
            .filter(|t| self.targets.contains(&(t.kind, t.id.clone())))
            .cloned()
            .collect()
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
    timing: LoopTiming,
) {
    let mut leadership = context.leadership.clone();
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
    let known_targets = dirty.known_targets(&cache.opal);
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

#[cfg(test)]
mod tests;
