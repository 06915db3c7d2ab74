//! Jira Cloud (REST v3) and Jira Service Management simulator.
//!
//! * `POST /rest/api/3/issue` (201 `{id, key, self}`; the description must be an ADF document),
//!   `GET /rest/api/3/issue/{key}`;
//! * `GET /rest/api/3/search/jql` with a JQL subset: `labels = "x"`, `project = KEY`,
//!   `statusCategory = done|new|indeterminate`, joined by `AND`, optional `ORDER BY created`;
//! * comments (`GET`/`POST /rest/api/3/issue/{key}/comment`, ADF bodies);
//! * transitions of the workflow To Do → In Progress → Done (`GET`/`POST .../transitions`, 204);
//! * `POST /rest/servicedeskapi/request` creating an issue in the service desk's project; on a
//!   desk with approvers the request gets one pending approval ("Access approval") naming them
//!   all;
//! * JSM approvals: `GET /rest/servicedeskapi/request/{key}/approval?start=&limit=` (a paged
//!   list, default limit 50, capped by [`JiraSim::set_approval_page_limit`]) and
//!   `POST /rest/servicedeskapi/request/{key}/approval/{id}` with `{"decision":
//!   "approve"|"decline"}`, answered as the site's configured `email`: 403 unless an approver has
//!   that email, 400 when the approval is already decided, else 200 with the updated approval.
//!   One approver's decision decides the approval. Tests answer as any approver with
//!   [`JiraSim::decide_approval`].
//!
//! Basic auth `email:api_token`; errors use Jira's `ErrorCollection`
//! (`{"errorMessages": [...], "errors": {...}}`) and JSM's `{"errorMessage": ...}`.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::server::{SimServer, query_get, query_pairs, state};

/// A JSM service desk and its request types.
#[derive(Clone, Debug)]
pub struct ServiceDeskSpec {
    pub id: String,
    pub project_key: String,
    pub request_type_ids: Vec<String>,
    /// Approvers of the approval each new request gets; none: requests get no approval.
    pub approvers: Vec<SimApprover>,
}

/// A Jira user who approves JSM requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimApprover {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
}

impl SimApprover {
    pub fn new(account_id: &str, email: &str, display_name: &str) -> Self {
        Self {
            account_id: account_id.to_owned(),
            email: email.to_owned(),
            display_name: display_name.to_owned(),
        }
    }
}

/// A JSM approval decision, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimDecision {
    Pending,
    Approved,
    Declined,
}

impl SimDecision {
    /// The wire form: `"pending"`, `"approved"`, `"declined"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
        }
    }
}

/// One approver of an approval and their decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimApproverDecision {
    pub approver: SimApprover,
    pub decision: SimDecision,
}

/// A JSM approval on a request, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimApproval {
    pub id: String,
    pub name: String,
    pub final_decision: SimDecision,
    pub approvers: Vec<SimApproverDecision>,
    /// `completedDate.iso8601`, once decided.
    pub completed_date: Option<String>,
}

impl SimApproval {
    /// Records approver `at`'s decision, which decides the approval.
    fn decide(&mut self, at: usize, approve: bool) {
        let decision = if approve {
            SimDecision::Approved
        } else {
            SimDecision::Declined
        };
        self.approvers[at].decision = decision;
        self.final_decision = decision;
        self.completed_date = Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%z").to_string());
    }

    fn to_json(&self, base: &str, issue_id: &str, caller: &str) -> Value {
        let pending = self.final_decision == SimDecision::Pending;
        let approvers: Vec<Value> = self
            .approvers
            .iter()
            .map(|entry| {
                json!({
                    "approver": {
                        "accountId": entry.approver.account_id,
                        "emailAddress": entry.approver.email,
                        "displayName": entry.approver.display_name,
                        "active": true,
                        "timeZone": "Etc/UTC",
                        "_links": {
                            "self": format!("{base}/rest/api/2/user?accountId={}", entry.approver.account_id),
                        },
                    },
                    "approverDecision": entry.decision.as_str(),
                })
            })
            .collect();
        let can_answer = pending
            && self.approvers.iter().any(|entry| {
                entry.approver.email.eq_ignore_ascii_case(caller)
                    && entry.decision == SimDecision::Pending
            });
        let mut approval = json!({
            "id": self.id,
            "name": self.name,
            "finalDecision": self.final_decision.as_str(),
            "canAnswerApproval": can_answer,
            "approvers": approvers,
            "createdDate": {"iso8601": "2026-01-01T00:00:00+0000", "epochMillis": 1_767_225_600_000_u64},
            "_links": {
                "self": format!("{base}/rest/servicedeskapi/request/{issue_id}/approval/{}", self.id),
            },
        });
        if let Some(completed) = &self.completed_date {
            approval["completedDate"] = json!({"iso8601": completed});
        }
        approval
    }
}

/// Site settings.
#[derive(Clone, Debug)]
pub struct JiraSimConfig {
    pub email: String,
    pub api_token: String,
    pub projects: Vec<String>,
    pub issue_types: Vec<String>,
    pub service_desks: Vec<ServiceDeskSpec>,
}

impl Default for JiraSimConfig {
    fn default() -> Self {
        Self {
            email: "opal-operator@example.com".to_owned(),
            api_token: "sim-jira-api-token".to_owned(),
            projects: vec!["SEC".to_owned(), "ITSD".to_owned()],
            issue_types: vec!["Task".to_owned(), "Bug".to_owned(), "Story".to_owned()],
            service_desks: vec![ServiceDeskSpec {
                id: "1".to_owned(),
                project_key: "ITSD".to_owned(),
                request_type_ids: vec!["10".to_owned()],
                approvers: vec![
                    SimApprover::new("acc-olivia", "olivia.chen@example.com", "Olivia Chen"),
                    SimApprover::new("acc-marcus", "marcus.webb@example.com", "Marcus Webb"),
                ],
            }],
        }
    }
}

/// An issue as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SimIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    /// ADF for platform issues; a string for JSM requests created with `isAdfRequest: false`.
    pub description: Value,
    pub labels: Vec<String>,
    pub status: String,
    /// ADF bodies, oldest first.
    pub comments: Vec<Value>,
    /// Transition ids applied, in order.
    pub transitions: Vec<String>,
    /// The JSM request body, for requests.
    pub request: Option<Value>,
    /// JSM approvals, oldest first (requests only).
    pub approvals: Vec<SimApproval>,
    created_seq: u64,
}

struct Status {
    id: &'static str,
    name: &'static str,
    category: &'static str,
    category_name: &'static str,
}

const STATUSES: &[Status] = &[
    Status {
        id: "10000",
        name: "To Do",
        category: "new",
        category_name: "To Do",
    },
    Status {
        id: "3",
        name: "In Progress",
        category: "indeterminate",
        category_name: "In Progress",
    },
    Status {
        id: "10001",
        name: "Done",
        category: "done",
        category_name: "Done",
    },
];

/// `(transition id, name, target status name)`; every transition is available from every
/// status except its own target.
const TRANSITIONS: &[(&str, &str, &str)] = &[
    ("11", "To Do", "To Do"),
    ("21", "In Progress", "In Progress"),
    ("31", "Done", "Done"),
];

fn status(name: &str) -> &'static Status {
    STATUSES
        .iter()
        .find(|s| s.name == name)
        .unwrap_or(&STATUSES[0])
}

fn status_json(name: &str) -> Value {
    let status = status(name);
    json!({
        "id": status.id,
        "name": status.name,
        "statusCategory": {"key": status.category, "name": status.category_name},
    })
}

#[derive(Debug, Default)]
struct Site {
    config: Option<JiraSimConfig>,
    issues: Vec<SimIssue>,
    next_id: u64,
    next_number: BTreeMap<String, u64>,
    next_comment: u64,
    next_approval: u64,
    /// Largest `limit` the approvals list honours.
    approval_page_limit: usize,
    base_url: String,
}

type Shared = Arc<Mutex<Site>>;

/// The running simulator. Derefs to [`SimServer`].
#[derive(Debug)]
pub struct JiraSim {
    server: SimServer,
    site: Shared,
}

impl Deref for JiraSim {
    type Target = SimServer;

    fn deref(&self) -> &SimServer {
        &self.server
    }
}

impl JiraSim {
    pub async fn start(config: JiraSimConfig) -> std::io::Result<Self> {
        let site = Arc::new(Mutex::new(Site {
            config: Some(config),
            next_id: 10_000,
            next_comment: 10_000,
            approval_page_limit: 100,
            ..Site::default()
        }));
        let router = Router::new()
            .route("/rest/api/3/issue", post(create_issue))
            .route("/rest/api/3/issue/{key}", get(get_issue))
            .route(
                "/rest/api/3/issue/{key}/comment",
                get(list_comments).post(add_comment),
            )
            .route(
                "/rest/api/3/issue/{key}/transitions",
                get(list_transitions).post(do_transition),
            )
            .route("/rest/api/3/search/jql", get(search))
            .route("/rest/servicedeskapi/request", post(create_request))
            .route(
                "/rest/servicedeskapi/request/{key}/approval",
                get(list_approvals),
            )
            .route(
                "/rest/servicedeskapi/request/{key}/approval/{approval}",
                post(answer_approval),
            )
            .with_state(Arc::clone(&site));
        let server = SimServer::start(router).await?;
        state(&site).base_url = server.base_url();
        Ok(Self { server, site })
    }

    /// The simulated `https://<site>.atlassian.net`.
    pub fn site_url(&self) -> String {
        self.server.base_url()
    }

    /// Every issue, oldest first.
    pub fn issues(&self) -> Vec<SimIssue> {
        state(&self.site).issues.clone()
    }

    /// The approvals of issue `key` (a key or an id), oldest first; none for an unknown issue.
    pub fn approvals(&self, key: &str) -> Vec<SimApproval> {
        state(&self.site)
            .issue_mut(key)
            .map(|issue| issue.approvals.clone())
            .unwrap_or_default()
    }

    /// Answers as approver `account_id`: records their decision on the issue's first pending
    /// approval naming them, which decides it. False when the issue, such an approval or the
    /// approver does not exist.
    pub fn decide_approval(&self, key: &str, account_id: &str, approve: bool) -> bool {
        let mut site = state(&self.site);
        let Some(issue) = site.issue_mut(key) else {
            return false;
        };
        let found = issue.approvals.iter_mut().find_map(|approval| {
            (approval.final_decision == SimDecision::Pending)
                .then(|| {
                    approval
                        .approvers
                        .iter()
                        .position(|entry| entry.approver.account_id == account_id)
                })
                .flatten()
                .map(|at| (approval, at))
        });
        match found {
            Some((approval, at)) => {
                approval.decide(at, approve);
                true
            }
            None => false,
        }
    }

    /// Adds another pending approval named `name` to the JSM request `key`, with its service
    /// desk's approvers; returns its id, or `None` when `key` is not a request.
    pub fn add_approval(&self, key: &str, name: &str) -> Option<String> {
        let mut site = state(&self.site);
        let desk_id = site
            .issue_mut(key)?
            .request
            .as_ref()?
            .get("serviceDeskId")
            .and_then(Value::as_str)
            .map(str::to_owned)?;
        let approvers = site
            .config
            .as_ref()
            .and_then(|config| config.service_desks.iter().find(|desk| desk.id == desk_id))
            .map(|desk| desk.approvers.clone())
            .unwrap_or_default();
        let approval = site.new_approval(name, &approvers);
        let id = approval.id.clone();
        site.issue_mut(key)?.approvals.push(approval);
        Some(id)
    }

    /// Caps the page size of the approvals list (JSM caps `limit` server-side); at least 1.
    pub fn set_approval_page_limit(&self, limit: usize) {
        state(&self.site).approval_page_limit = limit.max(1);
    }
}

fn errors(status: StatusCode, messages: &[&str], fields: Value) -> Response {
    (
        status,
        axum::Json(json!({"errorMessages": messages, "errors": fields})),
    )
        .into_response()
}

fn not_found() -> Response {
    errors(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

impl Site {
    /// The 401 answer, when the request is not authenticated.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let expected = self.config.as_ref().map(|config| {
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", config.email, config.api_token))
        });
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        match (given, expected) {
            (Some(given), Some(expected)) if given == expected => None,
            _ => Some(errors(
                StatusCode::UNAUTHORIZED,
                &["Client must be authenticated to access this resource."],
                json!({}),
            )),
        }
    }

    fn issue_mut(&mut self, key: &str) -> Option<&mut SimIssue> {
        self.issues
            .iter_mut()
            .find(|issue| issue.key == key || issue.id == key)
    }

    fn insert(
        &mut self,
        project: &str,
        issue_type: &str,
        summary: &str,
        description: Value,
        labels: Vec<String>,
        request: Option<Value>,
    ) -> SimIssue {
        self.next_id += 1;
        let number = self.next_number.entry(project.to_owned()).or_insert(0);
        *number += 1;
        let issue = SimIssue {
            id: self.next_id.to_string(),
            key: format!("{project}-{number}"),
            project: project.to_owned(),
            issue_type: issue_type.to_owned(),
            summary: summary.to_owned(),
            description,
            labels,
            status: "To Do".to_owned(),
            comments: Vec::new(),
            transitions: Vec::new(),
            request,
            approvals: Vec::new(),
            created_seq: self.next_id,
        };
        self.issues.push(issue.clone());
        issue
    }

    fn new_approval(&mut self, name: &str, approvers: &[SimApprover]) -> SimApproval {
        self.next_approval += 1;
        SimApproval {
            id: self.next_approval.to_string(),
            name: name.to_owned(),
            final_decision: SimDecision::Pending,
            approvers: approvers
                .iter()
                .map(|approver| SimApproverDecision {
                    approver: approver.clone(),
                    decision: SimDecision::Pending,
                })
                .collect(),
            completed_date: None,
        }
    }

    /// The caller's email (answers are made as the configured user).
    fn caller(&self) -> String {
        self.config
            .as_ref()
            .map(|config| config.email.clone())
            .unwrap_or_default()
    }

    fn self_url(&self, id: &str) -> String {
        format!("{}/rest/api/3/issue/{id}", self.base_url)
    }
}

/// An ADF document: `{"type": "doc", "version": 1, "content": [...]}` whose nodes all have a
/// `type`.
fn is_adf(value: &Value) -> bool {
    fn nodes_ok(content: &Value) -> bool {
        content.as_array().is_some_and(|nodes| {
            nodes.iter().all(|node| {
                node.get("type").and_then(Value::as_str).is_some()
                    && node.get("content").is_none_or(nodes_ok)
                    && (node.get("type") != Some(&json!("text"))
                        || node
                            .get("text")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty()))
            })
        })
    }
    value.get("type") == Some(&json!("doc"))
        && value.get("version") == Some(&json!(1))
        && value.get("content").is_some_and(nodes_ok)
}

fn labels_of(value: Option<&Value>) -> Result<Vec<String>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.as_str() {
                Some(label) if !label.is_empty() && !label.contains(' ') && label.len() <= 255 => {
                    Ok(label.to_owned())
                }
                _ => Err("The label must not contain spaces."),
            })
            .collect(),
        Some(_) => Err("Labels must be a list."),
    }
}

async fn create_issue(State(site): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let Some(config) = site.config.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Unexpected character in request body."],
            json!({}),
        );
    };
    let Some(fields) = request.get("fields").and_then(Value::as_object) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["The request has no fields."],
            json!({}),
        );
    };
    let mut problems = serde_json::Map::new();
    let project = fields
        .get("project")
        .and_then(|p| p.get("key"))
        .and_then(Value::as_str)
        .filter(|key| config.projects.iter().any(|p| p == key));
    if project.is_none() {
        problems.insert("project".into(), json!("valid project is required"));
    }
    let issue_type = fields
        .get("issuetype")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|name| config.issue_types.iter().any(|t| t == name));
    if issue_type.is_none() {
        problems.insert("issuetype".into(), json!("Specify a valid issue type"));
    }
    let summary = fields
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if summary.trim().is_empty() {
        problems.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    } else if summary.chars().count() > 255 || summary.contains('\n') {
        problems.insert(
            "summary".into(),
            json!("Summary must be less than 255 characters and on one line."),
        );
    }
    let description = fields.get("description").cloned().unwrap_or(Value::Null);
    if !description.is_null() && !is_adf(&description) {
        problems.insert(
            "description".into(),
            json!(
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            ),
        );
    }
    let labels = match labels_of(fields.get("labels")) {
        Ok(labels) => labels,
        Err(message) => {
            problems.insert("labels".into(), json!(message));
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &[], Value::Object(problems));
    }
    let (project, issue_type) = (
        project.unwrap_or_default().to_owned(),
        issue_type.unwrap_or_default().to_owned(),
    );
    let issue = site.insert(&project, &issue_type, summary, description, labels, None);
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": issue.id, "key": issue.key, "self": site.self_url(&issue.id)})),
    )
        .into_response()
}

fn issue_json(site: &Site, issue: &SimIssue, fields: Option<&str>) -> Value {
    let all = json!({
        "summary": issue.summary,
        "status": status_json(&issue.status),
        "labels": issue.labels,
        "issuetype": {"name": issue.issue_type},
        "project": {"key": issue.project},
        "description": issue.description,
    });
    let selected = match fields {
        Some(list) => {
            let mut chosen = serde_json::Map::new();
            for name in list.split(',').map(str::trim) {
                if let Some(value) = all.get(name) {
                    chosen.insert(name.to_owned(), value.clone());
                }
            }
            Value::Object(chosen)
        }
        None => all,
    };
    json!({"id": issue.id, "key": issue.key, "self": site.self_url(&issue.id), "fields": selected})
}

async fn get_issue(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    uri: Uri,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let pairs = query_pairs(uri.query());
    let Some(issue) = site.issue_mut(&key).cloned() else {
        return not_found();
    };
    axum::Json(issue_json(&site, &issue, query_get(&pairs, "fields"))).into_response()
}

/// One JQL condition of the supported subset.
enum Clause {
    Label(String),
    Project(String),
    Category(String),
}

/// Parses `a = "b" AND c = d ORDER BY created ASC|DESC`; returns the clauses and whether the
/// order is descending.
fn parse_jql(jql: &str) -> Result<(Vec<Clause>, bool), String> {
    let (conditions, order) = match jql.to_ascii_lowercase().find(" order by ") {
        Some(at) => (&jql[..at], Some(jql[at + 10..].trim().to_ascii_lowercase())),
        None => (jql, None),
    };
    let descending = match order.as_deref() {
        None | Some("created") | Some("created asc") => false,
        Some("created desc") => true,
        Some(other) => return Err(format!("Not able to sort using field '{other}'.")),
    };
    let mut clauses = Vec::new();
    for part in conditions
        .split(" AND ")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((field, value)) = part.split_once('=') else {
            return Err(format!(
                "Error in the JQL Query: expecting an operator in '{part}'."
            ));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map_or_else(
                || {
                    if value.contains('-') || value.contains(' ') {
                        Err(format!(
                            "Error in the JQL Query: the value '{value}' must be quoted."
                        ))
                    } else {
                        Ok(value.to_owned())
                    }
                },
                |quoted| Ok(quoted.to_owned()),
            )?;
        clauses.push(match field.trim().to_ascii_lowercase().as_str() {
            "labels" => Clause::Label(value),
            "project" => Clause::Project(value),
            "statuscategory" => Clause::Category(value.to_ascii_lowercase()),
            other => {
                return Err(format!(
                    "Field '{other}' does not exist or you do not have permission to view it."
                ));
            }
        });
    }
    Ok((clauses, descending))
}

async fn search(State(site): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let pairs = query_pairs(uri.query());
    let jql = query_get(&pairs, "jql").unwrap_or_default();
    let (clauses, descending) = match parse_jql(jql) {
        Ok(parsed) => parsed,
        Err(message) => return errors(StatusCode::BAD_REQUEST, &[message.as_str()], json!({})),
    };
    let max_results = query_get(&pairs, "maxResults")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .min(5000);
    let mut found: Vec<&SimIssue> = site
        .issues
        .iter()
        .filter(|issue| {
            clauses.iter().all(|clause| match clause {
                Clause::Label(label) => issue.labels.contains(label),
                Clause::Project(project) => issue.project.eq_ignore_ascii_case(project),
                Clause::Category(category) => status(&issue.status).category == category,
            })
        })
        .collect();
    found.sort_by_key(|issue| issue.created_seq);
    if descending {
        found.reverse();
    }
    let fields = query_get(&pairs, "fields").unwrap_or("id");
    let issues: Vec<Value> = found
        .iter()
        .take(max_results)
        .map(|issue| issue_json(&site, issue, Some(fields)))
        .collect();
    let is_last = found.len() <= max_results;
    axum::Json(json!({"issues": issues, "isLast": is_last})).into_response()
}

async fn list_comments(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    uri: Uri,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let Some(issue) = site.issue_mut(&key) else {
        return not_found();
    };
    let pairs = query_pairs(uri.query());
    let max_results = query_get(&pairs, "maxResults")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(5000);
    let mut comments: Vec<Value> = issue
        .comments
        .iter()
        .enumerate()
        .map(|(at, body)| json!({"id": (10_001 + at).to_string(), "body": body}))
        .collect();
    if query_get(&pairs, "orderBy") == Some("-created") {
        comments.reverse();
    }
    let total = comments.len();
    comments.truncate(max_results);
    axum::Json(
        json!({"startAt": 0, "maxResults": max_results, "total": total, "comments": comments}),
    )
    .into_response()
}

async fn add_comment(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let comment = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|request| request.get("body").cloned());
    let Some(comment) = comment.filter(is_adf) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"comment": "Comment body must be an Atlassian Document and can not be empty!"}),
        );
    };
    site.next_comment += 1;
    let id = site.next_comment.to_string();
    let Some(issue) = site.issue_mut(&key) else {
        return not_found();
    };
    issue.comments.push(comment.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "body": comment})),
    )
        .into_response()
}

fn available_transitions(current: &str) -> Vec<Value> {
    TRANSITIONS
        .iter()
        .filter(|(_, _, target)| *target != current)
        .map(|(id, name, target)| {
            json!({
                "id": id,
                "name": name,
                "to": status_json(target),
                "hasScreen": false,
                "isGlobal": true,
                "isInitial": false,
                "isAvailable": true,
                "isConditional": false,
            })
        })
        .collect()
}

async fn list_transitions(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let Some(issue) = site.issue_mut(&key) else {
        return not_found();
    };
    axum::Json(json!({"transitions": available_transitions(&issue.status)})).into_response()
}

async fn do_transition(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Unexpected character in request body."],
            json!({}),
        );
    };
    let Some(issue) = site.issue_mut(&key) else {
        return not_found();
    };
    let Some(id) = request.pointer("/transition/id").and_then(Value::as_str) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Missing 'transition' identifier"],
            json!({}),
        );
    };
    let Some((_, _, target)) = TRANSITIONS
        .iter()
        .find(|(tid, _, target)| *tid == id && *target != issue.status)
    else {
        let message = format!("Transition id '{id}' is not valid for this issue.");
        return errors(StatusCode::BAD_REQUEST, &[message.as_str()], json!({}));
    };
    let comments: Vec<Value> = request
        .pointer("/update/comment")
        .and_then(Value::as_array)
        .map(|ops| {
            ops.iter()
                .filter_map(|op| op.pointer("/add/body").cloned())
                .collect()
        })
        .unwrap_or_default();
    if comments.iter().any(|c| !is_adf(c)) {
        return errors(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"comment": "Comment body must be an Atlassian Document."}),
        );
    }
    issue.status = (*target).to_owned();
    issue.transitions.push(id.to_owned());
    issue.comments.extend(comments);
    StatusCode::NO_CONTENT.into_response()
}

fn jsm_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorMessage": message, "i18nErrorMessage": {"i18nKey": "sd.sim.error", "parameters": []}})),
    )
        .into_response()
}

async fn create_request(State(site): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let Some(config) = site.config.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON.",
        );
    };
    let desk_id = request
        .get("serviceDeskId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(desk) = config.service_desks.iter().find(|desk| desk.id == desk_id) else {
        return jsm_error(
            StatusCode::NOT_FOUND,
            "The service desk does not exist or you do not have permission to access it.",
        );
    };
    let type_id = request
        .get("requestTypeId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !desk.request_type_ids.iter().any(|id| id == type_id) {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The request type does not exist in this service desk.",
        );
    }
    let Some(values) = request.get("requestFieldValues").and_then(Value::as_object) else {
        return jsm_error(StatusCode::BAD_REQUEST, "requestFieldValues is required.");
    };
    if let Some(field) = values
        .keys()
        .find(|field| !matches!(field.as_str(), "summary" | "description" | "labels"))
    {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            &format!("Field '{field}' is not valid for this request type."),
        );
    }
    let summary = values
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if summary.trim().is_empty() {
        return jsm_error(StatusCode::BAD_REQUEST, "Summary is required.");
    }
    let adf = request
        .get("isAdfRequest")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let description = values.get("description").cloned().unwrap_or(Value::Null);
    let description_ok = if adf {
        description.is_null() || is_adf(&description)
    } else {
        description.is_null() || description.is_string()
    };
    if !description_ok {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The description does not match isAdfRequest.",
        );
    }
    let labels = match labels_of(values.get("labels")) {
        Ok(labels) => labels,
        Err(message) => return jsm_error(StatusCode::BAD_REQUEST, message),
    };
    let project = desk.project_key.clone();
    let issue = site.insert(
        &project,
        "Service Request",
        summary,
        description,
        labels,
        Some(request.clone()),
    );
    if !desk.approvers.is_empty() {
        let approval = site.new_approval("Access approval", &desk.approvers);
        if let Some(stored) = site.issue_mut(&issue.key) {
            stored.approvals.push(approval);
        }
    }
    let base = site.base_url.clone();
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "issueId": issue.id,
            "issueKey": issue.key,
            "requestTypeId": type_id,
            "serviceDeskId": desk_id,
            "createdDate": {"iso8601": "2026-01-01T00:00:00+0000", "epochMillis": 1_767_225_600_000_u64},
            "reporter": {"accountId": "sim-account-opal-operator"},
            "requestFieldValues": [
                {"fieldId": "summary", "label": "Summary", "value": summary},
                {"fieldId": "description", "label": "Description", "value": issue.description},
            ],
            "currentStatus": {"status": "Waiting for support", "statusDate": {"iso8601": "2026-01-01T00:00:00+0000"}},
            "_links": {
                "web": format!("{base}/servicedesk/customer/portal/{desk_id}/{}", issue.key),
                "self": format!("{base}/rest/servicedeskapi/request/{}", issue.id),
                "jiraRest": format!("{base}/rest/api/2/issue/{}", issue.id),
            },
        })),
    )
        .into_response()
}

fn request_not_found() -> Response {
    jsm_error(
        StatusCode::NOT_FOUND,
        "The request does not exist or you do not have permission to see it.",
    )
}

async fn list_approvals(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    uri: Uri,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let pairs = query_pairs(uri.query());
    let number = |name: &'static str, default: usize| match query_get(&pairs, name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| name),
    };
    let (start, limit) = match (number("start", 0), number("limit", 50)) {
        (Ok(start), Ok(limit)) => (start, limit.clamp(1, site.approval_page_limit)),
        (Err(name), _) | (_, Err(name)) => {
            return jsm_error(
                StatusCode::BAD_REQUEST,
                &format!("The '{name}' parameter must be a non-negative integer."),
            );
        }
    };
    let caller = site.caller();
    let base = site.base_url.clone();
    let Some(issue) = site.issue_mut(&key).filter(|issue| issue.request.is_some()) else {
        return request_not_found();
    };
    let values: Vec<Value> = issue
        .approvals
        .iter()
        .skip(start)
        .take(limit)
        .map(|approval| approval.to_json(&base, &issue.id, &caller))
        .collect();
    let is_last_page = start.saturating_add(limit) >= issue.approvals.len();
    axum::Json(json!({
        "_expands": [],
        "size": values.len(),
        "start": start,
        "limit": limit,
        "isLastPage": is_last_page,
        "values": values,
        "_links": {
            "base": base,
            "context": "",
            "self": format!("{base}/rest/servicedeskapi/request/{}/approval", issue.id),
        },
    }))
    .into_response()
}

async fn answer_approval(
    State(site): State<Shared>,
    headers: HeaderMap,
    Path((key, approval_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let decision = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|request| {
            request
                .get("decision")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let approve = match decision.as_deref() {
        Some("approve") => true,
        Some("decline") => false,
        _ => {
            return jsm_error(
                StatusCode::BAD_REQUEST,
                "The decision must be 'approve' or 'decline'.",
            );
        }
    };
    let caller = site.caller();
    let base = site.base_url.clone();
    let Some(issue) = site.issue_mut(&key).filter(|issue| issue.request.is_some()) else {
        return request_not_found();
    };
    let issue_id = issue.id.clone();
    let Some(approval) = issue
        .approvals
        .iter_mut()
        .find(|approval| approval.id == approval_id)
    else {
        return jsm_error(
            StatusCode::NOT_FOUND,
            "The approval does not exist or you do not have permission to see it.",
        );
    };
    let Some(at) = approval
        .approvers
        .iter()
        .position(|entry| entry.approver.email.eq_ignore_ascii_case(&caller))
    else {
        return jsm_error(
            StatusCode::FORBIDDEN,
            "You are not an approver of this approval.",
        );
    };
    if approval.final_decision != SimDecision::Pending {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "This approval has already been decided.",
        );
    }
    approval.decide(at, approve);
    axum::Json(approval.to_json(&base, &issue_id, &caller)).into_response()
}
