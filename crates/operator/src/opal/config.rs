//! Client configuration, readable from the operator's config file (the token comes separately).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::OpalError;
use crate::http::RetryConfig;

/// Production API root.
pub const DEFAULT_BASE_URL: &str = "https://api.opal.dev/v1";

/// Settings of one Opal client. Every field has a default, so `{}` is a valid configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    /// API root including the version, e.g. `https://api.opal.dev/v1`.
    pub base_url: String,
    /// Most HTTP requests in flight at once from this client.
    pub max_concurrency: usize,
    /// Limit for one attempt, from connecting until the body is read.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Page size asked for on paginated listings (Opal allows up to 1000).
    pub page_size: u32,
    /// A listing that needs more pages than this fails instead of running on.
    pub max_pages: u32,
    pub rate_limit: RateLimitConfig,
    pub retry: RetryConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            max_concurrency: 16,
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            page_size: 200,
            max_pages: 100_000,
            rate_limit: RateLimitConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// Token buckets shared by every client of one Opal organisation. Opal documents 100 req/s per
/// organisation and 50 req/s for writes under `/groups` and `/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    pub requests_per_second: u32,
    /// Extra bucket for POST/PUT/DELETE under `/groups` and `/resources`.
    pub writes_per_second: u32,
    /// Requests allowed back to back after an idle period; kept small so bursts never reach
    /// Opal's own limit.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 100,
            writes_per_second: 50,
            burst: 5,
        }
    }
}

impl ClientConfig {
    /// Rejects settings the client cannot run with.
    pub fn validate(&self) -> Result<(), OpalError> {
        let problem = if self.max_concurrency == 0 {
            Some("maxConcurrency must be at least 1")
        } else if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            Some("timeouts must be greater than zero")
        } else if self.page_size == 0 || self.page_size > 1000 {
            Some("pageSize must be between 1 and 1000")
        } else if self.max_pages == 0 {
            Some("maxPages must be at least 1")
        } else if self.retry.max_attempts == 0 {
            Some("retry.maxAttempts must be at least 1")
        } else if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            Some("retry.initialBackoffMs must not exceed retry.maxBackoffMs")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(OpalError::Config(problem.to_owned())),
            None => self.rate_limit.validate(),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

impl RateLimitConfig {
    /// Rejects zero rates and bursts.
    pub fn validate(&self) -> Result<(), OpalError> {
        if self.requests_per_second == 0 || self.writes_per_second == 0 || self.burst == 0 {
            return Err(OpalError::Config(
                "rateLimit rates and burst must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_defaults() {
        let config: ClientConfig = serde_json::from_str("{}").expect("decode");
        assert_eq!(config, ClientConfig::default());
        assert_eq!(config.rate_limit.requests_per_second, 100);
        assert_eq!(config.rate_limit.writes_per_second, 50);
        assert_eq!(config.max_concurrency, 16);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn partial_document_overrides_only_named_fields() {
        let config: ClientConfig = serde_yaml::from_str(
            "baseUrl: http://127.0.0.1:9/v1\nrateLimit:\n  requestsPerSecond: 20\nretry:\n  maxAttempts: 2\n",
        )
        .expect("decode");
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(config.rate_limit.requests_per_second, 20);
        assert_eq!(config.rate_limit.writes_per_second, 50);
        assert_eq!(config.retry.max_attempts, 2);
        assert_eq!(config.retry.max_backoff_ms, 10_000);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<ClientConfig>(r#"{"rateLimt": {}}"#).is_err());
    }

    #[test]
    fn invalid_values_are_rejected() {
        let mut config = ClientConfig {
            page_size: 5000,
            ..ClientConfig::default()
        };
        assert_eq!(config.validate().expect_err("page size").label(), "config");
        config.page_size = 100;
        config.rate_limit.writes_per_second = 0;
        assert!(config.validate().is_err());
    }
}
