//! Errors of the notification clients, the channel registry and the outbox. Messages never carry
//! credentials: server answers and transport errors pass through the channel's redactor first.

use std::time::Duration;

use super::config::ChannelKind;
use crate::http::TransportErrorKind;

/// A notification that could not be delivered, or a configuration that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// The notification configuration is invalid.
    #[error("invalid notification configuration: {0}")]
    Config(String),
    /// A custom resource names channels the operator config does not define.
    #[error("unknown notification channel(s) {unknown:?}; configured channels: {known:?}")]
    UnknownChannel {
        unknown: Vec<String>,
        known: Vec<String>,
    },
    /// A channel's credential could not be read.
    #[error("channel {channel:?}: cannot read credential from {reason}")]
    Secret { channel: String, reason: String },
    /// The service answered with a failure status.
    #[error("{service} {operation}: HTTP {status}: {detail}")]
    Http {
        service: ChannelKind,
        operation: &'static str,
        status: u16,
        /// The service's own error text (code, message), truncated and redacted.
        detail: String,
        /// The wait the service asked for with `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The service accepted the HTTP request but refused it in the body (Slack's `ok:false`,
    /// Splunk HEC codes).
    #[error("{service} {operation}: {code}{}", detail_suffix(.detail))]
    Rejected {
        service: ChannelKind,
        operation: &'static str,
        code: String,
        detail: String,
        retryable: bool,
    },
    /// No HTTP status arrived.
    #[error("{service} {operation}: {kind} error: {message}")]
    Transport {
        service: ChannelKind,
        operation: &'static str,
        kind: TransportErrorKind,
        message: String,
    },
    /// A success answer whose body did not have the documented shape.
    #[error("{service} {operation}: cannot decode response: {message}")]
    Decode {
        service: ChannelKind,
        operation: &'static str,
        message: String,
    },
    /// The ticket is in a state the requested change cannot be made from (e.g. no transition
    /// to a done status is available).
    #[error("{service} {operation}: {message}")]
    Workflow {
        service: ChannelKind,
        operation: &'static str,
        message: String,
    },
    /// The SMTP server refused the message or could not be reached.
    #[error("email: {message}")]
    Smtp {
        message: String,
        /// The server's reply code, when it sent one.
        code: Option<u16>,
        permanent: bool,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl NotifyError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::UnknownChannel { .. } => "unknown_channel",
            Self::Secret { .. } => "secret",
            Self::Http { status, .. } => match status {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                408 => "request_timeout",
                410 => "gone",
                413 => "payload_too_large",
                429 => "rate_limited",
                500..=599 => "server_error",
                _ => "http_error",
            },
            Self::Rejected { .. } => "rejected",
            Self::Transport { kind, .. } => kind.label(),
            Self::Decode { .. } => "decode",
            Self::Workflow { .. } => "workflow",
            Self::Smtp {
                permanent: true, ..
            } => "smtp_permanent",
            Self::Smtp { .. } => "smtp_transient",
        }
    }

    /// Whether trying again later may succeed: 408, 429, 5xx, transport failures, transient SMTP
    /// replies and the body-level codes services document as temporary.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            Self::Rejected { retryable, .. } => *retryable,
            Self::Transport { .. } => true,
            Self::Smtp { permanent, .. } => !permanent,
            Self::Config(_)
            | Self::UnknownChannel { .. }
            | Self::Secret { .. }
            | Self::Decode { .. }
            | Self::Workflow { .. } => false,
        }
    }

    /// The wait the service asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the service answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why [`crate::notify::Outbox::enqueue`] did not accept a message. Never a delivery failure:
/// those are reported asynchronously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// The channel's queue is at capacity; the message was not queued.
    #[error("notification queue of channel {channel:?} is full ({capacity} messages)")]
    QueueFull { channel: String, capacity: usize },
    /// No channel of that name is configured.
    #[error("unknown notification channel {channel:?}")]
    UnknownChannel { channel: String },
    /// The outbox has been shut down.
    #[error("the notification outbox is shut down")]
    Closed,
}

impl EnqueueError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "queue_full",
            Self::UnknownChannel { .. } => "unknown_channel",
            Self::Closed => "closed",
        }
    }
}

/// A credential built in code (such as a Basic header) that turned out empty; references that
/// cannot be read are reported with their channel by [`Channel::from_config`](super::Channel::from_config).
impl From<crate::secret::SecretError> for NotifyError {
    fn from(error: crate::secret::SecretError) -> Self {
        Self::Config(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_retryable_failures() {
        let http = |status| NotifyError::Http {
            service: ChannelKind::Jira,
            operation: "issue.create",
            status,
            detail: String::new(),
            retry_after: None,
        };
        assert!(http(429).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(404).is_retryable());
        assert_eq!(http(429).label(), "rate_limited");
        assert_eq!(http(502).label(), "server_error");
        let rejected = NotifyError::Rejected {
            service: ChannelKind::Slack,
            operation: "chat.postMessage",
            code: "channel_not_found".into(),
            detail: String::new(),
            retryable: false,
        };
        assert_eq!(
            rejected.to_string(),
            "slack chat.postMessage: channel_not_found"
        );
        assert!(!rejected.is_retryable());
    }
}
