//! Column mappings: which column (CSV header, JSON key, Workday report alias, BambooHR field)
//! holds which [`Employee`] field, and the conversion of one record into an employee.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::error::RowProblem;
use crate::engine::{Employee, EmploymentStatus};

/// Column names per employee field. Every field is optional: an omitted one uses the source's
/// default (files: the employee field names such as `email`, `costCenter`, `startDate`; Workday
/// reports: `Employee_ID`, `Email`, `Start_Date`, …; BambooHR: `workEmail`, `jobTitle`,
/// `supervisorEId`, …). A column absent from the data leaves the field empty.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ColumnMapping {
    pub id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// "First Last", split at the first space when first and last name are not both present.
    pub full_name: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub location: Option<String>,
    pub cost_center: Option<String>,
    pub employment_type: Option<String>,
    pub manager_id: Option<String>,
    pub manager_email: Option<String>,
    /// Employment status, read with `statusValues`. Without one, an employee whose termination
    /// date has passed is terminated and everyone else is active.
    pub status: Option<String>,
    /// A second column that marks an otherwise active employee as on leave (`onLeaveValues`).
    pub on_leave: Option<String>,
    pub start_date: Option<String>,
    pub termination_date: Option<String>,
    /// Further fields: `custom.<name>` in selectors ← column. With the employee-field preset
    /// (files), columns already named `custom.<name>` need no entry here.
    pub custom: BTreeMap<String, String>,
    pub status_values: Option<StatusValues>,
    /// Values of the `onLeave` column that mean "on leave" (compared case-insensitively).
    pub on_leave_values: Option<Vec<String>>,
    /// A chrono format such as `%m/%d/%Y` for dates that are not ISO 8601 (`YYYY-MM-DD…`).
    pub date_format: Option<String>,
}

/// Values of the status column, compared case-insensitively after trimming. A value in none of
/// the lists makes the record invalid.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusValues {
    pub active: Vec<String>,
    pub on_leave: Vec<String>,
    pub terminated: Vec<String>,
}

impl Default for StatusValues {
    fn default() -> Self {
        let list = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
        Self {
            active: list(&["active", "employed", "a"]),
            on_leave: list(&["on leave", "leave of absence", "leave", "onleave"]),
            terminated: list(&["terminated", "inactive", "former", "t"]),
        }
    }
}

fn default_on_leave_values() -> Vec<String> {
    [
        "on leave",
        "leave of absence",
        "leave",
        "onleave",
        "true",
        "yes",
        "1",
    ]
    .iter()
    .map(|v| (*v).to_owned())
    .collect()
}

/// The default column names of one kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnPreset {
    /// The [`Employee`] field names in camelCase (`id`, `email`, `firstName`, `costCenter`, …).
    EmployeeFields,
    /// A Workday RaaS report with the common alias convention (`Employee_ID`, `Email`,
    /// `Manager_ID`, `Start_Date`, `Termination_Date`, `Cost_Center`, …).
    WorkdayReport,
    /// BambooHR field names (`id`, `workEmail`, `jobTitle`, `supervisorEId`, `hireDate`, …).
    BambooHr,
}

impl ColumnPreset {
    fn defaults(self) -> ColumnMapping {
        let some = |name: &str| Some(name.to_owned());
        match self {
            Self::EmployeeFields => ColumnMapping {
                id: some("id"),
                email: some("email"),
                first_name: some("firstName"),
                last_name: some("lastName"),
                full_name: None,
                department: some("department"),
                title: some("title"),
                location: some("location"),
                cost_center: some("costCenter"),
                employment_type: some("employmentType"),
                manager_id: some("managerId"),
                manager_email: some("managerEmail"),
                status: some("status"),
                start_date: some("startDate"),
                termination_date: some("terminationDate"),
                ..ColumnMapping::default()
            },
            Self::WorkdayReport => ColumnMapping {
                id: some("Employee_ID"),
                email: some("Email"),
                full_name: some("Full_Name"),
                department: some("Team_Name"),
                location: some("Location"),
                cost_center: some("Cost_Center"),
                employment_type: some("Employee_Type"),
                manager_id: some("Manager_ID"),
                start_date: some("Start_Date"),
                termination_date: some("Termination_Date"),
                ..ColumnMapping::default()
            },
            Self::BambooHr => ColumnMapping {
                id: some("id"),
                email: some("workEmail"),
                first_name: some("firstName"),
                last_name: some("lastName"),
                department: some("department"),
                title: some("jobTitle"),
                location: some("location"),
                employment_type: some("employmentHistoryStatus"),
                manager_id: some("supervisorEId"),
                manager_email: some("supervisorEmail"),
                status: some("status"),
                on_leave: some("employmentHistoryStatus"),
                start_date: some("hireDate"),
                termination_date: some("terminationDate"),
                ..ColumnMapping::default()
            },
        }
    }
}

/// A mapping with the preset applied: the concrete column of every mapped field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Columns {
    pub(crate) id: String,
    pub(crate) email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    department: Option<String>,
    title: Option<String>,
    location: Option<String>,
    cost_center: Option<String>,
    employment_type: Option<String>,
    manager_id: Option<String>,
    manager_email: Option<String>,
    pub(crate) status: Option<String>,
    on_leave: Option<String>,
    start_date: Option<String>,
    termination_date: Option<String>,
    custom: BTreeMap<String, String>,
    /// Columns named `<prefix><name>` become `custom.<name>` without being mapped one by one.
    custom_prefix: Option<&'static str>,
    active_values: BTreeSet<String>,
    on_leave_status_values: BTreeSet<String>,
    terminated_values: BTreeSet<String>,
    on_leave_values: BTreeSet<String>,
    date_format: Option<String>,
}

fn normalized(values: &[String]) -> BTreeSet<String> {
    values.iter().map(|v| v.trim().to_lowercase()).collect()
}

impl Columns {
    pub(crate) fn resolve(mapping: &ColumnMapping, preset: ColumnPreset) -> Self {
        let defaults = preset.defaults();
        let pick = |given: &Option<String>, default: Option<String>| {
            given.clone().or(default).filter(|name| !name.is_empty())
        };
        let status_values = mapping.status_values.clone().unwrap_or_default();
        Self {
            id: pick(&mapping.id, defaults.id).unwrap_or_else(|| "id".to_owned()),
            email: pick(&mapping.email, defaults.email),
            first_name: pick(&mapping.first_name, defaults.first_name),
            last_name: pick(&mapping.last_name, defaults.last_name),
            full_name: pick(&mapping.full_name, defaults.full_name),
            department: pick(&mapping.department, defaults.department),
            title: pick(&mapping.title, defaults.title),
            location: pick(&mapping.location, defaults.location),
            cost_center: pick(&mapping.cost_center, defaults.cost_center),
            employment_type: pick(&mapping.employment_type, defaults.employment_type),
            manager_id: pick(&mapping.manager_id, defaults.manager_id),
            manager_email: pick(&mapping.manager_email, defaults.manager_email),
            status: pick(&mapping.status, defaults.status),
            on_leave: pick(&mapping.on_leave, defaults.on_leave),
            start_date: pick(&mapping.start_date, defaults.start_date),
            termination_date: pick(&mapping.termination_date, defaults.termination_date),
            custom: mapping.custom.clone(),
            custom_prefix: (preset == ColumnPreset::EmployeeFields).then_some("custom."),
            active_values: normalized(&status_values.active),
            on_leave_status_values: normalized(&status_values.on_leave),
            terminated_values: normalized(&status_values.terminated),
            on_leave_values: normalized(
                &mapping
                    .on_leave_values
                    .clone()
                    .unwrap_or_else(default_on_leave_values),
            ),
            date_format: mapping.date_format.clone(),
        }
    }

    /// Every distinct column name the mapping reads, in a stable order.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = BTreeSet::new();
        names.insert(self.id.clone());
        for column in [
            &self.email,
            &self.first_name,
            &self.last_name,
            &self.full_name,
            &self.department,
            &self.title,
            &self.location,
            &self.cost_center,
            &self.employment_type,
            &self.manager_id,
            &self.manager_email,
            &self.status,
            &self.on_leave,
            &self.start_date,
            &self.termination_date,
        ]
        .into_iter()
        .flatten()
        {
            names.insert(column.clone());
        }
        names.extend(self.custom.values().cloned());
        names.into_iter().collect()
    }
}

/// One record: column name → raw text.
pub(crate) type Record = BTreeMap<String, String>;

/// The trimmed value of a column, `None` when absent or blank.
fn value<'a>(record: &'a Record, column: &str) -> Option<&'a str> {
    record
        .get(column)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

/// Turns a JSON object into column → text: strings as they are, numbers and booleans printed,
/// `null` as absent, nested objects flattened to `parent.child` columns, arrays as compact JSON.
pub(crate) fn json_record(object: &serde_json::Map<String, serde_json::Value>) -> Record {
    let mut record = Record::new();
    flatten_into(&mut record, "", object);
    record
}

fn flatten_into(
    record: &mut Record,
    prefix: &str,
    object: &serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in object {
        let column = format!("{prefix}{key}");
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(text) => {
                record.insert(column, text.clone());
            }
            serde_json::Value::Object(inner) => flatten_into(record, &format!("{column}."), inner),
            serde_json::Value::Bool(_)
            | serde_json::Value::Number(_)
            | serde_json::Value::Array(_) => {
                record.insert(column, value.to_string());
            }
        }
    }
}

/// Parses a date: the configured format if any, else ISO 8601 with optional time or offset
/// (`2024-03-01`, `2024-03-01T09:00:00Z`, Workday's `2024-03-01-08:00`). BambooHR's empty date
/// `0000-00-00` is no date.
pub(crate) fn parse_date(value: &str, format: Option<&str>) -> Result<Option<NaiveDate>, String> {
    let value = value.trim();
    if value.is_empty() || value.starts_with("0000-00-00") {
        return Ok(None);
    }
    if let Some(format) = format {
        return NaiveDate::parse_from_str(value, format)
            .map(Some)
            .map_err(|err| format!("{value:?} does not match date format {format:?}: {err}"));
    }
    let (date, rest) = match (value.get(..10), value.get(10..)) {
        (Some(date), Some(rest)) => (date, rest),
        _ => return Err(format!("not a date: {value:?}")),
    };
    let suffix_ok = rest.is_empty() || rest.starts_with(['T', 't', ' ', 'Z', '+', '-']);
    match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        Ok(parsed) if suffix_ok => Ok(Some(parsed)),
        _ => Err(format!("not a date: {value:?}")),
    }
}

/// Splits "First Middle Last" into ("First", "Middle Last").
pub(crate) fn split_full_name(full_name: &str) -> (String, String) {
    let full_name = full_name.trim();
    match full_name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_owned(), last.trim().to_owned()),
        None => (full_name.to_owned(), String::new()),
    }
}

/// Builds one employee from a record. `today` decides the status when no status column exists.
pub(crate) fn employee_from_record(
    record: &Record,
    columns: &Columns,
    location: &str,
    today: NaiveDate,
) -> Result<Employee, RowProblem> {
    let id = value(record, &columns.id).map(str::to_owned);
    let problem = |field: &str, problem: String| RowProblem {
        location: location.to_owned(),
        employee_id: id.clone(),
        field: Some(field.to_owned()),
        problem,
    };
    let Some(employee_id) = id.clone() else {
        return Err(problem(&columns.id, "missing employee ID".into()));
    };
    let get = |column: &Option<String>| {
        column
            .as_deref()
            .and_then(|column| value(record, column))
            .map(str::to_owned)
    };
    let email = get(&columns.email).unwrap_or_default();
    if !email.is_empty() && !email.contains('@') {
        let column = columns.email.as_deref().unwrap_or_default();
        return Err(problem(column, format!("not an email address: {email:?}")));
    }
    let date = |column: &Option<String>| -> Result<Option<NaiveDate>, RowProblem> {
        match column.as_deref() {
            Some(name) => match value(record, name) {
                Some(value) => parse_date(value, columns.date_format.as_deref())
                    .map_err(|message| problem(name, message)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    };
    let start_date = date(&columns.start_date)?;
    let termination_date = date(&columns.termination_date)?;
    let status = match columns.status.as_deref() {
        Some(column) => match value(record, column) {
            Some(value) => Some(
                columns
                    .status_of(value)
                    .ok_or_else(|| problem(column, format!("unknown status value {value:?}")))?,
            ),
            None => None,
        },
        None => None,
    };
    let mut status = status.unwrap_or(match termination_date {
        Some(date) if date <= today => EmploymentStatus::Terminated,
        _ => EmploymentStatus::Active,
    });
    if status == EmploymentStatus::Active
        && get(&columns.on_leave)
            .is_some_and(|value| columns.on_leave_values.contains(&value.to_lowercase()))
    {
        status = EmploymentStatus::OnLeave;
    }
    let (mut first_name, mut last_name) = (
        get(&columns.first_name).unwrap_or_default(),
        get(&columns.last_name).unwrap_or_default(),
    );
    if first_name.is_empty()
        && last_name.is_empty()
        && let Some(full_name) = get(&columns.full_name)
    {
        (first_name, last_name) = split_full_name(&full_name);
    }
    let mut custom: BTreeMap<String, String> = BTreeMap::new();
    if let Some(prefix) = columns.custom_prefix {
        for (column, text) in record {
            if let Some(name) = column.strip_prefix(prefix) {
                let text = text.trim();
                if !name.is_empty() && !text.is_empty() {
                    custom.insert(name.to_owned(), text.to_owned());
                }
            }
        }
    }
    for (name, column) in &columns.custom {
        if let Some(text) = value(record, column) {
            custom.insert(name.clone(), text.to_owned());
        }
    }
    Ok(Employee {
        id: employee_id,
        email,
        first_name,
        last_name,
        department: get(&columns.department),
        title: get(&columns.title),
        location: get(&columns.location),
        cost_center: get(&columns.cost_center),
        employment_type: get(&columns.employment_type),
        manager_id: get(&columns.manager_id),
        manager_email: get(&columns.manager_email),
        status,
        start_date,
        termination_date,
        custom,
    })
}

impl Columns {
    fn status_of(&self, value: &str) -> Option<EmploymentStatus> {
        let value = value.trim().to_lowercase();
        if self.active_values.contains(&value) {
            Some(EmploymentStatus::Active)
        } else if self.on_leave_status_values.contains(&value) {
            Some(EmploymentStatus::OnLeave)
        } else if self.terminated_values.contains(&value) {
            Some(EmploymentStatus::Terminated)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).expect("date")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn parses_iso_dates_with_times_and_offsets() {
        assert_eq!(parse_date("2024-03-01", None), Ok(Some(date(2024, 3, 1))));
        assert_eq!(
            parse_date("2024-03-01T09:00:00Z", None),
            Ok(Some(date(2024, 3, 1)))
        );
        assert_eq!(
            parse_date("2024-03-01-08:00", None),
            Ok(Some(date(2024, 3, 1)))
        );
        assert_eq!(parse_date(" 0000-00-00 ", None), Ok(None));
        assert_eq!(parse_date("", None), Ok(None));
        assert!(parse_date("2024-13-01", None).is_err());
        assert!(parse_date("2024-03-01x", None).is_err());
        assert!(parse_date("03/01/2024", None).is_err());
        assert_eq!(
            parse_date("03/01/2024", Some("%m/%d/%Y")),
            Ok(Some(date(2024, 3, 1)))
        );
        assert!(parse_date("2024-03-0é", None).is_err());
    }

    #[test]
    fn employee_fields_preset_reads_a_full_record() {
        let columns = Columns::resolve(
            &ColumnMapping {
                custom: BTreeMap::from([("level".to_owned(), "level".to_owned())]),
                ..ColumnMapping::default()
            },
            ColumnPreset::EmployeeFields,
        );
        let employee = employee_from_record(
            &record(&[
                ("id", " 17 "),
                ("email", "Ada@Example.com"),
                ("firstName", "Ada"),
                ("lastName", "Lovelace"),
                ("department", "Engineering"),
                ("title", "Engineer"),
                ("costCenter", "CC-1"),
                ("managerId", "3"),
                ("status", "On Leave"),
                ("startDate", "2020-01-02"),
                ("terminationDate", ""),
                ("level", "L5"),
            ]),
            &columns,
            "line 2",
            today(),
        )
        .expect("employee");
        assert_eq!(employee.id, "17");
        assert_eq!(employee.email, "Ada@Example.com");
        assert_eq!(employee.status, EmploymentStatus::OnLeave);
        assert_eq!(employee.start_date, Some(date(2020, 1, 2)));
        assert_eq!(employee.termination_date, None);
        assert_eq!(employee.cost_center.as_deref(), Some("CC-1"));
        assert_eq!(employee.manager_id.as_deref(), Some("3"));
        assert_eq!(employee.location, None);
        assert_eq!(employee.custom.get("level").map(String::as_str), Some("L5"));
    }

    #[test]
    fn status_is_derived_from_the_termination_date_without_a_status_column() {
        let columns = Columns::resolve(
            &ColumnMapping {
                status: Some(String::new()),
                ..ColumnMapping::default()
            },
            ColumnPreset::EmployeeFields,
        );
        assert!(columns.status.is_none());
        let status = |termination: &str| {
            employee_from_record(
                &record(&[("id", "1"), ("terminationDate", termination)]),
                &columns,
                "line 2",
                today(),
            )
            .expect("employee")
            .status
        };
        assert_eq!(status("2026-06-01"), EmploymentStatus::Terminated);
        assert_eq!(status("2026-06-02"), EmploymentStatus::Active);
        assert_eq!(status(""), EmploymentStatus::Active);
    }

    #[test]
    fn bamboohr_preset_maps_inactive_and_leave() {
        let columns = Columns::resolve(&ColumnMapping::default(), ColumnPreset::BambooHr);
        let read = |pairs: &[(&str, &str)]| {
            employee_from_record(&record(pairs), &columns, "employees[0]", today())
                .expect("employee")
        };
        let employee = read(&[
            ("id", "4"),
            ("workEmail", "x@y.z"),
            ("status", "Inactive"),
            ("terminationDate", "2025-01-31"),
            ("supervisorEId", "2"),
        ]);
        assert_eq!(employee.status, EmploymentStatus::Terminated);
        assert_eq!(employee.termination_date, Some(date(2025, 1, 31)));
        assert_eq!(employee.manager_id.as_deref(), Some("2"));
        let employee = read(&[
            ("id", "5"),
            ("status", "Active"),
            ("employmentHistoryStatus", "Leave of Absence"),
            ("terminationDate", "0000-00-00"),
        ]);
        assert_eq!(employee.status, EmploymentStatus::OnLeave);
        assert_eq!(employee.termination_date, None);
    }

    #[test]
    fn full_name_is_split_when_names_are_missing() {
        let columns = Columns::resolve(&ColumnMapping::default(), ColumnPreset::WorkdayReport);
        let employee = employee_from_record(
            &record(&[("Employee_ID", "21001"), ("Full_Name", "Logan  van McNeil")]),
            &columns,
            "Report_Entry[0]",
            today(),
        )
        .expect("employee");
        assert_eq!(
            (employee.first_name.as_str(), employee.last_name.as_str()),
            ("Logan", "van McNeil")
        );
    }

    #[test]
    fn bad_values_name_the_record_and_column() {
        let columns = Columns::resolve(&ColumnMapping::default(), ColumnPreset::EmployeeFields);
        let problem = |pairs: &[(&str, &str)]| {
            employee_from_record(&record(pairs), &columns, "line 9", today())
                .expect_err("invalid record")
        };
        let missing = problem(&[("email", "a@b.c")]);
        assert_eq!(missing.field.as_deref(), Some("id"));
        assert_eq!(missing.location, "line 9");
        let email = problem(&[("id", "1"), ("email", "Ada Lovelace")]);
        assert_eq!(email.field.as_deref(), Some("email"));
        assert_eq!(email.employee_id.as_deref(), Some("1"));
        let status = problem(&[("id", "1"), ("status", "retired?")]);
        assert_eq!(status.field.as_deref(), Some("status"));
        let start = problem(&[("id", "1"), ("startDate", "yesterday")]);
        assert_eq!(start.field.as_deref(), Some("startDate"));
    }

    #[test]
    fn names_lists_each_mapped_column_once() {
        let columns = Columns::resolve(&ColumnMapping::default(), ColumnPreset::BambooHr);
        let names = columns.names();
        assert!(names.contains(&"supervisorEId".to_owned()));
        assert_eq!(
            names
                .iter()
                .filter(|n| *n == "employmentHistoryStatus")
                .count(),
            1
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn date_parsing_never_panics(value in any::<String>(), format in proptest::option::of("[%a-zA-Z/ -]{0,12}")) {
            let _ = parse_date(&value, format.as_deref());
        }

        #[test]
        fn record_conversion_never_panics(values in proptest::collection::btree_map("[a-zA-Z]{1,16}", any::<String>(), 0..12)) {
            let columns = Columns::resolve(&ColumnMapping::default(), ColumnPreset::EmployeeFields);
            let _ = employee_from_record(&values, &columns, "fuzz", today());
        }
    }
}
