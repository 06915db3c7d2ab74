//! Errors of the HR sources.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::http::TransportErrorKind;

/// Which kind of HR system a snapshot or an error comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    Workday,
    BambooHr,
    File,
}

impl SourceKind {
    /// Stable low-cardinality name for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Workday => "workday",
            Self::BambooHr => "bamboohr",
            Self::File => "file",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Workday => "Workday",
            Self::BambooHr => "BambooHR",
            Self::File => "HR file",
        })
    }
}

/// One record of an HR source that could not be turned into an [`Employee`](super::Employee).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RowProblem {
    /// Where the record is: `line 18`, `records[3]`, `workers[117]`, `Report_Entry[5]`, ….
    pub location: String,
    /// The record's employee ID, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// The column or field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub problem: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)?;
        if let Some(id) = &self.employee_id {
            write!(f, " (employee {id})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field:?}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// An HR source that could not deliver. Messages keep the upstream error text and never contain
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum HrisError {
    /// The source configuration cannot be used.
    #[error("invalid HR source configuration: {0}")]
    Config(String),
    /// A credential reference could not be resolved.
    #[error("cannot read HR credential from {reference}: {message}")]
    Secret { reference: String, message: String },
    /// The HR system answered with a non-success status (permanent, or still failing when
    /// retries ran out).
    #[error("{system} {operation}: HTTP {status} after {attempts} attempt(s): {message}")]
    Api {
        system: SourceKind,
        operation: &'static str,
        status: u16,
        /// The upstream error text (error body fields, error header or raw body, truncated).
        message: String,
        attempts: u32,
    },
    /// No HTTP status was received (still failing when retries ran out).
    #[error("{system} {operation}: {kind} error after {attempts} attempt(s): {message}")]
    Transport {
        system: SourceKind,
        operation: &'static str,
        kind: TransportErrorKind,
        message: String,
        attempts: u32,
    },
    /// A response or file that does not have the expected shape as a whole.
    #[error("{system} {operation}: malformed data: {message}")]
    Malformed {
        system: SourceKind,
        operation: &'static str,
        message: String,
    },
    /// One record could not be used and bad records reject the snapshot.
    #[error("{system}: invalid record at {problem}")]
    InvalidRow {
        system: SourceKind,
        problem: RowProblem,
    },
    /// The listing ended early, overran or shifted while being read.
    #[error("{system} {operation}: incomplete listing: {message}")]
    Incomplete {
        system: SourceKind,
        operation: &'static str,
        message: String,
    },
    /// The source delivered no employees at all; never treated as "everyone left".
    #[error("{system}: the HR data holds no employees{detail}")]
    Empty { system: SourceKind, detail: String },
    /// A local file could not be read.
    #[error("cannot read HR file {path}: {message}")]
    Io { path: String, message: String },
    /// The source has no such operation (e.g. a change feed for a file).
    #[error("{system} does not support {operation}")]
    Unsupported {
        system: SourceKind,
        operation: &'static str,
    },
}

impl HrisError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Secret { .. } => "secret",
            Self::Api { status, .. } => match status {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                429 => "rate_limited",
                500..=599 => "server_error",
                _ => "http_error",
            },
            Self::Transport { kind, .. } => kind.label(),
            Self::Malformed { .. } => "malformed",
            Self::InvalidRow { .. } => "invalid_row",
            Self::Incomplete { .. } => "incomplete",
            Self::Empty { .. } => "empty",
            Self::Io { .. } => "io",
            Self::Unsupported { .. } => "unsupported",
        }
    }

    /// The HTTP status the HR system answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<crate::secret::SecretError> for HrisError {
    fn from(error: crate::secret::SecretError) -> Self {
        match error {
            crate::secret::SecretError::Empty => Self::Config(error.to_string()),
            crate::secret::SecretError::Unreadable { reference, reason } => Self::Secret {
                reference,
                message: reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable_and_messages_keep_upstream_text() {
        let error = HrisError::Api {
            system: SourceKind::Workday,
            operation: "workers.list",
            status: 503,
            message: "tenant under maintenance".into(),
            attempts: 4,
        };
        assert_eq!(error.label(), "server_error");
        assert_eq!(error.status(), Some(503));
        assert_eq!(
            error.to_string(),
            "Workday workers.list: HTTP 503 after 4 attempt(s): tenant under maintenance"
        );
        let row = HrisError::InvalidRow {
            system: SourceKind::File,
            problem: RowProblem {
                location: "line 7".into(),
                employee_id: Some("42".into()),
                field: Some("hireDate".into()),
                problem: "not a date: \"soon\"".into(),
            },
        };
        assert_eq!(row.label(), "invalid_row");
        assert_eq!(
            row.to_string(),
            "HR file: invalid record at line 7 (employee 42), field \"hireDate\": not a date: \"soon\""
        );
    }
}
