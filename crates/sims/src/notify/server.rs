//! Plumbing shared by the notification simulators: a loopback HTTP server, a recorder of every
//! request (with the status it got), scripted faults, and seeded random faults and latency.
//!
//! Random faults follow the Opal simulator's rules: independent probabilities drawn per request
//! in a fixed order (429, server error, lost answer), the first that fires wins, from a
//! generator seeded so a run with the same requests in the same order repeats exactly. A
//! scripted fault that matches a request takes precedence and draws nothing. Latency delays
//! every request the simulated service handles (including lost answers); refused requests are
//! answered at once. Unlike the Opal simulator, faults hit requests whatever their credentials,
//! since each service checks its own kind of credential in its handlers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// Largest request body the simulators read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Seed of the random faults when none is set: fixed, so runs repeat.
pub const DEFAULT_FAULT_SEED: u64 = 0x5EED;

/// Why a request was answered by an injected fault instead of (or after) the simulated service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// A fault queued with [`SimServer::inject`].
    Scripted,
    /// A random 429.
    TooManyRequests,
    /// A random server error; the request had no effect.
    ServerError,
    /// A random server error sent after the request took effect.
    LostAnswer,
}

/// One request as received, with the status it was answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// The fault that answered, if one did.
    pub injected: Option<InjectedFault>,
}

impl RecordedRequest {
    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `METHOD /path`.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A scripted failure for the next request that matches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Only requests with this method match (any when `None`).
    pub method: Option<String>,
    /// Only requests whose path starts with this match (any when `None`).
    pub path_prefix: Option<String>,
    pub status: u16,
    /// `Retry-After` value to send.
    pub retry_after: Option<String>,
    pub content_type: String,
    pub body: String,
    /// Let the request take effect first, then answer with the fault: a lost answer.
    pub after_effect: bool,
}

impl Fault {
    /// An answer with `status` and a small JSON body.
    pub fn status(status: u16) -> Self {
        Self {
            method: None,
            path_prefix: None,
            status,
            retry_after: None,
            content_type: "application/json".to_owned(),
            body: format!("{{\"injected\":{status}}}"),
            after_effect: false,
        }
    }

    /// A 429 with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self {
            retry_after: Some(retry_after_seconds.to_string()),
            ..Self::status(429)
        }
    }

    /// Restricts the fault to one method and path prefix.
    pub fn on(mut self, method: &str, path_prefix: &str) -> Self {
        self.method = Some(method.to_owned());
        self.path_prefix = Some(path_prefix.to_owned());
        self
    }

    pub fn with_body(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.content_type = content_type.to_owned();
        self.body = body.into();
        self
    }

    /// The request takes effect, then the answer is this fault.
    pub fn after_effect(mut self) -> Self {
        self.after_effect = true;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }

    fn response(&self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body.clone()).into_response();
        if let Ok(value) = HeaderValue::from_str(&self.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        if let Some(retry_after) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// Independent probabilities (0.0–1.0) of each random fault per request, drawn in the order
/// 429, server error, lost answer; the first that fires wins.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Probability of a 429.
    pub too_many_requests_rate: f64,
    /// `Retry-After` sent with random 429s, rounded up to whole seconds; `None` sends none.
    pub retry_after: Option<Duration>,
    /// Probability of a server error before the request takes effect.
    pub server_error_rate: f64,
    /// Statuses a server error (or lost answer) picks from, uniformly.
    pub server_error_statuses: Vec<u16>,
    /// Probability of letting the request take effect and then answering with a server error:
    /// the service did the work but the client never learns it.
    pub lost_answer_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            too_many_requests_rate: 0.0,
            retry_after: None,
            server_error_rate: 0.0,
            server_error_statuses: vec![500, 502, 503],
            lost_answer_rate: 0.0,
        }
    }
}

impl FaultConfig {
    /// No random faults.
    pub fn none() -> Self {
        Self::default()
    }
}

fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// Random faults and latency, with their seeded generator.
#[derive(Debug)]
struct Conditions {
    faults: FaultConfig,
    latency: Duration,
    seed: u64,
    rng: StdRng,
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            faults: FaultConfig::default(),
            latency: Duration::ZERO,
            seed: DEFAULT_FAULT_SEED,
            rng: StdRng::seed_from_u64(DEFAULT_FAULT_SEED),
        }
    }
}

impl Conditions {
    fn draw(&mut self) -> Option<(Fault, InjectedFault)> {
        let config = &self.faults;
        if self
            .rng
            .random_bool(probability(config.too_many_requests_rate))
        {
            let fault = Fault {
                retry_after: config
                    .retry_after
                    .map(|wait| (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).to_string()),
                ..Fault::status(429)
            };
            return Some((fault, InjectedFault::TooManyRequests));
        }
        if self.rng.random_bool(probability(config.server_error_rate)) {
            let status = self.server_error_status();
            return Some((Fault::status(status), InjectedFault::ServerError));
        }
        if self
            .rng
            .random_bool(probability(self.faults.lost_answer_rate))
        {
            let status = self.server_error_status();
            return Some((
                Fault::status(status).after_effect(),
                InjectedFault::LostAnswer,
            ));
        }
        None
    }

    fn server_error_status(&mut self) -> u16 {
        let statuses = &self.faults.server_error_statuses;
        if statuses.is_empty() {
            500
        } else {
            statuses[self.rng.random_range(0..statuses.len())]
        }
    }
}

/// Requests seen, faults waiting, and the random conditions.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    conditions: Mutex<Conditions>,
    changed: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// The scripted fault for this request if one matches, else a random draw; and the
    /// latency to add when the service handles the request.
    fn take_fault(&self, method: &str, path: &str) -> (Option<(Fault, InjectedFault)>, Duration) {
        let scripted = {
            let mut faults = lock(&self.faults);
            faults
                .iter()
                .position(|fault| fault.matches(method, path))
                .and_then(|index| faults.remove(index))
        };
        let mut conditions = lock(&self.conditions);
        let fault = match scripted {
            Some(fault) => Some((fault, InjectedFault::Scripted)),
            None => conditions.draw(),
        };
        (fault, conditions.latency)
    }

    fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
        self.changed.notify_waiters();
    }
}

async fn record(State(recorder): State<Arc<Recorder>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (fault, latency) = recorder.take_fault(&method, &path);
    let forward = Request::from_parts(parts, Body::from(body.clone()));
    let handled = |forward| async move {
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        next.run(forward).await
    };
    let (response, injected) = match fault {
        Some((fault, injected)) if !fault.after_effect => (fault.response(), Some(injected)),
        Some((fault, injected)) => {
            drop(handled(forward).await);
            (fault.response(), Some(injected))
        }
        None => (handled(forward).await, None),
    };
    recorder.record(RecordedRequest {
        method,
        path,
        query,
        headers,
        body: body.to_vec(),
        status: response.status().as_u16(),
        injected,
    });
    response
}

/// A simulator listening on 127.0.0.1. Stops when dropped.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Serves `router` (with recording and fault injection) on a free loopback port.
    pub(crate) async fn start(router: Router) -> std::io::Result<Self> {
        let recorder = Arc::new(Recorder::default());
        let app = router.layer(middleware::from_fn_with_state(
            Arc::clone(&recorder),
            record,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!(%err, "notification simulator stopped with an error");
            }
        });
        Ok(Self {
            addr,
            recorder,
            shutdown: Some(shutdown),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.recorder.requests).clone()
    }

    /// Requests to one route, e.g. `"POST /rest/api/3/issue"`.
    pub fn requests_to(&self, route: &str) -> Vec<RecordedRequest> {
        lock(&self.recorder.requests)
            .iter()
            .filter(|request| request.route() == route)
            .cloned()
            .collect()
    }

    /// Queues a fault for the next matching request (faults are used in the order queued).
    pub fn inject(&self, fault: Fault) {
        lock(&self.recorder.faults).push_back(fault);
    }

    /// Faults not used yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.recorder.faults).len()
    }

    /// Replaces the random fault rates (scripted faults still come first).
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.recorder.conditions).faults = faults;
    }

    /// Sets the delay added to every request the simulated service handles.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.recorder.conditions).latency = latency;
    }

    /// Reseeds the random faults; a new seed restarts the sequence of draws.
    pub fn set_seed(&self, seed: u64) {
        let mut conditions = lock(&self.recorder.conditions);
        if conditions.seed != seed {
            conditions.seed = seed;
            conditions.rng = StdRng::seed_from_u64(seed);
        }
    }

    /// Requests answered by an injected fault of this kind so far.
    pub fn injected(&self, kind: InjectedFault) -> usize {
        lock(&self.recorder.requests)
            .iter()
            .filter(|request| request.injected == Some(kind))
            .count()
    }

    /// Waits until at least `count` requests were answered, or `timeout` passes; returns
    /// whether the count was reached.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.recorder.changed.notified();
            if lock(&self.recorder.requests).len() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return lock(&self.recorder.requests).len() >= count;
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

/// Lock helper for simulator state.
pub(crate) fn state<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    lock(mutex)
}

/// Parses a query string into ordered pairs.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// First value of `name` in query pairs.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}
