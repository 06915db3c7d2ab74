//! Configuration of the HR source, as it appears under `hris:` in the operator's config file.
//! Credentials are references ([`LocalSecretRef`]), never values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::columns::ColumnMapping;
use super::error::HrisError;
use crate::http::RetryConfig;
use crate::secret::LocalSecretRef;

/// Which HR system to read and how. YAML: `source: workday | bambooHr | file` plus its settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "source", rename_all = "camelCase")]
pub enum HrisConfig {
    Workday(WorkdayConfig),
    BambooHr(BambooHrConfig),
    File(FileConfig),
}

/// What to do with a record that cannot be read (missing ID, bad date, unknown status, …).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum InvalidRowPolicy {
    /// Fail the whole snapshot, naming the record. A person silently missing from a snapshot
    /// looks like a departure, so this is the default.
    #[default]
    Reject,
    /// Leave the record out and list it in [`HrSnapshot::skipped`](super::HrSnapshot::skipped);
    /// such a snapshot reports itself incomplete so revocations can be held back.
    Skip,
}

/// HTTP behaviour shared by every networked source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// Limit for one attempt, from connecting until the whole body is read.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Larger bodies are refused rather than buffered.
    pub max_body_bytes: u64,
    /// Retries of 429, 5xx, timeouts and connection failures (`Retry-After` honoured).
    pub retry: RetryConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 120_000,
            connect_timeout_ms: 10_000,
            max_body_bytes: 512 * 1024 * 1024,
            retry: RetryConfig::default(),
        }
    }
}

impl HttpConfig {
    fn validate(&self, at: &str) -> Result<(), HrisError> {
        let problem = if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            "timeouts must be greater than zero"
        } else if self.max_body_bytes == 0 {
            "maxBodyBytes must be greater than zero"
        } else if self.retry.max_attempts == 0 {
            "retry.maxAttempts must be at least 1"
        } else if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            "retry.initialBackoffMs must not exceed retry.maxBackoffMs"
        } else {
            return Ok(());
        };
        Err(HrisError::Config(format!("{at}.http: {problem}")))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Workday: staffing REST workers (terminated included) merged with an optional RaaS report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkdayConfig {
    /// Tenant services host, e.g. `https://wd2-impl-services1.workday.com`.
    pub base_url: String,
    pub tenant: String,
    /// Staffing API version in `/ccx/api/staffing/{version}/{tenant}`.
    #[serde(default = "default_staffing_version")]
    pub staffing_version: String,
    /// OAuth client of the "API Client for Integrations".
    pub client_id: String,
    pub client_secret: LocalSecretRef,
    /// Refresh token bound to the Integration System User.
    pub refresh_token: LocalSecretRef,
    /// Workers per page (Workday allows at most 100).
    #[serde(default = "default_workday_page_size")]
    pub page_size: u32,
    /// A listing whose `total` exceeds this fails instead of paging on.
    #[serde(default = "default_max_employees")]
    pub max_employees: u64,
    /// The RaaS report that supplies what REST lacks (dates, manager, cost center, …).
    #[serde(default)]
    pub report: Option<WorkdayReportConfig>,
    #[serde(default)]
    pub invalid_rows: InvalidRowPolicy,
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_staffing_version() -> String {
    "v6".to_owned()
}

fn default_workday_page_size() -> u32 {
    100
}

fn default_max_employees() -> u64 {
    2_000_000
}

/// A Workday Advanced custom report exposed as a web service, read as JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkdayReportConfig {
    /// The report owner's user name (the path segment before the report name).
    pub owner: String,
    pub name: String,
    /// Column aliases; omitted ones default to `Employee_ID`, `Email`, `Full_Name`, `Team_Name`,
    /// `Location`, `Cost_Center`, `Employee_Type`, `Manager_ID`, `Start_Date`, `Termination_Date`.
    #[serde(default)]
    pub columns: ColumnMapping,
    /// Fixed prompt values sent as query parameters (e.g. `Effective_as_of_Date`).
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    /// Prompt that limits the report to one employee ID, used for single-employee refreshes
    /// (without it the whole report is read and filtered).
    #[serde(default)]
    pub employee_prompt: Option<String>,
}

/// BambooHR: custom report or directory for snapshots, the changed-since feed, webhooks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BambooHrConfig {
    /// The company's subdomain (`acme` in `acme.bamboohr.com`).
    pub company_domain: String,
    /// API root including `/v1`; defaults to `https://{companyDomain}.bamboohr.com/api/v1`.
    /// Set it for the legacy gateway (`https://api.bamboohr.com/api/gateway.php/{domain}/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key (sent as the Basic-auth user name).
    pub api_key: LocalSecretRef,
    #[serde(default)]
    pub snapshot: BambooHrSnapshotMode,
    /// BambooHR field names; omitted ones use the standard fields (`workEmail`, `jobTitle`,
    /// `supervisorEId`, `status`, `hireDate`, `terminationDate`, …).
    #[serde(default)]
    pub fields: ColumnMapping,
    #[serde(default)]
    pub webhook: Option<BambooHrWebhookConfig>,
    #[serde(default)]
    pub invalid_rows: InvalidRowPolicy,
    #[serde(default)]
    pub http: HttpConfig,
}

/// How a BambooHR snapshot is read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BambooHrSnapshotMode {
    /// `POST /reports/custom`: active and inactive employees, every mapped field.
    #[default]
    CustomReport,
    /// `GET /employees/directory`: active employees only and fewer fields, so terminations
    /// are seen only as disappearances.
    Directory,
}

/// Signed BambooHR webhooks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BambooHrWebhookConfig {
    /// The `privateKey` BambooHR returned when the webhook was created.
    pub private_key: LocalSecretRef,
    /// Notifications whose timestamp is further than this from now are refused.
    #[serde(default = "default_webhook_max_age_seconds")]
    pub max_age_seconds: u64,
}

fn default_webhook_max_age_seconds() -> u64 {
    300
}

/// A CSV or JSON export, read from a path or an http(s) URL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// A filesystem path or an `http://` / `https://` URL.
    pub location: String,
    /// Defaults to the extension (`.csv`, `.json`) or the response's content type.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// JSON only: pointer to the array of records (e.g. `/employees`); default the document root.
    #[serde(default)]
    pub records: Option<String>,
    /// CSV only: field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Column names; omitted ones default to the employee field names (`id`, `email`,
    /// `firstName`, `costCenter`, `startDate`, …).
    #[serde(default)]
    pub columns: ColumnMapping,
    /// Bearer token sent when `location` is a URL.
    #[serde(default)]
    pub bearer_token: Option<LocalSecretRef>,
    #[serde(default)]
    pub invalid_rows: InvalidRowPolicy,
    #[serde(default)]
    pub http: HttpConfig,
}

/// Format of an HR file.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum FileFormat {
    Csv,
    Json,
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

fn require(at: &str, field: &str, value: &str) -> Result<(), HrisError> {
    if value.trim().is_empty() {
        Err(HrisError::Config(format!("{at}.{field} must not be empty")))
    } else {
        Ok(())
    }
}

impl HrisConfig {
    /// Rejects settings no source can run with, naming the field (`hris.pageSize …`).
    pub fn validate(&self) -> Result<(), HrisError> {
        match self {
            Self::Workday(config) => config.validate("hris"),
            Self::BambooHr(config) => config.validate("hris"),
            Self::File(config) => config.validate("hris"),
        }
    }
}

impl WorkdayConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), HrisError> {
        if !is_http_url(&self.base_url) {
            return Err(HrisError::Config(format!(
                "{at}.baseUrl must be an http(s) URL, got {:?}",
                self.base_url
            )));
        }
        require(at, "tenant", &self.tenant)?;
        require(at, "staffingVersion", &self.staffing_version)?;
        require(at, "clientId", &self.client_id)?;
        if !(1..=100).contains(&self.page_size) {
            return Err(HrisError::Config(format!(
                "{at}.pageSize must be between 1 and 100, got {}",
                self.page_size
            )));
        }
        if self.max_employees == 0 {
            return Err(HrisError::Config(format!(
                "{at}.maxEmployees must be at least 1"
            )));
        }
        if let Some(report) = &self.report {
            require(&format!("{at}.report"), "owner", &report.owner)?;
            require(&format!("{at}.report"), "name", &report.name)?;
        }
        self.http.validate(at)
    }
}

/// BambooHR refuses custom reports and single-employee reads asking for more fields.
pub(crate) const BAMBOOHR_MAX_FIELDS: usize = 400;

impl BambooHrConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), HrisError> {
        require(at, "companyDomain", &self.company_domain)?;
        if let Some(base_url) = &self.base_url
            && !is_http_url(base_url)
        {
            return Err(HrisError::Config(format!(
                "{at}.baseUrl must be an http(s) URL, got {base_url:?}"
            )));
        }
        let fields =
            super::columns::Columns::resolve(&self.fields, super::columns::ColumnPreset::BambooHr)
                .names()
                .len();
        if fields > BAMBOOHR_MAX_FIELDS {
            return Err(HrisError::Config(format!(
                "{at}.fields maps {fields} fields; BambooHR accepts at most {BAMBOOHR_MAX_FIELDS}"
            )));
        }
        if let Some(webhook) = &self.webhook
            && webhook.max_age_seconds == 0
        {
            return Err(HrisError::Config(format!(
                "{at}.webhook.maxAgeSeconds must be at least 1"
            )));
        }
        self.http.validate(at)
    }
}

impl FileConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), HrisError> {
        require(at, "location", &self.location)?;
        if let Some(pointer) = &self.records
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            return Err(HrisError::Config(format!(
                "{at}.records must be a JSON pointer starting with '/', got {pointer:?}"
            )));
        }
        if let Some(delimiter) = self.delimiter
            && (!delimiter.is_ascii() || delimiter == '"' || delimiter == '\n')
        {
            return Err(HrisError::Config(format!(
                "{at}.delimiter must be one ASCII character other than a quote or newline"
            )));
        }
        self.http.validate(at)
    }

    pub(crate) fn is_url(&self) -> bool {
        is_http_url(&self.location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workday_config_parses_with_defaults() {
        let config: HrisConfig = serde_yaml::from_str(
            "source: workday
baseUrl: https://wd2-impl-services1.workday.com
tenant: acme
clientId: client-1
clientSecret: {env: WD_SECRET}
refreshToken: {file: /run/wd/refresh}
report:
  owner: isu_reports
  name: Worker_Dates
  columns:
    terminationDate: Term_Date
",
        )
        .expect("decode");
        let HrisConfig::Workday(workday) = &config else {
            panic!("not workday: {config:?}");
        };
        assert_eq!(workday.staffing_version, "v6");
        assert_eq!(workday.page_size, 100);
        assert_eq!(workday.invalid_rows, InvalidRowPolicy::Reject);
        let report = workday.report.as_ref().expect("report");
        assert_eq!(
            report.columns.termination_date.as_deref(),
            Some("Term_Date")
        );
        config.validate().expect("valid");
    }

    #[test]
    fn unknown_fields_and_inline_secrets_are_rejected() {
        let error = serde_yaml::from_str::<HrisConfig>(
            "source: bambooHr\ncompanyDomain: acme\napiKey: {value: abc}\n",
        )
        .expect_err("inline secret");
        assert!(error.to_string().contains("value"), "{error}");
        assert!(
            serde_yaml::from_str::<HrisConfig>(
                "source: file\nlocation: /tmp/x.csv\ncolumns: {emial: mail}\n"
            )
            .is_err()
        );
        assert!(serde_yaml::from_str::<HrisConfig>("source: ldap\n").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut config: WorkdayConfig = serde_yaml::from_str(
            "baseUrl: https://wd.example\ntenant: acme\nclientId: c\nclientSecret: {env: A}\nrefreshToken: {env: B}\npageSize: 500\n",
        )
        .expect("decode");
        let error = config.validate("hris").expect_err("page size");
        assert_eq!(error.label(), "config");
        assert!(error.to_string().contains("hris.pageSize"), "{error}");
        config.page_size = 100;
        config.base_url = "wd.example".into();
        assert!(
            config
                .validate("hris")
                .expect_err("url")
                .to_string()
                .contains("hris.baseUrl")
        );

        let file: FileConfig =
            serde_yaml::from_str("location: x.json\nrecords: employees\n").expect("decode");
        assert!(
            file.validate("hris")
                .expect_err("pointer")
                .to_string()
                .contains("hris.records")
        );

        let bamboo: BambooHrConfig = serde_yaml::from_str(
            "companyDomain: acme\napiKey: {env: K}\nhttp: {retry: {maxAttempts: 0}}\n",
        )
        .expect("decode");
        assert!(
            bamboo
                .validate("hris")
                .expect_err("attempts")
                .to_string()
                .contains("hris.http: retry.maxAttempts")
        );
    }
}
