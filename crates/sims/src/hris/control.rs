//! What both HR simulators share: per-route call counters, fault injection (scripted or random),
//! latency, route naming, and the running server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

/// A failure to inject into a coming request, answered before the request reaches its handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HrisFault {
    /// 429, with a `Retry-After` header (whole seconds, rounded up) when given.
    TooManyRequests { retry_after: Option<Duration> },
    /// 503, with a `Retry-After` header when given.
    ServiceUnavailable { retry_after: Option<Duration> },
    /// Any other status, with the vendor's error body.
    Status(u16),
    /// 200 with a JSON body cut off in the middle.
    MalformedBody,
}

/// Independent probabilities (0.0–1.0) of a random 429 or 503 per request, drawn from a seeded
/// generator so runs repeat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub too_many_requests: f64,
    pub service_unavailable: f64,
    /// `Retry-After` sent with random faults.
    pub retry_after: Option<Duration>,
}

/// Calls seen so far, by route name (`GET /workers`, `POST /reports/custom`, …; unknown paths
/// count as `<METHOD> <unmatched>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    pub by_route_status: BTreeMap<(String, u16), u64>,
    /// Faults injected, scripted or random.
    pub injected_faults: u64,
}

impl CallCounts {
    /// Requests to one route.
    pub fn calls(&self, route: &str) -> u64 {
        self.by_route.get(route).copied().unwrap_or(0)
    }

    /// Answers to one route with one status.
    pub fn calls_with_status(&self, route: &str, status: u16) -> u64 {
        self.by_route_status
            .get(&(route.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct FaultState {
    rng: StdRng,
    rates: FaultRates,
    /// Scripted faults, each for one route or (`None`) any route.
    scripted: VecDeque<(Option<String>, HrisFault)>,
}

/// Renders an error answer in the vendor's format.
pub(crate) type ErrorRenderer = fn(StatusCode, &str) -> Response;

/// Counters, faults and latency of one simulator, plus the names of its routes.
#[derive(Debug)]
pub(crate) struct Control {
    counts: Mutex<CallCounts>,
    faults: Mutex<FaultState>,
    latency: Mutex<Duration>,
    route_names: HashMap<String, &'static str>,
    render_error: ErrorRenderer,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Control {
    pub(crate) fn new(
        seed: u64,
        rates: FaultRates,
        latency: Duration,
        route_names: HashMap<String, &'static str>,
        render_error: ErrorRenderer,
    ) -> Self {
        Self {
            counts: Mutex::new(CallCounts::default()),
            faults: Mutex::new(FaultState {
                rng: StdRng::seed_from_u64(seed),
                rates,
                scripted: VecDeque::new(),
            }),
            latency: Mutex::new(latency),
            route_names,
            render_error,
        }
    }

    pub(crate) fn counts(&self) -> CallCounts {
        lock(&self.counts).clone()
    }

    pub(crate) fn reset_counts(&self) {
        *lock(&self.counts) = CallCounts::default();
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    pub(crate) fn set_fault_rates(&self, rates: FaultRates) {
        lock(&self.faults).rates = rates;
    }

    pub(crate) fn script_faults(&self, route: Option<&str>, faults: Vec<HrisFault>) {
        let mut state = lock(&self.faults);
        state.scripted.extend(
            faults
                .into_iter()
                .map(|fault| (route.map(str::to_owned), fault)),
        );
    }

    pub(crate) fn clear_faults(&self) {
        let mut state = lock(&self.faults);
        state.scripted.clear();
        state.rates = FaultRates::default();
    }

    /// The route name of a request, from the template it matched.
    pub(crate) fn route_of(&self, request: &Request) -> String {
        request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|matched| self.route_names.get(matched.as_str()))
            .map_or_else(
                || format!("{} <unmatched>", request.method()),
                |name| (*name).to_owned(),
            )
    }

    pub(crate) fn record_request(&self, route: &str) {
        let mut counts = lock(&self.counts);
        counts.total += 1;
        *counts.by_route.entry(route.to_owned()).or_default() += 1;
    }

    pub(crate) fn record_answer(&self, route: &str, status: StatusCode) {
        *lock(&self.counts)
            .by_route_status
            .entry((route.to_owned(), status.as_u16()))
            .or_default() += 1;
    }

    /// The fault for this request, if one is scripted for it or drawn at random.
    pub(crate) fn draw_fault(&self, route: &str) -> Option<Response> {
        let fault = {
            let mut state = lock(&self.faults);
            let scripted = state
                .scripted
                .iter()
                .position(|(only, _)| only.as_deref().is_none_or(|only| only == route))
                .and_then(|index| state.scripted.remove(index))
                .map(|(_, fault)| fault);
            match scripted {
                Some(fault) => Some(fault),
                None => {
                    let rates = state.rates.clone();
                    if state.rng.random_bool(probability(rates.too_many_requests)) {
                        Some(HrisFault::TooManyRequests {
                            retry_after: rates.retry_after,
                        })
                    } else if state
                        .rng
                        .random_bool(probability(rates.service_unavailable))
                    {
                        Some(HrisFault::ServiceUnavailable {
                            retry_after: rates.retry_after,
                        })
                    } else {
                        None
                    }
                }
            }
        }?;
        lock(&self.counts).injected_faults += 1;
        let render = self.render_error;
        Some(match fault {
            HrisFault::TooManyRequests { retry_after } => with_retry_after(
                render(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded"),
                retry_after,
            ),
            HrisFault::ServiceUnavailable { retry_after } => with_retry_after(
                render(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service temporarily unavailable",
                ),
                retry_after,
            ),
            HrisFault::Status(status) => render(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected failure",
            ),
            HrisFault::MalformedBody => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"total\": 3, \"data\": [{\"id\": \"",
            )
                .into_response(),
        })
    }

    pub(crate) async fn delay(&self) {
        let latency = *lock(&self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

fn with_retry_after(mut response: Response, retry_after: Option<Duration>) -> Response {
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// A simulator's HTTP server task; stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(addr: SocketAddr, app: Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "HR simulator stopped");
            }
        });
        Ok(Self { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
