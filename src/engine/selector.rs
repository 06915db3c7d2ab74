//! Employee selectors compiled once per plan.

use regex::{Regex, RegexBuilder};

use crate::crd::{EmployeeSelector, SelectorOperator};
use crate::engine::Employee;

/// Why a selector cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions[{index}] ({key}): invalid regular expression: {message}")]
    InvalidRegex {
        index: usize,
        key: String,
        message: String,
    },
}

enum Requirement {
    Equals { key: String, value: String },
    In { key: String, values: Vec<String> },
    NotIn { key: String, values: Vec<String> },
    Exists { key: String },
    DoesNotExist { key: String },
    Matches { key: String, pattern: Regex },
}

/// A selector ready to test employees. Values compare case-insensitively; `Matches` is
/// anchored at both ends and case-insensitive.
pub struct CompiledSelector {
    requirements: Vec<Requirement>,
}

impl CompiledSelector {
    pub fn compile(selector: &EmployeeSelector) -> Result<Self, SelectorError> {
        let mut requirements =
            Vec::with_capacity(selector.match_labels.len() + selector.match_expressions.len());
        for (key, value) in &selector.match_labels {
            requirements.push(Requirement::Equals {
                key: key.clone(),
                value: value.to_lowercase(),
            });
        }
        for (index, expression) in selector.match_expressions.iter().enumerate() {
            let key = expression.key.clone();
            let lowered = || expression.values.iter().map(|v| v.to_lowercase()).collect();
            requirements.push(match expression.operator {
                SelectorOperator::In => Requirement::In {
                    key,
                    values: lowered(),
                },
                SelectorOperator::NotIn => Requirement::NotIn {
                    key,
                    values: lowered(),
                },
                SelectorOperator::Exists => Requirement::Exists { key },
                SelectorOperator::DoesNotExist => Requirement::DoesNotExist { key },
                SelectorOperator::Matches => {
                    let source = expression.values.first().map(String::as_str).unwrap_or("");
                    let pattern = RegexBuilder::new(&format!("^(?:{source})$"))
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|error| SelectorError::InvalidRegex {
                            index,
                            key: key.clone(),
                            message: error.to_string(),
                        })?;
                    Requirement::Matches { key, pattern }
                }
            });
        }
        Ok(Self { requirements })
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
