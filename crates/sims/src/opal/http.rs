//! HTTP plumbing shared by the handlers: error answers, query strings with repeated keys, and
//! JSON bodies that fail with a 400 and a readable message.

use axum::Json;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// An error answer. Opal documents no error body, so the simulator sends
/// `{"code": <status>, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{kind} {id} not found"))
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.status.as_u16(), "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The query string as ordered pairs, so repeated keys (`tag_ids=a&tag_ids=b`) survive.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        ))
    }
}

impl Params {
    /// First value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, with comma-joined values split (both array styles Opal uses).
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn integer(&self, name: &str) -> ApiResult<Option<i64>> {
        self.get(name)
            .map(|value| {
                value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be an integer, got {value:?}"))
                })
            })
            .transpose()
    }

    pub(crate) fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        self.get(name)
            .map(|value| match value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "{name} must be a boolean, got {value:?}"
                ))),
            })
            .transpose()
    }
}

/// Parses a required JSON body.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("malformed request body: {err}")))
}

/// Parses an optional JSON body (absent or blank = `None`).
pub(crate) fn optional_json_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    json_body(body).map(Some)
}
