//! Jira Cloud REST v3 (issues with ADF descriptions, comments, transitions, JQL search) and
//! Jira Service Management requests. Basic auth with `email:api_token`.

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;
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

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorCollection {
    #[serde(default)]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: serde_json::Map<String, Value>,
}

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
                    .error_messages
                    .into_iter()
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
