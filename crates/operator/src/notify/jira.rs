//! Jira Cloud REST v3 (issues with ADF descriptions, comments, transitions, JQL search, an
//! issue's status history from its changelog, users) and Jira Service Management requests and
//! their approvals. Basic auth with `email:api_token`.
//!
//! # Decisions as status transitions
//!
//! A plain Jira issue can carry a decision: moving it to an "approve" status approves, to a
//! "deny" status denies, and the decider is whoever made that transition.
//! [`JiraClient::status_history`] reads the current status and every status change from the
//! changelog (paging `/changelog` when the embedded one is truncated, never returning a partial
//! list); [`decision_from`] turns that into a decision and its decider. Only changelog items of
//! the system field `status` count: a custom field that happens to be called "status" cannot
//! forge one. Issue keys are checked against Jira's key format before they reach a path.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::{HttpCaller, HttpResponse};
use crate::secret::{Redactor, Secret};

/// An issue (or JSM request) as far as the notifier cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRef {
    pub id: String,
    pub key: String,
    /// Whether its status is in the "done" category.
    pub done: bool,
}

/// Fields of a new Jira issue.
#[derive(Clone, Debug)]
pub struct NewIssue {
    pub project_key: String,
    pub issue_type: String,
    pub summary: String,
    /// An ADF document.
    pub description: Value,
    pub labels: Vec<String>,
}

/// Fields of a new JSM customer request. `description` is plain text (`isAdfRequest: false`).
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub service_desk_id: String,
    pub request_type_id: String,
    pub summary: String,
    pub description: String,
    /// Set through `requestFieldValues.labels`: the request type must expose the Labels field.
    pub labels: Vec<String>,
    pub raise_on_behalf_of: Option<String>,
}

/// A workflow transition available from an issue's current status.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    pub to: TransitionTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TransitionTarget {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "statusCategory", default)]
    pub status_category: Option<StatusCategory>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StatusCategory {
    pub key: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedRequest {
    issue_id: String,
    issue_key: String,
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    issues: Vec<FoundIssue>,
}

#[derive(Deserialize)]
struct FoundIssue {
    id: String,
    key: String,
    #[serde(default)]
    fields: FoundFields,
}

#[derive(Deserialize, Default)]
struct FoundFields {
    #[serde(default)]
    status: Option<TransitionTarget>,
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<Comment>,
}

#[derive(Deserialize)]
struct Comment {
    #[serde(default)]
    id: String,
    #[serde(default)]
    body: Value,
}

#[derive(Deserialize)]
struct TransitionList {
    #[serde(default)]
    transitions: Vec<Transition>,
}

/// A JSM approval's decision, final or one approver's: `"pending"`, `"approved"` or
/// `"declined"` on the wire. Anything else (an unknown string, `null`, another type) reads as
/// `Pending`, never as a decision, so it cannot fail the decoding of a whole page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalDecision {
    Pending,
    Approved,
    Declined,
}

impl<'de> Deserialize<'de> for ApprovalDecision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)?.as_str() {
            Some("approved") => Self::Approved,
            Some("declined") => Self::Declined,
            _ => Self::Pending,
        })
    }
}

/// One approver of a JSM approval and what they decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    pub account_id: String,
    /// Absent when the site hides the approver's email address.
    pub email: Option<String>,
    pub decision: ApprovalDecision,
}

/// A JSM approval on a customer request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub name: String,
    pub final_decision: ApprovalDecision,
    pub approvers: Vec<Approver>,
    /// `completedDate.iso8601`, once the approval is decided.
    pub completed_at: Option<String>,
}

/// `GET /rest/servicedeskapi/request/{key}/approval`: a JSM paged list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalPage {
    /// Missing reads as the last page: no page is asked for that the server did not announce.
    #[serde(default)]
    is_last_page: Option<bool>,
    #[serde(default)]
    values: Vec<ApprovalWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalWire {
    #[serde(deserialize_with = "id_text")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default = "pending")]
    final_decision: ApprovalDecision,
    #[serde(default)]
    approvers: Vec<ApproverWire>,
    #[serde(default)]
    completed_date: Option<DateWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApproverWire {
    #[serde(default)]
    approver: UserWire,
    #[serde(default = "pending")]
    approver_decision: ApprovalDecision,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserWire {
    #[serde(default)]
    account_id: String,
    #[serde(default)]
    email_address: Option<String>,
}

/// JSM's `DateDTO`; only the ISO 8601 form is kept.
#[derive(Deserialize)]
struct DateWire {
    #[serde(default)]
    iso8601: Option<String>,
}

fn pending() -> ApprovalDecision {
    ApprovalDecision::Pending
}

/// An id sent as a string (as documented) or as a number.
fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(id) => Ok(id),
        Value::Number(id) => Ok(id.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id string, found {other}"
        ))),
    }
}

impl From<ApprovalWire> for Approval {
    fn from(wire: ApprovalWire) -> Self {
        Self {
            id: wire.id,
            name: wire.name,
            final_decision: wire.final_decision,
            approvers: wire
                .approvers
                .into_iter()
                .map(|approver| Approver {
                    account_id: approver.approver.account_id,
                    email: approver
                        .approver
                        .email_address
                        .filter(|email| !email.is_empty()),
                    decision: approver.approver_decision,
                })
                .collect(),
            completed_at: wire
                .completed_date
                .and_then(|date| date.iso8601)
                .filter(|date| !date.is_empty()),
        }
    }
}

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`, or JSM's
/// `{"errorMessage": "..."}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorCollection {
    #[serde(default)]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: serde_json::Map<String, Value>,
    #[serde(default)]
    error_message: Option<String>,
}

/// One change of an issue's status, from a changelog history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status name moved to (`toString`).
    pub to_status: String,
    /// The status name moved from (`fromString`); empty when Jira sent none.
    pub from_status: String,
    /// The history's author; `None` when Jira sent no author (an anonymous or system change).
    pub author_account_id: Option<String>,
    /// The author's email, absent when their privacy settings hide it.
    pub author_email: Option<String>,
    /// The history's `created`, as sent (e.g. `2026-12-07T10:00:00.000+0000`).
    pub at: String,
}

/// An issue's current status and its status changes, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueDecisionState {
    /// The current status name.
    pub status: String,
    /// Status changes only, oldest first.
    pub changes: Vec<StatusChange>,
}

/// The decision an issue's status carries: `Some((approve, decider account id, decider
/// email))` when the current status is `approve_status` or `deny_status` (compared
/// case-insensitively), `None` when it is neither (or when both name the same status, which
/// cannot tell a decision). The decider is the author of the latest change into the current
/// status; when there is none (the issue was created in that status) or it has no author, the
/// decision comes without one, and the caller must not act on it.
pub fn decision_from(
    state: &IssueDecisionState,
    approve_status: &str,
    deny_status: &str,
) -> Option<(bool, Option<String>, Option<String>)> {
    let status = state.status.trim();
    let is = |name: &str| !name.trim().is_empty() && status.eq_ignore_ascii_case(name.trim());
    let approve = match (is(approve_status), is(deny_status)) {
        (true, false) => true,
        (false, true) => false,
        _ => return None,
    };
    let decider = state
        .changes
        .iter()
        .rev()
        .find(|change| change.to_status.trim().eq_ignore_ascii_case(status));
    Some(match decider {
        Some(change) => (
            approve,
            change.author_account_id.clone(),
            change.author_email.clone(),
        ),
        None => (approve, None, None),
    })
}

/// Whether `key` is a Jira issue key, `^[A-Z][A-Z0-9_]*-[0-9]+$` (at most 255 characters).
/// Nothing else is put into a path.
fn is_issue_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else {
        return false;
    };
    let mut project = project.bytes();
    key.len() <= 255
        && project.next().is_some_and(|b| b.is_ascii_uppercase())
        && project.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Longest account id [`JiraClient::user_email`] asks about (Atlassian's limit is 128).
const ACCOUNT_ID_MAX_CHARS: usize = 128;

/// `GET /rest/api/3/issue/{key}?fields=status&expand=changelog`.
#[derive(Deserialize)]
struct IssueWithChangelog {
    #[serde(default)]
    fields: StatusFields,
    /// Missing when the site ignored `expand`: the changelog is then read from `/changelog`.
    #[serde(default)]
    changelog: Option<EmbeddedChangelog>,
}

#[derive(Deserialize, Default)]
struct StatusFields {
    #[serde(default)]
    status: Option<StatusWire>,
}

#[derive(Deserialize)]
struct StatusWire {
    #[serde(default)]
    name: String,
}

/// The changelog embedded by `expand=changelog`: possibly only the latest histories.
#[derive(Deserialize)]
struct EmbeddedChangelog {
    #[serde(default)]
    total: Option<usize>,
    #[serde(default)]
    histories: Vec<HistoryWire>,
}

/// `GET /rest/api/3/issue/{key}/changelog`: a page of histories, oldest first.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangelogPage {
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    total: Option<usize>,
    #[serde(default)]
    values: Vec<HistoryWire>,
}

#[derive(Deserialize)]
struct HistoryWire {
    #[serde(default, deserialize_with = "optional_id_text")]
    id: Option<String>,
    #[serde(default)]
    author: Option<AuthorWire>,
    #[serde(default)]
    created: String,
    #[serde(default)]
    items: Vec<ItemWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorWire {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemWire {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    fieldtype: Option<String>,
    #[serde(default)]
    field_id: Option<String>,
    #[serde(default, rename = "fromString")]
    from_name: Option<String>,
    #[serde(default, rename = "toString")]
    to_name: Option<String>,
}

impl ItemWire {
    /// A change of the system field `status`: `fieldId` is `status` or, without a `fieldId`,
    /// `field` is `status` and `fieldtype` (when sent) is `jira`. A custom field named
    /// "status" has its own `fieldId` (`customfield_…`) and `fieldtype` `custom`.
    fn is_status(&self) -> bool {
        match self.field_id.as_deref() {
            Some(id) => id == "status",
            None => {
                self.field.as_deref() == Some("status")
                    && self.fieldtype.as_deref().is_none_or(|kind| kind == "jira")
            }
        }
    }
}

/// `GET /rest/api/3/user?accountId=`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRecord {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
}

/// An id sent as a string, a number or not at all.
fn optional_id_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(id) => Ok(Some(id)),
        Value::Number(id) => Ok(Some(id.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected an id string, found {other}"
        ))),
    }
}

/// Histories in time order: sorted by `created` (stably, so histories of the same instant keep
/// the server's order) when every one has a parseable time, else in the order sent (Jira
/// documents oldest first).
fn in_time_order(mut histories: Vec<HistoryWire>) -> Vec<HistoryWire> {
    let times: Option<Vec<chrono::DateTime<chrono::FixedOffset>>> = histories
        .iter()
        .map(|history| {
            chrono::DateTime::parse_from_str(&history.created, "%Y-%m-%dT%H:%M:%S%.f%z").ok()
        })
        .collect();
    if let Some(times) = times {
        let mut keyed: Vec<_> = times.into_iter().zip(histories).collect();
        keyed.sort_by_key(|(time, _)| *time);
        histories = keyed.into_iter().map(|(_, history)| history).collect();
    }
    histories
}

/// The status changes of `histories` (in time order), or the first status item that names no
/// target status: a change into an unknown status could hide the latest decider.
fn status_changes(histories: Vec<HistoryWire>) -> Result<Vec<StatusChange>, String> {
    let mut changes = Vec::new();
    for history in in_time_order(histories) {
        let (account_id, email) = history.author.map_or((None, None), |author| {
            (
                author.account_id.filter(|id| !id.is_empty()),
                author.email_address.filter(|email| !email.is_empty()),
            )
        });
        for item in history.items.into_iter().filter(ItemWire::is_status) {
            let Some(to_status) = item.to_name.filter(|name| !name.trim().is_empty()) else {
                return Err(format!(
                    "status change in history {} names no target status",
                    history.id.as_deref().unwrap_or("without an id")
                ));
            };
            changes.push(StatusChange {
                to_status,
                from_status: item.from_name.unwrap_or_default(),
                author_account_id: account_id.clone(),
                author_email: email.clone(),
                at: history.created.clone(),
            });
        }
    }
    Ok(changes)
}

/// Whether a 404 is Jira's own (an `ErrorCollection` with a message), not a proxy's or a wrong
/// site path's.
fn is_jira_not_found(response: &HttpResponse) -> bool {
    response.status == 404
        && serde_json::from_slice::<ErrorCollection>(&response.body).is_ok_and(|errors| {
            !errors.error_messages.is_empty()
                || !errors.errors.is_empty()
                || errors.error_message.is_some()
        })
}

/// Changelog histories asked for per page.
pub const CHANGELOG_PAGE_LIMIT: usize = 100;
/// Pages of changelog [`JiraClient::status_history`] follows at most.
pub const CHANGELOG_MAX_PAGES: usize = 20;

/// Approvals asked for per page.
pub const APPROVAL_PAGE_LIMIT: usize = 50;
/// Pages of approvals [`JiraClient::approvals`] follows at most.
pub const APPROVAL_MAX_PAGES: usize = 20;

/// Calls one Jira Cloud site.
#[derive(Clone, Debug)]
pub struct JiraClient {
    http: HttpCaller,
    channel: Arc<str>,
    base: String,
    authorization: HeaderValue,
}

impl JiraClient {
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        kind: ChannelKind,
        site_url: &str,
        email: &str,
        api_token: &Secret,
    ) -> Result<Self, NotifyError> {
        let base = endpoint(site_url, "url")
            .map_err(|problem| NotifyError::Config(format!("channel {channel:?}: {problem}")))?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{email}:{}", api_token.expose()));
        let mut authorization = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| {
            NotifyError::Config(format!(
                "channel {channel:?}: credentials are not a valid header"
            ))
        })?;
        authorization.set_sensitive(true);
        let redactor = Redactor::new().with(api_token).with(&Secret::new(&basic)?);
        Ok(Self {
            http: HttpCaller::new(client, kind, channel, redactor),
            channel: Arc::from(channel),
            base: base.as_str().trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
    }

    fn failure(&self, operation: &'static str, response: &HttpResponse) -> NotifyError {
        let detail = serde_json::from_slice::<ErrorCollection>(&response.body)
            .ok()
            .map(|errors| {
                errors
                    .error_message
                    .into_iter()
                    .chain(errors.error_messages)
                    .chain(errors.errors.into_iter().map(|(field, message)| {
                        format!("{field}: {}", message.as_str().unwrap_or_default())
                    }))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|detail| !detail.is_empty())
            .unwrap_or_else(|| self.http.body_text(response));
        self.http.failure(operation, response, &detail)
    }

    /// Refuses, before any request, a key that is not a Jira issue key: it would be spliced
    /// into a path (a key read back from a ledger may have been tampered with).
    fn checked_key<'a>(&self, key: &'a str) -> Result<&'a str, NotifyError> {
        if is_issue_key(key) {
            return Ok(key);
        }
        let shown: String = key.chars().take(64).collect();
        let cut = if shown.len() < key.len() { "…" } else { "" };
        Err(NotifyError::Config(format!(
            "channel {:?}: {shown:?}{cut} is not a Jira issue key (PROJECT-123); refusing to \
             request it",
            self.channel
        )))
    }

    /// The current status of issue `key` and every change of its status, oldest first, by `GET
    /// /rest/api/3/issue/{key}?fields=status&expand=changelog`. When the embedded changelog is
    /// truncated (its `total` exceeds the histories sent) or missing, the histories are read
    /// from `GET /rest/api/3/issue/{key}/changelog` instead, following pages until `isLast` (at
    /// most [`CHANGELOG_MAX_PAGES`] pages of [`CHANGELOG_PAGE_LIMIT`]). Never a partial list:
    /// more pages than that, or an empty page that is not the last, is an error.
    ///
    /// Changelog items other than the system field `status` are skipped; a status item that
    /// names no target status is an error. A key that is not `^[A-Z][A-Z0-9_]*-[0-9]+$` is
    /// refused before any request. The status is read before a paged changelog, so a change
    /// made in between may show in `changes` but not in `status`.
    pub async fn status_history(&self, key: &str) -> Result<IssueDecisionState, NotifyError> {
        const OPERATION: &str = "issue.get";
        let key = self.checked_key(key)?;
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, &format!("/rest/api/3/issue/{key}"))
                    .query(&[("fields", "status"), ("expand", "changelog")]),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let issue: IssueWithChangelog = self.http.decode(OPERATION, &response)?;
        let Some(status) = issue
            .fields
            .status
            .map(|status| status.name)
            .filter(|name| !name.trim().is_empty())
        else {
            return Err(self
                .http
                .decode_error(OPERATION, &format!("issue {key} has no status name")));
        };
        let histories = match issue.changelog {
            Some(changelog)
                if changelog
                    .total
                    .is_none_or(|total| total <= changelog.histories.len()) =>
            {
                changelog.histories
            }
            _ => self.changelog(key).await?,
        };
        let changes = status_changes(histories)
            .map_err(|problem| self.http.decode_error(OPERATION, &problem))?;
        Ok(IssueDecisionState { status, changes })
    }

    /// Every history of issue `key` (already checked), oldest first, from the paged
    /// `/changelog`; a history seen twice (pages shifted under the reader) is kept once.
    async fn changelog(&self, key: &str) -> Result<Vec<HistoryWire>, NotifyError> {
        const OPERATION: &str = "issue.changelog.list";
        let path = format!("/rest/api/3/issue/{key}/changelog");
        let mut seen = BTreeSet::new();
        let mut histories = Vec::new();
        let mut start = 0_usize;
        for _ in 0..CHANGELOG_MAX_PAGES {
            let response = self
                .http
                .send(
                    OPERATION,
                    self.request(reqwest::Method::GET, &path)
                        .query(&[("startAt", start), ("maxResults", CHANGELOG_PAGE_LIMIT)]),
                )
                .await?;
            if !response.is_success() {
                return Err(self.failure(OPERATION, &response));
            }
            let page: ChangelogPage = self.http.decode(OPERATION, &response)?;
            let received = page.values.len();
            for history in page.values {
                if history.id.as_ref().is_none_or(|id| seen.insert(id.clone())) {
                    histories.push(history);
                }
            }
            let end = start.saturating_add(received);
            let last = page
                .is_last
                .unwrap_or_else(|| page.total.is_none_or(|total| end >= total));
            if last {
                return Ok(histories);
            }
            if received == 0 {
                return Err(self.http.decode_error(
                    OPERATION,
                    &format!(
                        "the changelog page of {key} at startAt {start} is empty but not the last"
                    ),
                ));
            }
            start = end;
        }
        Err(self.http.decode_error(
            OPERATION,
            &format!(
                "the changelog of {key} spans more than {CHANGELOG_MAX_PAGES} pages of \
                 {CHANGELOG_PAGE_LIMIT}"
            ),
        ))
    }

    /// The email of the Jira user `account_id`, by `GET /rest/api/3/user?accountId=`; `None`
    /// when Jira does not know the user (its 404) or hides their email. An empty or overlong
    /// account id, or one with control characters, is refused before any request.
    pub async fn user_email(&self, account_id: &str) -> Result<Option<String>, NotifyError> {
        const OPERATION: &str = "user.get";
        if account_id.is_empty()
            || account_id.chars().count() > ACCOUNT_ID_MAX_CHARS
            || account_id.chars().any(char::is_control)
        {
            let shown: String = account_id.chars().take(64).collect();
            return Err(NotifyError::Config(format!(
                "channel {:?}: {shown:?} is not a Jira account id; refusing to look it up",
                self.channel
            )));
        }
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, "/rest/api/3/user")
                    .query(&[("accountId", account_id)]),
            )
            .await?;
        if is_jira_not_found(&response) {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let user: UserRecord = self.http.decode(OPERATION, &response)?;
        if let Some(answered) = user.account_id.as_deref().filter(|id| *id != account_id) {
            return Err(self.http.decode_error(
                OPERATION,
                &format!("asked for account {account_id:?}, got {answered:?}"),
            ));
        }
        Ok(user
            .email_address
            .map(|email| email.trim().to_owned())
            .filter(|email| !email.is_empty()))
    }

    /// `POST /rest/api/3/issue` → 201 `{id, key, self}`.
    pub async fn create_issue(&self, issue: &NewIssue) -> Result<IssueRef, NotifyError> {
        const OPERATION: &str = "issue.create";
        let body = json!({
            "fields": {
                "project": {"key": issue.project_key},
                "issuetype": {"name": issue.issue_type},
                "summary": issue.summary,
                "description": issue.description,
                "labels": issue.labels,
            }
        });
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::POST, "/rest/api/3/issue")
                    .json(&body),
            )
            .await?;
        if response.status != 201 {
            return Err(self.failure(OPERATION, &response));
        }
        let created: Created = self.http.decode(OPERATION, &response)?;
        Ok(IssueRef {
            id: created.id,
            key: created.key,
            done: false,
        })
    }

    /// `POST /rest/servicedeskapi/request` → a CustomerRequest (any 2xx).
    pub async fn create_request(&self, request: &NewRequest) -> Result<IssueRef, NotifyError> {
        const OPERATION: &str = "servicedesk.request.create";
        let mut body = json!({
            "serviceDeskId": request.service_desk_id,
            "requestTypeId": request.request_type_id,
            "requestFieldValues": {
                "summary": request.summary,
                "description": request.description,
                "labels": request.labels,
            },
            "isAdfRequest": false,
        });
        if let Some(account) = &request.raise_on_behalf_of {
            body["raiseOnBehalfOf"] = json!(account);
        }
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::POST, "/rest/servicedeskapi/request")
                    .json(&body),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let created: CreatedRequest = self.http.decode(OPERATION, &response)?;
        Ok(IssueRef {
            id: created.issue_id,
            key: created.issue_key,
            done: false,
        })
    }

    /// Every approval on the JSM request `key`, by `GET
    /// /rest/servicedeskapi/request/{key}/approval`, following pages until `isLastPage` (at
    /// most [`APPROVAL_MAX_PAGES`] pages of [`APPROVAL_PAGE_LIMIT`]). Never a partial list: more
    /// pages than that, or an empty page that is not the last, is an error.
    pub async fn approvals(&self, key: &str) -> Result<Vec<Approval>, NotifyError> {
        const OPERATION: &str = "servicedesk.approval.list";
        let path = format!("/rest/servicedeskapi/request/{key}/approval");
        let mut approvals = Vec::new();
        let mut start = 0_usize;
        for _ in 0..APPROVAL_MAX_PAGES {
            let response = self
                .http
                .send(
                    OPERATION,
                    self.request(reqwest::Method::GET, &path)
                        .query(&[("start", start), ("limit", APPROVAL_PAGE_LIMIT)]),
                )
                .await?;
            if !response.is_success() {
                return Err(self.failure(OPERATION, &response));
            }
            let page: ApprovalPage = self.http.decode(OPERATION, &response)?;
            let received = page.values.len();
            approvals.extend(page.values.into_iter().map(Approval::from));
            if page.is_last_page.unwrap_or(true) {
                return Ok(approvals);
            }
            if received == 0 {
                return Err(self.http.decode_error(
                    OPERATION,
                    &format!(
                        "the approvals page of {key} at start {start} is empty but not the last"
                    ),
                ));
            }
            start += received;
        }
        Err(self.http.decode_error(
            OPERATION,
            &format!("the approvals of {key} span more than {APPROVAL_MAX_PAGES} pages"),
        ))
    }

    /// Approves or declines approval `approval_id` of the JSM request `key` as the calling user,
    /// by `POST /rest/servicedeskapi/request/{key}/approval/{approval_id}` → the updated
    /// approval. JSM answers 403 to a user who is not an approver.
    pub async fn answer_approval(
        &self,
        key: &str,
        approval_id: &str,
        approve: bool,
    ) -> Result<Approval, NotifyError> {
        const OPERATION: &str = "servicedesk.approval.answer";
        let decision = if approve { "approve" } else { "decline" };
        let response = self
            .http
            .send(
                OPERATION,
                self.request(
                    reqwest::Method::POST,
                    &format!("/rest/servicedeskapi/request/{key}/approval/{approval_id}"),
                )
                .json(&json!({"decision": decision})),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let approval: ApprovalWire = self.http.decode(OPERATION, &response)?;
        Ok(approval.into())
    }

    /// The oldest issue carrying `label`, by `GET /rest/api/3/search/jql`.
    pub async fn find_by_label(&self, label: &str) -> Result<Option<IssueRef>, NotifyError> {
        const OPERATION: &str = "search.jql";
        let jql = format!("labels = \"{label}\" ORDER BY created ASC");
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, "/rest/api/3/search/jql")
                    .query(&[
                        ("jql", jql.as_str()),
                        ("fields", "status"),
                        ("maxResults", "1"),
                    ]),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let page: SearchPage = self.http.decode(OPERATION, &response)?;
        Ok(page.issues.into_iter().next().map(|issue| IssueRef {
            done: issue
                .fields
                .status
                .and_then(|status| status.status_category)
                .is_some_and(|category| category.key == "done"),
            id: issue.id,
            key: issue.key,
        }))
    }

    /// `POST /rest/api/3/issue/{key}/comment` with an ADF body → the comment id.
    pub async fn add_comment(&self, key: &str, body: &Value) -> Result<String, NotifyError> {
        const OPERATION: &str = "issue.comment.add";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(
                    reqwest::Method::POST,
                    &format!("/rest/api/3/issue/{key}/comment"),
                )
                .json(&json!({"body": body})),
            )
            .await?;
        if response.status != 201 {
            return Err(self.failure(OPERATION, &response));
        }
        let comment: Comment = self.http.decode(OPERATION, &response)?;
        Ok(comment.id)
    }

    /// Whether any of the issue's latest 100 comments contains `marker`.
    pub async fn has_comment_containing(
        &self,
        key: &str,
        marker: &str,
    ) -> Result<bool, NotifyError> {
        const OPERATION: &str = "issue.comment.list";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(
                    reqwest::Method::GET,
                    &format!("/rest/api/3/issue/{key}/comment"),
                )
                .query(&[("orderBy", "-created"), ("maxResults", "100")]),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let page: CommentPage = self.http.decode(OPERATION, &response)?;
        // Compared with the text as people read it too: in the JSON form a marker holding
        // quotes or backslashes is escaped and would never be found.
        Ok(page.comments.iter().any(|comment| {
            comment.body.to_string().contains(marker) || adf_text(&comment.body).contains(marker)
        }))
    }

    /// `GET /rest/api/3/issue/{key}/transitions`.
    pub async fn transitions(&self, key: &str) -> Result<Vec<Transition>, NotifyError> {
        const OPERATION: &str = "issue.transitions.list";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(
                    reqwest::Method::GET,
                    &format!("/rest/api/3/issue/{key}/transitions"),
                ),
            )
            .await?;
        if !response.is_success() {
            return Err(self.failure(OPERATION, &response));
        }
        let list: TransitionList = self.http.decode(OPERATION, &response)?;
        Ok(list.transitions)
    }

    /// `POST /rest/api/3/issue/{key}/transitions` → 204, with an optional ADF comment.
    pub async fn transition(
        &self,
        key: &str,
        transition_id: &str,
        comment: Option<&Value>,
    ) -> Result<(), NotifyError> {
        const OPERATION: &str = "issue.transition";
        let mut body = json!({"transition": {"id": transition_id}});
        if let Some(comment) = comment {
            body["update"] = json!({"comment": [{"add": {"body": comment}}]});
        }
        let response = self
            .http
            .send(
                OPERATION,
                self.request(
                    reqwest::Method::POST,
                    &format!("/rest/api/3/issue/{key}/transitions"),
                )
                .json(&body),
            )
            .await?;
        if response.status != 204 {
            return Err(self.failure(OPERATION, &response));
        }
        Ok(())
    }

    /// Moves the issue to done: through the transition named `preferred`, else the first one
    /// whose target status is in the "done" category.
    pub async fn resolve(
        &self,
        key: &str,
        preferred: Option<&str>,
        comment: Option<&Value>,
    ) -> Result<(), NotifyError> {
        let transitions = self.transitions(key).await?;
        let chosen = match preferred {
            Some(name) => transitions
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name)),
            None => transitions.iter().find(|t| {
                t.to.status_category
                    .as_ref()
                    .is_some_and(|category| category.key == "done")
            }),
        };
        let Some(chosen) = chosen else {
            let available: Vec<&str> = transitions.iter().map(|t| t.name.as_str()).collect();
            return Err(self.http.workflow(
                "issue.transition",
                format!(
                    "no transition {} is available on {key} (available: {available:?})",
                    preferred.map_or_else(|| "to a done status".to_owned(), |n| format!("{n:?}"))
                ),
            ));
        };
        self.transition(key, &chosen.id, comment).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(value: Value) -> Approval {
        serde_json::from_value::<ApprovalWire>(value)
            .expect("approval decodes")
            .into()
    }

    #[test]
    fn decisions_decode_and_unknown_ones_read_as_pending() {
        let decode = |text: &str| serde_json::from_str::<ApprovalDecision>(text).expect(text);
        assert_eq!(decode(r#""pending""#), ApprovalDecision::Pending);
        assert_eq!(decode(r#""approved""#), ApprovalDecision::Approved);
        assert_eq!(decode(r#""declined""#), ApprovalDecision::Declined);
        assert_eq!(decode(r#""escalated""#), ApprovalDecision::Pending);
        assert_eq!(decode(r#""APPROVED""#), ApprovalDecision::Pending);
        assert_eq!(decode("null"), ApprovalDecision::Pending);
        assert_eq!(decode("3"), ApprovalDecision::Pending);
    }

    #[test]
    fn an_unknown_decision_does_not_fail_the_page() {
        let page: ApprovalPage = serde_json::from_value(json!({
            "size": 2, "start": 0, "limit": 50, "isLastPage": true,
            "values": [
                {
                    "id": "7", "name": "Access approval", "finalDecision": "escalated",
                    "canAnswerApproval": false,
                    "approvers": [
                        {"approver": {"accountId": "acc-a", "emailAddress": "a@example.com"},
                         "approverDecision": "abstained"},
                        {"approver": {"accountId": "acc-b"}, "approverDecision": null},
                        {"approver": {"accountId": "acc-c", "emailAddress": ""},
                         "approverDecision": "declined"},
                    ],
                    "createdDate": {"iso8601": "2026-01-01T00:00:00+0000"},
                },
                {"id": 8, "finalDecision": null},
            ],
        }))
        .expect("page decodes");
        assert_eq!(page.is_last_page, Some(true));
        let approvals: Vec<Approval> = page.values.into_iter().map(Approval::from).collect();
        assert_eq!(
            approvals[0],
            Approval {
                id: "7".into(),
                name: "Access approval".into(),
                final_decision: ApprovalDecision::Pending,
                approvers: vec![
                    Approver {
                        account_id: "acc-a".into(),
                        email: Some("a@example.com".into()),
                        decision: ApprovalDecision::Pending,
                    },
                    Approver {
                        account_id: "acc-b".into(),
                        email: None,
                        decision: ApprovalDecision::Pending,
                    },
                    Approver {
                        account_id: "acc-c".into(),
                        email: None,
                        decision: ApprovalDecision::Declined,
                    },
                ],
                completed_at: None,
            }
        );
        assert_eq!(approvals[1].id, "8");
        assert_eq!(approvals[1].final_decision, ApprovalDecision::Pending);
        assert!(approvals[1].approvers.is_empty());
    }

    #[test]
    fn a_decided_approval_keeps_its_completion_date() {
        let decided = approval(json!({
            "id": "1", "name": "Access approval", "finalDecision": "approved",
            "approvers": [{"approver": {"accountId": "acc-a"}, "approverDecision": "approved"}],
            "completedDate": {"iso8601": "2026-03-01T12:00:00+0000", "epochMillis": 1},
        }));
        assert_eq!(decided.final_decision, ApprovalDecision::Approved);
        assert_eq!(
            decided.completed_at.as_deref(),
            Some("2026-03-01T12:00:00+0000")
        );
    }

    fn change(to: &str, author: Option<&str>) -> StatusChange {
        StatusChange {
            to_status: to.into(),
            from_status: String::new(),
            author_account_id: author.map(str::to_owned),
            author_email: author.map(|author| format!("{author}@example.com")),
            at: String::new(),
        }
    }

    #[test]
    fn the_latest_change_into_the_decision_status_names_the_decider() {
        /// `(to status, author)` of each change, oldest first.
        type Changes = &'static [(&'static str, Option<&'static str>)];
        /// `(approve, decider)`.
        type Expected = Option<(bool, Option<&'static str>)>;
        let cases: &[(&str, &str, Changes, Expected)] = &[
            ("no history, still open", "To Do", &[], None),
            (
                "moved along but not decided",
                "In Progress",
                &[("In Progress", Some("ann"))],
                None,
            ),
            (
                "approved",
                "Approved",
                &[("Approved", Some("ann"))],
                Some((true, Some("ann"))),
            ),
            (
                "declined",
                "Declined",
                &[("In Progress", Some("ann")), ("Declined", Some("bob"))],
                Some((false, Some("bob"))),
            ),
            (
                "approved, reopened, declined by another",
                "Declined",
                &[
                    ("Approved", Some("ann")),
                    ("To Do", Some("ann")),
                    ("Declined", Some("bob")),
                ],
                Some((false, Some("bob"))),
            ),
            (
                "approved, reopened: no decision",
                "To Do",
                &[("Approved", Some("ann")), ("To Do", Some("bob"))],
                None,
            ),
            (
                "approved twice: the second approver decides",
                "Approved",
                &[
                    ("Approved", Some("ann")),
                    ("Declined", Some("bob")),
                    ("Approved", Some("cat")),
                ],
                Some((true, Some("cat"))),
            ),
            (
                "status names compare case-insensitively",
                "APPROVED",
                &[("approved", Some("ann"))],
                Some((true, Some("ann"))),
            ),
            (
                "created in the decision status: no decider",
                "Approved",
                &[],
                Some((true, None)),
            ),
            (
                "only older changes into another status",
                "Declined",
                &[("Approved", Some("ann"))],
                Some((false, None)),
            ),
            (
                "an anonymous change into the status: no decider",
                "Approved",
                &[
                    ("Approved", Some("ann")),
                    ("To Do", None),
                    ("Approved", None),
                ],
                Some((true, None)),
            ),
        ];
        for (name, status, changes, expected) in cases {
            let state = IssueDecisionState {
                status: (*status).into(),
                changes: changes
                    .iter()
                    .map(|(to, author)| change(to, *author))
                    .collect(),
            };
            let expected = expected.map(|(approve, author)| {
                (
                    approve,
                    author.map(str::to_owned),
                    author.map(|author| format!("{author}@example.com")),
                )
            });
            assert_eq!(
                decision_from(&state, "Approved", "Declined"),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_same_status_for_approve_and_deny_decides_nothing() {
        let state = IssueDecisionState {
            status: "Done".into(),
            changes: vec![change("Done", Some("ann"))],
        };
        assert_eq!(decision_from(&state, "Done", "done"), None);
        assert_eq!(decision_from(&state, "", "Declined"), None);
        assert_eq!(
            decision_from(&state, "Done", "Declined"),
            Some((true, Some("ann".into()), Some("ann@example.com".into())))
        );
    }

    #[test]
    fn only_jira_issue_keys_pass() {
        for key in ["ABC-1", "A-0", "SEC_OPS-42", "A1B2-1234567"] {
            assert!(is_issue_key(key), "{key}");
        }
        for key in [
            "",
            "abc-1",
            "ABC",
            "ABC-",
            "-1",
            "1ABC-1",
            "ABC-1-2",
            "ABC-1/../../user",
            "ABC-1?x=1",
            "ABC-1#x",
            "ABC-1 ",
            " ABC-1",
            "ABC-１",
            "ÄBC-1",
            "AB.C-1",
            "10001",
        ] {
            assert!(!is_issue_key(key), "{key}");
        }
        assert!(!is_issue_key(&format!("A{}-1", "B".repeat(300))));
    }

    fn histories(value: Value) -> Vec<HistoryWire> {
        serde_json::from_value(value).expect("histories decode")
    }

    #[test]
    fn only_system_status_items_are_status_changes() {
        let changes = status_changes(histories(json!([
            {
                "id": "1", "created": "2026-12-07T10:00:00.000+0000",
                "author": {"accountId": "acc-ann", "emailAddress": "ann@example.com"},
                "items": [
                    {"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                     "from": null, "fromString": null, "to": "10000", "toString": "Done"},
                    {"field": "status", "fieldtype": "jira", "fieldId": "status",
                     "from": "10000", "fromString": "To Do", "to": "10001",
                     "toString": "Approved"},
                    {"field": "status", "fieldtype": "custom", "fieldId": "customfield_10042",
                     "fromString": "To Do", "toString": "Declined"},
                    {"field": "Status", "fieldtype": "custom", "toString": "Declined"},
                    {"field": "labels", "toString": "x"},
                    {"toString": "Declined"},
                ],
            },
            {
                "id": 2, "created": "2026-12-07T10:05:00.000+0000",
                "items": [{"field": "status", "fromString": "Approved", "toString": "To Do"}],
            },
            {
                "id": "3", "created": "2026-12-07T10:06:00.000+0000",
                "author": {"accountId": "acc-bob", "emailAddress": ""},
                "items": [{"fieldId": "status", "toString": "Declined"}],
            },
            {"id": "4", "created": "2026-12-07T10:07:00.000+0000", "author": null, "items": []},
        ])))
        .expect("status changes");
        assert_eq!(
            changes,
            vec![
                StatusChange {
                    to_status: "Approved".into(),
                    from_status: "To Do".into(),
                    author_account_id: Some("acc-ann".into()),
                    author_email: Some("ann@example.com".into()),
                    at: "2026-12-07T10:00:00.000+0000".into(),
                },
                StatusChange {
                    to_status: "To Do".into(),
                    from_status: "Approved".into(),
                    author_account_id: None,
                    author_email: None,
                    at: "2026-12-07T10:05:00.000+0000".into(),
                },
                StatusChange {
                    to_status: "Declined".into(),
                    from_status: String::new(),
                    author_account_id: Some("acc-bob".into()),
                    author_email: None,
                    at: "2026-12-07T10:06:00.000+0000".into(),
                },
            ]
        );
    }

    #[test]
    fn a_status_change_to_no_named_status_is_an_error() {
        let problem = status_changes(histories(json!([
            {"id": "1", "created": "2026-12-07T10:00:00.000+0000",
             "items": [{"fieldId": "status", "fromString": "To Do", "to": "10001"}]},
        ])))
        .expect_err("unnamed target");
        assert!(problem.contains("history 1"), "{problem}");
    }

    #[test]
    fn histories_sent_newest_first_are_put_in_time_order() {
        let changes = status_changes(histories(json!([
            {"id": "3", "created": "2026-12-07T12:00:00.000+0100",
             "author": {"accountId": "acc-cat"}, "items": [{"fieldId": "status", "toString": "Approved"}]},
            {"id": "2", "created": "2026-12-07T10:30:00.000+0000",
             "author": {"accountId": "acc-bob"}, "items": [{"fieldId": "status", "toString": "To Do"}]},
            {"id": "1", "created": "2026-12-07T10:00:00.000+0000",
             "author": {"accountId": "acc-ann"}, "items": [{"fieldId": "status", "toString": "Approved"}]},
        ])))
        .expect("status changes");
        let order: Vec<_> = changes
            .iter()
            .map(|change| change.author_account_id.as_deref().unwrap_or_default())
            .collect();
        // 12:00+01:00 is 11:00 UTC: the latest.
        assert_eq!(order, ["acc-ann", "acc-bob", "acc-cat"]);
        let state = IssueDecisionState {
            status: "Approved".into(),
            changes,
        };
        assert_eq!(
            decision_from(&state, "Approved", "Declined").map(|(approve, who, _)| (approve, who)),
            Some((true, Some("acc-cat".into())))
        );
    }

    #[test]
    fn histories_with_an_unreadable_time_keep_the_order_sent() {
        let changes = status_changes(histories(json!([
            {"id": "1", "created": "yesterday", "items": [{"fieldId": "status", "toString": "B"}]},
            {"id": "2", "created": "2026-12-07T10:00:00.000+0000",
             "items": [{"fieldId": "status", "toString": "A"}]},
        ])))
        .expect("status changes");
        let order: Vec<_> = changes.iter().map(|c| c.to_status.as_str()).collect();
        assert_eq!(order, ["B", "A"]);
    }

    #[test]
    fn a_truncated_embedded_changelog_is_recognised() {
        let issue: IssueWithChangelog = serde_json::from_value(json!({
            "id": "10001", "key": "SEC-1",
            "fields": {"status": {"name": "Approved", "id": "10100",
                                  "statusCategory": {"key": "done"}}},
            "changelog": {"startAt": 2, "maxResults": 1, "total": 3, "histories": [
                {"id": "3", "created": "2026-12-07T10:00:00.000+0000", "items": []},
            ]},
        }))
        .expect("issue decodes");
        let changelog = issue.changelog.expect("changelog");
        assert_eq!((changelog.total, changelog.histories.len()), (Some(3), 1));
    }

    #[test]
    fn jsm_error_messages_are_the_failure_detail() {
        let client = JiraClient::new(
            reqwest::Client::new(),
            "desk",
            ChannelKind::JiraServiceManagement,
            "http://127.0.0.1:9",
            "bot@example.com",
            &Secret::new("token").expect("secret"),
        )
        .expect("client");
        let response = HttpResponse {
            status: 403,
            headers: reqwest::header::HeaderMap::new(),
            body: br#"{"errorMessage": "You are not an approver.", "i18nErrorMessage": {}}"#
                .to_vec(),
        };
        match client.failure("servicedesk.approval.answer", &response) {
            NotifyError::Http { status, detail, .. } => {
                assert_eq!((status, detail.as_str()), (403, "You are not an approver."));
            }
            other => panic!("expected an HTTP failure, got {other:?}"),
        }
    }
}

/// The text of an ADF document (or a plain string body), its text nodes joined in order.
fn adf_text(body: &Value) -> String {
    fn collect(node: &Value, out: &mut String) {
        match node {
            Value::String(text) => out.push_str(text),
            Value::Object(fields) => {
                if let Some(Value::String(text)) = fields.get("text") {
                    out.push_str(text);
                }
                if let Some(Value::Array(children)) = fields.get("content") {
                    for child in children {
                        collect(child, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            _ => {}
        }
    }
    let mut text = String::new();
    collect(body, &mut text);
    text
}

#[cfg(test)]
mod adf_text_tests {
    use super::*;

    #[test]
    fn the_text_of_a_comment_keeps_quotes_unescaped() {
        let body = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph",
            "content": [{"type": "text", "text": "refused: rule \"x\" [m]"}]}]});
        let marker = "rule \"x\" [m]";
        assert!(!body.to_string().contains(marker));
        assert!(adf_text(&body).contains(marker));
        assert_eq!(adf_text(&json!("plain \"body\"")), "plain \"body\"");
    }
}
