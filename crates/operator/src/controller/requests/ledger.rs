//! The requests ledger: one Secret per Opal request in the operator namespace, named after
//! the request. Creating it is the claim (the apiserver lets exactly one creator win), and it
//! records the decision before Opal is touched, so a restart or a second replica resumes the
//! same decision instead of making a new one. Secrets because the operator already holds
//! exactly get/create/patch/delete on them there and nothing else; no listing is needed, since
//! index Secrets name the entries each part of the decider follows, and every entry is in the
//! entries index before it exists, so old ones can be found and removed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use sha2::{Digest, Sha256};

use super::secrets::SecretStore;
use crate::engine::{ApprovedWindow, RouteEscalation, RoutePlan, TargetKind};
use crate::notify::RecordedClick;

/// The Secret type that marks a ledger entry.
pub const LEDGER_TYPE: &str = "opal-operator.io/request-ledger";

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Decided and claimed; Opal may or may not have been told yet.
    Claimed,
    /// Opal accepted the decision.
    Applied,
    /// The request was no longer pending when the operator came to act.
    DecidedElsewhere,
    /// Routed: the ticket is open and the request waits for an eligible answer.
    Routed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "Claimed",
            Phase::Applied => "Applied",
            Phase::DecidedElsewhere => "DecidedElsewhere",
            Phase::Routed => "Routed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Phase::Claimed,
            Phase::Applied,
            Phase::DecidedElsewhere,
            Phase::Routed,
        ]
        .into_iter()
        .find(|phase| phase.as_str() == text)
    }
}

/// One request's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub request_id: String,
    pub phase: Phase,
    /// `namespace/name` of the deciding AccessPolicy, or of the Lockdown.
    pub decided_by: String,
    pub rule: String,
    /// `AutoApprove` or `Deny`.
    pub action: String,
    /// The exact comment sent to Opal; finding it on the request proves the decision landed.
    pub comment: String,
    pub claimed_at: DateTime<Utc>,
    pub outcome: String,
    /// Set for a routed request: the route as it was when the request was claimed.
    pub route: Option<RouteRecord>,
    /// The deciding rule's `grantAtMost` in seconds, as it was when the request was claimed.
    pub grant_at_most_seconds: Option<i64>,
    /// Set once an approval with an end is applied: the grants it gave and their window.
    pub window: Option<WindowRecord>,
}

/// The window of an applied approval and the grants it covers, followed until the window
/// (plus the grace) is over.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRecord {
    pub until: DateTime<Utc>,
    /// The rule approved less than Opal granted.
    pub capped: bool,
    pub grants: Vec<WindowGrant>,
}

/// One grant of an approval: a user on a group or resource at one access level.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowGrant {
    pub kind: TargetKind,
    pub target_id: String,
    pub user_id: String,
    /// `None`: the target's default level.
    pub access_level_remote_id: Option<String>,
    /// Cut in Opal to end with the window.
    pub shortened: bool,
    /// Still held after the window, and removed by the operator.
    pub revoked: bool,
}

impl WindowRecord {
    pub fn window(&self) -> ApprovedWindow {
        ApprovedWindow {
            until: self.until,
            capped: self.capped,
        }
    }
}

/// A routed request's route, ticket and deadline, kept in its entry so the rule that routed
/// it can change without changing who may answer a ticket already open.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRecord {
    pub channel: String,
    pub approvers: Vec<String>,
    pub requester_manager: bool,
    pub wait_seconds: Option<i64>,
    /// The ticket's id once it is open (a Jira key, a ServiceNow `sys_id`).
    pub ticket: Option<String>,
    /// What people call the ticket, when that is not its id (a ServiceNow number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_display: Option<String>,
    pub routed_at: Option<DateTime<Utc>>,
    /// The ticket has been closed with the outcome.
    pub closed: bool,
    /// The PagerDuty channel paged when the request waits `escalate_after_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_seconds: Option<i64>,
    /// The incident opened by the escalation, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The incident has been resolved with the outcome.
    #[serde(default)]
    pub incident_resolved: bool,
}

impl RouteRecord {
    pub fn plan(&self) -> RoutePlan {
        RoutePlan {
            channel: self.channel.clone(),
            approvers: self.approvers.clone(),
            requester_manager: self.requester_manager,
            wait_at_most: self.wait_seconds.map(chrono::Duration::seconds),
            escalation: self
                .escalation_channel
                .clone()
                .zip(self.escalate_after_seconds)
                .map(|(channel, after)| RouteEscalation {
                    channel,
                    after: chrono::Duration::seconds(after),
                }),
        }
    }

    pub fn from_plan(plan: &RoutePlan) -> Self {
        Self {
            channel: plan.channel.clone(),
            approvers: plan.approvers.clone(),
            requester_manager: plan.requester_manager,
            wait_seconds: plan.wait_at_most.map(|wait| wait.num_seconds()),
            ticket: None,
            ticket_display: None,
            routed_at: None,
            closed: false,
            escalation_channel: plan
                .escalation
                .as_ref()
                .map(|escalation| escalation.channel.clone()),
            escalate_after_seconds: plan
                .escalation
                .as_ref()
                .map(|escalation| escalation.after.num_seconds()),
            incident: None,
            incident_resolved: false,
        }
    }
}

/// The Secret listing the requests whose route is open (its keys are entry names), so routes
/// whose request left the pending list are still followed without listing Secrets.
pub const ROUTE_INDEX: &str = "opal-request-routes";

/// The Secret listing the approvals whose window is still followed.
pub const WINDOW_INDEX: &str = "opal-request-windows";

/// The Secret listing every entry, written before the entry is created.
pub const ENTRY_INDEX: &str = "opal-request-entries";

/// Keys of an entry's Secret that hold a recorded Slack click; the rest is the entry.
const CLICK_KEY_PREFIX: &str = "click-";

/// The clicks recorded in an entry's Secret, by key. One that cannot be read is left out and
/// logged: only a writer of Secrets in this namespace could have made it.
fn recorded_clicks(secret: &Secret) -> BTreeMap<String, RecordedClick> {
    let Some(data) = secret.data.as_ref() else {
        return BTreeMap::new();
    };
    data.iter()
        .filter(|(key, _)| key.starts_with(CLICK_KEY_PREFIX))
        .filter_map(|(key, value)| match serde_json::from_slice(&value.0) {
            Ok(click) => Some((key.clone(), click)),
            Err(error) => {
                tracing::warn!(%key, %error, "a recorded click in the requests ledger cannot be read; skipped");
                None
            }
        })
        .collect()
}

/// The lists of entries a pass follows besides the pending requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Routed requests whose ticket is open or not yet closed.
    Routes,
    /// Approvals whose window is not over.
    Windows,
    /// Every entry, until it is removed.
    Entries,
}

impl Index {
    fn secret_name(self) -> &'static str {
        match self {
            Index::Routes => ROUTE_INDEX,
            Index::Windows => WINDOW_INDEX,
            Index::Entries => ENTRY_INDEX,
        }
    }
}

/// The entry's Secret name: the request id when it is a DNS label, a hash of it otherwise.
pub fn entry_name(request_id: &str) -> String {
    let plain = request_id.len() <= 50
        && !request_id.is_empty()
        && request_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if plain {
        format!("opal-request-{request_id}")
    } else {
        let digest = Sha256::digest(request_id.as_bytes());
        format!("opal-request-{}", &hex::encode(digest)[..40])
    }
}

fn json_field<T: serde::Serialize>(value: Option<&T>) -> String {
    value
        .and_then(|value| serde_json::to_string(value).ok())
        .unwrap_or_default()
}

/// An optional JSON field: empty is `None`; anything unreadable makes the entry unreadable.
fn parse_json_field<T: serde::de::DeserializeOwned>(text: &str) -> Option<Option<T>> {
    match text {
        "" => Some(None),
        json => serde_json::from_str(json).ok().map(Some),
    }
}

fn text(data: &BTreeMap<String, k8s_openapi::ByteString>, key: &str) -> String {
    data.get(key)
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}

impl Entry {
    fn from_secret(secret: &Secret) -> Option<Self> {
        if secret.type_.as_deref() != Some(LEDGER_TYPE) {
            return None;
        }
        let data = secret.data.as_ref()?;
        Some(Self {
            request_id: text(data, "requestId"),
            phase: Phase::parse(&text(data, "phase"))?,
            decided_by: text(data, "decidedBy"),
            rule: text(data, "rule"),
            action: text(data, "action"),
            comment: text(data, "comment"),
            claimed_at: DateTime::parse_from_rfc3339(&text(data, "claimedAt"))
                .ok()?
                .with_timezone(&Utc),
            outcome: text(data, "outcome"),
            route: parse_json_field(&text(data, "route"))?,
            grant_at_most_seconds: match text(data, "grantAtMost").as_str() {
                "" => None,
                seconds => Some(seconds.parse().ok()?),
            },
            window: parse_json_field(&text(data, "window"))?,
        })
    }

    fn to_secret(&self, namespace: &str) -> Secret {
        let data = [
            ("requestId", self.request_id.clone()),
            ("phase", self.phase.as_str().to_owned()),
            ("decidedBy", self.decided_by.clone()),
            ("rule", self.rule.clone()),
            ("action", self.action.clone()),
            ("comment", self.comment.clone()),
            ("claimedAt", self.claimed_at.to_rfc3339()),
            ("outcome", self.outcome.clone()),
            ("route", json_field(self.route.as_ref())),
            (
                "grantAtMost",
                self.grant_at_most_seconds
                    .map(|seconds| seconds.to_string())
                    .unwrap_or_default(),
            ),
            ("window", json_field(self.window.as_ref())),
        ];
        Secret {
            metadata: ObjectMeta {
                name: Some(entry_name(&self.request_id)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "opal-operator".to_owned(),
                )])),
                ..Default::default()
            },
            type_: Some(LEDGER_TYPE.to_owned()),
            string_data: Some(
                data.into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("requests ledger: {0}")]
    Kube(#[from] kube::Error),
    #[error("requests ledger: Secret {0} exists but is not a ledger entry")]
    Foreign(String),
}

/// The ledger in one namespace.
#[derive(Clone)]
pub struct Ledger {
    api: SecretStore,
    namespace: String,
}

impl Ledger {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: SecretStore::Cluster(Box::new(Api::namespaced(client, namespace))),
            namespace: namespace.to_owned(),
        }
    }

    /// A ledger kept in this process's memory, for running the decider without a cluster
    /// (the demo, benchmarks): exactly once within the process, and gone with it.
    pub fn in_memory(namespace: &str) -> Self {
        Self {
            api: SecretStore::Memory(Default::default()),
            namespace: namespace.to_owned(),
        }
    }

    /// The request's entry, if one was claimed.
    pub async fn get(&self, request_id: &str) -> Result<Option<Entry>, LedgerError> {
        let name = entry_name(request_id);
        match self.api.get_opt(&name).await? {
            None => Ok(None),
            Some(secret) => Entry::from_secret(&secret)
                .map(Some)
                .ok_or(LedgerError::Foreign(name)),
        }
    }

    /// The entry whose Secret is `name`, with the clicks recorded on it by key; `None` when no
    /// such Secret exists.
    pub async fn named_with_clicks(
        &self,
        name: &str,
    ) -> Result<Option<(Entry, BTreeMap<String, RecordedClick>)>, LedgerError> {
        match self.api.get_opt(name).await? {
            None => Ok(None),
            Some(secret) => Entry::from_secret(&secret)
                .map(|entry| Some((entry, recorded_clicks(&secret))))
                .ok_or_else(|| LedgerError::Foreign(name.to_owned())),
        }
    }

    /// The clicks recorded on the request's entry.
    pub async fn clicks(&self, request_id: &str) -> Result<Vec<RecordedClick>, LedgerError> {
        Ok(self
            .named_with_clicks(&entry_name(request_id))
            .await?
            .map(|(_, clicks)| clicks.into_values().collect())
            .unwrap_or_default())
    }

    /// Adds a click to the entry named `name` under `key` (prefixed here), in a merge patch
    /// that touches nothing else, so it cannot undo a concurrent update of the entry.
    pub async fn add_click(
        &self,
        name: &str,
        key: &str,
        click: &RecordedClick,
    ) -> Result<(), LedgerError> {
        let value = json_field(Some(click));
        let patch = serde_json::json!({"stringData": {format!("{CLICK_KEY_PREFIX}{key}"): value}});
        self.api.merge_patch(name, &patch).await?;
        Ok(())
    }

    /// Whether the entry already holds a click under `key` (unprefixed, as given to
    /// [`add_click`](Self::add_click)).
    pub fn click_key_held(clicks: &BTreeMap<String, RecordedClick>, key: &str) -> bool {
        clicks.contains_key(&format!("{CLICK_KEY_PREFIX}{key}"))
    }

    /// Claims the request with `entry`; when another claim won, returns that one instead.
    /// Indexed first, so that no entry exists that [`Index::Entries`] does not name.
    pub async fn claim(&self, entry: &Entry) -> Result<Entry, LedgerError> {
        self.index(Index::Entries, &entry.request_id, true).await?;
        match self.api.create(&entry.to_secret(&self.namespace)).await {
            Ok(_) => Ok(entry.clone()),
            Err(kube::Error::Api(response)) if response.code == 409 => self
                .get(&entry.request_id)
                .await?
                .ok_or_else(|| LedgerError::Foreign(entry_name(&entry.request_id))),
            Err(error) => Err(error.into()),
        }
    }

    /// Rewrites an entry's phase, action, comment, outcome, route and window in one patch.
    pub async fn update(&self, entry: &Entry) -> Result<(), LedgerError> {
        let patch = serde_json::json!({
            "stringData": {
                "phase": entry.phase.as_str(),
                "action": entry.action,
                "comment": entry.comment,
                "outcome": entry.outcome,
                "route": json_field(entry.route.as_ref()),
                "window": json_field(entry.window.as_ref()),
            }
        });
        self.api
            .merge_patch(&entry_name(&entry.request_id), &patch)
            .await?;
        Ok(())
    }

    /// Deletes the request's entry; one already gone is fine.
    pub async fn remove(&self, request_id: &str) -> Result<(), LedgerError> {
        match self.api.delete(&entry_name(request_id)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Request ids listed in `index`.
    pub async fn listed(&self, index: Index) -> Result<Vec<String>, LedgerError> {
        let name = index.secret_name();
        let Some(index) = self.api.get_opt(name).await? else {
            return Ok(Vec::new());
        };
        if index.type_.as_deref() != Some(LEDGER_TYPE) {
            return Err(LedgerError::Foreign(name.to_owned()));
        }
        Ok(index
            .data
            .unwrap_or_default()
            .values()
            .map(|id| String::from_utf8_lossy(&id.0).into_owned())
            .collect())
    }

    /// Adds the request to `index`, or takes it out.
    pub async fn index(
        &self,
        index: Index,
        request_id: &str,
        open: bool,
    ) -> Result<(), LedgerError> {
        let name = index.secret_name();
        let value = open.then(|| request_id.to_owned());
        let patch = serde_json::json!({"stringData": {entry_name(request_id): value}});
        let removal = serde_json::json!({"data": {entry_name(request_id): null}});
        let body = if open { &patch } else { &removal };
        match self.api.merge_patch(name, body).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 404 && open => {
                let index = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    type_: Some(LEDGER_TYPE.to_owned()),
                    string_data: Some(BTreeMap::from([(
                        entry_name(request_id),
                        request_id.to_owned(),
                    )])),
                    ..Default::default()
                };
                match self.api.create(&index).await {
                    Ok(_) => Ok(()),
                    // Another writer created it first: add to theirs.
                    Err(kube::Error::Api(response)) if response.code == 409 => {
                        self.api.merge_patch(name, &patch).await?;
                        Ok(())
                    }
                    Err(error) => Err(error.into()),
                }
            }
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_dns_labels_and_distinct() {
        assert_eq!(
            entry_name("3f2a9c1e-0000-4000-8000-000000000001"),
            "opal-request-3f2a9c1e-0000-4000-8000-000000000001"
        );
        let odd = entry_name("Req/With Spaces");
        assert!(odd.len() <= 63, "{odd}");
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(odd, entry_name("Req/With Spaces2"));
    }

    #[test]
    fn an_entry_round_trips_through_its_secret() {
        let entry = Entry {
            request_id: "r-1".to_owned(),
            phase: Phase::Claimed,
            decided_by: "opal-system/jit".to_owned(),
            rule: "short".to_owned(),
            action: "AutoApprove".to_owned(),
            comment: "approved".to_owned(),
            claimed_at: DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
            outcome: String::new(),
            route: None,
            grant_at_most_seconds: None,
            window: None,
        };
        let routed = Entry {
            phase: Phase::Routed,
            action: "Route".to_owned(),
            route: Some(RouteRecord {
                ticket: Some("ITSD-4".to_owned()),
                routed_at: Some(entry.claimed_at),
                ..RouteRecord::from_plan(&RoutePlan {
                    channel: "jsm".to_owned(),
                    approvers: vec!["olivia.chen@example.com".to_owned()],
                    requester_manager: true,
                    wait_at_most: Some(chrono::Duration::hours(4)),
                    escalation: Some(RouteEscalation {
                        channel: "pd".to_owned(),
                        after: chrono::Duration::minutes(30),
                    }),
                })
            }),
            ..entry.clone()
        };
        assert_eq!(
            routed
                .route
                .as_ref()
                .map(RouteRecord::plan)
                .and_then(|p| p.wait_at_most),
            Some(chrono::Duration::hours(4))
        );
        let approved = Entry {
            phase: Phase::Applied,
            grant_at_most_seconds: Some(7200),
            window: Some(WindowRecord {
                until: entry.claimed_at + chrono::Duration::hours(2),
                capped: true,
                grants: vec![WindowGrant {
                    kind: TargetKind::Resource,
                    target_id: "res-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    access_level_remote_id: Some("read".to_owned()),
                    shortened: true,
                    revoked: false,
                }],
            }),
            ..entry.clone()
        };
        for entry in [entry, routed, approved] {
            round_trip(entry);
        }
    }

    fn claim(request_id: &str, rule: &str) -> Entry {
        Entry {
            request_id: request_id.to_owned(),
            phase: Phase::Claimed,
            decided_by: "opal-system/jit".to_owned(),
            rule: rule.to_owned(),
            action: "AutoApprove".to_owned(),
            comment: format!("approved by {rule}"),
            claimed_at: Utc::now(),
            outcome: String::new(),
            route: None,
            grant_at_most_seconds: None,
            window: None,
        }
    }

    /// The in-memory ledger keeps the apiserver's answers: one claim wins, patches merge,
    /// indexes add and drop names, removal is idempotent.
    #[tokio::test]
    async fn the_memory_ledger_claims_once_and_merges_like_the_apiserver() {
        let ledger = Ledger::in_memory("opal-system");
        let first = ledger.claim(&claim("r-1", "short")).await.expect("claim");
        let second = ledger.claim(&claim("r-1", "other")).await.expect("claim");
        assert_eq!(second, first, "the second claim gets the first's entry");
        assert_eq!(ledger.listed(Index::Entries).await.expect("list"), ["r-1"]);

        let applied = Entry {
            phase: Phase::Applied,
            outcome: "Approved in Opal".to_owned(),
            ..first.clone()
        };
        let click = RecordedClick {
            user_id: "U1".to_owned(),
            approve: true,
            at: Utc::now(),
        };
        ledger
            .add_click(&entry_name("r-1"), "k1", &click)
            .await
            .expect("click");
        ledger.update(&applied).await.expect("update");
        let (entry, clicks) = ledger
            .named_with_clicks(&entry_name("r-1"))
            .await
            .expect("read")
            .expect("entry");
        assert_eq!(entry, applied);
        assert!(Ledger::click_key_held(&clicks, "k1"), "{clicks:?}");
        assert_eq!(ledger.clicks("r-1").await.expect("clicks"), [click]);

        ledger
            .index(Index::Routes, "r-1", true)
            .await
            .expect("index");
        ledger
            .index(Index::Routes, "r-2", true)
            .await
            .expect("index");
        ledger
            .index(Index::Routes, "r-1", false)
            .await
            .expect("unindex");
        assert_eq!(ledger.listed(Index::Routes).await.expect("list"), ["r-2"]);

        ledger.remove("r-1").await.expect("remove");
        ledger.remove("r-1").await.expect("removing again is fine");
        assert_eq!(ledger.get("r-1").await.expect("get"), None);
        assert!(
            ledger.update(&applied).await.is_err(),
            "updating a removed entry fails as on the apiserver"
        );
    }

    fn round_trip(entry: Entry) {
        let mut secret = entry.to_secret("opal-system");
        // The apiserver turns stringData into data.
        secret.data = secret.string_data.take().map(|data| {
            data.into_iter()
                .map(|(key, value)| (key, k8s_openapi::ByteString(value.into_bytes())))
                .collect()
        });
        assert_eq!(Entry::from_secret(&secret), Some(entry));
        secret.type_ = Some("Opaque".to_owned());
        assert_eq!(Entry::from_secret(&secret), None);
    }
}
