//! The snapshot every source produces, the checks every snapshot passes (unique IDs, no silent
//! losses, never empty), and [`HrSource`], the one entry point over all sources.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bamboohr::BambooHrSource;
use super::config::{HrisConfig, InvalidRowPolicy};
use super::error::{HrisError, RowProblem, SourceKind};
use super::file::FileSource;
use super::workday::WorkdaySource;
use crate::engine::Employee;

/// Everyone the HR system lists at one moment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HrSnapshot {
    /// Sorted by ID; IDs are unique.
    pub employees: Vec<Employee>,
    pub fetched_at: DateTime<Utc>,
    pub source: SourceKind,
    /// Records left out under [`InvalidRowPolicy::Skip`]; always empty under `Reject`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<RowProblem>,
}

impl HrSnapshot {
    /// Whether every record made it in. An incomplete snapshot may be missing people, so it
    /// should not justify revocations.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }

    /// The employee with this ID.
    pub fn employee(&self, id: &str) -> Option<&Employee> {
        self.employees
            .binary_search_by(|employee| employee.id.as_str().cmp(id))
            .ok()
            .map(|index| &self.employees[index])
    }
}

/// One change reported by a change feed or webhook.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EmployeeChange {
    pub employee_id: String,
    pub action: ChangeAction,
    /// When the HR system recorded the change, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// Field names the HR system lists as changed (webhooks only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
}

/// What happened to an employee record. Terminations arrive as updates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum ChangeAction {
    /// BambooHR `Inserted` / `Created` / `employee.created`.
    Created,
    Updated,
    Deleted,
    /// A value this version does not know, kept verbatim; treat it as "refresh this employee".
    Other(String),
}

impl ChangeAction {
    pub(crate) fn parse(value: &str) -> Self {
        match value.trim().to_ascii_lowercase().as_str() {
            "inserted" | "created" => Self::Created,
            "updated" => Self::Updated,
            "deleted" => Self::Deleted,
            _ => Self::Other(value.to_owned()),
        }
    }
}

/// The answer of a changed-since query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFeed {
    /// The HR system's own "as of" time: pass it as `since` next time.
    pub latest: DateTime<Utc>,
    /// Sorted by employee ID, one entry per employee.
    pub changes: Vec<EmployeeChange>,
}

/// Collects converted records into a snapshot, applying the invalid-row policy and refusing
/// duplicate IDs.
#[derive(Debug)]
pub(crate) struct RosterBuilder {
    system: SourceKind,
    policy: InvalidRowPolicy,
    employees: BTreeMap<String, (String, Employee)>,
    /// IDs seen more than once; every copy is left out (which one is right cannot be known).
    duplicates: BTreeMap<String, Vec<String>>,
    skipped: Vec<RowProblem>,
}

impl RosterBuilder {
    pub(crate) fn new(system: SourceKind, policy: InvalidRowPolicy) -> Self {
        Self {
            system,
            policy,
            employees: BTreeMap::new(),
            duplicates: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    /// Records one bad record: an error under `Reject`, a skipped entry under `Skip`.
    pub(crate) fn reject(&mut self, problem: RowProblem) -> Result<(), HrisError> {
        match self.policy {
            InvalidRowPolicy::Reject => Err(HrisError::InvalidRow {
                system: self.system,
                problem,
            }),
            InvalidRowPolicy::Skip => {
                tracing::warn!(system = self.system.label(), %problem, "skipping HR record");
                self.skipped.push(problem);
                Ok(())
            }
        }
    }

    /// Adds a converted record found at `location`.
    pub(crate) fn push(
        &mut self,
        location: String,
        record: Result<Employee, RowProblem>,
    ) -> Result<(), HrisError> {
        let employee = match record {
            Ok(employee) => employee,
            Err(problem) => return self.reject(problem),
        };
        if let Some(locations) = self.duplicates.get_mut(&employee.id) {
            locations.push(location);
            return Ok(());
        }
        match self.employees.remove(&employee.id) {
            Some((first_location, _)) => {
                let problem = RowProblem {
                    location: location.clone(),
                    employee_id: Some(employee.id.clone()),
                    field: None,
                    problem: format!("duplicate employee ID (also at {first_location})"),
                };
                self.reject(problem)?;
                self.duplicates
                    .insert(employee.id, vec![first_location, location]);
            }
            None => {
                self.employees
                    .insert(employee.id.clone(), (location, employee));
            }
        }
        Ok(())
    }

    /// Resolves manager emails from manager IDs and returns the snapshot; no employees is an
    /// error.
    pub(crate) fn finish(mut self, fetched_at: DateTime<Utc>) -> Result<HrSnapshot, HrisError> {
        for (id, locations) in std::mem::take(&mut self.duplicates) {
            for location in locations.into_iter().skip(2) {
                self.skipped.push(RowProblem {
                    location,
                    employee_id: Some(id.clone()),
                    field: None,
                    problem: "duplicate employee ID".into(),
                });
            }
        }
        let mut employees: Vec<Employee> = self
            .employees
            .into_values()
            .map(|(_, employee)| employee)
            .collect();
        if employees.is_empty() {
            let detail = if self.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} record(s) skipped as invalid)", self.skipped.len())
            };
            return Err(HrisError::Empty {
                system: self.system,
                detail,
            });
        }
        fill_manager_emails(&mut employees);
        Ok(HrSnapshot {
            employees,
            fetched_at,
            source: self.system,
            skipped: self.skipped,
        })
    }
}

/// Sets `manager_email` from the manager's record where the source gave only the manager's ID.
pub(crate) fn fill_manager_emails(employees: &mut [Employee]) {
    let emails: HashMap<String, String> = employees
        .iter()
        .filter(|employee| !employee.email.is_empty())
        .map(|employee| (employee.id.clone(), employee.email.clone()))
        .collect();
    for employee in employees.iter_mut() {
        if employee.manager_email.is_none() {
            employee.manager_email = employee
                .manager_id
                .as_ref()
                .and_then(|manager| emails.get(manager))
                .cloned();
        }
    }
}

/// A configured HR source.
#[derive(Debug)]
pub enum HrSource {
    Workday(WorkdaySource),
    BambooHr(BambooHrSource),
    File(FileSource),
}

impl HrSource {
    /// Validates the configuration, reads the referenced credentials and builds the source.
    pub fn from_config(config: &HrisConfig) -> Result<Self, HrisError> {
        config.validate()?;
        Ok(match config {
            HrisConfig::Workday(config) => Self::Workday(WorkdaySource::from_config(config)?),
            HrisConfig::BambooHr(config) => Self::BambooHr(BambooHrSource::from_config(config)?),
            HrisConfig::File(config) => Self::File(FileSource::from_config(config)?),
        })
    }

    pub fn kind(&self) -> SourceKind {
        match self {
            Self::Workday(_) => SourceKind::Workday,
            Self::BambooHr(_) => SourceKind::BambooHr,
            Self::File(_) => SourceKind::File,
        }
    }

    /// Everyone, now. Fails rather than returning a partial or empty list.
    pub async fn snapshot(&self) -> Result<HrSnapshot, HrisError> {
        match self {
            Self::Workday(source) => source.snapshot().await,
            Self::BambooHr(source) => source.snapshot().await,
            Self::File(source) => source.snapshot().await,
        }
    }

    /// One employee, now; `None` when the HR system does not know the ID. The manager email is
    /// filled only when the source reports it directly.
    pub async fn employee(&self, id: &str) -> Result<Option<Employee>, HrisError> {
        match self {
            Self::Workday(source) => source.employee(id).await,
            Self::BambooHr(source) => source.employee(id).await,
            Self::File(source) => source.employee(id).await,
        }
    }

    /// Employees changed since `since` (BambooHR only).
    pub async fn changed_since(&self, since: DateTime<Utc>) -> Result<ChangeFeed, HrisError> {
        match self {
            Self::BambooHr(source) => source.changed_since(since).await,
            Self::Workday(_) | Self::File(_) => Err(HrisError::Unsupported {
                system: self.kind(),
                operation: "a changed-since feed",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hris::EmploymentStatus;

    fn employee(id: &str, email: &str, manager: Option<&str>) -> Employee {
        Employee {
            id: id.into(),
            email: email.into(),
            first_name: String::new(),
            last_name: String::new(),
            department: None,
            title: None,
            location: None,
            cost_center: None,
            employment_type: None,
            manager_id: manager.map(str::to_owned),
            manager_email: None,
            status: EmploymentStatus::Active,
            start_date: None,
            termination_date: None,
            custom: BTreeMap::new(),
        }
    }

    fn problem(location: &str) -> RowProblem {
        RowProblem {
            location: location.into(),
            employee_id: None,
            field: Some("id".into()),
            problem: "missing employee ID".into(),
        }
    }

    #[test]
    fn reject_policy_fails_on_the_first_bad_record() {
        let mut builder = RosterBuilder::new(SourceKind::File, InvalidRowPolicy::Reject);
        builder
            .push("line 2".into(), Ok(employee("1", "a@x", None)))
            .expect("good record");
        let error = builder
            .push("line 3".into(), Err(problem("line 3")))
            .expect_err("bad record");
        assert_eq!(error.label(), "invalid_row");
        assert!(error.to_string().contains("line 3"), "{error}");
    }

    #[test]
    fn skip_policy_lists_bad_records_and_marks_the_snapshot_incomplete() {
        let mut builder = RosterBuilder::new(SourceKind::File, InvalidRowPolicy::Skip);
        builder
            .push("line 2".into(), Ok(employee("2", "b@x", Some("1"))))
            .expect("good");
        builder
            .push("line 3".into(), Err(problem("line 3")))
            .expect("skipped");
        builder
            .push("line 4".into(), Ok(employee("1", "a@x", None)))
            .expect("good");
        let snapshot = builder.finish(Utc::now()).expect("snapshot");
        assert!(!snapshot.is_complete());
        assert_eq!(snapshot.skipped, vec![problem("line 3")]);
        let ids: Vec<_> = snapshot.employees.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(
            snapshot
                .employee("2")
                .and_then(|e| e.manager_email.as_deref()),
            Some("a@x")
        );
        assert!(snapshot.employee("3").is_none());
    }

    #[test]
    fn duplicate_ids_are_never_resolved_by_guessing() {
        let mut builder = RosterBuilder::new(SourceKind::File, InvalidRowPolicy::Reject);
        builder
            .push("line 2".into(), Ok(employee("7", "a@x", None)))
            .expect("first");
        let error = builder
            .push("line 5".into(), Ok(employee("7", "b@x", None)))
            .expect_err("duplicate");
        assert!(error.to_string().contains("also at line 2"), "{error}");

        let mut builder = RosterBuilder::new(SourceKind::File, InvalidRowPolicy::Skip);
        for line in 2..5 {
            builder
                .push(format!("line {line}"), Ok(employee("7", "a@x", None)))
                .expect("skip");
        }
        builder
            .push("line 9".into(), Ok(employee("8", "c@x", None)))
            .expect("good");
        let snapshot = builder.finish(Utc::now()).expect("snapshot");
        assert_eq!(snapshot.employees.len(), 1);
        let locations: Vec<_> = snapshot
            .skipped
            .iter()
            .map(|p| p.location.as_str())
            .collect();
        assert_eq!(locations, ["line 3", "line 4"]);
    }

    #[test]
    fn an_empty_roster_is_an_error() {
        let builder = RosterBuilder::new(SourceKind::BambooHr, InvalidRowPolicy::Skip);
        assert_eq!(
            builder.finish(Utc::now()).expect_err("empty").label(),
            "empty"
        );
        let mut builder = RosterBuilder::new(SourceKind::BambooHr, InvalidRowPolicy::Skip);
        builder.push("x".into(), Err(problem("x"))).expect("skip");
        let error = builder.finish(Utc::now()).expect_err("all skipped");
        assert!(error.to_string().contains("1 record(s) skipped"), "{error}");
    }

    #[test]
    fn change_actions_parse_known_and_keep_unknown_values() {
        assert_eq!(ChangeAction::parse("Inserted"), ChangeAction::Created);
        assert_eq!(ChangeAction::parse("Created"), ChangeAction::Created);
        assert_eq!(ChangeAction::parse("Updated"), ChangeAction::Updated);
        assert_eq!(ChangeAction::parse("Deleted"), ChangeAction::Deleted);
        assert_eq!(
            ChangeAction::parse("Merged"),
            ChangeAction::Other("Merged".into())
        );
    }
}
