//! Failures before a status code arrived.

use std::fmt;

/// Why one HTTP attempt failed before a status code arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The per-request timeout elapsed.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection failed while sending or waiting (reset, closed early, protocol error).
    Request,
    /// The response body could not be read completely.
    Body,
    /// Any other failure inside the HTTP stack.
    Other,
}

impl TransportErrorKind {
    /// The kind of a reqwest failure.
    pub fn of(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_connect() {
            Self::Connect
        } else if err.is_body() || err.is_decode() {
            Self::Body
        } else if err.is_request() {
            Self::Request
        } else {
            Self::Other
        }
    }

    /// Stable low-cardinality name for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Request => "request",
            Self::Body => "body",
            Self::Other => "transport",
        }
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The error and its causes on one line (reqwest's own message hides the underlying cause, such
/// as "connection reset by peer").
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        ));
        assert_eq!(error_chain(&err), "outer: connection reset by peer");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect_err("nothing listens");
        assert_eq!(TransportErrorKind::of(&err), TransportErrorKind::Connect);
        assert_eq!(TransportErrorKind::Connect.label(), "connect");
    }
}
