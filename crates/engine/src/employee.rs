//! The one normalized employee record every HR source produces, as the planner reads it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Employment status as the HR system reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmploymentStatus {
    /// Employed (or hired with a future start date; see `start_date`).
    Active,
    /// On leave: still employed, but does not match RoleMappings.
    OnLeave,
    /// Terminated: offboarding applies from `termination_date`.
    Terminated,
}

/// One person from the HR system, normalized across Workday, BambooHR and files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Employee {
    /// The HR system's stable employee ID.
    pub id: String,
    /// Work email; the identity link to the Opal user (compared case-insensitively).
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_email: Option<String>,
    pub status: EmploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<NaiveDate>,
    /// Any further HR fields, by name; selectors address them as `custom.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

impl Employee {
    /// The value of a selector attribute key (see `crd::EmployeeSelector`), if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        match key {
            "id" => Some(&self.id),
            "email" => Some(&self.email),
            "department" => self.department.as_deref(),
            "title" => self.title.as_deref(),
            "location" => self.location.as_deref(),
            "costCenter" => self.cost_center.as_deref(),
            "employmentType" => self.employment_type.as_deref(),
            "managerId" => self.manager_id.as_deref(),
            "managerEmail" => self.manager_email.as_deref(),
            "status" => Some(match self.status {
                EmploymentStatus::Active => "Active",
                EmploymentStatus::OnLeave => "OnLeave",
                EmploymentStatus::Terminated => "Terminated",
            }),
            other => other
                .strip_prefix("custom.")
                .and_then(|field| self.custom.get(field))
                .map(String::as_str),
        }
    }
}
