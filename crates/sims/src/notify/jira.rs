//! Jira Cloud (REST v3) and Jira Service Management simulator.
//!
//! * `POST /rest/api/3/issue` (201 `{id, key, self}`; the description must be an ADF document),
//!   `GET /rest/api/3/issue/{key}`;
//! * `GET /rest/api/3/search/jql` with a JQL subset: `labels = "x"`, `project = KEY`,
//!   `statusCategory = done|new|indeterminate`, joined by `AND`, optional `ORDER BY created`;
//! * comments (`GET`/`POST /rest/api/3/issue/{key}/comment`, ADF bodies);
//! * transitions of the workflow To Do → In Progress → Done, plus any
//!   [`JiraSimConfig::extra_statuses`] (`Approved`, `Declined`, ...), each reachable from every
//!   other status by a transition named like it (`GET`/`POST .../transitions`, 204);
//! * the changelog: every transition records a history authored by the API caller
//!   ([`JiraSimConfig::account_id`]), or by one of the site's users through
//!   [`JiraSim::transition_as`]; its items are the `status` change and, into or out of a done
//!   status, a `resolution` change before it. `GET /rest/api/3/issue/{key}?expand=changelog`
//!   embeds the latest histories (all of them up to
//!   [`JiraSim::set_embedded_changelog_limit`], default 100, with `total` counting all), and
//!   `GET /rest/api/3/issue/{key}/changelog?startAt=&maxResults=` pages them oldest first
//!   (default 100, capped by [`JiraSim::set_changelog_page_limit`]) with `isLast`;
//! * users: `GET /rest/api/3/user?accountId=` answers the site's users — the API caller,
//!   [`JiraSimConfig::users`] and the service desks' approvers — and 404 for anyone else. A user
//!   with [`SimUser::hide_email`] appears without `emailAddress`, there and as a changelog author;
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

/// A user of the site, for `GET /rest/api/3/user` and as the author of changelog histories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    /// The user's privacy settings hide their email: `emailAddress` is left out wherever the
    /// user appears.
    pub hide_email: bool,
}

impl SimUser {
    pub fn new(account_id: &str, email: &str, display_name: &str) -> Self {
        Self {
            account_id: account_id.to_owned(),
            email: email.to_owned(),
            display_name: display_name.to_owned(),
            hide_email: false,
        }
    }

    /// The same user, with their email hidden.
    pub fn hiding_email(mut self) -> Self {
        self.hide_email = true;
        self
    }

    fn to_json(&self, base: &str) -> Value {
        let mut user = json!({
            "self": format!("{base}/rest/api/3/user?accountId={}", self.account_id),
            "accountId": self.account_id,
            "accountType": "atlassian",
            "displayName": self.display_name,
            "active": true,
            "timeZone": "Etc/UTC",
        });
        if !self.hide_email {
            user["emailAddress"] = json!(self.email);
        }
        user
    }
}

/// A workflow status beyond To Do, In Progress and Done, reachable from every other status by
/// a global transition named like the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimStatus {
    pub id: String,
    pub name: String,
    /// Its category key: `new`, `indeterminate` or `done`.
    pub category: String,
    /// The id of the transition into it.
    pub transition_id: String,
}

impl SimStatus {
    pub fn new(id: &str, name: &str, category: &str, transition_id: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            category: category.to_owned(),
            transition_id: transition_id.to_owned(),
        }
    }
}

/// Site settings.
#[derive(Clone, Debug)]
pub struct JiraSimConfig {
    pub email: String,
    pub api_token: String,
    /// The API caller's account id: the author of the transitions it makes.
    pub account_id: String,
    pub projects: Vec<String>,
    pub issue_types: Vec<String>,
    pub service_desks: Vec<ServiceDeskSpec>,
    /// Users besides the caller and the desks' approvers (who are users too, with their
    /// email visible). The first entry of an account id wins, and a user listed here stands
    /// for the caller or an approver with the same account id (to hide their email, say).
    pub users: Vec<SimUser>,
    /// Statuses added to the workflow; none by default. Names and transition ids must differ
    /// from the built-in ones and each other, or [`JiraSim::start`] fails.
    pub extra_statuses: Vec<SimStatus>,
}

impl Default for JiraSimConfig {
    fn default() -> Self {
        Self {
            email: "opal-operator@example.com".to_owned(),
            api_token: "sim-jira-api-token".to_owned(),
            account_id: "sim-account-opal-operator".to_owned(),
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
            users: Vec::new(),
            extra_statuses: Vec::new(),
        }
    }
}

/// One changelog history of an issue: a status transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimHistory {
    pub id: String,
    pub author_account_id: String,
    /// `created`, e.g. `2026-12-07T10:00:00.000+0000`.
    pub created: String,
    pub from_status: String,
    pub to_status: String,
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
    /// The changelog, oldest first.
    pub history: Vec<SimHistory>,
    /// The JSM request body, for requests.
    pub request: Option<Value>,
    /// JSM approvals, oldest first (requests only).
    pub approvals: Vec<SimApproval>,
    created_seq: u64,
}

/// The built-in workflow: `(status id, name, category, transition id)`. Every transition is
/// available from every status except its own target, and is named like its target.
const BUILT_IN_STATUSES: &[(&str, &str, &str, &str)] = &[
    ("10000", "To Do", "new", "11"),
    ("3", "In Progress", "indeterminate", "21"),
    ("10001", "Done", "done", "31"),
];

/// The workflow's statuses: the built-in ones, then the configured extra ones.
fn workflow(config: &JiraSimConfig) -> std::io::Result<Vec<SimStatus>> {
    let mut statuses: Vec<SimStatus> = BUILT_IN_STATUSES
        .iter()
        .map(|(id, name, category, transition)| SimStatus::new(id, name, category, transition))
        .collect();
    for extra in &config.extra_statuses {
        let problem = if !matches!(extra.category.as_str(), "new" | "indeterminate" | "done") {
            Some("its category must be new, indeterminate or done")
        } else if extra.name.trim().is_empty()
            || extra.id.is_empty()
            || extra.transition_id.is_empty()
        {
            Some("it needs a name, an id and a transition id")
        } else if statuses
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(&extra.name))
        {
            Some("its name is taken")
        } else if statuses.iter().any(|s| s.id == extra.id) {
            Some("its id is taken")
        } else if statuses
            .iter()
            .any(|s| s.transition_id == extra.transition_id)
        {
            Some("its transition id is taken")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("extra status {extra:?}: {problem}"),
            ));
        }
        statuses.push(extra.clone());
    }
    Ok(statuses)
}

fn category_name(category: &str) -> &'static str {
    match category {
        "done" => "Done",
        "indeterminate" => "In Progress",
        _ => "To Do",
    }
}

#[derive(Debug, Default)]
struct Site {
    config: Option<JiraSimConfig>,
    /// The workflow; the first is the status new issues start in.
    statuses: Vec<SimStatus>,
    issues: Vec<SimIssue>,
    next_id: u64,
    next_number: BTreeMap<String, u64>,
    next_comment: u64,
    next_approval: u64,
    /// Largest `limit` the approvals list honours.
    approval_page_limit: usize,
    /// Histories embedded by `expand=changelog` (the latest ones).
    embedded_changelog_limit: usize,
    /// Largest `maxResults` the changelog list honours.
    changelog_page_limit: usize,
    next_history: u64,
    /// `created` of the latest history, in milliseconds: histories get strictly increasing
    /// times.
    last_history_millis: Option<i64>,
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
    /// Starts the site; fails when [`JiraSimConfig::extra_statuses`] clash.
    pub async fn start(config: JiraSimConfig) -> std::io::Result<Self> {
        let site = Arc::new(Mutex::new(Site {
            statuses: workflow(&config)?,
            config: Some(config),
            next_id: 10_000,
            next_comment: 10_000,
            approval_page_limit: 100,
            embedded_changelog_limit: 100,
            changelog_page_limit: 100,
            next_history: 20_000,
            ..Site::default()
        }));
        let router = Router::new()
            .route("/rest/api/3/issue", post(create_issue))
            .route("/rest/api/3/issue/{key}", get(get_issue))
            .route("/rest/api/3/issue/{key}/changelog", get(list_changelog))
            .route("/rest/api/3/user", get(get_user))
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

    /// Moves issue `key` (a key or an id) to the status `status_name` (case-insensitive) as
    /// the site's user `account_id`, recording a changelog history they authored. False when
    /// the issue, the user or the status does not exist, or the issue is already in it.
    pub fn transition_as(&self, key: &str, account_id: &str, status_name: &str) -> bool {
        let mut site = state(&self.site);
        if site.user(account_id).is_none() {
            return false;
        }
        let Some(target) = site
            .statuses
            .iter()
            .find(|status| status.name.eq_ignore_ascii_case(status_name))
            .cloned()
        else {
            return false;
        };
        match site.issue_mut(key) {
            Some(issue) if issue.status != target.name => {}
            _ => return false,
        }
        site.move_issue(key, account_id, &target);
        true
    }

    /// How many of the latest histories `expand=changelog` embeds (Jira embeds about 100);
    /// `total` still counts all of them.
    pub fn set_embedded_changelog_limit(&self, limit: usize) {
        state(&self.site).embedded_changelog_limit = limit;
    }

    /// Caps the page size of `GET .../changelog`; at least 1.
    pub fn set_changelog_page_limit(&self, limit: usize) {
        state(&self.site).changelog_page_limit = limit.max(1);
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

    /// The status named `name`, or the initial one.
    fn status(&self, name: &str) -> Option<&SimStatus> {
        self.statuses
            .iter()
            .find(|s| s.name == name)
            .or_else(|| self.statuses.first())
    }

    fn status_json(&self, name: &str) -> Value {
        match self.status(name) {
            Some(status) => json!({
                "id": status.id,
                "name": status.name,
                "statusCategory": {
                    "key": status.category,
                    "name": category_name(&status.category),
                },
            }),
            None => json!({"name": name}),
        }
    }

    fn is_done(&self, name: &str) -> bool {
        self.status(name)
            .is_some_and(|status| status.category == "done")
    }

    /// The site's user `account_id`: a configured user, the API caller, or a desk's approver,
    /// in that order.
    fn user(&self, account_id: &str) -> Option<SimUser> {
        let config = self.config.as_ref()?;
        if let Some(user) = config
            .users
            .iter()
            .find(|user| user.account_id == account_id)
        {
            return Some(user.clone());
        }
        if config.account_id == account_id {
            return Some(SimUser::new(
                &config.account_id,
                &config.email,
                "Opal Operator",
            ));
        }
        config
            .service_desks
            .iter()
            .flat_map(|desk| &desk.approvers)
            .find(|approver| approver.account_id == account_id)
            .map(|approver| {
                SimUser::new(
                    &approver.account_id,
                    &approver.email,
                    &approver.display_name,
                )
            })
    }

    /// Moves issue `key` to `target` as `author`, recording the changelog history.
    fn move_issue(&mut self, key: &str, author: &str, target: &SimStatus) {
        // Whole milliseconds, as Jira sends them, strictly increasing.
        let now = chrono::Utc::now().timestamp_millis();
        let millis = self
            .last_history_millis
            .map_or(now, |last| now.max(last + 1));
        self.last_history_millis = Some(millis);
        let at = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_else(chrono::Utc::now);
        self.next_history += 1;
        let id = self.next_history.to_string();
        let Some(issue) = self.issue_mut(key) else {
            return;
        };
        issue.history.push(SimHistory {
            id,
            author_account_id: author.to_owned(),
            created: at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
            from_status: issue.status.clone(),
            to_status: target.name.clone(),
        });
        issue.status = target.name.clone();
        issue.transitions.push(target.transition_id.clone());
    }

    fn history_json(&self, history: &SimHistory) -> Value {
        let mut items = Vec::new();
        let (was_done, is_done) = (
            self.is_done(&history.from_status),
            self.is_done(&history.to_status),
        );
        if is_done && !was_done {
            items.push(json!({
                "field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                "from": null, "fromString": null, "to": "10000", "toString": "Done",
            }));
        } else if was_done && !is_done {
            items.push(json!({
                "field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                "from": "10000", "fromString": "Done", "to": null, "toString": null,
            }));
        }
        let status_id = |name: &str| self.status(name).map(|status| status.id.clone());
        items.push(json!({
            "field": "status", "fieldtype": "jira", "fieldId": "status",
            "from": status_id(&history.from_status), "fromString": history.from_status,
            "to": status_id(&history.to_status), "toString": history.to_status,
        }));
        let mut entry = json!({"id": history.id, "created": history.created, "items": items});
        if let Some(author) = self.user(&history.author_account_id) {
            entry["author"] = author.to_json(&self.base_url);
        }
        entry
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
        let status = self
            .statuses
            .first()
            .map_or_else(|| "To Do".to_owned(), |status| status.name.clone());
        let issue = SimIssue {
            id: self.next_id.to_string(),
            key: format!("{project}-{number}"),
            project: project.to_owned(),
            issue_type: issue_type.to_owned(),
            summary: summary.to_owned(),
            description,
            labels,
            status,
            comments: Vec::new(),
            transitions: Vec::new(),
            history: Vec::new(),
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
        "status": site.status_json(&issue.status),
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
    let mut answer = issue_json(&site, &issue, query_get(&pairs, "fields"));
    let expand = query_get(&pairs, "expand").unwrap_or_default();
    if expand.split(',').any(|part| part.trim() == "changelog") {
        let total = issue.history.len();
        let shown = total.min(site.embedded_changelog_limit);
        let histories: Vec<Value> = issue.history[total - shown..]
            .iter()
            .map(|history| site.history_json(history))
            .collect();
        answer["changelog"] = json!({
            "startAt": total - shown,
            "maxResults": shown,
            "total": total,
            "histories": histories,
        });
    }
    axum::Json(answer).into_response()
}

async fn list_changelog(
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
    let (start, limit) = match (number("startAt", 0), number("maxResults", 100)) {
        (Ok(start), Ok(limit)) => (start, limit.clamp(1, site.changelog_page_limit)),
        (Err(name), _) | (_, Err(name)) => {
            let message = format!("The '{name}' parameter must be a non-negative integer.");
            return errors(StatusCode::BAD_REQUEST, &[message.as_str()], json!({}));
        }
    };
    let Some(issue) = site.issue_mut(&key).cloned() else {
        return not_found();
    };
    let values: Vec<Value> = issue
        .history
        .iter()
        .skip(start)
        .take(limit)
        .map(|history| site.history_json(history))
        .collect();
    let total = issue.history.len();
    let is_last = start.saturating_add(values.len()) >= total;
    axum::Json(json!({
        "self": format!(
            "{}/changelog?startAt={start}&maxResults={limit}",
            site.self_url(&issue.id)
        ),
        "maxResults": limit,
        "startAt": start,
        "total": total,
        "isLast": is_last,
        "values": values,
    }))
    .into_response()
}

async fn get_user(State(site): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let site = state(&site);
    if let Some(response) = site.refusal(&headers) {
        return response;
    }
    let pairs = query_pairs(uri.query());
    let Some(account_id) = query_get(&pairs, "accountId").filter(|id| !id.is_empty()) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["The query parameter 'accountId' is required."],
            json!({}),
        );
    };
    match site.user(account_id) {
        Some(user) => axum::Json(user.to_json(&site.base_url)).into_response(),
        None => errors(
            StatusCode::NOT_FOUND,
            &["Specified user does not exist or you do not have required permissions"],
            json!({}),
        ),
    }
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
                Clause::Category(category) => site
                    .status(&issue.status)
                    .is_some_and(|status| status.category == *category),
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

fn available_transitions(site: &Site, current: &str) -> Vec<Value> {
    site.statuses
        .iter()
        .filter(|target| target.name != current)
        .map(|target| {
            json!({
                "id": target.transition_id,
                "name": target.name,
                "to": site.status_json(&target.name),
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
    let Some(current) = site.issue_mut(&key).map(|issue| issue.status.clone()) else {
        return not_found();
    };
    axum::Json(json!({"transitions": available_transitions(&site, &current)})).into_response()
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
    let Some(current) = site.issue_mut(&key).map(|issue| issue.status.clone()) else {
        return not_found();
    };
    let Some(id) = request.pointer("/transition/id").and_then(Value::as_str) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Missing 'transition' identifier"],
            json!({}),
        );
    };
    let Some(target) = site
        .statuses
        .iter()
        .find(|target| target.transition_id == id && target.name != current)
        .cloned()
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
    let caller = site
        .config
        .as_ref()
        .map(|config| config.account_id.clone())
        .unwrap_or_default();
    site.move_issue(&key, &caller, &target);
    if let Some(issue) = site.issue_mut(&key) {
        issue.comments.extend(comments);
    }
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn config() -> JiraSimConfig {
        JiraSimConfig {
            users: vec![
                SimUser::new("acc-ann", "ann.lee@example.com", "Ann Lee"),
                SimUser::new("acc-hid", "hidden@example.com", "Hidden Hal").hiding_email(),
            ],
            extra_statuses: vec![
                SimStatus::new("10100", "Approved", "done", "41"),
                SimStatus::new("10101", "Declined", "done", "51"),
            ],
            ..JiraSimConfig::default()
        }
    }

    fn headers() -> HeaderMap {
        let defaults = JiraSimConfig::default();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", defaults.email, defaults.api_token));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).expect("header"),
        );
        headers
    }

    fn uri(text: &str) -> Uri {
        text.parse().expect("uri")
    }

    async fn json_of(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).expect("json body"))
    }

    /// A new issue in SEC; its key.
    fn open(sim: &JiraSim) -> String {
        state(&sim.site)
            .insert("SEC", "Task", "access", Value::Null, Vec::new(), None)
            .key
    }

    async fn transitions(sim: &JiraSim, key: &str) -> Vec<(String, String)> {
        let response = list_transitions(
            State(Arc::clone(&sim.site)),
            headers(),
            Path(key.to_owned()),
        )
        .await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["transitions"]
            .as_array()
            .expect("transitions")
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap_or_default().to_owned(),
                    t["to"]["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    async fn issue_with_changelog(sim: &JiraSim, key: &str) -> Value {
        let response = get_issue(
            State(Arc::clone(&sim.site)),
            headers(),
            Path(key.to_owned()),
            uri(&format!(
                "/rest/api/3/issue/{key}?fields=status&expand=changelog"
            )),
        )
        .await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn changelog_page(sim: &JiraSim, key: &str, query: &str) -> (StatusCode, Value) {
        let response = list_changelog(
            State(Arc::clone(&sim.site)),
            headers(),
            Path(key.to_owned()),
            uri(&format!("/rest/api/3/issue/{key}/changelog?{query}")),
        )
        .await;
        json_of(response).await
    }

    async fn user(sim: &JiraSim, query: &str, headers: HeaderMap) -> (StatusCode, Value) {
        let response = get_user(
            State(Arc::clone(&sim.site)),
            headers,
            uri(&format!("/rest/api/3/user?{query}")),
        )
        .await;
        json_of(response).await
    }

    fn status_targets(histories: &Value) -> Vec<(String, String)> {
        histories
            .as_array()
            .expect("histories")
            .iter()
            .map(|history| {
                let status = history["items"]
                    .as_array()
                    .and_then(|items| items.iter().find(|item| item["fieldId"] == "status"))
                    .expect("a status item");
                (
                    history["author"]["accountId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    status["toString"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn jira_the_default_workflow_is_unchanged() {
        let sim = JiraSim::start(JiraSimConfig::default()).await.expect("sim");
        let key = open(&sim);
        assert_eq!(
            transitions(&sim, &key).await,
            [
                ("21".to_owned(), "In Progress".to_owned()),
                ("31".to_owned(), "Done".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn jira_extra_statuses_join_the_workflow_and_transitions_are_logged() {
        let sim = JiraSim::start(config()).await.expect("sim");
        let key = open(&sim);
        let ids: Vec<String> = transitions(&sim, &key)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["21", "31", "41", "51"]);

        let response = do_transition(
            State(Arc::clone(&sim.site)),
            headers(),
            Path(key.clone()),
            Bytes::from(json!({"transition": {"id": "41"}}).to_string()),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let issue = issue_with_changelog(&sim, &key).await;
        assert_eq!(issue["fields"]["status"]["name"], "Approved");
        assert_eq!(issue["fields"]["status"]["statusCategory"]["key"], "done");
        let history = &issue["changelog"]["histories"][0];
        assert_eq!(
            history["author"]["accountId"],
            JiraSimConfig::default().account_id
        );
        assert_eq!(
            history["author"]["emailAddress"],
            JiraSimConfig::default().email
        );
        // Into a done status: the resolution is set first, then the status changes.
        assert_eq!(history["items"][0]["fieldId"], "resolution");
        assert_eq!(
            history["items"][1],
            json!({"field": "status", "fieldtype": "jira", "fieldId": "status",
                   "from": "10000", "fromString": "To Do", "to": "10100", "toString": "Approved"})
        );
        assert!(
            chrono::DateTime::parse_from_str(
                history["created"].as_str().expect("created"),
                "%Y-%m-%dT%H:%M:%S%.3f%z"
            )
            .is_ok(),
            "{history}"
        );
        // Not into its own status again.
        assert!(
            !transitions(&sim, &key)
                .await
                .iter()
                .any(|(id, _)| id == "41")
        );
        assert_eq!(sim.issues()[0].transitions, ["41"]);
    }

    #[tokio::test]
    async fn jira_clashing_extra_statuses_refuse_to_start() {
        for extra in [
            SimStatus::new("10100", "done", "done", "41"),
            SimStatus::new("3", "Approved", "done", "41"),
            SimStatus::new("10100", "Approved", "done", "31"),
            SimStatus::new("10100", "Approved", "finished", "41"),
            SimStatus::new("10100", " ", "done", "41"),
        ] {
            let started = JiraSim::start(JiraSimConfig {
                extra_statuses: vec![extra.clone()],
                ..JiraSimConfig::default()
            })
            .await;
            let err = started.expect_err("clash");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{extra:?}");
        }
    }

    #[tokio::test]
    async fn jira_transition_as_moves_as_a_site_user_only() {
        let sim = JiraSim::start(config()).await.expect("sim");
        let key = open(&sim);
        assert!(!sim.transition_as(&key, "acc-nobody", "Approved"));
        assert!(!sim.transition_as(&key, "acc-ann", "Shipped"));
        assert!(!sim.transition_as("SEC-99", "acc-ann", "Approved"));
        assert!(!sim.transition_as(&key, "acc-ann", "To Do"));
        assert!(sim.issues()[0].history.is_empty());

        assert!(sim.transition_as(&key, "acc-ann", "approved"));
        // A desk's approver is a site user too.
        assert!(sim.transition_as(&key, "acc-olivia", "To Do"));
        let history = &sim.issues()[0].history;
        assert_eq!(
            history
                .iter()
                .map(|h| (
                    h.author_account_id.as_str(),
                    h.from_status.as_str(),
                    h.to_status.as_str()
                ))
                .collect::<Vec<_>>(),
            [
                ("acc-ann", "To Do", "Approved"),
                ("acc-olivia", "Approved", "To Do")
            ]
        );
        assert!(history[0].created < history[1].created, "{history:?}");
        // Out of a done status: the resolution is cleared.
        let issue = issue_with_changelog(&sim, &key).await;
        assert_eq!(
            issue["changelog"]["histories"][1]["items"][0]["fieldId"],
            "resolution"
        );
        assert_eq!(
            issue["changelog"]["histories"][1]["items"][0]["to"],
            Value::Null
        );
    }

    #[tokio::test]
    async fn jira_the_embedded_changelog_keeps_the_latest_histories() {
        let sim = JiraSim::start(config()).await.expect("sim");
        let key = open(&sim);
        assert!(sim.transition_as(&key, "acc-ann", "Approved"));
        assert!(sim.transition_as(&key, "acc-hid", "To Do"));
        assert!(sim.transition_as(&key, "acc-olivia", "Declined"));

        let full = issue_with_changelog(&sim, &key).await;
        assert_eq!(full["changelog"]["total"], 3);
        assert_eq!(full["changelog"]["startAt"], 0);
        sim.set_embedded_changelog_limit(2);
        let cut = issue_with_changelog(&sim, &key).await;
        assert_eq!(cut["changelog"]["total"], 3);
        assert_eq!(cut["changelog"]["startAt"], 1);
        assert_eq!(
            status_targets(&cut["changelog"]["histories"]),
            [
                ("acc-hid".to_owned(), "To Do".to_owned()),
                ("acc-olivia".to_owned(), "Declined".to_owned()),
            ]
        );
        // A hidden email stays hidden in the changelog.
        let hidden = &cut["changelog"]["histories"][0]["author"];
        assert_eq!(hidden["displayName"], "Hidden Hal");
        assert!(hidden.get("emailAddress").is_none(), "{hidden}");
        // Without expand, no changelog.
        let response = get_issue(
            State(Arc::clone(&sim.site)),
            headers(),
            Path(key.clone()),
            uri(&format!("/rest/api/3/issue/{key}?fields=status")),
        )
        .await;
        assert!(json_of(response).await.1.get("changelog").is_none());
    }

    #[tokio::test]
    async fn jira_the_changelog_pages_oldest_first() {
        let sim = JiraSim::start(config()).await.expect("sim");
        let key = open(&sim);
        assert!(sim.transition_as(&key, "acc-ann", "Approved"));
        assert!(sim.transition_as(&key, "acc-hid", "To Do"));
        assert!(sim.transition_as(&key, "acc-olivia", "Declined"));
        sim.set_changelog_page_limit(2);

        let (status, first) = changelog_page(&sim, &key, "startAt=0&maxResults=100").await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(
            (
                &first["startAt"],
                &first["maxResults"],
                &first["total"],
                &first["isLast"]
            ),
            (&json!(0), &json!(2), &json!(3), &json!(false))
        );
        assert_eq!(
            status_targets(&first["values"]),
            [
                ("acc-ann".to_owned(), "Approved".to_owned()),
                ("acc-hid".to_owned(), "To Do".to_owned()),
            ]
        );
        let (_, second) = changelog_page(&sim, &key, "startAt=2&maxResults=100").await;
        assert_eq!(second["isLast"], true);
        assert_eq!(
            status_targets(&second["values"]),
            [("acc-olivia".to_owned(), "Declined".to_owned())]
        );
        let (status, bad) = changelog_page(&sim, &key, "startAt=-1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let (status, _) = changelog_page(&sim, "SEC-99", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn jira_users_are_looked_up_by_account_id() {
        let sim = JiraSim::start(config()).await.expect("sim");
        let (status, ann) = user(&sim, "accountId=acc-ann", headers()).await;
        assert_eq!(status, StatusCode::OK, "{ann}");
        assert_eq!(ann["emailAddress"], "ann.lee@example.com");
        assert_eq!(ann["displayName"], "Ann Lee");
        let (_, hidden) = user(&sim, "accountId=acc-hid", headers()).await;
        assert_eq!(hidden["accountId"], "acc-hid");
        assert!(hidden.get("emailAddress").is_none(), "{hidden}");
        let (_, approver) = user(&sim, "accountId=acc-marcus", headers()).await;
        assert_eq!(approver["emailAddress"], "marcus.webb@example.com");
        let (_, caller) = user(&sim, "accountId=sim-account-opal-operator", headers()).await;
        assert_eq!(caller["emailAddress"], JiraSimConfig::default().email);

        let (status, unknown) = user(&sim, "accountId=acc-nobody", headers()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(unknown["errorMessages"][0].is_string(), "{unknown}");
        let (status, _) = user(&sim, "", headers()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = user(&sim, "accountId=acc-ann", HeaderMap::new()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
