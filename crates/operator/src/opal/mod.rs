//! Client for Opal's REST API (<https://api.opal.dev/v1>).
//!
//! * Typed requests and responses for the endpoints the operator uses (`model`, `api`), tolerant
//!   of unknown fields, unknown enum values and the spec's known inconsistencies.
//! * Every pagination style Opal uses behind one [`Pager`], with "collect all" helpers and
//!   page-by-page streaming; repeated cursors and runaway listings end in an error, not a loop.
//! * One [`OrgRateLimiter`] per Opal organisation (100 req/s overall, 50 req/s for writes under
//!   `/groups` and `/resources` by default), bounded concurrency per client, and retries with
//!   jittered exponential backoff on 429, 5xx, timeouts and connection failures, honouring
//!   `Retry-After`. Permanent 4xx answers surface at once as [`OpalError::Api`].
//! * Idempotent grant/revoke helpers ([`GrantOutcome`], [`RevokeOutcome`]).
//! * A [`CallObserver`] sees every HTTP attempt (for metrics); `tracing` spans name each call.
//! * The [`ApiToken`] never appears in logs, errors or `Debug` output.

mod api;
mod call;
mod client;
mod config;
mod error;
mod limiter;
pub mod model;
mod observer;
pub mod pagination;
mod token;

/// The retry settings of [`ClientConfig`].
pub use api::{
    EventFilter, GrantOn, GrantOutcome, GroupFilter, RelayRequestFilter, RequestFilter,
    ResourceFilter, RevokeOutcome,
};
pub use call::HttpMethod;
pub use client::{Client, ClientBuilder};
pub use config::{ClientConfig, DEFAULT_BASE_URL, RateLimitConfig};
pub use error::OpalError;
pub use limiter::{OrgRateLimiter, is_group_or_resource_write};
pub use observer::{AttemptOutcome, CallAttempt, CallObserver, NoopObserver};
pub use pagination::Pager;
pub use token::ApiToken;
