//! Simulators of the Workday and BambooHR wire formats, served over HTTP on loopback, seeded from
//! the operator's own [`Employee`](crate::operator_hris::Employee) list.
//!
//! Both share: a [`Roster`] tests change while the server runs (hire, change title, terminate,
//! delete), per-route [`CallCounts`], scripted or random faults ([`HrisFault`]: 429 and 503 with
//! `Retry-After`, other statuses, a cut-off JSON body), and latency. [`generate_employees`] makes a
//! deterministic synthetic organisation for demos and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use opal_sims::hris::{generate_employees, workday::{WorkdaySim, WorkdaySimConfig}};
//! let sim = WorkdaySim::start(generate_employees(300, 1), WorkdaySimConfig::default()).await?;
//! let config = sim.client_config(); // baseUrl, tenant, report and its column aliases
//! # drop(config);
//! # Ok(()) }
//! ```

pub mod bamboohr;
mod control;
mod generate;
mod roster;
pub mod workday;

pub use control::{CallCounts, FaultRates, HrisFault};
pub use generate::{FIRST_EMPLOYEE_ID, generate_employees};
pub use roster::Roster;
