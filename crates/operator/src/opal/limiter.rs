//! Organisation-wide request rate limiting.
//!
//! Opal limits an organisation to one rate overall and a lower one for writes under `/groups` and
//! `/resources`. A write must take a token from both buckets at the same moment it is sent: taking
//! them one after the other (as two independent limiters such as `governor` would) lets writes
//! that waited for the overall bucket leave back to back and overrun the write limit. Hence this
//! small limiter, which checks and takes both tokens atomically.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::call::HttpMethod;
use super::config::RateLimitConfig;
use super::error::OpalError;

/// Token buckets for one Opal organisation, shared by every client of that organisation (Opal's
/// limits are per organisation, not per token). Cloning is cheap and shares the buckets.
#[derive(Clone)]
pub struct OrgRateLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    config: RateLimitConfig,
    buckets: Mutex<Buckets>,
}

/// One bucket as a generic cell rate algorithm: requests are spaced by `interval`, and up to
/// `burst` may go back to back after an idle period.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    interval: Duration,
    /// How far ahead of the theoretical schedule a request may run (`interval × (burst - 1)`).
    tolerance: Duration,
    /// When the next request would be due if every earlier one had kept to the schedule.
    theoretical_arrival: Instant,
}

impl Bucket {
    fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            theoretical_arrival: now,
        }
    }

    /// Time until this bucket allows a request (zero: now).
    fn wait(&self, now: Instant) -> Duration {
        self.theoretical_arrival
            .checked_sub(self.tolerance)
            .map_or(Duration::ZERO, |allowed_at| {
                allowed_at.saturating_duration_since(now)
            })
    }

    fn take(&mut self, now: Instant) {
        self.theoretical_arrival = self.theoretical_arrival.max(now) + self.interval;
    }
}

#[derive(Debug)]
struct Buckets {
    overall: Bucket,
    group_and_resource_writes: Bucket,
}

impl Buckets {
    fn new(config: &RateLimitConfig, now: Instant) -> Self {
        Self {
            overall: Bucket::new(config.requests_per_second, config.burst, now),
            group_and_resource_writes: Bucket::new(config.writes_per_second, config.burst, now),
        }
    }

    /// Takes the tokens a request needs, or says how long to wait before asking again.
    fn try_acquire(&mut self, limited_write: bool, now: Instant) -> Result<(), Duration> {
        let mut wait = self.overall.wait(now);
        if limited_write {
            wait = wait.max(self.group_and_resource_writes.wait(now));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        self.overall.take(now);
        if limited_write {
            self.group_and_resource_writes.take(now);
        }
        Ok(())
    }
}

impl OrgRateLimiter {
    pub fn new(config: &RateLimitConfig) -> Result<Self, OpalError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config: config.clone(),
                buckets: Mutex::new(Buckets::new(config, Instant::now())),
            }),
        })
    }

    /// Waits until one request to `path` (relative to the API root) may be sent.
    pub async fn acquire(&self, method: HttpMethod, path: &str) {
        let limited_write = is_group_or_resource_write(method, path);
        loop {
            let attempt = self
                .shared
                .buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_acquire(limited_write, Instant::now());
            match attempt {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }
}

impl fmt::Debug for OrgRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgRateLimiter")
            .field("config", &self.shared.config)
            .finish()
    }
}

/// Whether a call counts against Opal's lower limit for writes: POST, PUT or DELETE on a path
/// (relative to the API root) in the `/groups` or `/resources` collections.
pub fn is_group_or_resource_write(method: HttpMethod, path: &str) -> bool {
    method.is_write() && (in_collection(path, "/groups") || in_collection(path, "/resources"))
}

fn in_collection(path: &str, collection: &str) -> bool {
    path.strip_prefix(collection)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(overall: u32, writes: u32, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            requests_per_second: overall,
            writes_per_second: writes,
            burst,
        }
    }

    /// Sends as fast as the buckets allow for `span` and returns the send times.
    fn admitted(
        buckets: &mut Buckets,
        start: Instant,
        span: Duration,
        write: bool,
    ) -> Vec<Instant> {
        let mut now = start;
        let mut sent = Vec::new();
        while now < start + span {
            match buckets.try_acquire(write, now) {
                Ok(()) => sent.push(now),
                Err(wait) => now += wait,
            }
        }
        sent
    }

    #[test]
    fn writes_under_groups_and_resources_are_classified() {
        use HttpMethod::*;
        for method in [Post, Put, Delete] {
            assert!(is_group_or_resource_write(method, "/groups"));
            assert!(is_group_or_resource_write(method, "/groups/g1/users/u1"));
            assert!(is_group_or_resource_write(method, "/resources"));
            assert!(is_group_or_resource_write(method, "/resources/r1/users/u1"));
        }
        assert!(!is_group_or_resource_write(Get, "/groups/g1/users"));
        assert!(!is_group_or_resource_write(Get, "/resources"));
        assert!(!is_group_or_resource_write(Post, "/group-bindings"));
        assert!(!is_group_or_resource_write(
            Post,
            "/resource-user-access-status/r/u"
        ));
        assert!(!is_group_or_resource_write(Post, "/requests"));
        assert!(!is_group_or_resource_write(Post, "/tags/t/groups/g"));
        assert!(!is_group_or_resource_write(Put, "/owners"));
    }

    #[test]
    fn rejects_zero_rates() {
        assert!(OrgRateLimiter::new(&config(0, 50, 5)).is_err());
        assert!(OrgRateLimiter::new(&config(100, 50, 0)).is_err());
    }

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let mut buckets = Buckets::new(&config(100, 50, 5), start);
        let sent = admitted(&mut buckets, start, Duration::from_secs(2), false);
        // 5 at once, then one every 10 ms.
        assert!(sent[..5].iter().all(|at| *at == start));
        assert_eq!(sent[5] - start, Duration::from_millis(10));
        assert!((200..=205).contains(&sent.len()), "{}", sent.len());
        for pair in sent[5..].windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(10));
        }
    }

    #[test]
    fn group_and_resource_writes_keep_to_the_lower_rate() {
        let start = Instant::now();
        let mut buckets = Buckets::new(&config(100, 50, 1), start);
        let sent = admitted(&mut buckets, start, Duration::from_secs(1), true);
        assert_eq!(sent.len(), 50);
        for pair in sent.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(20));
        }
    }

    #[test]
    fn writes_and_reads_share_the_overall_bucket() {
        // Interleave reads and writes: every write must still be 20 ms after the previous write,
        // every request 10 ms after the previous request, whatever waited before.
        let start = Instant::now();
        let mut buckets = Buckets::new(&config(100, 50, 1), start);
        let mut now = start;
        let mut last_write: Option<Instant> = None;
        let mut last_any: Option<Instant> = None;
        for index in 0..300 {
            let write = index % 3 != 0;
            loop {
                match buckets.try_acquire(write, now) {
                    Ok(()) => break,
                    Err(wait) => now += wait,
                }
            }
            if let Some(previous) = last_any {
                assert!(now - previous >= Duration::from_millis(10));
            }
            if write {
                if let Some(previous) = last_write {
                    assert!(now - previous >= Duration::from_millis(20));
                }
                last_write = Some(now);
            }
            last_any = Some(now);
        }
    }

    #[test]
    fn a_refused_write_takes_no_token() {
        let start = Instant::now();
        let mut buckets = Buckets::new(&config(100, 1, 1), start);
        assert!(buckets.try_acquire(true, start).is_ok());
        assert!(buckets.try_acquire(true, start).is_err());
        // The refused write did not use the overall bucket: a read may go 10 ms later.
        assert!(
            buckets
                .try_acquire(false, start + Duration::from_millis(10))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn clones_share_one_budget() {
        // 20 req/s, burst 1: five acquisitions over two clones need at least 4 × 50 ms.
        let limiter = OrgRateLimiter::new(&config(20, 20, 1)).expect("limiter");
        let other = limiter.clone();
        let started = Instant::now();
        for round in 0..5 {
            let which = if round % 2 == 0 { &limiter } else { &other };
            which.acquire(HttpMethod::Get, "/users").await;
        }
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
