//! Jira Cloud REST v3 (issues with ADF descriptions, comments, transitions, JQL search) and
//! Jira Service Management requests and their approvals. Basic auth with `email:api_token`.

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

/// Approvals asked for per page.
pub const APPROVAL_PAGE_LIMIT: usize = 50;
/// Pages of approvals [`JiraClient::approvals`] follows at most.
pub const APPROVAL_MAX_PAGES: usize = 20;

/// Calls one Jira Cloud site.
#[derive(Clone, Debug)]
pub struct JiraClient {
    http: HttpCaller,
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
        Ok(page
            .comments
            .iter()
            .any(|comment| comment.body.to_string().contains(marker)))
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
