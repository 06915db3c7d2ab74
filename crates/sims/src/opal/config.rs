//! Runtime configuration of the Opal simulator: auth, latency, paging, the behaviour the spec leaves
//! open, fault injection and the rate limiter. Every part can be replaced while the server runs.

use std::time::Duration;

/// Token the simulator accepts when none is configured.
pub const DEFAULT_TOKEN: &str = "opal-sim-token";

/// Largest `page_size` Opal documents; larger values are clamped to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Page size Opal documents as the default.
pub const DEFAULT_PAGE_SIZE: usize = 200;

/// Everything that shapes how the simulator answers.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Bearer token every request must carry.
    pub token: String,
    /// Delay added to every authenticated request before it is answered.
    pub latency: Duration,
    /// Upper bound on items per page for every paginated endpoint, whatever the client asks for.
    /// Lets tests force many pages on small data sets.
    pub page_cap: Option<usize>,
    /// Answer to `POST .../users/{user_id}` when the grant already exists.
    pub duplicate_grant: DuplicateGrant,
    /// Randomly injected failures.
    pub faults: FaultConfig,
    /// Opal's documented per-organisation rate limits.
    pub rate_limit: RateLimitConfig,
    /// Seed for fault injection and for the ids of objects created at run time.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN.to_owned(),
            latency: Duration::ZERO,
            page_cap: None,
            duplicate_grant: DuplicateGrant::ReturnExisting,
            faults: FaultConfig::default(),
            rate_limit: RateLimitConfig::default(),
            seed: DEFAULT_SEED,
        }
    }
}

/// Seed used when none is configured: fixed, so runs are reproducible.
pub const DEFAULT_SEED: u64 = 0x5EED;

/// How adding a grant that already exists is answered. The spec does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DuplicateGrant {
    /// 200 with the existing grant, unchanged (an idempotent add).
    #[default]
    ReturnExisting,
    /// 409 with an error body.
    Conflict,
}

/// What a held ("timed out") request finally gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeoutOutcome {
    /// Answer 504 Gateway Timeout after the hold.
    #[default]
    GatewayTimeout,
    /// Close the connection without an answer after the hold.
    Drop,
}

/// Independent probabilities (0.0–1.0) of each injected failure per authenticated request.
/// They are drawn in the order reset, timeout, 429, 5xx, lost answer; the first one that fires
/// wins.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Probability of a 429 answer.
    pub too_many_requests_rate: f64,
    /// `Retry-After` value sent with injected 429s; `None` sends no header.
    pub retry_after: Option<Duration>,
    /// Probability of a 5xx answer.
    pub server_error_rate: f64,
    /// Statuses an injected server error picks from, uniformly.
    pub server_error_statuses: Vec<u16>,
    /// Probability of holding the request for `timeout_hold`.
    pub timeout_rate: f64,
    /// How long a timed-out request is held.
    pub timeout_hold: Duration,
    /// What the held request gets afterwards.
    pub timeout_outcome: TimeoutOutcome,
    /// Probability of dropping the connection without any answer.
    pub connection_reset_rate: f64,
    /// Probability, for writes (POST, PUT, DELETE, PATCH) only, of acting on the request and then
    /// dropping the connection instead of answering: the change is made, the client never hears.
    pub lost_answer_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            too_many_requests_rate: 0.0,
            retry_after: None,
            server_error_rate: 0.0,
            server_error_statuses: vec![500, 502, 503],
            timeout_rate: 0.0,
            timeout_hold: Duration::from_secs(30),
            timeout_outcome: TimeoutOutcome::GatewayTimeout,
            connection_reset_rate: 0.0,
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

/// One failure to inject deterministically into a coming request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// 429, with a `Retry-After` header when given.
    TooManyRequests {
        /// Value of the `Retry-After` header, rounded up to whole seconds.
        retry_after: Option<Duration>,
    },
    /// The given 5xx status.
    ServerError(u16),
    /// Hold the request for the duration, then apply the outcome.
    Timeout(Duration, TimeoutOutcome),
    /// Drop the connection without an answer.
    ConnectionReset,
    /// Act on the request, then drop the connection instead of sending the answer.
    LostAnswer,
}

/// A token bucket: `per_second` refill rate and room for `burst` requests at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size: requests allowed back to back after an idle period.
    pub burst: f64,
}

impl BucketConfig {
    /// A bucket that holds one second's worth of requests.
    pub fn per_second(per_second: f64) -> Self {
        Self {
            per_second,
            burst: per_second,
        }
    }
}

/// Opal's organisation-wide limits: one bucket for everything, a second one for writes
/// (POST/PUT/DELETE) whose path starts with `/groups` or `/resources`.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// When false every request passes.
    pub enabled: bool,
    /// Bucket every request draws from.
    pub overall: BucketConfig,
    /// Bucket group and resource writes also draw from.
    pub writes: BucketConfig,
    /// Send a `Retry-After` header (whole seconds until a token is free) with limiter 429s.
    /// Opal documents no such header, so the default is off.
    pub retry_after_header: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            overall: BucketConfig::per_second(100.0),
            writes: BucketConfig::per_second(50.0),
            retry_after_header: false,
        }
    }
}

impl RateLimitConfig {
    /// A limiter that lets everything through.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}
