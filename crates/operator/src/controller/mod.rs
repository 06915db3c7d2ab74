//! The in-cluster operator: reflectors on the four kinds shared by their controllers and the
//! sync loop, one debounced global plan, status and Events per object, Lockdown finalizers,
//! ReviewSchedule campaigns, leader election, and the HTTP server.

mod access_policy;
mod events;
mod incidents;
mod leader;
mod lockdown;
#[cfg(test)]
mod mock_api;
mod notifications;
mod objects;
mod opal_events;
pub mod requests;
pub mod review;
mod role_mapping;
mod schedules;
mod status;
mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

pub use leader::{Leadership, LeaseSettings};
pub use lockdown::{FINALIZER as LOCKDOWN_FINALIZER, RECORD_KEY, STATUS_RECORD_LIMIT};
pub use sync::{LoopTiming, SyncRequest, SyncTrigger, SyncView};

use self::access_policy::reconcile_access_policy;
use self::events::EventSink;
use self::incidents::KubeIncidentSink;
use self::lockdown::reconcile_lockdown;
use self::objects::{Kind, Stores, fingerprint, key_of};
use self::role_mapping::reconcile_role_mapping;
use self::sync::SyncContext;
use crate::config::OperatorConfig;
use crate::crd::{AccessPolicy, Lockdown, ReviewSchedule, RoleMapping};
use crate::metrics::Metrics;
use crate::standalone::{Sources, StandaloneError};
use crate::webhooks::{Health, WebhookSinks, WebhookState};

/// Why the operator cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    Sources(#[from] StandaloneError),
    #[error("HTTP server on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::NotifyError),
}

/// Why one object's reconcile failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("lockdown release not done yet")]
    ReleasePending,
    #[error("review schedule: {0}")]
    Review(#[from] review::ReviewError),
}

impl ReconcileError {
    pub fn label(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kube",
            ReconcileError::Finalizer(_) => "finalizer",
            ReconcileError::ReleasePending => "release_pending",
            ReconcileError::Review(error) => error.label(),
        }
    }
}

/// How to run the operator.
pub struct RunOptions {
    pub config: OperatorConfig,
    /// Watch only this namespace (and the operator namespace's policies); all when `None`.
    pub watch_namespace: Option<String>,
    /// Lease to compete for; `None` runs as the only replica.
    pub lease: Option<LeaseSettings>,
    pub listen: SocketAddr,
    pub timing: LoopTiming,
    /// Identity in Events and the lease.
    pub identity: String,
}

/// What the per-object controllers share.
struct ReportContext {
    kube: kube::Client,
    events: EventSink,
    views: watch::Receiver<Option<Arc<SyncView>>>,
    trigger: SyncTrigger,
    leadership: Leadership,
    operator_namespace: String,
    metrics: Arc<Metrics>,
    opal: crate::opal::Client,
}

impl ReportContext {
    fn view(&self) -> Option<Arc<SyncView>> {
        self.views.borrow().clone()
    }

    /// The view when it was planned from this version of `object`; otherwise asks for a sync.
    fn view_for<K: ResourceExt>(&self, kind: Kind, object: &K) -> Option<Arc<SyncView>> {
        let view = self.view()?;
        let seen = view.fingerprints.get(&(kind, key_of(object)));
        if seen == Some(&fingerprint(object)) {
            Some(view)
        } else {
            if kind == Kind::Lockdown {
                self.trigger.request(SyncRequest::Lockdown {
                    key: key_of(object),
                });
            } else {
                self.trigger.full(match kind {
                    Kind::RoleMapping => "RoleMapping changed",
                    Kind::AccessPolicy => "AccessPolicy changed",
                    Kind::Lockdown => "Lockdown changed",
                });
            }
            None
        }
    }
}

fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Starts a shared reflector: the returned store feeds the sync loop, the subscriber a
/// controller, and the task keeps the watch running.
fn shared_reflector<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Arc<K>> + Send + 'static,
    BoxFuture<'static, ()>,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store_shared(256);
    let subscriber = writer
        .subscribe()
        .expect("a shared store always hands out subscribers");
    let root = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect_shared(writer)
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "watch error");
            }
        })
        .boxed();
    (reader, subscriber, root)
}

/// Runs the operator until `shutdown` resolves, serving HTTP on `options.listen`.
pub async fn run(
    client: kube::Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ControllerError::Listen {
            addr: options.listen,
            source,
        })?;
    run_on(client, options, listener, shutdown).await
}

/// Like [`run`], serving HTTP on an already bound `listener` (`options.listen` is ignored).
pub async fn run_on(
    client: kube::Client,
    options: RunOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    let config = options.config.clone();
    let sources = Sources::observed(&config, Some(metrics.opal_observer()))?;
    let operator_namespace = sources.operator_namespace.clone();
    let namespace = options.watch_namespace.as_deref();

    let (mappings, mapping_events, mapping_watch) =
        shared_reflector(scoped_api::<RoleMapping>(&client, namespace));
    // Policies shape the plan from the operator namespace even when another is watched.
    let policy_api = match namespace {
        Some(ns) if ns != operator_namespace => scoped_api::<AccessPolicy>(&client, None),
        _ => scoped_api::<AccessPolicy>(&client, namespace),
    };
    let (policies, policy_events, policy_watch) = shared_reflector(policy_api);
    let (lockdowns, lockdown_events, lockdown_watch) =
        shared_reflector(scoped_api::<Lockdown>(&client, namespace));
    let (schedules, schedule_events, schedule_watch) =
        shared_reflector(scoped_api::<ReviewSchedule>(&client, namespace));
    let stores = Stores {
        role_mappings: mappings.clone(),
        access_policies: policies.clone(),
        lockdowns: lockdowns.clone(),
        review_schedules: schedules.clone(),
    };

    let leadership = match &options.lease {
        Some(settings) => Leadership::elect(client.clone(), settings),
        None => Leadership::sole(),
    };
    let health = Arc::new(Health::new());
    let (trigger, requests) = SyncTrigger::channel();
    let (views, view_updates) = watch::channel(None);
    let notifier = match &config.notify {
        Some(notify) => {
            let secrets = notifications::NamespaceSecrets::new(client.clone(), &operator_namespace);
            Some(Arc::new(
                notifications::Notifier::start(notify, &secrets, &metrics).await?,
            ))
        }
        None => None,
    };
    let own_writes = opal_events::OwnWrites::default();
    let sync_context = Arc::new(SyncContext {
        kube: client.clone(),
        sources,
        stores: stores.clone(),
        metrics: metrics.clone(),
        events: EventSink::new(client.clone(), &options.identity),
        views,
        notifier,
        own_writes: own_writes.clone(),
        leadership: leadership.clone(),
    });

    let incident_sink = Arc::new(KubeIncidentSink {
        client: client.clone(),
        policies: policies.clone(),
        operator_namespace: operator_namespace.clone(),
    });
    let doorbell = Arc::new(tokio::sync::Notify::new());
    let sinks = WebhookSinks {
        hr: Some(Arc::new(trigger.clone())),
        incident: Some(incident_sink),
        doorbell: Some(Arc::new(requests::RequestDoorbell(doorbell.clone()))),
        clicks: Some(Arc::new(requests::ClickRecorder::new(
            requests::Ledger::new(client.clone(), &operator_namespace),
            doorbell.clone(),
        ))),
    };
    let webhook_state = WebhookState::from_config(&config, metrics.clone(), health.clone(), sinks)
        .map_err(|error| ControllerError::Webhooks(error.to_string()))?;
    // Everything below stops by being dropped when `shutdown` resolves.
    let server = crate::webhooks::serve(
        listener,
        crate::webhooks::router(Arc::new(webhook_state)),
        std::future::pending(),
    );

    let report_context = Arc::new(ReportContext {
        kube: client.clone(),
        events: EventSink::new(client.clone(), &options.identity),
        views: view_updates.clone(),
        trigger: trigger.clone(),
        leadership: leadership.clone(),
        operator_namespace: operator_namespace.clone(),
        metrics: metrics.clone(),
        opal: sync_context.sources.opal.clone(),
    });
    let view_changes = || view_changes(view_updates.clone());
    let mapping_controller = Controller::for_shared_stream(mapping_events, mappings.clone())
        .reconcile_all_on(view_changes())
        .run(reconcile_role_mapping, error_policy, report_context.clone())
        .for_each(|_| async {});
    let policy_controller = Controller::for_shared_stream(policy_events, policies.clone())
        .reconcile_all_on(view_changes())
        .run(
            reconcile_access_policy,
            error_policy,
            report_context.clone(),
        )
        .for_each(|_| async {});
    let lockdown_controller = Controller::for_shared_stream(lockdown_events, lockdowns.clone())
        .reconcile_all_on(view_changes())
        .run(reconcile_lockdown, error_policy, report_context.clone())
        .for_each(|_| async {});
    let schedule_controller = Controller::for_shared_stream(schedule_events, schedules.clone())
        .run(schedules::reconcile, error_policy, report_context.clone())
        .for_each(|_| async {});

    let sync_loop = {
        let stores = stores.clone();
        let health = health.clone();
        let timing = options.timing.clone();
        async move {
            // Plans made before the caches fill would see no objects at all.
            let _ = futures::join!(
                stores.role_mappings.wait_until_ready(),
                stores.access_policies.wait_until_ready(),
                stores.lockdowns.wait_until_ready(),
                stores.review_schedules.wait_until_ready(),
            );
            health.set_ready(true);
            sync::run_sync_loop(sync_context, requests, timing).await;
        }
    };
    let events_poll = config.sync.events_poll_interval();
    let events_feed = {
        let opal = report_context.opal.clone();
        let trigger = trigger.clone();
        let leadership = leadership.clone();
        async move {
            match events_poll {
                Some(poll) => {
                    opal_events::follow(opal, trigger, leadership, own_writes, poll).await
                }
                None => std::future::pending().await,
            }
        }
    };
    let (on_call, desks) = match &config.notify {
        Some(notify) => {
            let secrets = notifications::NamespaceSecrets::new(client.clone(), &operator_namespace);
            (
                crate::notify::rest_clients(notify, &secrets).await?,
                crate::notify::route_desks(notify, &secrets, config.webhooks.slack.is_some())
                    .await?,
            )
        }
        None => Default::default(),
    };
    let request_loop = requests::run_request_loop(
        Arc::new(requests::RequestContext {
            opal: report_context.opal.clone(),
            ledger: requests::Ledger::new(client.clone(), &operator_namespace),
            stores: stores.clone(),
            views: view_updates.clone(),
            metrics: metrics.clone(),
            operator_namespace: operator_namespace.clone(),
            on_call,
            leadership: leadership.clone(),
            desks,
            events: EventSink::new(client.clone(), &options.identity),
            expiry_grace: config.requests.expiry_grace(),
            book: requests::StatusBook::new(client.clone()),
            ledger_retention: config.requests.ledger_retention(),
            unmatched: Default::default(),
        }),
        doorbell,
        config.requests.poll_interval(),
    );
    let leader_gauge = {
        let mut leadership = leadership.clone();
        let metrics = metrics.clone();
        async move {
            loop {
                metrics.set_leader(leadership.is_leader());
                leadership.changed().await;
            }
        }
    };

    tokio::select! {
        result = server => if let Err(source) = result {
            return Err(ControllerError::Listen { addr: options.listen, source });
        },
        _ = async {
            futures::join!(
                mapping_watch,
                policy_watch,
                lockdown_watch,
                schedule_watch,
                mapping_controller,
                policy_controller,
                lockdown_controller,
                schedule_controller,
            )
        } => {},
        _ = sync_loop => {},
        _ = leader_gauge => {},
        () = request_loop => {},
        () = events_feed => {},
        () = shutdown => tracing::info!("shutting down"),
    }
    Ok(())
}

/// A stream that yields once per published view.
fn view_changes(
    updates: watch::Receiver<Option<Arc<SyncView>>>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(updates, |mut updates| async move {
        updates.changed().await.ok()?;
        Some(((), updates))
    })
}

fn error_policy<K: Resource<DynamicType = ()>>(
    _object: Arc<K>,
    error: &ReconcileError,
    context: Arc<ReportContext>,
) -> Action {
    context
        .metrics
        .reconcile_error(&K::kind(&()), error.label());
    match error {
        ReconcileError::ReleasePending => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Field manager of the status the per-object controllers write.
const STATUS_MANAGER: &str = "opal-operator/status";

/// Server-side applies `status` under [`STATUS_MANAGER`]: it owns exactly the fields it sends,
/// so a field it stops sending is removed and fields other writers own are never touched.
async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}
