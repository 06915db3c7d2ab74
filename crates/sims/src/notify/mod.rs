//! Recording simulators of the outbound services: Slack (incoming webhook and Web API), Jira
//! Cloud and Jira Service Management, ServiceNow Table API, PagerDuty Events v2, Splunk HEC and a
//! signed-webhook receiver. Each serves the real paths, auth, bodies and status codes on
//! 127.0.0.1, records every request with the status it got, keeps the resulting state (posts,
//! issues, records, alerts, events) for assertions, and takes scripted faults (any status,
//! `Retry-After`, custom bodies such as Slack's `ok:false`, and answers lost after the request
//! took effect) as well as seeded random faults ([`FaultConfig`]: 429 with optional
//! `Retry-After`, server errors, lost answers) and latency, set per simulator on its
//! [`SimServer`].

pub mod jira;
pub mod pagerduty;
mod server;
pub mod servicenow;
pub mod slack;
pub mod splunk;
pub mod webhook;

pub use server::{
    DEFAULT_FAULT_SEED, Fault, FaultConfig, InjectedFault, RecordedRequest, SimServer,
};
