//! Employee selectors, compiled once where the spec is read.

use regex::{Regex, RegexBuilder};

use crate::Employee;

/// Why a selector cannot be used; `at` names the offending part of the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{at}: invalid regular expression: {message}")]
    InvalidRegex { at: String, message: String },
}

/// One requirement on an employee attribute. Values compare case-insensitively.
#[derive(Clone, Debug)]
pub enum Requirement {
    Equals { key: String, value: String },
    In { key: String, values: Vec<String> },
    NotIn { key: String, values: Vec<String> },
    Exists { key: String },
    DoesNotExist { key: String },
    Matches { key: String, pattern: Regex },
}

impl Requirement {
    pub fn equals(key: &str, value: &str) -> Self {
        Requirement::Equals {
            key: key.to_owned(),
            value: value.to_lowercase(),
        }
    }

    pub fn one_of(key: &str, values: &[String]) -> Self {
        Requirement::In {
            key: key.to_owned(),
            values: lowered(values),
        }
    }

    pub fn none_of(key: &str, values: &[String]) -> Self {
        Requirement::NotIn {
            key: key.to_owned(),
            values: lowered(values),
        }
    }

    /// The attribute matches `source` whole, case-insensitively. `at` names the spec part for
    /// the error.
    pub fn matches(key: &str, source: &str, at: String) -> Result<Self, SelectorError> {
        let pattern = RegexBuilder::new(&format!("^(?:{source})$"))
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|error| SelectorError::InvalidRegex {
                at,
                message: error.to_string(),
            })?;
        Ok(Requirement::Matches {
            key: key.to_owned(),
            pattern,
        })
    }
}

fn lowered(values: &[String]) -> Vec<String> {
    values.iter().map(|v| v.to_lowercase()).collect()
}

/// A selector ready to test employees: every requirement must hold.
#[derive(Clone, Debug)]
pub struct CompiledSelector {
    requirements: Vec<Requirement>,
}

impl CompiledSelector {
    pub fn new(requirements: Vec<Requirement>) -> Self {
        Self { requirements }
    }

    /// The first equality requirement, usable to narrow candidates through an index.
    pub fn equality_hint(&self) -> Option<(&str, &str)> {
        self.requirements
            .iter()
            .find_map(|requirement| match requirement {
                Requirement::Equals { key, value } => Some((key.as_str(), value.as_str())),
                _ => None,
            })
    }

    pub fn matches(&self, employee: &Employee) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals { key, value } => {
                    attribute_equals(employee.attribute(key), value)
                }
                Requirement::In { key, values } => values
                    .iter()
                    .any(|value| attribute_equals(employee.attribute(key), value)),
                Requirement::NotIn { key, values } => !values
                    .iter()
                    .any(|value| attribute_equals(employee.attribute(key), value)),
                Requirement::Exists { key } => {
                    employee.attribute(key).is_some_and(|v| !v.is_empty())
                }
                Requirement::DoesNotExist { key } => {
                    employee.attribute(key).is_none_or(str::is_empty)
                }
                Requirement::Matches { key, pattern } => employee
                    .attribute(key)
                    .is_some_and(|value| pattern.is_match(value)),
            })
    }
}

/// `lowered` is already lower-case.
fn attribute_equals(attribute: Option<&str>, lowered: &str) -> bool {
    attribute.is_some_and(|value| {
        if value.is_ascii() {
            value.eq_ignore_ascii_case(lowered)
        } else {
            value.to_lowercase() == lowered
        }
    })
}
