//! SIEM alerts (Splunk, Datadog) and generic ones (EDR and other tools) turned into Lockdowns,
//! as the AccessPolicy's `incidentResponse` says. Parsing and the decision are pure; the
//! handler does the I/O.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kube::api::ObjectMeta;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::HookError;
use crate::config::AlertFieldPaths;
use crate::crd::{
    AlertSeverity, AlertSource, IncidentResponseSpec, Lockdown, LockdownSpec, LockdownSubject,
};
use crate::engine::ObjectKey;

/// Label every alert-driven Lockdown carries: which SIEM created it.
pub const ALERT_SOURCE_LABEL: &str = "opal-operator.io/alert-source";
/// Annotation holding the alert's identity (Splunk `sid`, Datadog cycle key or ID, the generic
/// hook's `fields.id`, or a hash).
pub const ALERT_ID_ANNOTATION: &str = "opal-operator.io/alert-id";
/// Annotation naming the AccessPolicy whose `incidentResponse` applied.
pub const ACCESS_POLICY_ANNOTATION: &str = "opal-operator.io/access-policy";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "opal-operator";

/// Longest `reason` and `incident` a Lockdown accepts.
const MAX_TEXT_CHARS: usize = 1024;
/// Hex digits of the hash that names a Lockdown (64 bits: collisions are not a concern).
const NAME_HASH_HEX_DIGITS: usize = 16;
/// Longest alert value quoted back in an error.
const MAX_QUOTED_CHARS: usize = 64;

/// The `incidentResponse` of the AccessPolicy in the operator namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentPolicy {
    /// The AccessPolicy it comes from.
    pub policy: ObjectKey,
    pub spec: IncidentResponseSpec,
}

/// What creating a Lockdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockdownCreated {
    Created,
    /// A Lockdown with that name exists: the same alert was delivered before.
    AlreadyExists,
}

/// Where alerts find their policy and put their Lockdowns (the Kubernetes API in the operator).
pub trait IncidentSink: Send + Sync {
    /// `incidentResponse` of the AccessPolicy in the operator namespace, if any (read from a
    /// reflector cache, so sync).
    fn incident_policy(&self) -> Option<IncidentPolicy>;
    /// Creates the Lockdown; an existing one of the same name is `AlreadyExists`, not an error.
    fn create_lockdown(&self, lockdown: Lockdown)
    -> BoxFuture<'_, Result<LockdownCreated, String>>;
}

/// One alert as far as the decision needs it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Alert {
    source: AlertSource,
    /// Stable across redeliveries of the same alert.
    identity: String,
    title: String,
    /// A link or ID to put in the Lockdown's `incident`.
    incident: Option<String>,
    severity: Option<AlertSeverity>,
    /// A Datadog "Recovered" notification: the condition has cleared.
    recovery: bool,
    /// The hook's own path to the user's email, read instead of the policy's `userField`.
    user_field: Option<String>,
    payload: Map<String, Value>,
}

/// What to do with an authenticated alert.
#[derive(Clone, Debug)]
pub(super) enum AlertDecision {
    /// Nothing; the reason goes back to the sender.
    Ignore(String),
    Lock(Box<Lockdown>),
}

pub(super) fn source_label(source: AlertSource) -> &'static str {
    match source {
        AlertSource::Splunk => "splunk",
        AlertSource::Datadog => "datadog",
        AlertSource::Generic => "generic",
    }
}

fn quoted(text: &str) -> String {
    let mut shown: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn truncated(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, HookError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(HookError::Malformed("the body is not a JSON object".into())),
        Err(error) => Err(HookError::Malformed(format!(
            "the body is not JSON: {error}"
        ))),
    }
}

/// A field's text: strings trimmed, numbers printed; empty strings count as absent.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.trim().to_owned()).filter(|text| !text.is_empty()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The first of `fields` with text, with the field's name.
fn first_text(
    object: &Map<String, Value>,
    fields: &[&'static str],
) -> Option<(&'static str, String)> {
    fields
        .iter()
        .find_map(|field| text_of(object.get(*field)).map(|text| (*field, text)))
}

/// Severity words of Splunk (ES urgency, result fields), Datadog (`$ALERT_PRIORITY` P1–P5) and
/// common log levels, case-insensitive.
fn severity_from_text(text: &str) -> Option<AlertSeverity> {
    let severity = match text.trim().to_ascii_lowercase().as_str() {
        "critical" | "crit" | "fatal" | "emergency" | "p1" | "sev1" => AlertSeverity::Critical,
        "high" | "error" | "major" | "p2" | "sev2" => AlertSeverity::High,
        "medium" | "moderate" | "warning" | "warn" | "p3" | "sev3" => AlertSeverity::Medium,
        "low" | "minor" | "p4" | "sev4" => AlertSeverity::Low,
        "info" | "informational" | "p5" | "sev5" => AlertSeverity::Info,
        _ => return None,
    };
    Some(severity)
}

fn severity_of(field: &str, text: Option<String>) -> Result<Option<AlertSeverity>, HookError> {
    let Some(text) = text else {
        return Ok(None);
    };
    severity_from_text(&text).map(Some).ok_or_else(|| {
        HookError::Malformed(format!(
            "`{field}` is {}; expected critical, high, medium, low, info (or P1–P5)",
            quoted(&text)
        ))
    })
}

fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Splunk's webhook alert action: `{"result": {…first result row…}, "sid", "search_name",
/// "results_link", "owner", "app"}`.
pub(super) fn parse_splunk(body: &[u8]) -> Result<Alert, HookError> {
    let payload = parse_object(body)?;
    let result = match payload.get("result") {
        Some(Value::Object(result)) => result,
        Some(_) => return Err(HookError::Malformed("`result` is not an object".into())),
        None => return Err(HookError::Malformed("missing the `result` object".into())),
    };
    let severity = first_text(result, &["severity", "urgency"])
        .map(|(field, text)| severity_of(&format!("result.{field}"), Some(text)))
        .transpose()?
        .flatten();
    let sid = text_of(payload.get("sid"));
    let link = text_of(payload.get("results_link"));
    Ok(Alert {
        source: AlertSource::Splunk,
        identity: sid.clone().unwrap_or_else(|| body_hash(body)),
        title: text_of(payload.get("search_name")).unwrap_or_else(|| "Splunk alert".into()),
        incident: link.or(sid),
        severity,
        recovery: false,
        user_field: None,
        payload,
    })
}

/// Datadog's webhook: a user-defined JSON template (see the module documentation for the
/// fields read).
pub(super) fn parse_datadog(body: &[u8]) -> Result<Alert, HookError> {
    let payload = parse_object(body)?;
    let severity = match first_text(&payload, &["severity", "priority"]) {
        Some((field, text)) => severity_of(field, Some(text))?,
        None => None,
    };
    let identity = first_text(&payload, &["alert_cycle_key", "alert_id", "id"]);
    let recovery = first_text(&payload, &["transition", "alert_transition"])
        .is_some_and(|(_, transition)| transition.eq_ignore_ascii_case("recovered"));
    Ok(Alert {
        source: AlertSource::Datadog,
        title: first_text(&payload, &["title", "alert_title", "event_title"])
            .map_or_else(|| "Datadog alert".into(), |(_, title)| title),
        incident: first_text(&payload, &["link"])
            .or_else(|| identity.clone())
            .map(|(_, text)| text),
        identity: identity.map_or_else(|| body_hash(body), |(_, identity)| identity),
        severity,
        recovery,
        user_field: None,
        payload,
    })
}

/// Any tool's JSON, read at the configured paths. A path the body lacks falls back as the
/// other hooks do (identity: a body hash; severity: unstated), because senders omit optional
/// fields; only the user is required, and `decide` reports where it was looked for.
pub(super) fn parse_generic(body: &[u8], fields: &AlertFieldPaths) -> Result<Alert, HookError> {
    let payload = parse_object(body)?;
    let at = |path: &str| text_of(lookup(&payload, path));
    let severity = match fields.severity.as_deref() {
        Some(path) => severity_of(path, at(path))?,
        None => None,
    };
    let identity = fields.id.as_deref().and_then(at);
    let title = fields.title.as_deref().and_then(at);
    Ok(Alert {
        source: AlertSource::Generic,
        title: title.unwrap_or_else(|| "Generic alert".into()),
        incident: identity.clone(),
        identity: identity.unwrap_or_else(|| body_hash(body)),
        severity,
        recovery: false,
        user_field: fields.user.clone(),
        payload,
    })
}

/// Follows a dot path (`result.user`, `users.0`) through objects and arrays.
fn lookup<'v>(root: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut segments = path.split('.');
    let mut value = root.get(segments.next()?)?;
    for segment in segments {
        value = match value {
            Value::Object(object) => object.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Loose but safe: one `@` with text either side, no spaces or separators, at most 254 chars.
fn is_email(text: &str) -> bool {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || ",;:<>()[]\"\\".contains(c);
    (3..=254).contains(&text.len())
        && !text.contains(forbidden)
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
}

/// The email in a field's text: the text itself, or the first email-valued tag of a Datadog
/// tag list such as `env:prod,user:alice@example.com`.
fn email_in(text: &str) -> Option<String> {
    let text = text.trim();
    if is_email(text) {
        return Some(text.to_lowercase());
    }
    text.split(',')
        .filter_map(|tag| tag.split_once(':'))
        .map(|(_, value)| value.trim())
        .find(|value| is_email(value))
        .map(str::to_lowercase)
}

impl Alert {
    /// The user's email at the hook's own path, else the policy's `user_field`, read from the
    /// body's root; for Splunk a path not found there is also tried inside `result`, so `user`
    /// and `result.user` both work.
    fn user_email(&self, policy_user_field: &str) -> Result<String, HookError> {
        let (user_field, origin) = match &self.user_field {
            Some(path) => (path.as_str(), "webhooks.generic.fields.user"),
            None => (policy_user_field, "the incident policy's userField"),
        };
        let value = lookup(&self.payload, user_field).or_else(|| {
            match (self.source, self.payload.get("result")) {
                (AlertSource::Splunk, Some(Value::Object(result))) => lookup(result, user_field),
                _ => None,
            }
        });
        let Some(value) = value else {
            return Err(HookError::Malformed(format!(
                "the alert has no `{user_field}` ({origin})"
            )));
        };
        let Value::String(text) = value else {
            return Err(HookError::Malformed(format!(
                "`{user_field}` is not a string"
            )));
        };
        email_in(text).ok_or_else(|| {
            HookError::Malformed(format!("`{user_field}` holds no email: {}", quoted(text)))
        })
    }

    /// `<source>-alert-<hash>`: the same alert about the same user always names the same
    /// Lockdown, so a redelivery finds it instead of locking twice.
    fn lockdown_name(&self, email: &str) -> String {
        let source = source_label(self.source);
        let mut hash = Sha256::new();
        for part in [source, &self.identity, email] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hex::encode(hash.finalize());
        format!("{source}-alert-{}", &digest[..NAME_HASH_HEX_DIGITS])
    }

    fn lockdown(&self, email: String, policy: &IncidentPolicy, namespace: &str) -> Lockdown {
        let source = source_label(self.source);
        let spec = &policy.spec;
        let name = self.lockdown_name(&email);
        let source_name = match self.source {
            AlertSource::Splunk => "Splunk",
            AlertSource::Datadog => "Datadog",
            AlertSource::Generic => "Generic",
        };
        let mut lockdown = Lockdown::new(
            &name,
            LockdownSpec {
                subjects: vec![LockdownSubject {
                    email: Some(email),
                    ..LockdownSubject::default()
                }],
                scope: None,
                break_glass: Vec::new(),
                reason: truncated(
                    &format!("{source_name} alert: {}", self.title),
                    MAX_TEXT_CHARS,
                ),
                incident: self
                    .incident
                    .as_deref()
                    .map(|incident| truncated(incident, MAX_TEXT_CHARS)),
                expires_at: None,
                duration: Some(spec.lockdown_duration.clone()),
                restore_on_release: spec.restore_on_release,
                notify: spec.notify.clone(),
            },
        );
        lockdown.metadata = ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (ALERT_SOURCE_LABEL.to_owned(), source.to_owned()),
            ])),
            annotations: Some(BTreeMap::from([
                (
                    ALERT_ID_ANNOTATION.to_owned(),
                    truncated(&self.identity, MAX_TEXT_CHARS),
                ),
                (
                    ACCESS_POLICY_ANNOTATION.to_owned(),
                    policy.policy.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        };
        lockdown
    }

    /// Applies the policy: the source must be accepted; recoveries and alerts below the
    /// minimum severity are ignored; an alert stating no severity counts as meeting it.
    pub(super) fn decide(
        &self,
        policy: &IncidentPolicy,
        namespace: &str,
    ) -> Result<AlertDecision, HookError> {
        let spec = &policy.spec;
        if !spec.sources.contains(&self.source) {
            return Err(HookError::SourceNotAccepted(source_label(self.source)));
        }
        if self.recovery {
            return Ok(AlertDecision::Ignore("a recovery notification".into()));
        }
        if let Some(severity) = self.severity
            && severity < spec.min_severity
        {
            return Ok(AlertDecision::Ignore(format!(
                "severity {severity:?} is below the policy's minimum {:?}",
                spec.min_severity
            )));
        }
        let email = self.user_email(&spec.user_field)?;
        Ok(AlertDecision::Lock(Box::new(
            self.lockdown(email, policy, namespace),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(user_field: &str, min_severity: AlertSeverity) -> IncidentPolicy {
        IncidentPolicy {
            policy: ObjectKey::new("security", "default"),
            spec: IncidentResponseSpec {
                sources: vec![
                    AlertSource::Splunk,
                    AlertSource::Datadog,
                    AlertSource::Generic,
                ],
                user_field: user_field.to_owned(),
                min_severity,
                lockdown_duration: "4h".into(),
                restore_on_release: false,
                notify: vec!["security-oncall".into()],
            },
        }
    }

    fn lock(decision: AlertDecision) -> Lockdown {
        match decision {
            AlertDecision::Lock(lockdown) => *lockdown,
            AlertDecision::Ignore(reason) => panic!("ignored: {reason}"),
        }
    }

    const SPLUNK: &[u8] = br#"{"result":{"user":"Alice@Example.com","severity":"high","count":"3"},"sid":"scheduler__admin__search__RMD5_at_1767225600_42","results_link":"https://splunk.example/app/search/@go?sid=scheduler__admin__search__RMD5_at_1767225600_42","search_name":"Impossible travel","owner":"admin","app":"search"}"#;

    #[test]
    fn a_splunk_alert_becomes_a_lockdown_of_its_user() {
        let alert = parse_splunk(SPLUNK).expect("alert");
        assert_eq!(alert.severity, Some(AlertSeverity::High));
        let lockdown = lock(
            alert
                .decide(&policy("result.user", AlertSeverity::High), "opal-system")
                .expect("decision"),
        );
        assert_eq!(lockdown.metadata.namespace.as_deref(), Some("opal-system"));
        let name = lockdown.metadata.name.clone().expect("name");
        assert!(
            name.starts_with("splunk-alert-") && name.len() == 29,
            "{name}"
        );
        assert_eq!(lockdown.spec.subjects.len(), 1);
        assert_eq!(
            lockdown.spec.subjects[0].email.as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(lockdown.spec.reason, "Splunk alert: Impossible travel");
        assert_eq!(
            lockdown.spec.incident.as_deref(),
            Some(
                "https://splunk.example/app/search/@go?sid=scheduler__admin__search__RMD5_at_1767225600_42"
            )
        );
        assert_eq!(lockdown.spec.duration.as_deref(), Some("4h"));
        assert_eq!(lockdown.spec.expires_at, None);
        assert!(!lockdown.spec.restore_on_release);
        assert_eq!(lockdown.spec.notify, ["security-oncall"]);
        let labels = lockdown.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(ALERT_SOURCE_LABEL).map(String::as_str),
            Some("splunk")
        );
        assert_eq!(
            labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some("opal-operator")
        );
        let annotations = lockdown.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get(ALERT_ID_ANNOTATION).map(String::as_str),
            Some("scheduler__admin__search__RMD5_at_1767225600_42")
        );
        assert_eq!(
            annotations
                .get(ACCESS_POLICY_ANNOTATION)
                .map(String::as_str),
            Some("security/default")
        );

        // `user` is also looked up inside `result`, and names the same Lockdown.
        let again = lock(
            parse_splunk(SPLUNK)
                .expect("alert")
                .decide(&policy("user", AlertSeverity::Low), "opal-system")
                .expect("decision"),
        );
        assert_eq!(again.metadata.name, Some(name));
    }

    /// The Lockdown name an alert of this source and identity gets for this email.
    fn name_of(source: AlertSource, identity: &str, email: &str) -> String {
        Alert {
            source,
            identity: identity.into(),
            title: String::new(),
            incident: None,
            severity: None,
            recovery: false,
            user_field: None,
            payload: Map::new(),
        }
        .lockdown_name(email)
    }

    #[test]
    fn names_differ_by_alert_user_and_source_and_fall_back_to_a_body_hash() {
        let base = name_of(AlertSource::Splunk, "sid-1", "a@x.io");
        assert_ne!(base, name_of(AlertSource::Splunk, "sid-2", "a@x.io"));
        assert_ne!(base, name_of(AlertSource::Splunk, "sid-1", "b@x.io"));
        let hash = |name: &str| name.rsplit('-').next().unwrap_or_default().to_owned();
        assert_ne!(
            hash(&name_of(AlertSource::Datadog, "sid-1", "a@x.io")),
            hash(&base)
        );

        let anonymous = br#"{"result":{"user":"a@x.io"}}"#;
        let alert = parse_splunk(anonymous).expect("alert");
        assert_eq!(alert.identity, body_hash(anonymous));
        assert_eq!(alert.incident, None);
        assert_eq!(alert.title, "Splunk alert");
        assert_eq!(alert.severity, None);
    }

    #[test]
    fn datadog_reads_its_template_fields_and_tag_lists() {
        let body = br#"{"alert_id":"1234","alert_cycle_key":"cycle-77","title":"[Triggered] Suspicious login","transition":"Triggered","priority":"P1","link":"https://app.datadoghq.example/monitors/1234","scope":"env:prod,user:bob@example.com"}"#;
        let alert = parse_datadog(body).expect("alert");
        assert_eq!(alert.identity, "cycle-77");
        assert_eq!(alert.severity, Some(AlertSeverity::Critical));
        let lockdown = lock(
            alert
                .decide(&policy("scope", AlertSeverity::Critical), "ns")
                .expect("decision"),
        );
        assert_eq!(
            lockdown.spec.subjects[0].email.as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(
            lockdown.spec.reason,
            "Datadog alert: [Triggered] Suspicious login"
        );
        assert_eq!(
            lockdown.spec.incident.as_deref(),
            Some("https://app.datadoghq.example/monitors/1234")
        );
        assert!(
            lockdown
                .metadata
                .name
                .unwrap_or_default()
                .starts_with("datadog-alert-")
        );

        let minimal =
            parse_datadog(br#"{"id":"evt-9","user":"carol@example.com"}"#).expect("alert");
        assert_eq!(minimal.identity, "evt-9");
        assert_eq!(minimal.incident.as_deref(), Some("evt-9"));
        assert_eq!(minimal.title, "Datadog alert");
    }

    /// A CrowdStrike-like detection, relayed as is.
    const EDR: &[u8] = br#"{"detection":{"id":"ldt:4f2a:981","name":"Credential dumping","severity_name":"Critical","severity":90,"device":{"hostname":"lap-7"},"users":[{"email":"Dana@Example.com"}]},"email":"someone-else@example.com"}"#;

    fn edr_fields() -> AlertFieldPaths {
        AlertFieldPaths {
            user: Some("detection.users.0.email".into()),
            severity: Some("detection.severity_name".into()),
            id: Some("detection.id".into()),
            title: Some("detection.name".into()),
        }
    }

    #[test]
    fn a_generic_alert_is_read_at_the_configured_paths() {
        let alert = parse_generic(EDR, &edr_fields()).expect("alert");
        assert_eq!(alert.identity, "ldt:4f2a:981");
        assert_eq!(alert.title, "Credential dumping");
        assert_eq!(alert.severity, Some(AlertSeverity::Critical));
        // The hook's user path wins over the policy's `userField`.
        let lockdown = lock(
            alert
                .decide(&policy("email", AlertSeverity::Critical), "ns")
                .expect("decision"),
        );
        assert_eq!(
            lockdown.spec.subjects[0].email.as_deref(),
            Some("dana@example.com")
        );
        assert_eq!(lockdown.spec.reason, "Generic alert: Credential dumping");
        assert_eq!(lockdown.spec.incident.as_deref(), Some("ldt:4f2a:981"));
        assert_eq!(
            lockdown.metadata.name,
            Some(name_of(
                AlertSource::Generic,
                "ldt:4f2a:981",
                "dana@example.com"
            ))
        );
        assert!(
            lockdown
                .metadata
                .name
                .unwrap_or_default()
                .starts_with("generic-alert-")
        );
        let labels = lockdown.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(ALERT_SOURCE_LABEL).map(String::as_str),
            Some("generic")
        );
        let annotations = lockdown.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get(ALERT_ID_ANNOTATION).map(String::as_str),
            Some("ldt:4f2a:981")
        );
    }

    #[test]
    fn a_generic_alert_without_configured_paths_uses_the_policy_user_field_and_a_body_hash() {
        let alert = parse_generic(EDR, &AlertFieldPaths::default()).expect("alert");
        assert_eq!(alert.identity, body_hash(EDR));
        assert_eq!(alert.title, "Generic alert");
        assert_eq!(alert.severity, None);
        assert_eq!(alert.incident, None);
        let lockdown = lock(
            alert
                .decide(&policy("email", AlertSeverity::Critical), "ns")
                .expect("decision"),
        );
        assert_eq!(
            lockdown.spec.subjects[0].email.as_deref(),
            Some("someone-else@example.com")
        );

        // Configured paths the body lacks count as unstated; a numeric id is printed.
        let sparse = parse_generic(br#"{"id":42,"email":"a@x.io"}"#, &edr_fields()).expect("alert");
        assert_eq!(sparse.identity, body_hash(br#"{"id":42,"email":"a@x.io"}"#));
        assert_eq!(sparse.severity, None);
        assert_eq!(sparse.title, "Generic alert");
        let numeric_id = AlertFieldPaths {
            id: Some("id".into()),
            ..AlertFieldPaths::default()
        };
        let numbered = parse_generic(br#"{"id":42}"#, &numeric_id).expect("alert");
        assert_eq!(numbered.identity, "42");
    }

    #[test]
    fn generic_alerts_are_filtered_and_refused_like_the_others() {
        let low = br#"{"detection":{"severity_name":"Low","users":[{"email":"a@x.io"}]}}"#;
        assert!(matches!(
            parse_generic(low, &edr_fields())
                .expect("alert")
                .decide(&policy("email", AlertSeverity::Medium), "ns"),
            Ok(AlertDecision::Ignore(reason)) if reason.contains("below")
        ));

        let mut no_generic = policy("email", AlertSeverity::Info);
        no_generic.spec.sources = vec![AlertSource::Splunk, AlertSource::Datadog];
        assert!(matches!(
            parse_generic(EDR, &edr_fields())
                .expect("alert")
                .decide(&no_generic, "ns"),
            Err(HookError::SourceNotAccepted("generic"))
        ));

        // Tools' numeric scales run in opposite directions, so a bare number is not guessed at.
        let numeric = AlertFieldPaths {
            severity: Some("detection.severity".into()),
            ..edr_fields()
        };
        let error = parse_generic(EDR, &numeric).expect_err("numeric severity");
        assert!(
            error.to_string().contains("`detection.severity` is \"90\""),
            "{error}"
        );

        let error = parse_generic(br#"{"email":"a@x.io"}"#, &edr_fields())
            .expect("alert")
            .decide(&policy("email", AlertSeverity::Info), "ns")
            .expect_err("no user at the hook's path");
        assert!(
            error
                .to_string()
                .contains("has no `detection.users.0.email` (webhooks.generic.fields.user)"),
            "{error}"
        );
        assert!(matches!(
            parse_generic(b"[]", &edr_fields()),
            Err(HookError::Malformed(_))
        ));
    }

    #[test]
    fn recoveries_and_low_severities_are_ignored_and_missing_severity_counts_as_met() {
        let recovered =
            parse_datadog(br#"{"transition":"Recovered","priority":"P1","user":"a@x.io"}"#)
                .expect("alert");
        assert!(matches!(
            recovered.decide(&policy("user", AlertSeverity::Info), "ns"),
            Ok(AlertDecision::Ignore(_))
        ));
        let low = parse_datadog(br#"{"severity":"warning","user":"a@x.io"}"#).expect("alert");
        assert_eq!(low.severity, Some(AlertSeverity::Medium));
        assert!(matches!(
            low.decide(&policy("user", AlertSeverity::High), "ns"),
            Ok(AlertDecision::Ignore(reason))
                if reason == "severity Medium is below the policy's minimum High"
        ));
        assert!(matches!(
            low.decide(&policy("user", AlertSeverity::Medium), "ns"),
            Ok(AlertDecision::Lock(_))
        ));
        let unstated = parse_datadog(br#"{"user":"a@x.io"}"#).expect("alert");
        assert!(matches!(
            unstated.decide(&policy("user", AlertSeverity::Critical), "ns"),
            Ok(AlertDecision::Lock(_))
        ));
    }

    #[test]
    fn unaccepted_sources_and_unusable_payloads_are_errors() {
        let mut splunk_only = policy("user", AlertSeverity::Info);
        splunk_only.spec.sources = vec![AlertSource::Splunk];
        let alert = parse_datadog(br#"{"user":"a@x.io"}"#).expect("alert");
        assert!(matches!(
            alert.decide(&splunk_only, "ns"),
            Err(HookError::SourceNotAccepted("datadog"))
        ));

        for body in [
            &b"not json"[..],
            b"[1,2]",
            br#"{"sid":"x"}"#,
            br#"{"result":"row"}"#,
            br#"{"result":{"severity":"whenever"}}"#,
        ] {
            assert!(
                matches!(parse_splunk(body), Err(HookError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let bad_severity = parse_datadog(br#"{"priority":"P9"}"#).expect_err("severity");
        assert!(
            bad_severity.to_string().contains("\"P9\""),
            "{bad_severity}"
        );

        let any = policy("result.user", AlertSeverity::Info);
        for (body, problem) in [
            (&br#"{"result":{}}"#[..], "has no `result.user`"),
            (br#"{"result":{"user":42}}"#, "is not a string"),
            (br#"{"result":{"user":"alice"}}"#, "holds no email"),
            (br#"{"result":{"user":"a b@x.io"}}"#, "holds no email"),
        ] {
            let error = parse_splunk(body)
                .expect("alert")
                .decide(&any, "ns")
                .expect_err("no email");
            assert!(error.to_string().contains(problem), "{error}");
        }
    }

    #[test]
    fn severity_words_map_onto_the_policy_scale() {
        for (text, expected) in [
            ("Critical", AlertSeverity::Critical),
            ("p1", AlertSeverity::Critical),
            ("error", AlertSeverity::High),
            ("P3", AlertSeverity::Medium),
            ("low", AlertSeverity::Low),
            ("informational", AlertSeverity::Info),
        ] {
            assert_eq!(severity_from_text(text), Some(expected), "{text}");
        }
        assert_eq!(severity_from_text("urgent-ish"), None);
    }

    #[test]
    fn dot_paths_walk_objects_and_arrays() {
        let Value::Object(root) = serde_json::json!({"a": {"b": [{"c": "x@y.z"}]}}) else {
            panic!("object");
        };
        assert_eq!(
            lookup(&root, "a.b.0.c"),
            Some(&Value::String("x@y.z".into()))
        );
        assert_eq!(lookup(&root, "a.b.1.c"), None);
        assert_eq!(lookup(&root, "a.c"), None);
    }
}
