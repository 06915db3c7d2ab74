//! ServiceNow Table API: create, query, update (work notes) and close records of a task table
//! such as `incident` or `sc_task`; read the approval records (`sysapproval_approver`) of a task
//! such as a requested item (`sc_req_item`), and a user's email. Basic auth; every answer is a
//! `{"result": …}` envelope.
//!
//! Sys_ids that go into an encoded query or a path ([`ServiceNowClient::approvals`],
//! [`ServiceNowClient::user_email`]) are checked to be 32 hexadecimal characters first, so a
//! tampered id such as `x^ORsysapproval!=` never reaches the instance as a query.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::config::{ChannelKind, endpoint};
use super::error::NotifyError;
use super::http::{HttpCaller, HttpResponse};
use crate::secret::{Redactor, Secret};

/// Fields the notifier reads back.
const RECORD_FIELDS: &str = "sys_id,number,state,active";

/// A record as far as the notifier cares. ServiceNow sends every value as a string.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Record {
    pub sys_id: String,
    #[serde(default)]
    pub number: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub active: String,
}

/// Fields of an approval record the client reads.
const APPROVAL_FIELDS: &str = "sys_id,state,approver,sysapproval,sys_updated_on";
/// Approval records asked for per page.
const APPROVAL_PAGE_LIMIT: usize = 100;
/// Pages of approval records `ServiceNowClient::approvals` follows at most.
const APPROVAL_MAX_PAGES: usize = 20;

/// The `state` of a `sysapproval_approver` record. Unknown values are kept, never an error.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalState {
    Requested,
    Approved,
    Rejected,
    Cancelled,
    /// `not_required`: the approval is no longer needed (another approver decided, say).
    NotRequired,
    /// A value this client does not know (a custom choice), as sent.
    Other(String),
}

impl ApprovalState {
    /// The choice value as ServiceNow stores it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::NotRequired => "not_required",
            Self::Other(value) => value,
        }
    }
}

impl From<&str> for ApprovalState {
    fn from(value: &str) -> Self {
        match value {
            "requested" => Self::Requested,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "cancelled" => Self::Cancelled,
            "not_required" => Self::NotRequired,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One approval record of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskApproval {
    /// The approval record's own sys_id.
    pub sys_id: String,
    pub state: ApprovalState,
    /// The `sys_user` asked to decide; `None` when the reference is empty.
    pub approver_sys_id: Option<String>,
    /// `sys_updated_on` as sent: the raw value, `YYYY-MM-DD HH:MM:SS` in UTC.
    pub updated_on: String,
}

#[derive(Deserialize)]
struct ApprovalWire {
    sys_id: String,
    #[serde(default)]
    state: String,
    #[serde(default, deserialize_with = "reference")]
    approver: Option<String>,
    #[serde(default, deserialize_with = "reference")]
    sysapproval: Option<String>,
    #[serde(default)]
    sys_updated_on: String,
}

#[derive(Deserialize)]
struct EmailFields {
    #[serde(default)]
    email: String,
}

/// A reference field: the plain sys_id (links excluded), `{"link", "value"}`, or
/// `{"display_value", "value"}`; empty or null is `None`.
fn reference<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(value)) => value,
        Some(Value::Object(mut object)) => match object.remove("value") {
            Some(Value::String(value)) => value,
            None | Some(Value::Null) => return Ok(None),
            Some(other) => {
                return Err(serde::de::Error::custom(format!(
                    "expected a reference value string, found {other}"
                )));
            }
        },
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a reference (a sys_id or {{\"link\", \"value\"}}), found {other}"
            )));
        }
    };
    Ok(Some(value).filter(|value| !value.is_empty()))
}

/// Whether `sys_id` has ServiceNow's format: 32 hexadecimal characters. Nothing else is put into
/// an encoded query or a path.
fn is_sys_id(sys_id: &str) -> bool {
    sys_id.len() == 32 && sys_id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Deserialize)]
struct One<T> {
    result: T,
}

#[derive(Deserialize)]
struct JournalFields {
    #[serde(default)]
    work_notes: String,
}

/// ServiceNow's error body: `{"error": {"message", "detail"}, "status": "failure"}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<String>,
}

/// Calls one ServiceNow instance.
#[derive(Clone, Debug)]
pub struct ServiceNowClient {
    http: HttpCaller,
    channel: Arc<str>,
    base: String,
    authorization: HeaderValue,
}

impl ServiceNowClient {
    pub fn new(
        client: reqwest::Client,
        channel: &str,
        instance_url: &str,
        username: &str,
        password: &Secret,
    ) -> Result<Self, NotifyError> {
        let base = endpoint(instance_url, "instanceUrl")
            .map_err(|problem| NotifyError::Config(format!("channel {channel:?}: {problem}")))?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        let mut authorization = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| {
            NotifyError::Config(format!(
                "channel {channel:?}: credentials are not a valid header"
            ))
        })?;
        authorization.set_sensitive(true);
        let redactor = Redactor::new().with(password).with(&Secret::new(&basic)?);
        Ok(Self {
            http: HttpCaller::new(client, ChannelKind::ServiceNow, channel, redactor),
            channel: Arc::from(channel),
            base: base.as_str().trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}/api/now/table/{path}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
    }

    fn failure(&self, operation: &'static str, response: &HttpResponse) -> NotifyError {
        let detail = serde_json::from_slice::<ErrorBody>(&response.body)
            .ok()
            .map(|body| match body.error.detail.filter(|d| !d.is_empty()) {
                Some(detail) => format!("{}: {detail}", body.error.message),
                None => body.error.message,
            })
            .filter(|detail| !detail.is_empty())
            .unwrap_or_else(|| self.http.body_text(response));
        self.http.failure(operation, response, &detail)
    }

    /// Refuses, before any request, a sys_id that is not 32 hexadecimal characters: it would be
    /// spliced into an encoded query or a path.
    fn checked_sys_id<'a>(&self, what: &str, sys_id: &'a str) -> Result<&'a str, NotifyError> {
        if is_sys_id(sys_id) {
            return Ok(sys_id);
        }
        let shown: String = sys_id.chars().take(64).collect();
        let cut = if shown.len() < sys_id.len() {
            "…"
        } else {
            ""
        };
        Err(NotifyError::Config(format!(
            "channel {:?}: {what} {shown:?}{cut} is not a ServiceNow sys_id (32 hexadecimal \
             characters); refusing to query with it",
            self.channel
        )))
    }

    /// `POST /api/now/table/{table}` → 201 with the new record.
    pub async fn create(
        &self,
        table: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<Record, NotifyError> {
        const OPERATION: &str = "table.create";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::POST, table)
                    .query(&[
                        ("sysparm_exclude_reference_link", "true"),
                        ("sysparm_fields", RECORD_FIELDS),
                    ])
                    .json(fields),
            )
            .await?;
        if response.status != 201 {
            return Err(self.failure(OPERATION, &response));
        }
        let one: One<Record> = self.http.decode(OPERATION, &response)?;
        Ok(one.result)
    }

    /// `PATCH /api/now/table/{table}/{sys_id}` → 200 with the updated record.
    pub async fn update(
        &self,
        table: &str,
        sys_id: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<Record, NotifyError> {
        const OPERATION: &str = "table.update";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::PATCH, &format!("{table}/{sys_id}"))
                    .query(&[
                        ("sysparm_exclude_reference_link", "true"),
                        ("sysparm_fields", RECORD_FIELDS),
                    ])
                    .json(fields),
            )
            .await?;
        if response.status != 200 {
            return Err(self.failure(OPERATION, &response));
        }
        let one: One<Record> = self.http.decode(OPERATION, &response)?;
        Ok(one.result)
    }

    /// The oldest record whose `correlation_id` is `correlation_id`.
    pub async fn find_by_correlation_id(
        &self,
        table: &str,
        correlation_id: &str,
    ) -> Result<Option<Record>, NotifyError> {
        const OPERATION: &str = "table.query";
        let query = format!("correlation_id={correlation_id}^ORDERBYsys_created_on");
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, table).query(&[
                    ("sysparm_query", query.as_str()),
                    ("sysparm_limit", "1"),
                    ("sysparm_fields", RECORD_FIELDS),
                    ("sysparm_exclude_reference_link", "true"),
                ]),
            )
            .await?;
        // Table API v1 answers an empty result with 404; later versions with 200 and `[]`.
        if response.status == 404 {
            return Ok(None);
        }
        if response.status != 200 {
            return Err(self.failure(OPERATION, &response));
        }
        let list: One<Vec<Record>> = self.http.decode(OPERATION, &response)?;
        Ok(list.result.into_iter().next())
    }

    /// Whether the record's work notes contain `marker`. Journal fields come back as their
    /// entries' text only when display values are asked for.
    pub async fn work_notes_contain(
        &self,
        table: &str,
        sys_id: &str,
        marker: &str,
    ) -> Result<bool, NotifyError> {
        const OPERATION: &str = "table.get";
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, &format!("{table}/{sys_id}"))
                    .query(&[
                        ("sysparm_fields", "work_notes"),
                        ("sysparm_display_value", "true"),
                    ]),
            )
            .await?;
        if response.status != 200 {
            return Err(self.failure(OPERATION, &response));
        }
        let one: One<JournalFields> = self.http.decode(OPERATION, &response)?;
        Ok(one.result.work_notes.contains(marker))
    }

    /// The approval records (`sysapproval_approver`) of the task `task_sys_id` (a requested
    /// item, a catalog task, a change), oldest update first; records updated in the same second
    /// keep the instance's order (creation time, then sys_id). Empty when the task has none.
    ///
    /// Pages of `sysparm_limit` records are read in a stable order (creation time, then sys_id)
    /// and sorted by `sys_updated_on` afterwards: paging in update order could skip a record
    /// decided between two pages, as it would move behind the offset already read. Paging stops
    /// at `X-Total-Count` when the instance sends it (the instance may cap the limit), else at a
    /// page shorter than the limit; a record seen twice (shifted by an insert) is kept once.
    /// Never a partial list: more than 20 pages of 100 is an error, as is a record that names
    /// another task or none (an instance that ignored the query, or hides `sysapproval`).
    pub async fn approvals(&self, task_sys_id: &str) -> Result<Vec<TaskApproval>, NotifyError> {
        const OPERATION: &str = "table.query";
        let task = self.checked_sys_id("task", task_sys_id)?;
        let query = format!("sysapproval={task}^ORDERBYsys_created_on^ORDERBYsys_id");
        let limit = APPROVAL_PAGE_LIMIT.to_string();
        let mut seen = BTreeSet::new();
        let mut approvals = Vec::new();
        let mut offset = 0_usize;
        for _ in 0..APPROVAL_MAX_PAGES {
            let response = self
                .http
                .send(
                    OPERATION,
                    self.request(reqwest::Method::GET, "sysapproval_approver")
                        .query(&[
                            ("sysparm_query", query.as_str()),
                            ("sysparm_fields", APPROVAL_FIELDS),
                            ("sysparm_exclude_reference_link", "true"),
                            ("sysparm_limit", limit.as_str()),
                            ("sysparm_offset", offset.to_string().as_str()),
                        ]),
                )
                .await?;
            // Table API v1 answers an empty result (also an offset past the end) with 404.
            if is_no_record(&response) {
                return Ok(sorted(approvals));
            }
            if response.status != 200 {
                return Err(self.failure(OPERATION, &response));
            }
            let page: One<Vec<ApprovalWire>> = self.http.decode(OPERATION, &response)?;
            let received = page.result.len();
            for wire in page.result {
                if wire.sysapproval.as_deref() != Some(task) {
                    return Err(self.http.decode_error(
                        OPERATION,
                        &format!(
                            "approval record {} belongs to task {:?}, not {task}: the instance \
                             did not apply the query",
                            wire.sys_id,
                            wire.sysapproval.unwrap_or_default()
                        ),
                    ));
                }
                if seen.insert(wire.sys_id.clone()) {
                    approvals.push(TaskApproval {
                        state: ApprovalState::from(wire.state.as_str()),
                        sys_id: wire.sys_id,
                        approver_sys_id: wire.approver,
                        updated_on: wire.sys_updated_on,
                    });
                }
            }
            offset += received;
            let total = response
                .headers
                .get("x-total-count")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<usize>().ok());
            let done = match total {
                Some(total) => offset >= total,
                None => received < APPROVAL_PAGE_LIMIT,
            };
            if done || received == 0 {
                return Ok(sorted(approvals));
            }
        }
        Err(self.http.decode_error(
            OPERATION,
            &format!(
                "the approvals of task {task} span more than {APPROVAL_MAX_PAGES} pages of \
                 {APPROVAL_PAGE_LIMIT}"
            ),
        ))
    }

    /// The `email` of the `sys_user` `user_sys_id`, by `GET /api/now/table/sys_user/{sys_id}`;
    /// `None` when the user does not exist (ServiceNow's 404) or has no email.
    pub async fn user_email(&self, user_sys_id: &str) -> Result<Option<String>, NotifyError> {
        const OPERATION: &str = "table.get";
        let user = self.checked_sys_id("user", user_sys_id)?;
        let response = self
            .http
            .send(
                OPERATION,
                self.request(reqwest::Method::GET, &format!("sys_user/{user}"))
                    .query(&[("sysparm_fields", "email")]),
            )
            .await?;
        if is_no_record(&response) {
            return Ok(None);
        }
        if response.status != 200 {
            return Err(self.failure(OPERATION, &response));
        }
        let one: One<EmailFields> = self.http.decode(OPERATION, &response)?;
        let email = one.result.email.trim();
        Ok((!email.is_empty()).then(|| email.to_owned()))
    }
}

/// ServiceNow's own 404 (`No Record found`, with its error body); a 404 from something else in
/// front of the instance (a wrong `instanceUrl` path, a proxy) stays a failure, not "none".
fn is_no_record(response: &HttpResponse) -> bool {
    response.status == 404 && serde_json::from_slice::<ErrorBody>(&response.body).is_ok()
}

/// Oldest update first; the sort is stable, so same-second records keep the order read.
fn sorted(mut approvals: Vec<TaskApproval>) -> Vec<TaskApproval> {
    approvals.sort_by(|a, b| a.updated_on.cmp(&b.updated_on));
    approvals
}
