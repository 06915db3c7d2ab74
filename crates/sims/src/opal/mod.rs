//! An in-process HTTP server that speaks Opal's public API: the spec's paths under `/v1`,
//! methods, success codes, envelopes, pagination styles and field names. It is written from the
//! spec (`opal-openapi.yaml`), not from the operator's client, and `tests/opal_contract.rs`
//! checks every response it gives against that spec.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opal_sims::opal::SimError> {
//! use opal_sims::opal::{OrgFixture, RunningOpalSim, SimConfig};
//! let fixture = OrgFixture::from_path("examples/opal-sim-fixture.yaml")?;
//! let sim = RunningOpalSim::start(fixture, SimConfig::default()).await?;
//! let base_url = sim.base_url(); // http://127.0.0.1:PORT/v1
//! # drop(base_url);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Fixture format
//!
//! [`OrgFixture`] is YAML or JSON (`examples/opal-sim-fixture.yaml` shows every part). Top-level
//! lists, all optional: `users`, `owners`, `apps`, `tags`, `message_channels`, `groups`,
//! `resources`, `memberships`, `resource_grants`, `group_resources`, `requests`, `uars`,
//! `bundles`; plus `api_user`, the user the token acts as (otherwise a service identity that is
//! not a listed user). Ids are UUID strings; when an object leaves out `id`, one is derived
//! deterministically from its natural key. References between objects take either the id or the
//! natural key: user email, owner/app/group/resource/bundle name, tag `key:value` (or `key` for a
//! tag without value), message channel remote id. Groups and resources accept `admin_owner`,
//! `tags`, `visibility`, `reviewer_stages`, `request_configurations` (owner and group refs inside
//! are resolved too), `access_levels` (when listed, grants must use one of them or the default
//! level), `message_channels` and the request settings of the spec. Memberships and resource
//! grants take an `access_level` (`{name, remote_id}`; default level `""`) and optionally
//! `expiration_date` or `expires_in_minutes`. Unknown keys are rejected, except inside groups,
//! resources, memberships and resource grants (their shared parts are flattened).
//!
//! # Behaviour where the spec is silent (configurable or chosen here)
//!
//! * Grants are keyed by (object, user, `access_level_remote_id`); the default level is `""`.
//!   `duration_minutes` > 0 sets an expiry on the simulator's clock, 0 means indefinite, more
//!   than 525960 is a 400. Expired grants disappear from every read, unless a test made their
//!   expiry fail ([`SimState::fail_group_expiry`]): then they stay with their past end date.
//! * Adding a grant that exists: [`DuplicateGrant::ReturnExisting`] (default, 200 with the
//!   existing grant, no event) or [`DuplicateGrant::Conflict`] (409).
//! * `PUT .../users/{user_id}` updates the grant at the given level, or the user's only grant
//!   (moving it to the given level); 404 when the user holds none, 400 when several match.
//!   On groups a negative duration revokes; on resources it is a 400.
//! * Removing an absent grant or tag: 404 with a body. Unknown ids anywhere (path or body): 404.
//! * Error bodies are `{"code": <status>, "message": "..."}`; Opal documents none.
//! * `page_size` (and `limit`) default to 200; above 1000 they are clamped to 1000; below 1 is a
//!   400. [`SimConfig::page_cap`] lowers the maximum further to force many pages. Cursors are
//!   opaque keyset cursors over a stable order (ids; events newest first), so concurrent writes
//!   never make a walk skip or repeat an item.
//! * `GET /requests` leaves `cursor` out on the last page. `GET /requests/relay` defaults to 100.
//! * Bulk `PUT /groups` / `PUT /resources` apply all items or none, and echo the request.
//! * A request whose every item has `auto_approval` is approved on creation. Approving grants the
//!   items to the target user with the request's duration (-1/0 = indefinite); for a target
//!   group, resources are linked to the group and groups are not nested (decision only).
//! * Every write records an audit event (`GROUP_USER_ADDED`, `GROUP_USER_UPDATED`,
//!   `GROUP_USER_REMOVED`, the `RESOURCE_USER_*` equivalents, `GROUP_UPDATED`,
//!   `RESOURCE_UPDATED`, `*_VISIBILITY_UPDATED`, `*_REVIEWER_STAGES_UPDATED`,
//!   `*_MESSAGE_CHANNELS_UPDATED`, `OWNER_USERS_UPDATED`, `TAG_CREATED`, `TAG_*_ADDED/REMOVED`,
//!   `REQUEST_CREATED`, `REQUEST_APPROVED`, `REQUEST_APPROVED_BY_ADMIN`, `REQUEST_DENIED`,
//!   `REQUEST_COMMENT_ADDED`, `UAR_CREATED`, `MESSAGE_CHANNEL_CREATED`); sub-events carry the
//!   object ids that `object_filter` matches.
//! * Unknown query parameters are ignored; malformed bodies and parameters are a 400.
//!
//! # Faults, limits and counters
//!
//! Each authenticated request passes, in order: bearer auth (401), the token-bucket rate limiter
//! (429; 100 req/s overall and 50 req/s for group/resource writes by default), random or scripted
//! faults (connection reset, timeout then 504 or drop, 429 with or without `Retry-After`, 5xx),
//! then the configured latency. [`RunningOpalSim::counters`] reports calls by route template and
//! status; [`RunningOpalSim::state`] reads and changes the organisation without HTTP.

mod config;
mod conn;
mod counters;
mod fixture;
mod http;
mod limiter;
mod model;
mod paging;
mod routes;
mod server;
mod state;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    BucketConfig, DEFAULT_PAGE_SIZE, DEFAULT_SEED, DEFAULT_TOKEN, DuplicateGrant, FaultConfig,
    InjectedFault, MAX_PAGE_SIZE, RateLimitConfig, SimConfig, TimeoutOutcome,
};
pub use counters::{CounterSnapshot, UnexplainedRepeat};
pub use fixture::{
    FixtureAccessSettings, FixtureApp, FixtureBundle, FixtureExpiry, FixtureGroup,
    FixtureGroupResource, FixtureMembership, FixtureMessageChannel, FixtureOwner, FixtureRequest,
    FixtureRequestItem, FixtureResource, FixtureResourceGrant, FixtureTag, FixtureUar, FixtureUser,
    OrgFixture,
};
pub use server::{Operation, implemented_operations};
pub use state::{
    AccessSnapshot, EventSnapshot, GrantSnapshot, GrantTarget, NewRequest, RequestSnapshot,
    RequestedItem, SimState, SimUser,
};
pub use wire::{
    AccessLevel, RequestCondition, RequestConfiguration, ReviewerStage, StageOperator,
    TicketPropagationConfiguration, Visibility, VisibilityInfo,
};

use conn::KillableListener;
use model::Org;
use server::{API_PREFIX, Shared};

/// Everything that can go wrong starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The fixture file could not be read.
    #[error("reading fixture {path}: {source}")]
    FixtureRead {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The fixture is not valid YAML/JSON for [`OrgFixture`].
    #[error("parsing fixture: {0}")]
    FixtureParse(String),
    /// The fixture names an object that does not exist (or is ambiguous).
    #[error("fixture references unknown {kind} {reference}")]
    FixtureReference {
        /// Kind of object.
        kind: &'static str,
        /// The reference as written.
        reference: String,
    },
    /// The fixture breaks a rule (duplicate id, unknown enum value, cycle, …).
    #[error("invalid fixture: {0}")]
    FixtureInvalid(String),
    /// The listening socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// A direct state change was refused (unknown id, invalid value).
    #[error("state change rejected: {0}")]
    Rejected(String),
}

impl SimError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::FixtureRead { .. } => "fixture_read",
            Self::FixtureParse(_) => "fixture_parse",
            Self::FixtureReference { .. } => "fixture_reference",
            Self::FixtureInvalid(_) => "fixture_invalid",
            Self::Bind { .. } => "bind",
            Self::Serve(_) => "serve",
            Self::Rejected(_) => "rejected",
        }
    }
}

/// How long shutdown waits for in-flight requests (e.g. held timeouts) before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct RunningOpalSim {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningOpalSim {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(fixture: OrgFixture, config: SimConfig) -> Result<Self, SimError> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), fixture, config).await
    }

    /// Starts on the given address (port 0 picks a free one).
    pub async fn start_on(
        addr: SocketAddr,
        fixture: OrgFixture,
        config: SimConfig,
    ) -> Result<Self, SimError> {
        let org = Org::from_fixture(&fixture, config.seed)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let shared = Shared::new(org, config);
        let app = server::app(shared.clone())
            .into_make_service_with_connect_info::<conn::ConnectionInfo>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(KillableListener::new(listener), app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr: bound,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL clients use, e.g. `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }

    /// The bearer token the simulator currently accepts.
    pub fn token(&self) -> String {
        self.shared.config().token
    }

    /// Direct access to the organisation.
    pub fn state(&self) -> SimState {
        SimState::new(self.shared.org_handle())
    }

    /// The call counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.shared.counters.snapshot()
    }

    /// Zeroes the call counters.
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// The configuration now.
    pub fn config(&self) -> SimConfig {
        self.shared.config()
    }

    /// Changes the configuration; takes effect for the next request.
    pub fn update_config(&self, change: impl FnOnce(&mut SimConfig)) {
        self.shared.update_config(change);
    }

    /// Sets the latency added to every authenticated request.
    pub fn set_latency(&self, latency: Duration) {
        self.update_config(|config| config.latency = latency);
    }

    /// Sets the page cap (`None` = only Opal's 1000 maximum).
    pub fn set_page_cap(&self, cap: Option<usize>) {
        self.update_config(|config| config.page_cap = cap);
    }

    /// Sets how duplicate grants are answered.
    pub fn set_duplicate_grant(&self, duplicate: DuplicateGrant) {
        self.update_config(|config| config.duplicate_grant = duplicate);
    }

    /// Replaces the random fault rates.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.update_config(|config| config.faults = faults);
    }

    /// Replaces the rate limiter settings (buckets restart full).
    pub fn set_rate_limit(&self, rate_limit: RateLimitConfig) {
        self.update_config(|config| config.rate_limit = rate_limit);
    }

    /// Queues faults for the next matching requests, one fault per request, in order.
    /// `route` limits them to one route template (e.g. `"POST /groups/{group_id}/users/{user_id}"`).
    pub fn inject_faults(
        &self,
        route: Option<&str>,
        faults: impl IntoIterator<Item = InjectedFault>,
    ) {
        self.shared
            .script_faults(route.map(str::to_owned), faults.into_iter().collect());
    }

    /// Forgets queued faults that have not fired.
    pub fn clear_injected_faults(&self) {
        self.shared.clear_scripted_faults();
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningOpalSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs the simulator on `addr` until Ctrl-C, for `opal-operator sim`.
pub async fn serve(
    addr: SocketAddr,
    fixture: OrgFixture,
    config: SimConfig,
) -> Result<(), SimError> {
    let sim = RunningOpalSim::start_on(addr, fixture, config).await?;
    tracing::info!(base_url = %sim.base_url(), "Opal simulator listening");
    let interrupted = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    interrupted.map_err(SimError::Serve)
}
