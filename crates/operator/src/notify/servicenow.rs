//! ServiceNow Table API: create, query, update (work notes) and close records of a task table
//! such as `incident` or `sc_task`. Basic auth; every answer is a `{"result": …}` envelope.

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;

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
}
