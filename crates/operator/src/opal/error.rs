//! Errors of the Opal client.

use crate::http::TransportErrorKind;

/// An Opal API call that did not succeed. Messages never contain the API token.
#[derive(Debug, thiserror::Error)]
pub enum OpalError {
    /// Opal answered with a non-success status (permanent, or still failing when retries ran out).
    #[error("Opal {operation}: HTTP {status} after {attempts} attempt(s): {body}")]
    Api {
        operation: &'static str,
        status: u16,
        /// Response body text (truncated), kept because Opal documents no error schema.
        body: String,
        attempts: u32,
    },
    /// No HTTP status was received (still failing when retries ran out).
    #[error("Opal {operation}: {kind} error after {attempts} attempt(s): {message}")]
    Transport {
        operation: &'static str,
        kind: TransportErrorKind,
        message: String,
        attempts: u32,
    },
    /// A success response whose body did not match the expected shape.
    #[error("Opal {operation}: cannot decode response: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    /// The request body could not be serialized.
    #[error("Opal {operation}: cannot encode request body: {message}")]
    Encode {
        operation: &'static str,
        message: String,
    },
    /// The server handed back a cursor it had already given; following it would never end.
    #[error("Opal {operation}: pagination cursor {cursor:?} repeated; stopping")]
    PaginationLoop {
        operation: &'static str,
        cursor: String,
    },
    /// A listing went past the configured page cap.
    #[error("Opal {operation}: more than {max_pages} pages; stopping")]
    TooManyPages {
        operation: &'static str,
        max_pages: u32,
    },
    /// The client configuration or token cannot be used.
    #[error("invalid Opal client configuration: {0}")]
    Config(String),
}

impl OpalError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Api { status, .. } => match status {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                429 => "rate_limited",
                500..=599 => "server_error",
                _ => "http_error",
            },
            Self::Transport { kind, .. } => kind.label(),
            Self::Decode { .. } => "decode",
            Self::Encode { .. } => "encode",
            Self::PaginationLoop { .. } => "pagination_loop",
            Self::TooManyPages { .. } => "too_many_pages",
            Self::Config(_) => "config",
        }
    }

    /// The HTTP status Opal answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether Opal said the addressed object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The operation name (`groups.users.add`, …) the error belongs to, if any.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Api { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Decode { operation, .. }
            | Self::Encode { operation, .. }
            | Self::PaginationLoop { operation, .. }
            | Self::TooManyPages { operation, .. } => Some(operation),
            Self::Config(_) => None,
        }
    }
}
