//! PagerDuty REST API v2: who is on call (for request rules that need the requester on call)
//! and incidents opened, annotated and resolved by key.
//!
//! Every request carries the API key as `Authorization: Token token=<key>` and asks for version
//! 2 of the API in `Accept`; writes also carry `From`, the email of the PagerDuty user they are
//! made as. Lists are read page by page (`offset`/`limit` until `more` is false).
//!
//! Unlike the channel clients, whose retries belong to the outbox, this client retries by
//! itself (with [`RetryPolicy`], honouring `Retry-After`), because its callers wait on the
//! answer. Reads, resolving and opening an incident are retried after 429, 5xx and transport
//! failures: opening is keyed by `incident_key`, so a repeat after a lost answer finds the
//! incident the first attempt opened. Adding a note is not keyed, so it is retried only when
//! PagerDuty cannot have acted on it (429, or no connection made).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use serde_json::json;

use super::config::{
    ChannelConfig, ChannelKind, NotifyConfig, PagerDutyConfig, PagerDutyRestConfig, endpoint,
};
use super::error::NotifyError;
use super::http::{HttpCaller, HttpResponse};
use crate::http::{RetryConfig, RetryPolicy, TransportErrorKind, parse_retry_after};
use crate::secret::{KubeSecretSource, Redactor, Secret};

/// The media type selecting version 2 of the REST API.
pub const PAGERDUTY_REST_ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

/// Largest page PagerDuty serves for classic (offset) pagination.
const MAX_PAGE_SIZE: u32 = 100;

/// Pages read from one list before giving up on a server that never says `more: false`.
const MAX_PAGES: usize = 1_000;

/// Which on-call entries count. An entry counts when it is in one of `escalation_policy_ids`
/// *or* one of `schedule_ids` (both empty: any entry of the user), at a level no deeper than
/// `max_escalation_level`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnCallQuery {
    pub schedule_ids: Vec<String>,
    pub escalation_policy_ids: Vec<String>,
    /// Only levels 1..=N count (1 is the first responder); `None` counts every level.
    pub max_escalation_level: Option<u32>,
}

/// A REST client for every PagerDuty channel that configures `rest`, by channel name, sharing
/// the channels' HTTP client; the first key that cannot be read fails the whole set.
pub async fn rest_clients(
    config: &NotifyConfig,
    kube: &dyn KubeSecretSource,
) -> Result<BTreeMap<String, PagerDutyRest>, NotifyError> {
    let http = super::http::build_client(&config.outbox)?;
    let mut clients = BTreeMap::new();
    for (name, channel) in &config.channels {
        if let ChannelConfig::PagerDuty(pagerduty) = channel
            && pagerduty.rest.is_some()
        {
            let client = PagerDutyRest::connect(http.clone(), name, pagerduty, kube).await?;
            clients.insert(name.clone(), client);
        }
    }
    Ok(clients)
}

/// One way a user is on call right now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OnCallEntry {
    pub escalation_level: u32,
    pub escalation_policy_id: Option<String>,
    /// `None` when the user is a direct target of the escalation rule rather than on call
    /// through a schedule.
    pub schedule_id: Option<String>,
}

/// How a request may be repeated after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Repeating cannot do harm: after 429, 5xx and any transport failure.
    Safe,
    /// Only when PagerDuty cannot have acted: after 429, or when no connection was made.
    NotActedOn,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
struct UserPage {
    #[serde(default)]
    users: Vec<UserRecord>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct UserRecord {
    id: String,
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
struct OnCallPage {
    #[serde(default)]
    oncalls: Vec<OnCallRecord>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct OnCallRecord {
    escalation_level: u32,
    #[serde(default)]
    user: Option<Reference>,
    #[serde(default)]
    escalation_policy: Option<Reference>,
    #[serde(default)]
    schedule: Option<Reference>,
}

#[derive(Deserialize)]
struct IncidentPage {
    #[serde(default)]
    incidents: Vec<IncidentRecord>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct IncidentRecord {
    id: String,
    #[serde(default)]
    incident_key: Option<String>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct OneIncident {
    incident: Reference,
}

#[derive(Deserialize)]
struct OneNote {
    note: Reference,
}

/// PagerDuty's error body: `{"error": {"message", "code", "errors": [...]}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    errors: Vec<String>,
}

/// Calls one PagerDuty account's REST API.
#[derive(Clone, Debug)]
pub struct PagerDutyRest {
    http: HttpCaller,
    channel: String,
    base: url::Url,
    authorization: HeaderValue,
    from: Option<HeaderValue>,
    service_id: Option<String>,
    retry: RetryPolicy,
    page_size: u32,
}

impl PagerDutyRest {
    /// A client for the REST section of a channel, with the API key already read.
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        config: &PagerDutyRestConfig,
        api_key: Secret,
    ) -> Result<Self, NotifyError> {
        let problem =
            |problem: String| NotifyError::Config(format!("channel {channel:?}: {problem}"));
        let base = endpoint(&config.api_url, "rest.apiUrl").map_err(problem)?;
        let mut authorization = HeaderValue::from_str(&format!("Token token={}", api_key.expose()))
            .map_err(|_| problem("rest.apiKey is not a valid header value".to_owned()))?;
        authorization.set_sensitive(true);
        let from = config
            .from_email
            .as_deref()
            .map(|email| {
                HeaderValue::from_str(email.trim())
                    .map_err(|_| problem(format!("rest.fromEmail {email:?} is not a valid header")))
            })
            .transpose()?;
        Ok(Self {
            http: HttpCaller::new(
                client,
                ChannelKind::PagerDuty,
                channel,
                Redactor::new().with(&api_key),
            ),
            channel: channel.to_owned(),
            base,
            authorization,
            from,
            service_id: config
                .service_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            retry: RetryPolicy::new(&RetryConfig::default()),
            page_size: MAX_PAGE_SIZE,
        })
    }

    /// A client for a PagerDuty channel's `rest` section; a configuration error when the
    /// channel has none.
    pub fn from_config(
        client: reqwest::Client,
        channel: &str,
        config: &PagerDutyConfig,
        api_key: Secret,
    ) -> Result<Self, NotifyError> {
        let rest = config.rest.as_ref().ok_or_else(|| {
            NotifyError::Config(format!(
                "channel {channel:?}: the PagerDuty REST API is not configured (set rest.apiKey)"
            ))
        })?;
        Self::new(client, channel, rest, api_key)
    }

    /// Like [`from_config`](Self::from_config), reading the API key from its reference.
    pub async fn connect(
        client: reqwest::Client,
        channel: &str,
        config: &PagerDutyConfig,
        kube: &dyn KubeSecretSource,
    ) -> Result<Self, NotifyError> {
        let rest = config.rest.as_ref().ok_or_else(|| {
            NotifyError::Config(format!(
                "channel {channel:?}: the PagerDuty REST API is not configured (set rest.apiKey)"
            ))
        })?;
        let api_key = rest
            .api_key
            .resolve(kube)
            .await
            .map_err(|error| NotifyError::Secret {
                channel: channel.to_owned(),
                reason: error.to_string(),
            })?;
        Self::new(client, channel, rest, api_key)
    }

    /// Replaces the retry settings (the API-call defaults of [`RetryConfig`] otherwise).
    #[must_use]
    pub fn with_retry(mut self, config: &RetryConfig) -> Self {
        self.retry = RetryPolicy::new(config);
        self
    }

    /// Entries asked for per page, 1 to 100 (100 otherwise).
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The id of the PagerDuty user whose email is `email` (compared without case), if any.
    /// `GET /users?query=` matches substrings of names and emails, so every candidate is
    /// compared in full: asking for `ann@x.com` never yields `joann@x.com`.
    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<String>, NotifyError> {
        const OPERATION: &str = "users.list";
        let email = email.trim();
        if email.is_empty() {
            return Ok(None);
        }
        let url = self.url(&["users"]);
        let mut offset = 0usize;
        for _ in 0..MAX_PAGES {
            let response = self
                .call(OPERATION, Repeat::Safe, || {
                    self.request(reqwest::Method::GET, url.clone()).query(&[
                        ("query", email.to_owned()),
                        ("limit", self.page_size.to_string()),
                        ("offset", offset.to_string()),
                    ])
                })
                .await?;
            if !response.is_success() {
                return Err(self.failure(OPERATION, &response));
            }
            let page: UserPage = self.http.decode(OPERATION, &response)?;
            if let Some(user) = page
                .users
                .iter()
                .find(|user| user.email.trim().eq_ignore_ascii_case(email))
            {
                return Ok(Some(user.id.clone()));
            }
            if !page.more || page.users.is_empty() {
                return Ok(None);
            }
            offset += page.users.len();
        }
        Err(self.too_many_pages(OPERATION))
    }

    /// The ways `user_id` is on call now that `query` counts, sorted and without repeats.
    ///
    /// PagerDuty narrows `GET /oncalls` by every filter given, so naming both escalation
    /// policies and schedules in one request would only find entries matching both; to count
    /// either, each list is asked for separately and the answers are joined.
    pub async fn on_call(
        &self,
        user_id: &str,
        query: &OnCallQuery,
    ) -> Result<Vec<OnCallEntry>, NotifyError> {
        let mut found = BTreeSet::new();
        let policies = &query.escalation_policy_ids;
        let schedules = &query.schedule_ids;
        let filters: Vec<(&[String], &[String])> = if !policies.is_empty() && !schedules.is_empty()
        {
            vec![(policies.as_slice(), &[]), (&[], schedules.as_slice())]
        } else {
            vec![(policies.as_slice(), schedules.as_slice())]
        };
        for (policies, schedules) in filters {
            for entry in self.on_call_entries(user_id, policies, schedules).await? {
                let counted = query
                    .max_escalation_level
                    .is_none_or(|max| entry.escalation_level <= max);
                if counted {
                    found.insert(entry);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Whether the PagerDuty user with this email is on call as `query` counts; false when no
    /// PagerDuty user has the address.
    pub async fn is_on_call(&self, email: &str, query: &OnCallQuery) -> Result<bool, NotifyError> {
        match self.user_id_by_email(email).await? {
            Some(user_id) => Ok(!self.on_call(&user_id, query).await?.is_empty()),
            None => Ok(false),
        }
    }

    /// Opens an incident on the configured service and returns its id. `incident_key`
    /// de-duplicates: while an incident with that key is open, no second one is opened and the
    /// open one's id is returned.
    ///
    /// PagerDuty refuses a create whose key matches an open incident with a 400 saying so, but
    /// without the incident's id; the id is then found by listing the open incidents with that
    /// key (`GET /incidents?incident_key=`).
    pub async fn open_incident(
        &self,
        title: &str,
        incident_key: &str,
        details: &str,
    ) -> Result<String, NotifyError> {
        const OPERATION: &str = "incidents.create";
        let service_id = self.service_id.as_deref().ok_or_else(|| {
            NotifyError::Config(format!(
                "channel {:?}: rest.serviceId is required to open PagerDuty incidents",
                self.channel
            ))
        })?;
        let from = self.from("open incidents")?;
        if incident_key.trim().is_empty() {
            return Err(NotifyError::Config(format!(
                "channel {:?}: an incident needs a non-empty incident key",
                self.channel
            )));
        }
        let body = json!({
            "incident": {
                "type": "incident",
                "title": title,
                "service": {"id": service_id, "type": "service_reference"},
                "incident_key": incident_key,
                "body": {"type": "incident_body", "details": details},
            }
        });
        let url = self.url(&["incidents"]);
        let response = self
            .call(OPERATION, Repeat::Safe, || {
                self.request(reqwest::Method::POST, url.clone())
                    .header("From", from.clone())
                    .json(&body)
            })
            .await?;
        if response.is_success() {
            let created: OneIncident = self.http.decode(OPERATION, &response)?;
            return Ok(created.incident.id);
        }
        if response.status == 400 && names_open_duplicate(&self.error_text(&response)) {
            return match self.open_incident_with_key(incident_key, service_id).await? {
                Some(id) => Ok(id),
                None => Err(self.http.workflow(
                    OPERATION,
                    format!(
                        "PagerDuty reports an open incident with key {incident_key:?}, but none is listed"
                    ),
                )),
            };
        }
        Err(self.failure(OPERATION, &response))
    }

    /// Adds a note to an incident and returns the note's id.
    pub async fn add_note(&self, incident_id: &str, text: &str) -> Result<String, NotifyError> {
        const OPERATION: &str = "incidents.notes.create";
        let from = self.from("add notes")?;
        let url = self.url(&["incidents", incident_id, "notes"]);
        let body = json!({"note": {"content": text}});
        let response = self
            .call(OPERATION, Repeat::NotActedOn, || {
                self.request(reqwest::Method::POST, url.clone())
                    .header("From", from.clone())
                    .json(&body)
            })
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let created: OneNote = self.http.decode(OPERATION, &response)?;
        Ok(created.note.id)
    }

    /// Resolves an incident.
    pub async fn resolve_incident(&self, incident_id: &str) -> Result<(), NotifyError> {
        const OPERATION: &str = "incidents.update";
        let from = self.from("resolve incidents")?;
        let url = self.url(&["incidents", incident_id]);
        let body = json!({"incident": {"type": "incident_reference", "status": "resolved"}});
        let response = self
            .call(OPERATION, Repeat::Safe, || {
                self.request(reqwest::Method::PUT, url.clone())
                    .header("From", from.clone())
                    .json(&body)
            })
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        Ok(())
    }

    /// Every on-call entry of the user within the filters, read page by page.
    async fn on_call_entries(
        &self,
        user_id: &str,
        policies: &[String],
        schedules: &[String],
    ) -> Result<Vec<OnCallEntry>, NotifyError> {
        const OPERATION: &str = "oncalls.list";
        let url = self.url(&["oncalls"]);
        let mut entries = Vec::new();
        let mut offset = 0usize;
        for _ in 0..MAX_PAGES {
            let response = self
                .call(OPERATION, Repeat::Safe, || {
                    let mut params: Vec<(&str, String)> = vec![("user_ids[]", user_id.to_owned())];
                    params.extend(
                        policies
                            .iter()
                            .map(|id| ("escalation_policy_ids[]", id.clone())),
                    );
                    params.extend(schedules.iter().map(|id| ("schedule_ids[]", id.clone())));
                    params.extend([
                        ("earliest", "true".to_owned()),
                        ("limit", self.page_size.to_string()),
                        ("offset", offset.to_string()),
                    ]);
                    self.request(reqwest::Method::GET, url.clone())
                        .query(&params)
                })
                .await?;
            if !response.is_success() {
                return Err(self.failure(OPERATION, &response));
            }
            let page: OnCallPage = self.http.decode(OPERATION, &response)?;
            let received = page.oncalls.len();
            // The filters are checked again here, so a server that ignored one cannot make
            // someone look on call.
            entries.extend(page.oncalls.into_iter().filter_map(|record| {
                let policy = record.escalation_policy.map(|r| r.id);
                let schedule = record.schedule.map(|r| r.id);
                let wanted = record.user.as_ref().is_none_or(|user| user.id == user_id)
                    && (policies.is_empty()
                        || policy.as_ref().is_some_and(|id| policies.contains(id)))
                    && (schedules.is_empty()
                        || schedule.as_ref().is_some_and(|id| schedules.contains(id)));
                wanted.then_some(OnCallEntry {
                    escalation_level: record.escalation_level,
                    escalation_policy_id: policy,
                    schedule_id: schedule,
                })
            }));
            if !page.more || received == 0 {
                return Ok(entries);
            }
            offset += received;
        }
        Err(self.too_many_pages(OPERATION))
    }

    /// The open (triggered or acknowledged) incident on the service with exactly this key.
    async fn open_incident_with_key(
        &self,
        incident_key: &str,
        service_id: &str,
    ) -> Result<Option<String>, NotifyError> {
        const OPERATION: &str = "incidents.list";
        let url = self.url(&["incidents"]);
        let mut offset = 0usize;
        for _ in 0..MAX_PAGES {
            let response = self
                .call(OPERATION, Repeat::Safe, || {
                    self.request(reqwest::Method::GET, url.clone()).query(&[
                        ("incident_key", incident_key.to_owned()),
                        ("service_ids[]", service_id.to_owned()),
                        ("statuses[]", "triggered".to_owned()),
                        ("statuses[]", "acknowledged".to_owned()),
                        ("limit", self.page_size.to_string()),
                        ("offset", offset.to_string()),
                    ])
                })
                .await?;
            if !response.is_success() {
                return Err(self.failure(OPERATION, &response));
            }
            let page: IncidentPage = self.http.decode(OPERATION, &response)?;
            if let Some(found) = page.incidents.iter().find(|incident| {
                incident.incident_key.as_deref() == Some(incident_key)
                    && incident.status != "resolved"
            }) {
                return Ok(Some(found.id.clone()));
            }
            if !page.more || page.incidents.is_empty() {
                return Ok(None);
            }
            offset += page.incidents.len();
        }
        Err(self.too_many_pages(OPERATION))
    }

    /// The API root with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, PAGERDUTY_REST_ACCEPT)
    }

    /// The `From` header, required for writes.
    fn from(&self, action: &str) -> Result<HeaderValue, NotifyError> {
        self.from.clone().ok_or_else(|| {
            NotifyError::Config(format!(
                "channel {:?}: rest.fromEmail is required to {action} in PagerDuty",
                self.channel
            ))
        })
    }

    /// Sends the request `build` makes (once per attempt), repeating it as `repeat` allows
    /// within the retry policy. Returns the last answer, whatever its status; fails only when
    /// no answer arrived.
    async fn call(
        &self,
        operation: &'static str,
        repeat: Repeat,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<HttpResponse, NotifyError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.http.send(operation, build()).await;
            let (again, retry_after) = match &outcome {
                Ok(response) => (
                    response.status == 429
                        || (repeat == Repeat::Safe && (500..=599).contains(&response.status)),
                    response
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| parse_retry_after(value, SystemTime::now())),
                ),
                Err(NotifyError::Transport { kind, .. }) => (
                    repeat == Repeat::Safe || *kind == TransportErrorKind::Connect,
                    None,
                ),
                Err(_) => (false, None),
            };
            let delay = again
                .then(|| {
                    self.retry
                        .next_delay(attempt, started.elapsed(), retry_after, &mut rand::rng())
                })
                .flatten();
            let Some(delay) = delay else {
                return outcome;
            };
            tracing::debug!(
                channel = %self.channel,
                operation,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying PagerDuty request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// PagerDuty's error as one line: `message (code N): errors…`, or the raw body.
    fn error_text(&self, response: &HttpResponse) -> String {
        match serde_json::from_slice::<ErrorBody>(&response.body) {
            Ok(ErrorBody { error }) => {
                let mut text = error.message;
                if let Some(code) = error.code {
                    text.push_str(&format!(" (code {code})"));
                }
                if !error.errors.is_empty() {
                    text.push_str(": ");
                    text.push_str(&error.errors.join("; "));
                }
                text
            }
            Err(_) => self.http.body_text(response),
        }
    }

    fn failure(&self, operation: &'static str, response: &HttpResponse) -> NotifyError {
        let detail = self.error_text(response);
        self.http.failure(operation, response, &detail)
    }

    fn too_many_pages(&self, operation: &'static str) -> NotifyError {
        self.http.decode_error(
            operation,
            &format!("more than {MAX_PAGES} pages; the list never ended"),
        )
    }
}

/// Whether an error text is PagerDuty's refusal to open a second incident for a key that an
/// open incident already has.
fn names_open_duplicate(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    (text.contains("dedup key") || text.contains("incident key") || text.contains("incident_key"))
        && text.contains("already exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretRef;

    fn rest_config(api_url: &str) -> PagerDutyRestConfig {
        PagerDutyRestConfig {
            api_url: api_url.to_owned(),
            api_key: SecretRef::env("PD_API_KEY"),
            from_email: None,
            service_id: None,
        }
    }

    fn client(api_url: &str) -> PagerDutyRest {
        PagerDutyRest::new(
            reqwest::Client::new(),
            "pd",
            &rest_config(api_url),
            Secret::new("sim-key-1234").expect("key"),
        )
        .expect("client")
    }

    #[test]
    fn paths_are_appended_to_the_root_one_encoded_segment_each() {
        let pd = client("https://api.example.com");
        assert_eq!(
            pd.url(&["incidents", "P1", "notes"]).as_str(),
            "https://api.example.com/incidents/P1/notes"
        );
        let behind_proxy = client("http://127.0.0.1:9/pagerduty/");
        assert_eq!(
            behind_proxy.url(&["incidents", "../users?x"]).as_str(),
            "http://127.0.0.1:9/pagerduty/incidents/..%2Fusers%3Fx"
        );
    }

    #[test]
    fn recognises_the_duplicate_incident_refusal() {
        assert!(names_open_duplicate(
            "Arguments Caused Error (code 2002): Open incident with matching dedup key already exists on this service"
        ));
        assert!(!names_open_duplicate(
            "Invalid Input Provided (code 2001): Incident Key is too long"
        ));
    }

    #[tokio::test]
    async fn writes_without_their_settings_fail_clearly() {
        let pd = client("http://127.0.0.1:9");
        let err = pd
            .open_incident("t", "k", "d")
            .await
            .expect_err("no service");
        assert_eq!(err.label(), "config");
        assert!(err.to_string().contains("rest.serviceId"), "{err}");
        let err = pd.add_note("P1", "n").await.expect_err("no from");
        assert!(err.to_string().contains("rest.fromEmail"), "{err}");

        let config = PagerDutyConfig {
            events_url: "https://events.example.com/v2/enqueue".to_owned(),
            routing_key: SecretRef::env("K"),
            source: "opal-operator".to_owned(),
            component: None,
            group: None,
            rest: None,
        };
        let err = PagerDutyRest::from_config(
            reqwest::Client::new(),
            "pd",
            &config,
            Secret::new("sim-key-1234").expect("key"),
        )
        .expect_err("no rest section");
        assert_eq!(err.label(), "config");
        assert!(err.to_string().contains("\"pd\""), "{err}");
    }
}
