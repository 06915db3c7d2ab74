//! The people an HR simulator serves, changeable while it runs (hire, change title, terminate,
//! delete), with the change times BambooHR's changed-since feed reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, NaiveDate, Utc};

use crate::operator_hris::{Employee, EmploymentStatus};

/// One person and when the record was created and last changed.
#[derive(Clone, Debug)]
pub(crate) struct RosterEntry {
    pub(crate) employee: Employee,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) changed_at: DateTime<Utc>,
}

/// What the changed-since feed reports for one employee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RosterChange {
    Inserted,
    Updated,
    Deleted,
}

#[derive(Debug, Default)]
pub(crate) struct RosterState {
    pub(crate) entries: BTreeMap<String, RosterEntry>,
    deleted: BTreeMap<String, DateTime<Utc>>,
}

/// The shared, mutable HR data of a simulator. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Roster {
    state: Arc<Mutex<RosterState>>,
}

impl Roster {
    /// A roster holding `employees` (a later duplicate ID replaces an earlier one).
    pub fn new(employees: Vec<Employee>) -> Self {
        let now = Utc::now();
        let entries = employees
            .into_iter()
            .map(|employee| {
                (
                    employee.id.clone(),
                    RosterEntry {
                        employee,
                        created_at: now,
                        changed_at: now,
                    },
                )
            })
            .collect();
        Self {
            state: Arc::new(Mutex::new(RosterState {
                entries,
                deleted: BTreeMap::new(),
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, RosterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everyone, sorted by ID.
    pub fn employees(&self) -> Vec<Employee> {
        self.lock()
            .entries
            .values()
            .map(|entry| entry.employee.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Employee> {
        self.lock()
            .entries
            .get(id)
            .map(|entry| entry.employee.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a person (or replaces the record with that ID, as a rehire).
    pub fn hire(&self, employee: Employee) {
        let now = Utc::now();
        let mut state = self.lock();
        state.deleted.remove(&employee.id);
        state.entries.insert(
            employee.id.clone(),
            RosterEntry {
                employee,
                created_at: now,
                changed_at: now,
            },
        );
    }

    /// Changes one record; false when the ID is unknown.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Employee)) -> bool {
        let mut state = self.lock();
        match state.entries.get_mut(id) {
            Some(entry) => {
                change(&mut entry.employee);
                entry.changed_at = Utc::now();
                true
            }
            None => false,
        }
    }

    pub fn change_title(&self, id: &str, title: &str) -> bool {
        self.update(id, |employee| employee.title = Some(title.to_owned()))
    }

    /// Marks the person terminated as of `on` (they stay listed, as HR systems keep them).
    pub fn terminate(&self, id: &str, on: NaiveDate) -> bool {
        self.update(id, |employee| {
            employee.status = EmploymentStatus::Terminated;
            employee.termination_date = Some(on);
        })
    }

    /// Deletes the record entirely (BambooHR reports it as `Deleted`).
    pub fn remove(&self, id: &str) -> bool {
        let mut state = self.lock();
        let removed = state.entries.remove(id).is_some();
        if removed {
            state.deleted.insert(id.to_owned(), Utc::now());
        }
        removed
    }

    /// Records created, changed or deleted strictly after `since`, with the time of the change.
    pub(crate) fn changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Vec<(String, RosterChange, DateTime<Utc>)> {
        let state = self.lock();
        let mut changes: Vec<_> = state
            .entries
            .iter()
            .filter_map(|(id, entry)| {
                if entry.created_at > since {
                    Some((id.clone(), RosterChange::Inserted, entry.changed_at))
                } else if entry.changed_at > since {
                    Some((id.clone(), RosterChange::Updated, entry.changed_at))
                } else {
                    None
                }
            })
            .collect();
        changes.extend(
            state
                .deleted
                .iter()
                .filter(|(_, at)| **at > since)
                .map(|(id, at)| (id.clone(), RosterChange::Deleted, *at)),
        );
        changes
    }
}
