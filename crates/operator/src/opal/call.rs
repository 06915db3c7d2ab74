//! Description of one API call: operation name, method, path, query and body.

use std::fmt;

use serde::Serialize;

use super::error::OpalError;

/// The HTTP methods Opal's API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }

    /// Whether the method changes state on the server.
    pub fn is_write(self) -> bool {
        !matches!(self, Self::Get)
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether repeating a call after an ambiguous failure (timeout, 5xx, dropped connection) is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads, replacements, deletes and grant adds (a repeated add is recognised by the
    /// idempotent helpers): retried on every transient failure.
    Safe,
    /// Creations whose repetition would duplicate something (a request, a comment, a review):
    /// retried only when the server certainly did not act (429, or no connection made).
    OnlyIfNotProcessed,
}

/// A request path below the API root, built from segments so IDs are always percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiPath {
    segments: Vec<String>,
}

impl ApiPath {
    pub(crate) fn new<const N: usize>(segments: [&str; N]) -> Self {
        Self {
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    pub(crate) fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for ApiPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

/// Everything needed to send (and resend) one call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub operation: &'static str,
    pub method: HttpMethod,
    pub path: ApiPath,
    pub query: Vec<(&'static str, String)>,
    /// JSON body, serialized once so retries resend identical bytes.
    pub body: Option<Vec<u8>>,
    pub replay: Replay,
}

impl Call {
    pub(crate) fn new(operation: &'static str, method: HttpMethod, path: ApiPath) -> Self {
        Self {
            operation,
            method,
            path,
            query: Vec::new(),
            body: None,
            replay: Replay::Safe,
        }
    }

    pub(crate) fn get(operation: &'static str, path: ApiPath) -> Self {
        Self::new(operation, HttpMethod::Get, path)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn query_opt(self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(value) => self.query(key, value),
            None => self,
        }
    }

    /// Repeats `key` once per value (`tag_ids=a&tag_ids=b`).
    pub(crate) fn query_repeated(mut self, key: &'static str, values: &[String]) -> Self {
        self.query
            .extend(values.iter().map(|value| (key, value.clone())));
        self
    }

    /// Joins values with commas into one parameter (`group_ids=a,b`), as Opal expects for ID lists.
    pub(crate) fn query_joined(self, key: &'static str, values: &[String]) -> Self {
        if values.is_empty() {
            self
        } else {
            self.query(key, values.join(","))
        }
    }

    pub(crate) fn json_body<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Self, OpalError> {
        let bytes = serde_json::to_vec(body).map_err(|err| OpalError::Encode {
            operation: self.operation,
            message: err.to_string(),
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    pub(crate) fn not_replayable(mut self) -> Self {
        self.replay = Replay::OnlyIfNotProcessed;
        self
    }
}
