//! Hook that sees every HTTP attempt, for metrics.

use std::time::Duration;

use super::call::HttpMethod;
use crate::http::TransportErrorKind;

/// How one HTTP attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Opal answered with this status code.
    Status(u16),
    /// No status arrived.
    Transport(TransportErrorKind),
}

impl AttemptOutcome {
    /// Low-cardinality label: the status code as text, or the transport error kind.
    pub fn label(&self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Transport(kind) => kind.label().to_owned(),
        }
    }
}

/// One HTTP attempt as reported to a [`CallObserver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAttempt {
    /// Stable operation name such as `groups.users.add`.
    pub operation: &'static str,
    pub method: HttpMethod,
    pub outcome: AttemptOutcome,
    /// Time from sending the request until the response body was read (or the failure).
    pub latency: Duration,
    /// 1 for the first attempt of a call.
    pub attempt: u32,
    /// Whether the client will try the call again.
    pub will_retry: bool,
}

/// Receives every HTTP attempt the client makes. Called inline, so keep it cheap.
pub trait CallObserver: Send + Sync {
    fn on_attempt(&self, attempt: &CallAttempt);
}

/// The default observer: does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl CallObserver for NoopObserver {
    fn on_attempt(&self, _attempt: &CallAttempt) {}
}
