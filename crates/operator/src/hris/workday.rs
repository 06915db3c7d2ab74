//! Workday: staffing REST `workers` (listed twice — with `includeTerminatedWorkers=true` for
//! everyone, and without it to learn who is still employed, since a v6 worker carries no status)
//! merged with an optional RaaS JSON report for what REST lacks: start and termination dates,
//! manager, cost center and any further column.
//!
//! Merge rules: the REST listing is the roster. A report value, when present, overrides the REST
//! value of the same field. A worker absent from the default listing is terminated; otherwise
//! the report's status column (if mapped) may say on leave or terminated. A report row whose
//! employee ID no worker has is an invalid record.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{NaiveDate, Utc};
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::columns::{ColumnPreset, Columns, employee_from_record, json_record, split_full_name};
use super::config::{InvalidRowPolicy, WorkdayConfig};
use super::error::{HrisError, RowProblem, SourceKind};
use super::http::{Fetched, HttpFetcher};
use super::snapshot::{HrSnapshot, RosterBuilder};
use crate::engine::{Employee, EmploymentStatus};
use crate::secret::Secret;

const SYSTEM: SourceKind = SourceKind::Workday;

/// OAuth client credentials of the Workday API client, and the ISU's refresh token.
#[derive(Clone, Debug)]
pub struct WorkdayCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
}

/// Reads workers and the report from one Workday tenant.
#[derive(Debug)]
pub struct WorkdaySource {
    http: HttpFetcher,
    credentials: WorkdayCredentials,
    workers_url: Url,
    token_url: Url,
    /// Boxed: most of the source's size, and absent when no report is configured.
    report: Option<Box<Report>>,
    page_size: u32,
    max_employees: u64,
    policy: InvalidRowPolicy,
    /// The current access token; replaced when Workday answers 401.
    access_token: Mutex<Option<Secret>>,
}

#[derive(Debug)]
struct Report {
    url: Url,
    columns: Columns,
    employee_prompt: Option<String>,
}

/// One worker of the staffing v6 API; every field but `id` may be missing.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
struct Worker {
    id: String,
    #[serde(default)]
    descriptor: Option<String>,
    #[serde(default)]
    worker_id: Option<String>,
    #[serde(default)]
    worker_type: Option<Reference>,
    #[serde(default)]
    person: Option<Person>,
    #[serde(default)]
    primary_job: Option<Job>,
}

#[derive(Deserialize, Debug, Clone, Default)]
struct Reference {
    #[serde(default)]
    descriptor: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
struct Person {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
struct Job {
    #[serde(default)]
    business_title: Option<String>,
    #[serde(default)]
    supervisory_organization: Option<Reference>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    job_profile: Option<Reference>,
}

#[derive(Deserialize, Debug, Clone, Default)]
struct Location {
    #[serde(default)]
    descriptor: Option<String>,
    #[serde(default)]
    country: Option<Reference>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// A worker listing: the workers that decoded, and the records that did not.
struct Listing {
    workers: Vec<(String, Worker)>,
    problems: Vec<RowProblem>,
}

fn url_with_segments(base: &str, segments: &[&str]) -> Result<Url, HrisError> {
    let mut url = Url::parse(base)
        .map_err(|err| HrisError::Config(format!("Workday baseUrl {base:?}: {err}")))?;
    url.path_segments_mut()
        .map_err(|()| HrisError::Config(format!("Workday baseUrl {base:?} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

impl WorkdaySource {
    /// Builds the source from configuration, reading the referenced credentials.
    pub fn from_config(config: &WorkdayConfig) -> Result<Self, HrisError> {
        let credentials = WorkdayCredentials {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.resolve()?,
            refresh_token: config.refresh_token.resolve()?,
        };
        Self::new(config, credentials)
    }

    /// Builds the source with credentials at hand (the references in `config` are not read).
    pub fn new(config: &WorkdayConfig, credentials: WorkdayCredentials) -> Result<Self, HrisError> {
        config.validate("workday")?;
        let workers_url = url_with_segments(
            &config.base_url,
            &[
                "ccx",
                "api",
                "staffing",
                &config.staffing_version,
                &config.tenant,
                "workers",
            ],
        )?;
        let token_url = url_with_segments(
            &config.base_url,
            &["ccx", "oauth2", &config.tenant, "token"],
        )?;
        let report = match &config.report {
            Some(report) => {
                let mut url = url_with_segments(
                    &config.base_url,
                    &[
                        "ccx",
                        "service",
                        "customreport2",
                        &config.tenant,
                        &report.owner,
                        &report.name,
                    ],
                )?;
                {
                    let mut query = url.query_pairs_mut();
                    for (prompt, value) in &report.prompts {
                        query.append_pair(prompt, value);
                    }
                    query.append_pair("format", "json");
                }
                Some(Box::new(Report {
                    url,
                    columns: Columns::resolve(&report.columns, ColumnPreset::WorkdayReport),
                    employee_prompt: report.employee_prompt.clone(),
                }))
            }
            None => None,
        };
        let secrets = vec![
            credentials.client_secret.clone(),
            credentials.refresh_token.clone(),
        ];
        Ok(Self {
            http: HttpFetcher::new(SYSTEM, &config.http, secrets)?,
            credentials,
            workers_url,
            token_url,
            report,
            page_size: config.page_size,
            max_employees: config.max_employees,
            policy: config.invalid_rows,
            access_token: Mutex::new(None),
        })
    }

    /// Every worker, terminated ones included, merged with the report.
    pub async fn snapshot(&self) -> Result<HrSnapshot, HrisError> {
        let fetched_at = Utc::now();
        let (everyone, current, mut report) = futures::try_join!(
            self.list_workers(true, None),
            self.list_workers(false, None),
            self.report_rows(None),
        )?;
        let mut roster = RosterBuilder::new(SYSTEM, self.policy);
        let report_problems = report
            .as_mut()
            .map(|rows| std::mem::take(&mut rows.problems));
        for problem in everyone
            .problems
            .into_iter()
            .chain(current.problems)
            .chain(report_problems.into_iter().flatten())
        {
            roster.reject(problem)?;
        }
        let listed: HashSet<&str> = everyone
            .workers
            .iter()
            .map(|(_, w)| w.id.as_str())
            .collect();
        if let Some((location, missing)) = current
            .workers
            .iter()
            .find(|(_, worker)| !listed.contains(worker.id.as_str()))
        {
            return Err(HrisError::Incomplete {
                system: SYSTEM,
                operation: "workers.list",
                message: format!(
                    "worker {} ({location} of the current listing) is missing from the listing \
                     that includes terminated workers",
                    missing.id
                ),
            });
        }
        let current: HashSet<&str> = current.workers.iter().map(|(_, w)| w.id.as_str()).collect();
        let today = fetched_at.date_naive();
        for (location, worker) in &everyone.workers {
            let record = self.merge(
                location,
                worker,
                current.contains(worker.id.as_str()),
                &mut report,
                today,
            );
            roster.push(location.clone(), record)?;
        }
        if let Some(report) = report {
            for (id, row) in report.by_id {
                roster.reject(RowProblem {
                    location: row.location,
                    employee_id: Some(id),
                    field: None,
                    problem: "report row has no matching worker in the staffing listing".into(),
                })?;
            }
        }
        roster.finish(fetched_at)
    }

    /// One worker by employee ID (`workerId`), found with the listing's `search`.
    pub async fn employee(&self, id: &str) -> Result<Option<Employee>, HrisError> {
        let id = id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        let (everyone, current, mut report) = futures::try_join!(
            self.list_workers(true, Some(id)),
            self.list_workers(false, Some(id)),
            self.report_rows(Some(id)),
        )?;
        let is_match = |worker: &Worker| worker.worker_id.as_deref().map(str::trim) == Some(id);
        let Some((location, worker)) = everyone.workers.iter().find(|(_, w)| is_match(w)) else {
            return Ok(None);
        };
        if let Some(problem) = report.as_mut().and_then(|rows| rows.problems.pop()) {
            return Err(HrisError::InvalidRow {
                system: SYSTEM,
                problem,
            });
        }
        let employed = current.workers.iter().any(|(_, w)| w.id == worker.id);
        self.merge(
            location,
            worker,
            employed,
            &mut report,
            Utc::now().date_naive(),
        )
        .map(Some)
        .map_err(|problem| HrisError::InvalidRow {
            system: SYSTEM,
            problem,
        })
    }

    /// Builds one employee from a worker and its report row (taken out of `report`).
    fn merge(
        &self,
        location: &str,
        worker: &Worker,
        employed: bool,
        report: &mut Option<ReportRows>,
        today: NaiveDate,
    ) -> Result<Employee, RowProblem> {
        let Some(employee_id) = text(worker.worker_id.as_deref()) else {
            return Err(RowProblem {
                location: location.to_owned(),
                employee_id: None,
                field: Some("workerId".into()),
                problem: format!("worker {} has no workerId", worker.id),
            });
        };
        let mut employee = employee_from_worker(employee_id, worker, employed);
        if let (Some(rows), Some(config)) = (report.as_mut(), self.report.as_ref())
            && let Some(row) = rows.by_id.remove(&employee.id)
        {
            let from_report =
                employee_from_record(&row.values, &config.columns, &row.location, today)?;
            overlay(
                &mut employee,
                from_report,
                &row.values,
                &config.columns,
                employed,
            );
        }
        Ok(employee)
    }

    async fn bearer(&self) -> Result<Secret, HrisError> {
        let mut cached = self.access_token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.credentials.refresh_token.expose()),
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.client_secret.expose()),
        ];
        let fetched = self
            .http
            .send("oauth.token", || {
                self.http
                    .client()
                    .post(self.token_url.clone())
                    .header(ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;
        let token: TokenResponse =
            serde_json::from_slice(&fetched.body).map_err(|err| HrisError::Malformed {
                system: SYSTEM,
                operation: "oauth.token",
                message: format!("token response: {err}"),
            })?;
        let token = Secret::new(token.access_token).map_err(|_| HrisError::Malformed {
            system: SYSTEM,
            operation: "oauth.token",
            message: "token response has an empty access_token".into(),
        })?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// GET with the bearer token; on 401 the token is refreshed once and the call repeated.
    async fn get(&self, operation: &'static str, url: &Url) -> Result<Fetched, HrisError> {
        let send = |token: Secret| async move {
            self.http
                .send(operation, || {
                    self.http
                        .client()
                        .get(url.clone())
                        .header(ACCEPT, "application/json")
                        .bearer_auth(token.expose())
                })
                .await
        };
        let token = self.bearer().await?;
        match send(token.clone()).await {
            Err(error) if error.status() == Some(401) => {
                {
                    let mut cached = self.access_token.lock().await;
                    if cached.as_ref() == Some(&token) {
                        *cached = None;
                    }
                }
                send(self.bearer().await?).await
            }
            other => other,
        }
    }

    /// Pages through `/workers` until `total` is reached, refusing short, long or shifting
    /// listings.
    async fn list_workers(
        &self,
        include_terminated: bool,
        search: Option<&str>,
    ) -> Result<Listing, HrisError> {
        let operation = if include_terminated {
            "workers.list_all"
        } else {
            "workers.list_current"
        };
        let mut listing = Listing {
            workers: Vec::new(),
            problems: Vec::new(),
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: Option<u64> = None;
        let mut offset: u64 = 0;
        loop {
            let mut url = self.workers_url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &self.page_size.to_string());
                query.append_pair("offset", &offset.to_string());
                if include_terminated {
                    query.append_pair("includeTerminatedWorkers", "true");
                }
                if let Some(search) = search {
                    query.append_pair("search", search);
                }
            }
            let fetched = self.get(operation, &url).await?;
            let (page_total, data) = decode_page(operation, &fetched.body)?;
            let total = *total.get_or_insert(page_total);
            if total > self.max_employees {
                return Err(HrisError::Incomplete {
                    system: SYSTEM,
                    operation,
                    message: format!("total {total} exceeds maxEmployees {}", self.max_employees),
                });
            }
            if page_total != total {
                return Err(HrisError::Incomplete {
                    system: SYSTEM,
                    operation,
                    message: format!(
                        "total changed from {total} to {page_total} while paging (offset {offset})"
                    ),
                });
            }
            let expected = total.saturating_sub(offset).min(u64::from(self.page_size));
            if data.len() as u64 != expected {
                return Err(HrisError::Incomplete {
                    system: SYSTEM,
                    operation,
                    message: format!(
                        "page at offset {offset} held {} worker(s), expected {expected} of total {total}; \
                         {} worker(s) received in all",
                        data.len(),
                        offset + data.len() as u64
                    ),
                });
            }
            for (index, item) in data.into_iter().enumerate() {
                let location = if include_terminated {
                    format!("workers[{}]", offset + index as u64)
                } else {
                    format!("current workers[{}]", offset + index as u64)
                };
                match serde_json::from_value::<Worker>(item) {
                    Ok(worker) => {
                        if !seen.insert(worker.id.clone()) {
                            return Err(HrisError::Incomplete {
                                system: SYSTEM,
                                operation,
                                message: format!(
                                    "worker {} listed twice ({location}); the listing shifted while paging",
                                    worker.id
                                ),
                            });
                        }
                        listing.workers.push((location, worker));
                    }
                    Err(err) => listing.problems.push(RowProblem {
                        location,
                        employee_id: None,
                        field: None,
                        problem: format!("cannot decode worker: {err}"),
                    }),
                }
            }
            offset += expected;
            if offset >= total {
                return Ok(listing);
            }
        }
    }

    /// The report's rows by employee ID, or `None` when no report is configured.
    async fn report_rows(&self, employee: Option<&str>) -> Result<Option<ReportRows>, HrisError> {
        let Some(report) = &self.report else {
            return Ok(None);
        };
        let mut url = report.url.clone();
        if let (Some(id), Some(prompt)) = (employee, &report.employee_prompt) {
            url.query_pairs_mut().append_pair(prompt, id);
        }
        let fetched = self.get("report.get", &url).await?;
        let mut rows = decode_report(&fetched.body, &report.columns.id)?;
        if let Some(id) = employee {
            rows.by_id.retain(|row_id, _| row_id == id);
            rows.problems
                .retain(|problem| problem.employee_id.as_deref() == Some(id));
        }
        Ok(Some(rows))
    }
}

/// The employee as the REST worker describes it.
fn employee_from_worker(id: String, worker: &Worker, employed: bool) -> Employee {
    let (first_name, last_name) = split_full_name(worker.descriptor.as_deref().unwrap_or(""));
    let job = worker.primary_job.clone().unwrap_or_default();
    let descriptor = |reference: &Option<Reference>| {
        reference
            .as_ref()
            .and_then(|reference| text(reference.descriptor.as_deref()))
    };
    let mut custom = BTreeMap::from([("workdayId".to_owned(), worker.id.clone())]);
    if let Some(profile) = descriptor(&job.job_profile) {
        custom.insert("jobProfile".into(), profile);
    }
    if let Some(country) = job
        .location
        .as_ref()
        .and_then(|location| descriptor(&location.country))
    {
        custom.insert("country".into(), country);
    }
    Employee {
        id,
        email: worker
            .person
            .as_ref()
            .and_then(|person| text(person.email.as_deref()))
            .unwrap_or_default(),
        first_name,
        last_name,
        department: descriptor(&job.supervisory_organization),
        title: text(job.business_title.as_deref()).or_else(|| descriptor(&job.job_profile)),
        location: job
            .location
            .as_ref()
            .and_then(|location| text(location.descriptor.as_deref())),
        cost_center: None,
        employment_type: descriptor(&worker.worker_type),
        manager_id: None,
        manager_email: None,
        status: if employed {
            EmploymentStatus::Active
        } else {
            EmploymentStatus::Terminated
        },
        start_date: None,
        termination_date: None,
        custom,
    }
}

/// Lays the report's values over the REST ones. Only columns present in the row count, so an
/// omitted report value never blanks a REST value.
fn overlay(
    employee: &mut Employee,
    report: Employee,
    row: &BTreeMap<String, String>,
    columns: &Columns,
    employed: bool,
) {
    fn take(target: &mut Option<String>, value: Option<String>) {
        if value.is_some() {
            *target = value;
        }
    }
    if !report.email.is_empty() {
        employee.email = report.email;
    }
    if !report.first_name.is_empty() || !report.last_name.is_empty() {
        employee.first_name = report.first_name;
        employee.last_name = report.last_name;
    }
    take(&mut employee.department, report.department);
    take(&mut employee.title, report.title);
    take(&mut employee.location, report.location);
    take(&mut employee.cost_center, report.cost_center);
    take(&mut employee.employment_type, report.employment_type);
    take(&mut employee.manager_id, report.manager_id);
    take(&mut employee.manager_email, report.manager_email);
    employee.start_date = report.start_date.or(employee.start_date);
    employee.termination_date = report.termination_date.or(employee.termination_date);
    employee.custom.extend(report.custom);
    let report_states_status = columns
        .status
        .as_deref()
        .is_some_and(|column| row.contains_key(column));
    employee.status = match (employed, report_states_status) {
        (false, _) => EmploymentStatus::Terminated,
        (true, true) => report.status,
        // Without a status column the report's date-derived status is not trusted over REST,
        // except for leave, which only the report can tell.
        (true, false) if report.status == EmploymentStatus::OnLeave => EmploymentStatus::OnLeave,
        (true, false) => EmploymentStatus::Active,
    };
}

/// Report rows by employee ID, with the rows that had none or repeated one.
#[derive(Debug)]
struct ReportRows {
    by_id: HashMap<String, ReportRow>,
    problems: Vec<RowProblem>,
}

#[derive(Debug)]
struct ReportRow {
    location: String,
    values: BTreeMap<String, String>,
}

/// Decodes one `/workers` page: `total` and the raw `data` items (decoded one by one later so a
/// bad item is named, not the whole page).
fn decode_page(
    operation: &'static str,
    body: &[u8],
) -> Result<(u64, Vec<serde_json::Value>), HrisError> {
    let malformed = |message: String| HrisError::Malformed {
        system: SYSTEM,
        operation,
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| malformed(format!("response is not JSON: {err}")))?;
    let total = value
        .get("total")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| malformed("response has no numeric `total`".into()))?;
    match value.get("data") {
        Some(serde_json::Value::Array(data)) => Ok((total, data.clone())),
        _ => Err(malformed("response has no `data` array".into())),
    }
}

/// Decodes a RaaS JSON report (`{"Report_Entry": [...]}`).
fn decode_report(body: &[u8], id_column: &str) -> Result<ReportRows, HrisError> {
    let malformed = |message: String| HrisError::Malformed {
        system: SYSTEM,
        operation: "report.get",
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| malformed(format!("report is not JSON (is the format json?): {err}")))?;
    let entries = match value.get("Report_Entry") {
        Some(serde_json::Value::Array(entries)) => entries,
        _ => return Err(malformed("report has no `Report_Entry` array".into())),
    };
    let mut rows = ReportRows {
        by_id: HashMap::new(),
        problems: Vec::new(),
    };
    let mut first_seen: HashMap<String, String> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let location = format!("Report_Entry[{index}]");
        let problem =
            |employee_id: Option<String>, field: Option<String>, problem: String| RowProblem {
                location: location.clone(),
                employee_id,
                field,
                problem,
            };
        let Some(object) = entry.as_object() else {
            rows.problems
                .push(problem(None, None, "report entry is not an object".into()));
            continue;
        };
        let values = json_record(object);
        let Some(id) = values
            .get(id_column)
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
        else {
            rows.problems.push(problem(
                None,
                Some(id_column.to_owned()),
                "missing employee ID".into(),
            ));
            continue;
        };
        if let Some(first) = first_seen.get(&id) {
            rows.problems.push(problem(
                Some(id.clone()),
                Some(id_column.to_owned()),
                format!("employee ID repeated (also at {first})"),
            ));
            rows.by_id.remove(&id);
            continue;
        }
        first_seen.insert(id.clone(), location.clone());
        rows.by_id.insert(id, ReportRow { location, values });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hris::columns::ColumnMapping;

    #[test]
    fn worker_fields_map_onto_the_employee() {
        let worker: Worker = serde_json::from_value(serde_json::json!({
            "id": "3aa5550b7fe348b98d7b5741afc65534",
            "descriptor": "Logan McNeil",
            "workerId": "21001",
            "workerType": {"id": "x", "descriptor": "Employee"},
            "person": {"email": "lmcneil@workday.net", "phone": "+1"},
            "primaryJob": {
                "businessTitle": "Chief Executive Officer",
                "supervisoryOrganization": {"id": "o1", "descriptor": "Global Modern Services"},
                "location": {"descriptor": "San Francisco", "country": {"descriptor": "United States of America"}},
                "jobProfile": {"descriptor": "CEO"},
                "somethingNew": true
            }
        }))
        .expect("worker");
        let employee = employee_from_worker("21001".into(), &worker, true);
        assert_eq!(employee.email, "lmcneil@workday.net");
        assert_eq!(
            (employee.first_name.as_str(), employee.last_name.as_str()),
            ("Logan", "McNeil")
        );
        assert_eq!(employee.title.as_deref(), Some("Chief Executive Officer"));
        assert_eq!(
            employee.department.as_deref(),
            Some("Global Modern Services")
        );
        assert_eq!(employee.location.as_deref(), Some("San Francisco"));
        assert_eq!(employee.employment_type.as_deref(), Some("Employee"));
        assert_eq!(employee.status, EmploymentStatus::Active);
        assert_eq!(
            employee.custom.get("workdayId").map(String::as_str),
            Some("3aa5550b7fe348b98d7b5741afc65534")
        );
        assert_eq!(
            employee.custom.get("country").map(String::as_str),
            Some("United States of America")
        );
        assert_eq!(
            employee_from_worker("21001".into(), &worker, false).status,
            EmploymentStatus::Terminated
        );
    }

    #[test]
    fn report_values_override_and_status_rules_hold() {
        let worker = Worker {
            id: "wid".into(),
            worker_id: Some("7".into()),
            descriptor: Some("Ada Lovelace".into()),
            ..Worker::default()
        };
        let row: BTreeMap<String, String> = [
            ("Employee_ID", "7"),
            ("Cost_Center", "CC-9"),
            ("Manager_ID", "3"),
            ("Start_Date", "2020-02-03"),
            ("Termination_Date", "2026-01-31"),
            ("Status", "On Leave"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).expect("date");
        let merged = |columns: &Columns, employed: bool| {
            let mut employee = employee_from_worker("7".into(), &worker, employed);
            let report =
                employee_from_record(&row, columns, "Report_Entry[0]", today).expect("row");
            overlay(&mut employee, report, &row, columns, employed);
            employee
        };
        let without_status =
            Columns::resolve(&ColumnMapping::default(), ColumnPreset::WorkdayReport);
        let employee = merged(&without_status, true);
        assert_eq!(employee.cost_center.as_deref(), Some("CC-9"));
        assert_eq!(employee.manager_id.as_deref(), Some("3"));
        assert_eq!(employee.first_name, "Ada");
        assert_eq!(
            employee.termination_date,
            NaiveDate::from_ymd_opt(2026, 1, 31)
        );
        // Still in the current listing and no status column: REST decides.
        assert_eq!(employee.status, EmploymentStatus::Active);
        let with_status = Columns::resolve(
            &ColumnMapping {
                status: Some("Status".into()),
                ..ColumnMapping::default()
            },
            ColumnPreset::WorkdayReport,
        );
        assert_eq!(merged(&with_status, true).status, EmploymentStatus::OnLeave);
        assert_eq!(
            merged(&with_status, false).status,
            EmploymentStatus::Terminated
        );
    }

    #[test]
    fn pages_and_reports_are_checked_for_shape() {
        assert_eq!(
            decode_page("op", br#"{"total": 2, "data": [{"id": "a"}, {"id": "b"}]}"#)
                .expect("page")
                .1
                .len(),
            2
        );
        for body in [
            &b"{\"data\": []}"[..],
            b"{\"total\": 1}",
            b"{\"total\": \"1\", \"data\": []}",
            b"<html>",
            b"",
        ] {
            assert_eq!(
                decode_page("op", body).expect_err("malformed").label(),
                "malformed"
            );
        }
        let rows = decode_report(
            br#"{"Report_Entry": [{"Employee_ID": "1"}, {"Full_Name": "x"}, {"Employee_ID": "1"}, 5]}"#,
            "Employee_ID",
        )
        .expect("report");
        assert!(rows.by_id.is_empty(), "a repeated ID keeps neither row");
        let locations: Vec<_> = rows.problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locations,
            ["Report_Entry[1]", "Report_Entry[2]", "Report_Entry[3]"]
        );
        assert!(decode_report(b"<Report_Data/>", "Employee_ID").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_page("fuzz", &body);
            let _ = decode_report(&body, "Employee_ID");
        }

        #[test]
        fn decoders_never_panic_on_json_shaped_text(total in any::<i64>(), body in "[\\[\\]{}\":,a-zA-Z0-9 _]{0,200}") {
            let page = format!("{{\"total\": {total}, \"data\": [{body}]}}");
            let _ = decode_page("fuzz", page.as_bytes());
            let report = format!("{{\"Report_Entry\": [{body}]}}");
            let _ = decode_report(report.as_bytes(), "Employee_ID");
        }
    }
}
