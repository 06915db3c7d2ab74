//! The HTTP server: shared state, the route table, and the gate every request passes (counting,
//! auth, rate limiting, fault injection, latency).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{DuplicateGrant, FaultConfig, InjectedFault, SimConfig, TimeoutOutcome};
use super::conn::ConnectionInfo;
use super::counters::{Counters, is_write_method};
use super::http::ApiError;
use super::limiter::RateLimiter;
use super::model::Org;
use super::routes;

/// Every path is served under this prefix, like `https://api.opal.dev/v1`.
pub(crate) const API_PREFIX: &str = "/v1";

/// Random and scripted faults.
#[derive(Debug)]
pub(crate) struct FaultState {
    rng: StdRng,
    scripted: VecDeque<(Option<String>, InjectedFault)>,
}

impl FaultState {
    fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            scripted: VecDeque::new(),
        }
    }

    fn draw(&mut self, route: &str, config: &FaultConfig) -> Option<InjectedFault> {
        if let Some(index) = self
            .scripted
            .iter()
            .position(|(only, _)| only.as_deref().is_none_or(|only| only == route))
        {
            return self.scripted.remove(index).map(|(_, fault)| fault);
        }
        if self
            .rng
            .random_bool(probability(config.connection_reset_rate))
        {
            return Some(InjectedFault::ConnectionReset);
        }
        if self.rng.random_bool(probability(config.timeout_rate)) {
            return Some(InjectedFault::Timeout(
                config.timeout_hold,
                config.timeout_outcome,
            ));
        }
        if self
            .rng
            .random_bool(probability(config.too_many_requests_rate))
        {
            return Some(InjectedFault::TooManyRequests {
                retry_after: config.retry_after,
            });
        }
        if self.rng.random_bool(probability(config.server_error_rate)) {
            let statuses = &config.server_error_statuses;
            let status = if statuses.is_empty() {
                500
            } else {
                statuses[self.rng.random_range(0..statuses.len())]
            };
            return Some(InjectedFault::ServerError(status));
        }
        // Drawn only when enabled, so seeded runs without it keep their earlier sequence.
        let is_write = is_write_method(route.split(' ').next().unwrap_or_default());
        if is_write
            && config.lost_answer_rate > 0.0
            && self.rng.random_bool(probability(config.lost_answer_rate))
        {
            return Some(InjectedFault::LostAnswer);
        }
        None
    }
}

fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// State every handler and the gate share.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    org: Arc<Mutex<Org>>,
    config: Arc<RwLock<SimConfig>>,
    pub(crate) counters: Arc<Counters>,
    limiter: Arc<Mutex<RateLimiter>>,
    faults: Arc<Mutex<FaultState>>,
}

impl Shared {
    pub(crate) fn new(org: Org, config: SimConfig) -> Self {
        Self {
            org: Arc::new(Mutex::new(org)),
            limiter: Arc::new(Mutex::new(RateLimiter::new(&config.rate_limit))),
            faults: Arc::new(Mutex::new(FaultState::new(config.seed))),
            config: Arc::new(RwLock::new(config)),
            counters: Arc::new(Counters::default()),
        }
    }

    pub(crate) fn org(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn org_handle(&self) -> Arc<Mutex<Org>> {
        Arc::clone(&self.org)
    }

    pub(crate) fn config(&self) -> SimConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn update_config(&self, change: impl FnOnce(&mut SimConfig)) {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        let previous_seed = config.seed;
        change(&mut config);
        if config.seed != previous_seed {
            *self.faults.lock().unwrap_or_else(PoisonError::into_inner) =
                FaultState::new(config.seed);
        }
    }

    pub(crate) fn page_cap(&self) -> Option<usize> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .page_cap
    }

    pub(crate) fn duplicate_grant(&self) -> DuplicateGrant {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .duplicate_grant
    }

    pub(crate) fn script_faults(&self, route: Option<String>, faults: Vec<InjectedFault>) {
        let mut state = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .scripted
            .extend(faults.into_iter().map(|fault| (route.clone(), fault)));
    }

    pub(crate) fn clear_scripted_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .scripted
            .clear();
    }

    fn draw_fault(&self, route: &str, config: &FaultConfig) -> Option<InjectedFault> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .draw(route, config)
    }

    fn acquire(&self, config: &SimConfig, limited_write: bool) -> Result<(), Duration> {
        self.limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_acquire(&config.rate_limit, limited_write)
    }
}

/// One operation the simulator implements, as the spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Spec path template without the `/v1` prefix, e.g. `/groups/{group_id}/users`.
    pub path: &'static str,
}

impl Operation {
    /// `METHOD /path`, the form counters use.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Builds the router while listing what it serves.
pub(crate) struct RouteTable {
    router: Router<Shared>,
    operations: Vec<Operation>,
}

impl RouteTable {
    fn new() -> Self {
        Self {
            router: Router::new(),
            operations: Vec::new(),
        }
    }

    fn add<H, T>(
        mut self,
        method: &'static str,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        self.router = self
            .router
            .route(&format!("{API_PREFIX}{path}"), on(filter, handler));
        self.operations.push(Operation { method, path });
        self
    }

    pub(crate) fn get<H: Handler<T, Shared>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add("GET", MethodFilter::GET, path, handler)
    }

    pub(crate) fn post<H: Handler<T, Shared>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add("POST", MethodFilter::POST, path, handler)
    }

    pub(crate) fn put<H: Handler<T, Shared>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add("PUT", MethodFilter::PUT, path, handler)
    }

    pub(crate) fn delete<H: Handler<T, Shared>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add("DELETE", MethodFilter::DELETE, path, handler)
    }
}

fn route_table() -> RouteTable {
    routes::register(RouteTable::new())
}

/// Every operation the simulator serves.
pub fn implemented_operations() -> Vec<Operation> {
    let mut operations = route_table().operations;
    operations.sort();
    operations
}

/// The complete application: routes, a JSON 404 for unknown paths, and the gate around both.
pub(crate) fn app(shared: Shared) -> Router {
    route_table()
        .router
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn unknown_path(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

fn route_of(request: &Request) -> String {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| {
            let path = matched.as_str();
            path.strip_prefix(API_PREFIX).unwrap_or(path).to_owned()
        })
        .unwrap_or_else(|| "<unmatched>".to_owned());
    format!("{} {template}", request.method())
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, presented)| {
            scheme.eq_ignore_ascii_case("bearer") && presented.trim() == token
        })
}

/// Opal's write limit covers group and resource writes.
fn is_limited_write(route: &str) -> bool {
    let mut parts = route.splitn(2, ' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    is_write_method(method) && (path.starts_with("/groups") || path.starts_with("/resources"))
}

fn too_many_requests(retry_after: Option<Duration>) -> Response {
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded").into_response();
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// Cuts the connection; the returned answer is never written.
fn drop_connection(shared: &Shared, connection: Option<&ConnectionInfo>) -> Response {
    shared.counters.dropped();
    if let Some(connection) = connection {
        connection.kill_switch.kill();
    }
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn gate(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    shared.counters.request(&route);
    let config = shared.config();
    let finish = |response: Response| {
        shared.counters.answered(&route, response.status().as_u16());
        response
    };
    if !authorized(request.headers(), &config.token) {
        return finish(
            ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
                .into_response(),
        );
    }
    if let Err(wait) = shared.acquire(&config, is_limited_write(&route)) {
        shared.counters.rate_limited();
        let retry_after = config.rate_limit.retry_after_header.then_some(wait);
        return finish(too_many_requests(retry_after));
    }
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionInfo>>()
        .map(|info| info.0.clone());
    let fault = shared.draw_fault(&route, &config.faults);
    if fault.is_some() {
        shared.counters.injected_fault();
    }
    let lose_answer = match fault {
        None => false,
        Some(InjectedFault::LostAnswer) => true,
        Some(InjectedFault::ConnectionReset) => {
            return drop_connection(&shared, connection.as_ref());
        }
        Some(InjectedFault::Timeout(hold, outcome)) => {
            tokio::time::sleep(hold).await;
            return match outcome {
                TimeoutOutcome::GatewayTimeout => finish(
                    ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                        .into_response(),
                ),
                TimeoutOutcome::Drop => drop_connection(&shared, connection.as_ref()),
            };
        }
        Some(InjectedFault::TooManyRequests { retry_after }) => {
            return finish(too_many_requests(retry_after));
        }
        Some(InjectedFault::ServerError(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return finish(ApiError::new(status, "injected server error").into_response());
        }
    };
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    let handled_write = is_write_method(request.method().as_str()).then(|| write_key(&request));
    let response = next.run(request).await;
    if let Some(key) = &handled_write {
        shared.counters.handled_write(key);
    }
    if lose_answer {
        shared.counters.lost_answer(handled_write.as_deref());
        return drop_connection(&shared, connection.as_ref());
    }
    finish(response)
}

/// A write as it was addressed: method, concrete path and query, so two calls with the same key
/// asked for the same change.
fn write_key(request: &Request) -> String {
    let uri = request.uri();
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |target| target.as_str());
    format!("{} {target}", request.method())
}
