//! HR sources (Workday, BambooHR, files) normalized into [`Employee`] records.
//!
//! * [`HrSource`] is the one entry point: [`HrSource::snapshot`] (everyone),
//!   [`HrSource::employee`] (one person) and [`HrSource::changed_since`] (BambooHR's feed).
//! * A source that is unreachable, failing, truncated, malformed or empty yields an
//!   [`HrisError`], never an empty or partial list. A bad record fails the snapshot unless
//!   [`InvalidRowPolicy::Skip`] is configured, in which case it is listed in
//!   [`HrSnapshot::skipped`] and the snapshot reports itself incomplete.
//! * [`webhook`] verifies and parses BambooHR's signed webhooks.

mod bamboohr;
mod columns;
mod config;
mod error;
mod file;
mod http;
mod snapshot;
pub mod webhook;
mod workday;

/// HR sources produce the engine's employee record.
pub use crate::engine::{Employee, EmploymentStatus};
pub use bamboohr::BambooHrSource;
pub use columns::{ColumnMapping, StatusValues};
pub use config::{
    BambooHrConfig, BambooHrSnapshotMode, BambooHrWebhookConfig, FileConfig, FileFormat,
    HrisConfig, HttpConfig, InvalidRowPolicy, WorkdayConfig, WorkdayReportConfig,
};
pub use error::{HrisError, RowProblem, SourceKind};
pub use file::FileSource;
pub use snapshot::{ChangeAction, ChangeFeed, EmployeeChange, HrSnapshot, HrSource};
pub use webhook::{WebhookError, WebhookNotification, WebhookVerifier};
pub use workday::{WorkdayCredentials, WorkdaySource};
