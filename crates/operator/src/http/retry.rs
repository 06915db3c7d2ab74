//! The retry policy: jittered exponential backoff, `Retry-After` honoured as a minimum, and a
//! total delay budget. API calls (Opal, HR) and notification messages use it with different
//! defaults.

use std::time::{Duration, SystemTime};

use rand::Rng;

use serde::{Deserialize, Serialize};

/// Retry of 429, 5xx, timeouts and connection failures with jittered exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per call, the first included (1 disables retries).
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A retry whose wait would take the call past this much time since it started is not made.
    pub max_total_delay_ms: u64,
}

/// The defaults for API calls, which someone is waiting on.
impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
            max_total_delay_ms: 60_000,
        }
    }
}

impl RetryConfig {
    /// The defaults for notification messages, which may wait out a long outage of the channel.
    pub fn for_messages() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            max_total_delay_ms: 900_000,
        }
    }
}

/// A retry section with some fields left out: those take the message defaults.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageRetryFields {
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    max_total_delay_ms: Option<u64>,
}

/// Reads a retry section whose missing fields take [`RetryConfig::for_messages`] values (serde's
/// container default would take the API-call ones).
pub fn deserialize_message_retry<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<RetryConfig, D::Error> {
    let fields = MessageRetryFields::deserialize(deserializer)?;
    let defaults = RetryConfig::for_messages();
    Ok(RetryConfig {
        max_attempts: fields.max_attempts.unwrap_or(defaults.max_attempts),
        initial_backoff_ms: fields
            .initial_backoff_ms
            .unwrap_or(defaults.initial_backoff_ms),
        max_backoff_ms: fields.max_backoff_ms.unwrap_or(defaults.max_backoff_ms),
        max_total_delay_ms: fields
            .max_total_delay_ms
            .unwrap_or(defaults.max_total_delay_ms),
    })
}

/// When and how long to wait before attempting a failed call again. Shared by every HTTP client
/// of the operator that retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_total_delay: Duration,
}

impl RetryPolicy {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            max_attempts: config.max_attempts.max(1),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            max_total_delay: Duration::from_millis(config.max_total_delay_ms),
        }
    }

    /// Exponential backoff after the `failed_attempt`-th attempt (1-based), with "equal jitter":
    /// a random wait between half and all of `min(max_backoff, initial × 2^(n-1))`, so clients
    /// that failed together do not retry together.
    pub fn backoff(&self, failed_attempt: u32, rng: &mut impl Rng) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(30);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.random_range(0..=spread))
    }

    /// The wait before the next attempt, or `None` when the call should give up: attempts are
    /// used up, or waiting would take the call past its total delay budget. A server-supplied
    /// `Retry-After` is honoured as a minimum, plus up to 10% jitter.
    pub fn next_delay(
        &self,
        failed_attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if failed_attempt >= self.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(wait) => {
                let spread = u64::try_from((wait / 10).as_nanos()).unwrap_or(u64::MAX);
                wait + Duration::from_nanos(rng.random_range(0..=spread))
            }
            None => self.backoff(failed_attempt, rng),
        };
        (elapsed.saturating_add(delay) <= self.max_total_delay).then_some(delay)
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn policy(max_attempts: u32, total_ms: u64) -> RetryPolicy {
        RetryPolicy::new(&RetryConfig {
            max_attempts,
            initial_backoff_ms: 100,
            max_backoff_ms: 2_000,
            max_total_delay_ms: total_ms,
        })
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_is_capped() {
        let policy = policy(20, 60_000);
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=12u32 {
            let ceiling = Duration::from_millis((100u64 << (attempt - 1)).min(2_000));
            for _ in 0..200 {
                let wait = policy.backoff(attempt, &mut rng);
                assert!(
                    wait >= ceiling / 2,
                    "attempt {attempt}: {wait:?} below half"
                );
                assert!(wait <= ceiling, "attempt {attempt}: {wait:?} above ceiling");
            }
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let policy = policy(5, 60_000);
        let mut rng = StdRng::seed_from_u64(1);
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| policy.backoff(3, &mut rng)).collect();
        assert!(waits.len() > 10);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let policy = policy(3, 60_000);
        let mut rng = StdRng::seed_from_u64(2);
        assert!(
            policy
                .next_delay(1, Duration::ZERO, None, &mut rng)
                .is_some()
        );
        assert!(
            policy
                .next_delay(2, Duration::ZERO, None, &mut rng)
                .is_some()
        );
        assert!(
            policy
                .next_delay(3, Duration::ZERO, None, &mut rng)
                .is_none()
        );
    }

    #[test]
    fn gives_up_when_the_total_budget_would_be_exceeded() {
        let policy = policy(10, 1_000);
        let mut rng = StdRng::seed_from_u64(3);
        assert!(
            policy
                .next_delay(1, Duration::from_millis(900), None, &mut rng)
                .is_some()
        );
        assert!(
            policy
                .next_delay(1, Duration::from_millis(990), None, &mut rng)
                .is_none()
        );
        assert!(
            policy
                .next_delay(1, Duration::ZERO, Some(Duration::from_secs(5)), &mut rng)
                .is_none()
        );
    }

    #[test]
    fn retry_after_is_a_minimum_with_bounded_jitter() {
        let policy = policy(10, 60_000);
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..100 {
            let wait = policy
                .next_delay(1, Duration::ZERO, Some(Duration::from_secs(2)), &mut rng)
                .expect("retry");
            assert!(wait >= Duration::from_secs(2));
            assert!(wait <= Duration::from_millis(2_200));
        }
    }

    #[test]
    fn a_message_retry_section_fills_gaps_with_message_defaults() {
        let read = |yaml: &str| deserialize_message_retry(serde_yaml::Deserializer::from_str(yaml));
        assert_eq!(
            read("maxAttempts: 3").expect("partial"),
            RetryConfig {
                max_attempts: 3,
                ..RetryConfig::for_messages()
            }
        );
        assert_eq!(read("{}").expect("empty"), RetryConfig::for_messages());
        assert_ne!(RetryConfig::for_messages(), RetryConfig::default());
        assert!(
            read("maxAttemps: 3").is_err(),
            "a misspelt field is refused"
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:42 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
