//! Token buckets standing in for Opal's organisation-wide rate limits.

use std::time::{Duration, Instant};

use super::config::{BucketConfig, RateLimitConfig};

#[derive(Debug)]
struct Bucket {
    config: BucketConfig,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn new(config: BucketConfig, now: Instant) -> Self {
        Self {
            config,
            tokens: config.burst,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.config.per_second).min(self.config.burst);
        self.refilled_at = now;
    }

    /// Time until one token is available (zero when one is).
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        if self.config.per_second <= 0.0 {
            return Duration::MAX;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.config.per_second)
    }
}

/// The overall bucket plus the one for group/resource writes.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    overall: Bucket,
    writes: Bucket,
}

impl RateLimiter {
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        let now = Instant::now();
        Self {
            config: config.clone(),
            overall: Bucket::new(config.overall, now),
            writes: Bucket::new(config.writes, now),
        }
    }

    /// Takes a token from every bucket the request draws from, or says how long to wait.
    /// A changed configuration starts from full buckets.
    pub(crate) fn try_acquire(
        &mut self,
        config: &RateLimitConfig,
        limited_write: bool,
    ) -> Result<(), Duration> {
        if *config != self.config {
            *self = Self::new(config);
        }
        if !config.enabled {
            return Ok(());
        }
        let now = Instant::now();
        self.overall.refill(now);
        self.writes.refill(now);
        let wait = if limited_write {
            self.overall.wait().max(self.writes.wait())
        } else {
            self.overall.wait()
        };
        if !wait.is_zero() {
            return Err(wait);
        }
        self.overall.tokens -= 1.0;
        if limited_write {
            self.writes.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let config = RateLimitConfig {
            overall: BucketConfig {
                per_second: 1.0,
                burst: 3.0,
            },
            ..RateLimitConfig::default()
        };
        let mut limiter = RateLimiter::new(&config);
        for _ in 0..3 {
            assert!(limiter.try_acquire(&config, false).is_ok());
        }
        let wait = limiter
            .try_acquire(&config, false)
            .expect_err("bucket is empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    }

    #[test]
    fn writes_draw_from_both_buckets() {
        let config = RateLimitConfig {
            overall: BucketConfig::per_second(100.0),
            writes: BucketConfig {
                per_second: 0.001,
                burst: 2.0,
            },
            ..RateLimitConfig::default()
        };
        let mut limiter = RateLimiter::new(&config);
        assert!(limiter.try_acquire(&config, true).is_ok());
        assert!(limiter.try_acquire(&config, true).is_ok());
        assert!(limiter.try_acquire(&config, true).is_err());
        assert!(limiter.try_acquire(&config, false).is_ok());
    }

    #[test]
    fn disabled_limiter_lets_everything_through() {
        let config = RateLimitConfig::disabled();
        let mut limiter = RateLimiter::new(&config);
        for _ in 0..1000 {
            assert!(limiter.try_acquire(&config, true).is_ok());
        }
    }
}
