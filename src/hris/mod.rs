//! HR sources (Workday, BambooHR, files) normalized into [`Employee`] records.

mod employee;

pub use employee::{Employee, EmploymentStatus};
