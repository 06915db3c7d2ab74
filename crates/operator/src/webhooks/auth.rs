//! Credentials of the hooks other than BambooHR's: an HMAC-SHA256 signature of the body, or a
//! shared token. Every comparison is constant-time.

use axum::http::{HeaderMap, Uri, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::HookError;
use crate::secret::Secret;

/// `sha256=<lowercase hex HMAC-SHA256 of the raw body>`, keyed by the hook's secret.
pub const SIGNATURE_HEADER: &str = "x-opal-operator-signature";
/// The hook's shared secret as is, for senders that cannot sign (Datadog's custom headers).
pub const TOKEN_HEADER: &str = "x-opal-operator-token";

const SIGNATURE_SCHEME: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

fn keyed(secret: &Secret, message: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(message);
    mac
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, HookError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| HookError::Unauthenticated(format!("header {name} is not text")))
        })
        .transpose()
}

/// Checks `X-Opal-Operator-Signature` against the raw body.
pub(super) fn verify_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HookError> {
    verify_signature_in(SIGNATURE_HEADER, secret, headers, body)
}

/// Checks `sha256=<hex HMAC-SHA256 of the body>` in header `name` (ours, or Jira's
/// `X-Hub-Signature`).
pub(super) fn verify_signature_in(
    name: &str,
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HookError> {
    let presented = header_text(headers, name)?
        .ok_or_else(|| HookError::Unauthenticated(format!("missing header {name}")))?;
    check_signature(name, secret, presented, body)
}

fn check_signature(
    name: &str,
    secret: &Secret,
    presented: &str,
    body: &[u8],
) -> Result<(), HookError> {
    let malformed = || {
        HookError::Unauthenticated(format!(
            "header {name} must be {SIGNATURE_SCHEME}<hex HMAC-SHA256 of the body>"
        ))
    };
    let hex_digest = presented
        .get(..SIGNATURE_SCHEME.len())
        .filter(|scheme| scheme.eq_ignore_ascii_case(SIGNATURE_SCHEME))
        .and_then(|_| presented.get(SIGNATURE_SCHEME.len()..))
        .ok_or_else(malformed)?;
    let digest = hex::decode(hex_digest).map_err(|_| malformed())?;
    keyed(secret, body)
        .verify_slice(&digest)
        .map_err(|_| HookError::Unauthenticated("signature does not match".into()))
}

/// Compares a presented token with the secret without revealing, by timing, how much of it
/// matched: both sides are reduced to fixed-length MACs first.
fn check_token(secret: &Secret, presented: &str) -> Result<(), HookError> {
    let expected = keyed(secret, secret.expose().as_bytes())
        .finalize()
        .into_bytes();
    keyed(secret, presented.as_bytes())
        .verify_slice(&expected)
        .map_err(|_| HookError::Unauthenticated("token does not match".into()))
}

/// Splunk: `Authorization: Bearer <token>`, or `?token=<token>` in the URL (Splunk's built-in
/// webhook action cannot set headers). A header, when present, is the one checked.
pub(super) fn verify_bearer_or_query_token(
    secret: &Secret,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), HookError> {
    if let Some(authorization) = header_text(headers, header::AUTHORIZATION.as_str())? {
        let token = authorization
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                HookError::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`".into(),
                )
            })?;
        return check_token(secret, token);
    }
    let query_token = uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, token)| token.into_owned())
    });
    match query_token {
        Some(token) => check_token(secret, &token),
        None => Err(HookError::Unauthenticated(
            "missing token: send `Authorization: Bearer <token>` or `?token=<token>`".into(),
        )),
    }
}

/// Datadog: `X-Opal-Operator-Token: <secret>` (set in the webhook's custom headers), or
/// `X-Opal-Operator-Signature` from a relay that signs. The token header wins when both come.
pub(super) fn verify_token_or_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HookError> {
    if let Some(token) = header_text(headers, TOKEN_HEADER)? {
        return check_token(secret, token);
    }
    match header_text(headers, SIGNATURE_HEADER)? {
        Some(signature) => check_signature(SIGNATURE_HEADER, secret, signature, body),
        None => Err(HookError::Unauthenticated(format!(
            "missing header {TOKEN_HEADER} or {SIGNATURE_HEADER}"
        ))),
    }
}

/// Opal event streams: the signature header carries the hex HMAC-SHA256 of
/// `v0:<timestamp>:<raw body>` (with or without a `v0=` prefix), the timestamp header the Unix
/// seconds it was signed at. A timestamp more than `max_age_seconds` away from `now` is
/// refused, so a captured delivery cannot be replayed later.
pub(super) fn verify_timestamped_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    names: (&str, &str),
    now: chrono::DateTime<chrono::Utc>,
    max_age_seconds: i64,
) -> Result<(), HookError> {
    let (signature_header, timestamp_header) = names;
    let timestamp = header_text(headers, timestamp_header)?
        .ok_or_else(|| HookError::Unauthenticated(format!("missing header {timestamp_header}")))?;
    let signed_at: i64 = timestamp.parse().map_err(|_| {
        HookError::Unauthenticated(format!("header {timestamp_header} is not Unix seconds"))
    })?;
    if (now.timestamp() - signed_at).abs() > max_age_seconds {
        return Err(HookError::Unauthenticated(format!(
            "header {timestamp_header} is more than {max_age_seconds}s from now"
        )));
    }
    let presented = header_text(headers, signature_header)?
        .ok_or_else(|| HookError::Unauthenticated(format!("missing header {signature_header}")))?;
    let hex_digest = presented.strip_prefix("v0=").unwrap_or(presented);
    let digest = hex::decode(hex_digest).map_err(|_| {
        HookError::Unauthenticated(format!("header {signature_header} is not a hex digest"))
    })?;
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    keyed(secret, &message)
        .verify_slice(&digest)
        .map_err(|_| HookError::Unauthenticated("signature does not match".into()))
}

/// Slack: as [`verify_timestamped_signature`], except that the signature must carry Slack's
/// `v0=` scheme, so a bare digest is refused as malformed.
pub(super) fn verify_slack_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    names: (&str, &str),
    now: chrono::DateTime<chrono::Utc>,
    max_age_seconds: i64,
) -> Result<(), HookError> {
    let signature_header = names.0;
    if let Some(presented) = header_text(headers, signature_header)?
        && !presented.starts_with("v0=")
    {
        return Err(HookError::Unauthenticated(format!(
            "header {signature_header} must be v0=<hex HMAC-SHA256 of v0:<timestamp>:<body>>"
        )));
    }
    verify_timestamped_signature(secret, headers, body, names, now, max_age_seconds)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const KEY: &str = "hook-secret";
    const BODY: &[u8] = br#"{"workerIds":["21001"]}"#;
    /// `sha256=` + `printf '%s' "$BODY" | openssl dgst -sha256 -hmac hook-secret`
    const SIGNATURE: &str =
        "sha256=67f05da92bd965eb9fd2c50803f9b7a62a8b4f901527a71c5e1672efdbe7850c";

    fn secret() -> Secret {
        Secret::new(KEY).expect("secret")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    fn is_unauthenticated(result: Result<(), HookError>) -> bool {
        matches!(result, Err(HookError::Unauthenticated(_)))
    }

    #[test]
    fn a_signature_of_the_exact_body_is_accepted_in_either_hex_case() {
        verify_signature(&secret(), &headers(&[(SIGNATURE_HEADER, SIGNATURE)]), BODY)
            .expect("valid");
        let upper = format!("SHA256={}", SIGNATURE[7..].to_uppercase());
        verify_signature(&secret(), &headers(&[(SIGNATURE_HEADER, &upper)]), BODY)
            .expect("hex case does not matter");
    }

    #[test]
    fn forged_truncated_missing_or_unprefixed_signatures_are_refused() {
        let signature = SIGNATURE;
        let mut other_body = BODY.to_vec();
        other_body[3] ^= 1;
        let sent = headers(&[(SIGNATURE_HEADER, signature)]);
        assert!(is_unauthenticated(verify_signature(
            &secret(),
            &sent,
            &other_body
        )));
        let wrong_key = Secret::new("other").expect("secret");
        assert!(is_unauthenticated(verify_signature(
            &wrong_key, &sent, BODY
        )));
        for presented in [
            &signature[..signature.len() - 2],
            &signature[7..],
            "sha256=zz",
            "sha1=00",
            "",
        ] {
            assert!(
                is_unauthenticated(verify_signature(
                    &secret(),
                    &headers(&[(SIGNATURE_HEADER, presented)]),
                    BODY
                )),
                "{presented:?} was accepted"
            );
        }
        assert!(is_unauthenticated(verify_signature(
            &secret(),
            &HeaderMap::new(),
            BODY
        )));
    }

    #[test]
    fn slack_signatures_need_the_v0_scheme_a_fresh_timestamp_and_the_exact_body() {
        const SLACK_BODY: &[u8] = b"payload=%7B%7D";
        const SIGNED_AT: i64 = 1_700_000_000;
        /// `printf '%s' 'v0:1700000000:payload=%7B%7D' | openssl dgst -sha256 -hmac hook-secret`
        const DIGEST: &str = "b56bcdbd96c74049a3d615083c06809ab72d2b7c0bb2c546d32c598a90f3c856";
        let names = ("x-slack-signature", "x-slack-request-timestamp");
        let at = |seconds: i64| {
            chrono::DateTime::from_timestamp(SIGNED_AT + seconds, 0).expect("timestamp")
        };
        let check = |signature: &str, timestamp: &str, body: &[u8], now_offset: i64| {
            verify_slack_signature(
                &secret(),
                &headers(&[(names.0, signature), (names.1, timestamp)]),
                body,
                names,
                at(now_offset),
                300,
            )
        };
        let signature = format!("v0={DIGEST}");
        check(&signature, "1700000000", SLACK_BODY, 0).expect("valid");
        check(&signature, "1700000000", SLACK_BODY, 300).expect("300 s old is still fresh");
        check(&signature, "1700000000", SLACK_BODY, -300).expect("300 s ahead is still fresh");
        for (signature, timestamp, body, now_offset) in [
            (DIGEST.to_owned(), "1700000000", SLACK_BODY, 0),
            (format!("V0={DIGEST}"), "1700000000", SLACK_BODY, 0),
            (format!("v1={DIGEST}"), "1700000000", SLACK_BODY, 0),
            ("v0=zz".to_owned(), "1700000000", SLACK_BODY, 0),
            (signature.clone(), "1700000000", SLACK_BODY, 301),
            (signature.clone(), "1700000000", SLACK_BODY, -301),
            (signature.clone(), "1700000001", SLACK_BODY, 0),
            (signature.clone(), "1700000000", &b"payload=%7B%7D "[..], 0),
        ] {
            assert!(
                is_unauthenticated(check(&signature, timestamp, body, now_offset)),
                "{signature} {timestamp} {body:?} at +{now_offset}s was accepted"
            );
        }
        for pairs in [
            vec![(names.1, "1700000000")],
            vec![(names.0, signature.as_str())],
        ] {
            assert!(
                is_unauthenticated(verify_slack_signature(
                    &secret(),
                    &headers(&pairs),
                    SLACK_BODY,
                    names,
                    at(0),
                    300
                )),
                "{pairs:?} was accepted"
            );
        }
    }

    #[test]
    fn splunk_tokens_come_from_the_bearer_header_or_the_query() {
        let uri = |text: &str| text.parse::<Uri>().expect("uri");
        let plain = uri("/webhooks/alerts/splunk");
        verify_bearer_or_query_token(
            &secret(),
            &headers(&[("authorization", "Bearer hook-secret")]),
            &plain,
        )
        .expect("bearer");
        verify_bearer_or_query_token(
            &secret(),
            &HeaderMap::new(),
            &uri("/webhooks/alerts/splunk?x=1&token=hook%2Dsecret"),
        )
        .expect("query, percent-encoded");
        for (pairs, target) in [
            (vec![("authorization", "Bearer hook-secre")], "/"),
            (vec![("authorization", "Bearer hook-secrets")], "/"),
            (vec![("authorization", "Basic hook-secret")], "/"),
            (vec![("authorization", "hook-secret")], "/"),
            // A wrong header is not rescued by a right query token.
            (
                vec![("authorization", "Bearer wrong")],
                "/?token=hook-secret",
            ),
            (vec![], "/?token=wrong"),
            (vec![], "/?tok=hook-secret"),
        ] {
            assert!(
                is_unauthenticated(verify_bearer_or_query_token(
                    &secret(),
                    &headers(&pairs),
                    &uri(target)
                )),
                "{pairs:?} {target} was accepted"
            );
        }
    }

    #[test]
    fn datadog_takes_the_token_header_or_a_signature() {
        verify_token_or_signature(&secret(), &headers(&[(TOKEN_HEADER, KEY)]), BODY)
            .expect("token");
        verify_token_or_signature(&secret(), &headers(&[(SIGNATURE_HEADER, SIGNATURE)]), BODY)
            .expect("signature");
        // A wrong token is refused even when a valid signature comes along.
        assert!(is_unauthenticated(verify_token_or_signature(
            &secret(),
            &headers(&[(TOKEN_HEADER, "wrong"), (SIGNATURE_HEADER, SIGNATURE)]),
            BODY
        )));
        assert!(is_unauthenticated(verify_token_or_signature(
            &secret(),
            &headers(&[(TOKEN_HEADER, "wrong")]),
            BODY
        )));
        assert!(is_unauthenticated(verify_token_or_signature(
            &secret(),
            &HeaderMap::new(),
            BODY
        )));
    }
}
