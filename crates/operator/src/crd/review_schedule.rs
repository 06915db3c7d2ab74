//! `ReviewSchedule`: recurring Opal user access reviews (UARs).

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;

/// Five cron fields (minute hour day-of-month month day-of-week); each is `*`, a number or
/// name, a range, a list, or any of those with a `/step`.
const CRON_RULE: &str = r"self.matches('^(\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?(,(\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?)*\\s+(\\*|(1?[0-9]|2[0-3])(-(1?[0-9]|2[0-3]))?)(/[0-9]+)?(,(\\*|(1?[0-9]|2[0-3])(-(1?[0-9]|2[0-3]))?)(/[0-9]+)?)*\\s+(\\*|\\?|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?(,(\\*|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?)*\\s+(\\*|([1-9]|1[0-2]|[A-Za-z]{3})(-([1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]+)?(,(\\*|([1-9]|1[0-2]|[A-Za-z]{3})(-([1-9]|1[0-2]|[A-Za-z]{3}))?)(/[0-9]+)?)*\\s+(\\*|\\?|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]+)?(,(\\*|([0-7]|[A-Za-z]{3})(-([0-7]|[A-Za-z]{3}))?)(/[0-9]+)?)*$')";

/// Launches an Opal access review on a schedule and follows it to its deadline.
///
/// Opal's API creates, lists and reads reviews but exposes no completion or decision data; the
/// status says plainly what is unknown.
// Each `printcolumn(...)` repeats the same keys, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "opal-operator.io",
    version = "v1alpha1",
    kind = "ReviewSchedule",
    plural = "reviewschedules",
    shortname = "rvs",
    category = "opal",
    namespaced,
    status = "ReviewScheduleStatus",
    doc = "Recurring Opal user access reviews: schedule, scope, reviewers, deadline, reminders, escalation and outcome sinks.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Time-Zone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Next-Run", type_ = "string", json_path = ".status.nextRun"),
    printcolumn(name = "Last-Run", type_ = "date", json_path = ".status.lastRun"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReviewScheduleSpec {
    /// Standard five-field cron expression (minute hour day-of-month month day-of-week),
    /// evaluated in `timeZone`; e.g. `0 9 1 1,4,7,10 *` for quarterly at 09:00.
    #[schemars(length(min = 9, max = 128))]
    #[x_kube(validation = Rule::new(CRON_RULE).message("schedule must be a five-field cron expression, e.g. '0 9 1 */3 *'"))]
    pub schedule: String,
    /// IANA time zone the schedule and the review's deadline are evaluated in.
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,
    /// What the review covers; an empty scope covers everything Opal would include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ReviewScope>,
    /// How Opal assigns reviewers.
    #[serde(default)]
    pub reviewer_assignment: ReviewerAssignment,
    /// Time reviewers have, as days or hours such as `14d` or `72h`.
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,3}(d|h)$"))]
    pub deadline: String,
    /// Reminders Opal sends before the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminders: Option<ReminderSpec>,
    /// What happens when a review is past its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationSpec>,
    /// Sinks (channels named in the operator config) that receive each review's results.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub outcomes: Vec<OutcomeSink>,
    /// Whether reviewers may review their own access.
    #[serde(default)]
    pub self_review_allowed: bool,
    /// Whether Opal applies each decision as soon as it is made.
    #[serde(default)]
    pub instantly_action_reviews: bool,
    /// Whether Opal notifies reviewers when they are assigned.
    #[serde(default = "default_true")]
    pub notify_reviewers: bool,
    /// Stop launching new reviews; running ones continue.
    #[serde(default)]
    pub suspend: bool,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_true() -> bool {
    true
}

/// How Opal assigns reviewers: `Manually`, `ByOwningTeamAdmin`, `ByOwningTeamAdminAll`,
/// `ByManager` (default), `ByApprovers` or `ByApproversAll`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReviewerAssignment {
    Manually,
    ByOwningTeamAdmin,
    ByOwningTeamAdminAll,
    #[default]
    ByManager,
    ByApprovers,
    ByApproversAll,
}

/// The slice of access a review covers, as Opal's review scope.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewScope {
    /// Objects carrying these Opal tags.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub tags: Vec<TagSelector>,
    /// Objects whose names contain any of these strings.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 512)))]
    pub names: Vec<String>,
    /// Opal app IDs.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    pub apps: Vec<String>,
    /// Opal group types, e.g. `OKTA_GROUP`.
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(max = 64)))]
    pub group_types: Vec<String>,
    /// Opal resource types, e.g. `AWS_IAM_ROLE`.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    pub resource_types: Vec<String>,
    /// Users whose access is reviewed, by email.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 254)))]
    pub users: Vec<String>,
    /// `Any` (default): an object matching any filter is in scope; `All`: it must match all.
    #[serde(default)]
    pub filter_operator: FilterOperator,
    /// Whether group bindings are included.
    #[serde(default)]
    pub include_group_bindings: bool,
}

/// An Opal tag; an omitted value matches any value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TagSelector {
    /// Tag key.
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    /// Tag value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub value: Option<String>,
}

/// `Any` (default) or `All`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FilterOperator {
    #[default]
    Any,
    All,
}

/// Reminders before the deadline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReminderSpec {
    /// Days before the deadline on which reviewers are reminded, e.g. `[7, 3, 1, 0]`.
    #[schemars(length(min = 1, max = 10), inner(range(min = 0, max = 365)))]
    pub days_before_deadline: Vec<i32>,
    /// Whether reviewers' managers are copied on reminders.
    #[serde(default)]
    pub include_manager: bool,
}

/// Escalation of overdue reviews to the reviewer's manager (from the HR system).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EscalationSpec {
    /// Hours past the deadline before escalating.
    #[schemars(range(min = 1, max = 8760))]
    pub after_hours: i32,
    /// The notification channel used to reach managers.
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
}

/// A sink that receives a review's results.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeSink {
    /// The channel name in the operator config.
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
    /// `Ticket` (open or close Jira/ServiceNow tickets), `Cmdb` (update each reviewed item's
    /// ServiceNow CMDB record) or `Export` (Snowflake or Splunk).
    pub kind: OutcomeKind,
}

/// `Ticket`, `Cmdb` or `Export`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Ticket,
    Cmdb,
    Export,
}

/// Schedule state and the campaigns launched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewScheduleStatus {
    /// Current observations: `Ready` and `Synced`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the next review will launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    /// When the last review launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
    /// The last `opal-operator.io/run-now` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// Reviews not yet past their deadline or escalated.
    #[serde(default)]
    pub active_campaigns: Vec<Campaign>,
    /// Earlier reviews, newest first (bounded).
    #[serde(default)]
    pub history: Vec<Campaign>,
}

/// One review launched in Opal.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    /// Opal's UAR ID.
    pub uar_id: String,
    /// The review's name in Opal.
    pub name: String,
    /// When it launched.
    pub started_at: DateTime<Utc>,
    /// Its deadline.
    pub deadline: DateTime<Utc>,
    /// `Running`, `PastDue`, `Escalated` or `Unknown`.
    pub state: CampaignState,
    /// What is known of its progress; Opal's API exposes no completion data.
    #[serde(default)]
    pub progress: String,
}

/// `Running`, `PastDue`, `Escalated` or `Unknown`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CampaignState {
    Running,
    PastDue,
    Escalated,
    Unknown,
}
