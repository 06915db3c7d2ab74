//! The Opal API token: a [`Secret`] that is also a valid bearer header value.

use std::fmt;

use reqwest::header::HeaderValue;

use super::error::OpalError;
use crate::secret::Secret;

/// An Opal API token. `Debug` and `Display` print `[redacted]`; there is no way to serialize it.
#[derive(Clone)]
pub struct ApiToken(Secret);

impl ApiToken {
    /// Wraps a token, trimming surrounding whitespace (tokens read from files often end in `\n`).
    pub fn new(token: impl AsRef<str>) -> Result<Self, OpalError> {
        let secret =
            Secret::new(token).map_err(|_| OpalError::Config("the API token is empty".into()))?;
        if secret.expose().chars().any(|c| c.is_control() || c == ' ') {
            return Err(OpalError::Config(
                "the API token contains whitespace or control characters".into(),
            ));
        }
        Ok(Self(secret))
    }

    /// The `Authorization` header value, marked sensitive so HTTP stacks never print it.
    pub(crate) fn authorization_header(&self) -> Result<HeaderValue, OpalError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.0.expose())).map_err(|_| {
                OpalError::Config("the API token is not a valid HTTP header value".into())
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Replaces any occurrence of the token in text that may reach logs or errors.
    pub(crate) fn redact_from(&self, text: &str) -> String {
        self.0.redact_from(text)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_token() {
        let token = ApiToken::new("sk-live-abcdef123456").expect("valid token");
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(token.to_string(), "[redacted]");
        assert!(!format!("{:?}", Some(&token)).contains("abcdef"));
    }

    #[test]
    fn header_is_sensitive_and_hidden_in_debug() {
        let token = ApiToken::new("sk-live-abcdef123456").expect("valid token");
        let header = token.authorization_header().expect("header");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("abcdef"));
    }

    #[test]
    fn rejects_empty_and_malformed_tokens_without_echoing_them() {
        assert!(ApiToken::new("  \n").is_err());
        let err = ApiToken::new("abc def-secret").expect_err("space inside");
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            ApiToken::new("tok\n")
                .expect("trailing newline is trimmed")
                .redact_from("x tok y"),
            "x [redacted] y"
        );
    }
}
