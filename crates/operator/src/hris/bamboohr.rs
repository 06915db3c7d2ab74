//! BambooHR: a custom report (active and inactive employees) or the directory (active only) for
//! snapshots, `GET /employees/{id}` for one employee, and `GET /employees/changed` for
//! incremental refreshes. Authentication is HTTP Basic with the API key as the user name.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Serialize;
use std::collections::BTreeMap;
use url::Url;

use super::columns::{ColumnPreset, Columns, employee_from_record, json_record};
use super::config::{BambooHrConfig, BambooHrSnapshotMode, InvalidRowPolicy};
use super::error::{HrisError, RowProblem, SourceKind};
use super::http::HttpFetcher;
use super::snapshot::{ChangeAction, ChangeFeed, EmployeeChange, HrSnapshot, RosterBuilder};
use crate::engine::Employee;
use crate::secret::Secret;

const SYSTEM: SourceKind = SourceKind::BambooHr;

/// Reads one BambooHR company.
#[derive(Debug)]
pub struct BambooHrSource {
    http: HttpFetcher,
    api_key: Secret,
    api_root: Url,
    mode: BambooHrSnapshotMode,
    columns: Columns,
    fields: Vec<String>,
    policy: InvalidRowPolicy,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomReportRequest<'a> {
    title: &'a str,
    fields: &'a [String],
    filter_duplicates: &'a str,
}

impl BambooHrSource {
    /// Builds the source from configuration, reading the referenced API key.
    pub fn from_config(config: &BambooHrConfig) -> Result<Self, HrisError> {
        Self::new(config, config.api_key.resolve()?)
    }

    /// Builds the source with the API key at hand (the reference in `config` is not read).
    pub fn new(config: &BambooHrConfig, api_key: Secret) -> Result<Self, HrisError> {
        config.validate("bambooHr")?;
        let root = match &config.base_url {
            Some(base_url) => base_url.clone(),
            None => format!(
                "https://{}.bamboohr.com/api/v1",
                config.company_domain.trim()
            ),
        };
        let api_root = Url::parse(&root)
            .map_err(|err| HrisError::Config(format!("BambooHR API root {root:?}: {err}")))?;
        if api_root.cannot_be_a_base() {
            return Err(HrisError::Config(format!(
                "BambooHR API root {root:?} cannot take a path"
            )));
        }
        let columns = Columns::resolve(&config.fields, ColumnPreset::BambooHr);
        let fields = columns.names();
        Ok(Self {
            http: HttpFetcher::new(SYSTEM, &config.http, vec![api_key.clone()])?,
            api_key,
            api_root,
            mode: config.snapshot,
            columns,
            fields,
            policy: config.invalid_rows,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api_root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, url.clone())
            .basic_auth(self.api_key.expose(), Some("x"))
            .header(ACCEPT, "application/json")
    }

    /// Everyone: the custom report (active and inactive) or the directory (active only).
    pub async fn snapshot(&self) -> Result<HrSnapshot, HrisError> {
        let fetched_at = Utc::now();
        let (operation, body) = match self.mode {
            BambooHrSnapshotMode::CustomReport => {
                let mut url = self.url(&["reports", "custom"]);
                url.query_pairs_mut()
                    .append_pair("format", "json")
                    .append_pair("onlyCurrent", "true");
                let body = serde_json::to_vec(&CustomReportRequest {
                    title: "opal-operator roster",
                    fields: &self.fields,
                    filter_duplicates: "yes",
                })
                .map_err(|err| HrisError::Config(format!("cannot encode report request: {err}")))?;
                let fetched = self
                    .http
                    .send("reports.custom", || {
                        // BambooHR reads the body as XML unless the type is exactly this.
                        self.request(reqwest::Method::POST, &url)
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone())
                    })
                    .await?;
                ("reports.custom", fetched.body)
            }
            BambooHrSnapshotMode::Directory => {
                let url = self.url(&["employees", "directory"]);
                let fetched = self
                    .http
                    .send("employees.directory", || {
                        self.request(reqwest::Method::GET, &url)
                    })
                    .await?;
                ("employees.directory", fetched.body)
            }
        };
        let rows = decode_employees(operation, &body)?;
        let today = fetched_at.date_naive();
        let mut roster = RosterBuilder::new(SYSTEM, self.policy);
        for (index, row) in rows.into_iter().enumerate() {
            let location = format!("employees[{index}]");
            let record = match row {
                Some(values) => employee_from_record(&values, &self.columns, &location, today),
                None => Err(RowProblem {
                    location: location.clone(),
                    employee_id: None,
                    field: None,
                    problem: "employee entry is not an object".into(),
                }),
            };
            roster.push(location, record)?;
        }
        roster.finish(fetched_at)
    }

    /// One employee with every mapped field; `None` when BambooHR answers 404.
    pub async fn employee(&self, id: &str) -> Result<Option<Employee>, HrisError> {
        let id = id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        let mut url = self.url(&["employees", id]);
        url.query_pairs_mut()
            .append_pair("fields", &self.fields.join(","))
            .append_pair("onlyCurrent", "false");
        let fetched = match self
            .http
            .send("employees.get", || self.request(reqwest::Method::GET, &url))
            .await
        {
            Ok(fetched) => fetched,
            Err(error) if error.status() == Some(404) => return Ok(None),
            Err(error) => return Err(error),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&fetched.body).map_err(|err| HrisError::Malformed {
                system: SYSTEM,
                operation: "employees.get",
                message: format!("response is not JSON: {err}"),
            })?;
        let Some(object) = value.as_object() else {
            return Err(HrisError::Malformed {
                system: SYSTEM,
                operation: "employees.get",
                message: "response is not a JSON object".into(),
            });
        };
        let mut values = json_record(object);
        // The answer names the employee by the path's ID even when the field list omits `id`.
        values
            .entry(self.columns.id.clone())
            .or_insert_with(|| id.to_owned());
        employee_from_record(
            &values,
            &self.columns,
            &format!("employee {id}"),
            Utc::now().date_naive(),
        )
        .map(Some)
        .map_err(|problem| HrisError::InvalidRow {
            system: SYSTEM,
            problem,
        })
    }

    /// Employees inserted, updated or deleted since `since`. Pass the answer's `latest` as the
    /// next `since`.
    pub async fn changed_since(&self, since: DateTime<Utc>) -> Result<ChangeFeed, HrisError> {
        let mut url = self.url(&["employees", "changed"]);
        url.query_pairs_mut()
            .append_pair("since", &since.to_rfc3339_opts(SecondsFormat::Secs, false))
            .append_pair("type", "all");
        let fetched = self
            .http
            .send("employees.changed", || {
                self.request(reqwest::Method::GET, &url)
            })
            .await?;
        decode_changes(&fetched.body)
    }
}

/// The `employees` array of a custom report or directory answer; `None` for entries that are not
/// objects.
fn decode_employees(
    operation: &'static str,
    body: &[u8],
) -> Result<Vec<Option<BTreeMap<String, String>>>, HrisError> {
    let malformed = |message: String| HrisError::Malformed {
        system: SYSTEM,
        operation,
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| malformed(format!("response is not JSON: {err}")))?;
    match value.get("employees") {
        Some(serde_json::Value::Array(employees)) => Ok(employees
            .iter()
            .map(|entry| entry.as_object().map(json_record))
            .collect()),
        _ => Err(malformed("response has no `employees` array".into())),
    }
}

fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Decodes `{"latest": ts, "employees": {"<id>": {"id", "action", "lastChanged"}}}`.
fn decode_changes(body: &[u8]) -> Result<ChangeFeed, HrisError> {
    let malformed = |message: String| HrisError::Malformed {
        system: SYSTEM,
        operation: "employees.changed",
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| malformed(format!("response is not JSON: {err}")))?;
    let latest_text = value
        .get("latest")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| malformed("response has no `latest` timestamp".into()))?;
    let latest = parse_timestamp(latest_text)
        .ok_or_else(|| malformed(format!("`latest` is not a timestamp: {latest_text:?}")))?;
    let entries = match value.get("employees") {
        Some(serde_json::Value::Object(entries)) => entries.iter().collect::<Vec<_>>(),
        // Some answers with no changes carry an empty array rather than an object.
        Some(serde_json::Value::Array(entries)) if entries.is_empty() => Vec::new(),
        _ => return Err(malformed("response has no `employees` object".into())),
    };
    let mut changes = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
        let employee_id = match entry.get("id") {
            Some(serde_json::Value::String(id)) => id.trim().to_owned(),
            Some(serde_json::Value::Number(id)) => id.to_string(),
            _ => key.trim().to_owned(),
        };
        if employee_id.is_empty() {
            return Err(malformed(format!(
                "change entry {key:?} has no employee ID"
            )));
        }
        let action = field("action")
            .map(ChangeAction::parse)
            .ok_or_else(|| malformed(format!("change entry {key:?} has no `action`")))?;
        changes.push(EmployeeChange {
            employee_id,
            action,
            changed_at: field("lastChanged").and_then(parse_timestamp),
            changed_fields: Vec::new(),
        });
    }
    changes.sort_by(|a, b| a.employee_id.cmp(&b.employee_id));
    Ok(ChangeFeed { latest, changes })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn change_feed_decodes_the_map_keyed_by_id() {
        let feed = decode_changes(
            br#"{"latest": "2026-05-01T10:00:00+00:00", "employees": {
                "12": {"id": "12", "action": "Updated", "lastChanged": "2026-05-01T09:59:00+00:00"},
                "4": {"id": "4", "action": "Inserted", "lastChanged": "2026-04-30T08:00:00Z"},
                "9": {"action": "Deleted"}
            }}"#,
        )
        .expect("feed");
        assert_eq!(feed.latest.to_rfc3339(), "2026-05-01T10:00:00+00:00");
        let summary: Vec<_> = feed
            .changes
            .iter()
            .map(|change| (change.employee_id.as_str(), change.action.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("12", ChangeAction::Updated),
                ("4", ChangeAction::Created),
                ("9", ChangeAction::Deleted)
            ]
        );
        assert!(feed.changes[0].changed_at.is_some());
        assert!(feed.changes[2].changed_at.is_none());
        let empty = decode_changes(br#"{"latest": "2026-05-01T10:00:00Z", "employees": []}"#)
            .expect("no changes");
        assert!(empty.changes.is_empty());
    }

    #[test]
    fn change_feed_without_latest_or_actions_is_malformed() {
        for body in [
            &br#"{"employees": {}}"#[..],
            br#"{"latest": "yesterday", "employees": {}}"#,
            br#"{"latest": "2026-05-01T10:00:00Z", "employees": {"1": {"id": "1"}}}"#,
            br#"{"latest": "2026-05-01T10:00:00Z"}"#,
            b"<xml/>",
        ] {
            assert_eq!(
                decode_changes(body).expect_err("malformed").label(),
                "malformed"
            );
        }
    }

    #[test]
    fn report_rows_keep_non_objects_for_the_roster_to_judge() {
        let rows = decode_employees(
            "reports.custom",
            br#"{"title": "t", "fields": [], "employees": [{"id": "1", "workEmail": null, "x": 3}, "oops"]}"#,
        )
        .expect("rows");
        assert_eq!(rows.len(), 2);
        let first = rows[0].as_ref().expect("object");
        assert_eq!(first.get("id").map(String::as_str), Some("1"));
        assert!(!first.contains_key("workEmail"));
        assert_eq!(first.get("x").map(String::as_str), Some("3"));
        assert!(rows[1].is_none());
        assert!(decode_employees("reports.custom", br#"{"employees": {}}"#).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_employees("fuzz", &body);
            let _ = decode_changes(&body);
        }

        #[test]
        fn decoders_never_panic_on_json_shaped_text(body in "[\\[\\]{}\":,a-zA-Z0-9 _+-]{0,200}") {
            let _ = decode_employees("fuzz", format!("{{\"employees\": [{body}]}}").as_bytes());
            let _ = decode_changes(format!("{{\"latest\": \"2026-01-01T00:00:00Z\", \"employees\": {{{body}}}}}").as_bytes());
        }
    }
}
