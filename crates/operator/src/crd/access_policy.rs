//! `AccessPolicy`: safety rails, offboarding, just-in-time request routing, resource settings,
//! incident response and tenancy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AccessTarget, Condition, EmployeeSelector, TargetRef, optional_enum};
use crate::engine::Sensitivity;

/// Least privilege, just-in-time routing and safety rails.
///
/// `safety`, `offboarding`, `incidentResponse` and `tenancy` shape the one global plan, so they
/// are honoured only from AccessPolicies in the operator's own namespace: a team can neither
/// grant itself the right to govern a target nor shield users from revocation. Policies in
/// other namespaces report what their namespace governs.
// Each `printcolumn(...)` repeats the same keys, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "opal-operator.io",
    version = "v1alpha1",
    kind = "AccessPolicy",
    plural = "accesspolicies",
    shortname = "ap",
    category = "opal",
    namespaced,
    status = "AccessPolicyStatus",
    doc = "Safety rails, offboarding, just-in-time request routing, resource settings and tenancy for Opal access.",
    printcolumn(
        name = "Mappings",
        type_ = "integer",
        json_path = ".status.governedMappings"
    ),
    printcolumn(
        name = "Targets",
        type_ = "integer",
        json_path = ".status.governedTargets"
    ),
    printcolumn(
        name = "Breaker",
        type_ = "string",
        json_path = ".status.breaker.state"
    ),
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
pub struct AccessPolicySpec {
    /// Circuit breaker, protected users and the HR flood gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetySpec>,
    /// What happens when HR marks someone terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offboarding: Option<OffboardingSpec>,
    /// Rules evaluated, in order, on pending Opal access requests; the first rule that matches
    /// decides.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub requests: Vec<RequestRule>,
    /// Desired Opal settings for groups and resources; drift is detected and fixed like drift
    /// on membership.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub resource_config: Vec<ResourceConfig>,
    /// How inbound alerts (SIEM, EDR) become Lockdowns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_response: Option<IncidentResponseSpec>,
    /// Which namespaces may govern which targets.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub tenancy: Vec<TenancyRule>,
}

/// Limits on what one sync may revoke, users never revoked, and the HR flood gate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SafetySpec {
    /// Trip the breaker when one sync would revoke more grants than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub max_revocations: Option<i32>,
    /// Trip the breaker when one sync would revoke more than this percentage of the governed
    /// grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_revocation_percent: Option<i32>,
    /// Email addresses of users the operator never revokes (lockdowns excepted).
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 254)))]
    pub protected_users: Vec<String>,
    /// Blocks every revocation when the HR snapshot looks wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hris_flood_gate: Option<HrisFloodGate>,
}

/// A failed, empty or shrunken HR snapshot blocks every revocation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HrisFloodGate {
    /// A snapshot with fewer employees than this is treated as broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub min_employees: Option<i32>,
    /// A snapshot that shrank by more than this percentage since the last good one is treated
    /// as broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_shrink_percent: Option<i32>,
}

/// Offboarding of terminated employees. `after` is required exactly when `when` is `After`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.when == 'After' ? has(self.after) : !has(self.after)").message("after is required when `when` is After, and only then"))]
pub struct OffboardingSpec {
    /// `Governed` (default): revoke the grants RoleMappings govern. `All`: revoke every Opal
    /// grant the user holds.
    #[serde(default)]
    pub revoke: OffboardingScope,
    /// When to revoke.
    #[serde(default)]
    pub when: OffboardingTiming,
    /// Delay after the termination date, as a Go duration such as `72h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("after must be a positive duration such as 24h or 90m"))]
    pub after: Option<String>,
    /// Notification channels (named in the operator config) told about each offboarding.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(max = 253)))]
    pub notify: Vec<String>,
    /// Open a ticket with the revoked access as evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketSpec>,
}

/// Which grants offboarding revokes: `Governed` (default) or `All`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OffboardingScope {
    #[default]
    Governed,
    All,
}

/// When offboarding revokes: `Immediately` (default) when HR marks the employee terminated,
/// `OnTerminationDate`, or `After` a delay past the termination date.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OffboardingTiming {
    #[default]
    Immediately,
    OnTerminationDate,
    After,
}

/// A ticket opened in a ticketing channel named in the operator config.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TicketSpec {
    /// The channel name (a Jira, Jira Service Management or ServiceNow channel).
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
}

/// One rule for pending access requests. `route` is required exactly when `action` is `Route`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.action == 'Route' ? has(self.route) : !has(self.route)").message("route is required when action is Route, and only then"))]
#[x_kube(validation = Rule::new("!has(self.grantAtMost) || self.action != 'Deny'").message("grantAtMost limits approvals; a Deny rule approves nothing"))]
pub struct RequestRule {
    /// The rule's name; it is quoted in the comment left on every request it decides.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the request must look like for this rule to apply; every given condition must hold.
    #[serde(default, rename = "match")]
    pub match_: RequestMatch,
    /// What to do with a matching request.
    pub action: RequestAction,
    /// Where to send a request this rule routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteSpec>,
    /// The longest access an approval under this rule gives (a Go duration such as `8h`). A
    /// request for longer, or indefinitely, is approved and each granted membership is then
    /// cut in Opal to end this long after the approval. Whatever the limit, a grant the
    /// operator approved that Opal still shows after its window (plus the operator's
    /// `requests.expiryGrace`) is removed and reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("grantAtMost must be a positive duration such as 8h"))]
    pub grant_at_most: Option<String>,
}

/// `AutoApprove` approves in Opal (only for a requester HR lists as active), `Deny` denies in
/// Opal, `Route` opens a ticket, incident or message and approves or denies in Opal when it
/// resolves.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestAction {
    AutoApprove,
    Deny,
    Route,
}

/// Conditions on a pending access request. An empty match applies to every request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatch {
    /// HR attributes the requester must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<EmployeeSelector>,
    /// Every requested target must be one of these (access levels are ignored here).
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub targets: Vec<AccessTarget>,
    /// Opal tags every requested target must carry (key to value; an empty value matches any).
    #[serde(default)]
    #[schemars(extend("maxProperties" = 32))]
    pub target_tags: BTreeMap<String, String>,
    /// Highest risk sensitivity a requested target may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<Sensitivity>")]
    pub max_sensitivity: Option<Sensitivity>,
    /// The requested duration must be at most this (a Go duration such as `8h`); an
    /// indefinite request never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("durationAtMost must be a positive duration such as 8h"))]
    pub duration_at_most: Option<String>,
    /// The requested duration must be above this (a Go duration), or indefinite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s')").message("durationAbove must be a duration such as 24h"))]
    pub duration_above: Option<String>,
    /// The request must arrive within these business hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHours>,
    /// The requester must be on call in PagerDuty when the rule is evaluated. A failed
    /// lookup counts as not on call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_on_call: Option<OnCallMatch>,
}

/// Being on call in PagerDuty: in any of the named escalation policies or schedules.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.escalationPolicyIds) + size(self.scheduleIds) > 0").message("name at least one escalation policy or schedule"))]
pub struct OnCallMatch {
    /// The PagerDuty channel in the operator config whose REST API key answers the lookup.
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
    /// PagerDuty escalation policy IDs.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 64)))]
    pub escalation_policy_ids: Vec<String>,
    /// PagerDuty schedule IDs.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 64)))]
    pub schedule_ids: Vec<String>,
    /// Only the first N escalation levels count (1 is the first responder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub max_escalation_level: Option<i32>,
}

/// A weekly window in a time zone, such as Monday to Friday 09:00–17:00 Europe/Berlin.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start < self.end").message("start must be before end"))]
pub struct BusinessHours {
    /// IANA time zone name, e.g. `America/New_York`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,
    /// Days of the week the window is open.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` (24-hour).
    #[schemars(length(max = 5), regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Closing time, `HH:MM` (24-hour), after `start`.
    #[schemars(
        length(max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
    )]
    pub end: String,
}

/// A day of the week, `Mon` to `Sun`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Where a routed request goes and who may answer it. The operator opens one ticket in the
/// channel per Opal request (found again by its label or `correlation_id` after a restart),
/// polls its approvals every pass (a Jira webhook only makes the poll come sooner), and carries
/// out the first eligible answer in Opal; answers from anyone else are noted on the ticket and
/// ignored.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.escalation) || !has(self.waitAtMost) || duration(self.escalation.after) < duration(self.waitAtMost)").message("escalation.after must be shorter than waitAtMost, or the request is denied before anyone is paged"))]
pub struct RouteSpec {
    /// A channel of the operator config: `jiraServiceManagement` (the JSM request's approval
    /// decides), `jira` with `decisions` (moving the issue to the approve or deny status
    /// decides, by whoever moved it) or `serviceNow` whose table has approvals, such as
    /// `sc_req_item` (its `sysapproval_approver` records decide).
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
    /// Emails of the people who may decide. With neither `approvers` nor `requesterManager`,
    /// anyone JSM lets answer may decide. Always: the decider must be an Opal user and not the
    /// requester.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(min = 3, max = 254)))]
    pub approvers: Vec<String>,
    /// The requester's manager in HR may decide.
    #[serde(default)]
    pub requester_manager: bool,
    /// How long the request may wait for an eligible answer (a Go duration such as `4h`); then
    /// it is denied in Opal with a comment and the ticket is closed. Unset: it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("waitAtMost must be a positive duration such as 4h"))]
    pub wait_at_most: Option<String>,
    /// Pages the on-call responders when the request has waited this long without an
    /// eligible answer; it keeps waiting (until `waitAtMost`, if set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<RouteEscalationSpec>,
}

/// One PagerDuty incident per waiting request, opened on the channel's `rest.serviceId` with
/// the request's ledger name as its incident key (so it is opened once), noting the ticket,
/// and resolved with the outcome when the request is decided.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteEscalationSpec {
    /// A `pagerDuty` channel in the operator config with `rest` credentials, `fromEmail` and
    /// `serviceId`.
    #[schemars(length(min = 1, max = 253))]
    pub pager_duty: String,
    /// How long the request waits without an eligible answer before the page (a Go duration
    /// such as `30m`).
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("escalation.after must be a positive duration such as 30m"))]
    pub after: String,
}

/// Desired Opal settings for a set of groups or resources.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.adminOwner) || has(self.visibility) || has(self.requestConfiguration) || has(self.requireMfaToApprove)").message("set at least one of adminOwner, visibility, requestConfiguration or requireMfaToApprove"))]
pub struct ResourceConfig {
    /// The groups and resources these settings apply to (access levels are ignored here).
    #[schemars(length(min = 1, max = 500))]
    pub targets: Vec<AccessTarget>,
    /// The Opal owner that administers the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_owner: Option<OwnerRef>,
    /// Who can see the targets in Opal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<VisibilitySpec>,
    /// How access to the targets is requested and approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_configuration: Option<RequestConfigurationSpec>,
    /// Whether approvers must use MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa_to_approve: Option<bool>,
}

/// An Opal owner (team) by name or ID. Exactly one of `name` and `id` must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.id)").message("exactly one of name or id must be set"))]
pub struct OwnerRef {
    /// The owner's name in Opal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub name: Option<String>,
    /// The owner's Opal ID (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub id: Option<String>,
}

/// Visibility in Opal. `visibleToGroups` is required exactly when `visibility` is `Limited`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.visibility == 'Limited' ? size(self.visibleToGroups) > 0 : size(self.visibleToGroups) == 0").message("visibleToGroups must be non-empty when visibility is Limited, and empty otherwise"))]
pub struct VisibilitySpec {
    /// `Global` (everyone) or `Limited` (members of `visibleToGroups`).
    pub visibility: Visibility,
    /// Groups whose members can see the targets when visibility is `Limited`.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub visible_to_groups: Vec<TargetRef>,
}

/// `Global` or `Limited`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    Global,
    Limited,
}

/// The default request configuration of a group or resource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestConfigurationSpec {
    /// Whether users may request access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_requests: Option<bool>,
    /// Whether requests are approved without review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approval: Option<bool>,
    /// Whether requesters must use MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa_to_request: Option<bool>,
    /// Whether requesters must link a support ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_support_ticket: Option<bool>,
    /// Longest duration a request may ask for, in minutes (-1 = indefinite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 525_960))]
    pub max_duration_minutes: Option<i32>,
    /// Duration suggested to requesters, in minutes (-1 = indefinite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 525_960))]
    pub recommended_duration_minutes: Option<i32>,
    /// Review stages, in order.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub reviewer_stages: Vec<ReviewerStageSpec>,
}

/// One review stage of a request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.requireManagerApproval || size(self.owners) > 0").message("a stage needs requireManagerApproval or at least one owner"))]
pub struct ReviewerStageSpec {
    /// Whether the requester's manager must approve.
    #[serde(default)]
    pub require_manager_approval: bool,
    /// `And`: every reviewer must approve; `Or` (default): any one suffices.
    #[serde(default)]
    pub operator: StageOperator,
    /// Owners whose members review this stage.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub owners: Vec<OwnerRef>,
}

/// `And` or `Or` (default).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StageOperator {
    And,
    #[default]
    Or,
}

/// A dot-separated path into an alert's JSON body (`result.user`, `users.0`): the shape both
/// `incidentResponse.userField` and the operator config's generic alert fields must have.
pub const ALERT_FIELD_PATH_PATTERN: &str = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$";
/// Longest alert field path.
pub const ALERT_FIELD_PATH_MAX_CHARS: usize = 256;

/// How inbound alerts (SIEM, EDR) become Lockdowns.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IncidentResponseSpec {
    /// Alert sources accepted: `Splunk`, `Datadog`, `Generic` (the signed JSON hook for EDR
    /// and other threat-detection tools).
    #[schemars(length(min = 1, max = 3))]
    pub sources: Vec<AlertSource>,
    /// Dot-separated path of the alert field holding the user's email, e.g. `result.user`.
    /// For `Generic` alerts the operator config's `webhooks.generic.fields.user`, when set,
    /// is read instead.
    #[schemars(
        length(min = 1, max = ALERT_FIELD_PATH_MAX_CHARS),
        regex(pattern = ALERT_FIELD_PATH_PATTERN)
    )]
    pub user_field: String,
    /// Alerts below this severity are ignored.
    #[serde(default)]
    pub min_severity: AlertSeverity,
    /// How long the resulting Lockdown lasts, as a Go duration such as `4h`.
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("lockdownDuration must be a positive duration such as 4h"))]
    pub lockdown_duration: String,
    /// Whether the Lockdown restores revoked access when it ends.
    #[serde(default = "default_true")]
    pub restore_on_release: bool,
    /// Notification channels told about each alert-driven Lockdown.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(max = 253)))]
    pub notify: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// `Splunk`, `Datadog` or `Generic` (any tool that POSTs signed JSON to
/// `/webhooks/alerts/generic`, such as CrowdStrike or SentinelOne).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertSource {
    Splunk,
    Datadog,
    Generic,
}

/// Alert severity, lowest to highest: `Info`, `Low`, `Medium`, `High` (default), `Critical`.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum AlertSeverity {
    Info,
    Low,
    Medium,
    #[default]
    High,
    Critical,
}

/// Permits RoleMappings in the listed namespaces to govern the matching targets (and, with
/// `allowLockdowns`, Lockdowns there to suspend access to them).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.targetTags) > 0 || size(self.targetNames) > 0 || size(self.targetIds) > 0").message("a tenancy rule must name targets by targetTags, targetNames or targetIds"))]
pub struct TenancyRule {
    /// Namespaces this rule permits.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Targets carrying all of these Opal tags (key to value; an empty value matches any).
    #[serde(default)]
    #[schemars(extend("maxProperties" = 32))]
    pub target_tags: BTreeMap<String, String>,
    /// Targets with these names.
    #[serde(default)]
    #[schemars(length(max = 500), inner(length(max = 512)))]
    pub target_names: Vec<String>,
    /// Targets with these Opal IDs.
    #[serde(default)]
    #[schemars(length(max = 500), inner(length(max = 64)))]
    pub target_ids: Vec<String>,
    /// Also lets Lockdowns in these namespaces suspend access to the matching targets. A
    /// Lockdown outside the operator namespace is honoured only on targets some rule with
    /// `allowLockdowns` permits to its namespace; a user it names loses only their grants on
    /// those targets. Default false.
    #[serde(default)]
    pub allow_lockdowns: bool,
}

/// What the policy governs and the state of its breaker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    /// Current observations: `Ready` and `Synced`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RoleMappings this policy applies to.
    #[serde(default)]
    pub governed_mappings: i32,
    /// Opal targets those mappings govern.
    #[serde(default)]
    pub governed_targets: i32,
    /// The revocation circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // One value, replaced whole: a closed breaker leaves no held plan's hash behind.
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub breaker: Option<BreakerStatus>,
    /// The `requests` rules as the operator reads them; shown when the policy has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub request_rules: Option<RequestRulesStatus>,
    /// What the `requests` rules decided, written by the request decider (on the leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub requests: Option<RequestsStatus>,
}

/// What a policy's `requests` rules decided and what waits. Counts are kept here as decisions
/// happen; the ledger of Secrets stays the record of each request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestsStatus {
    /// Decisions so far, by rule, action and outcome (`Approved`, `Denied`, `Routed`,
    /// `DecidedElsewhere`, `AnswerRefused`, `Escalated`, `ExpiredGrantRevoked`).
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub decisions: Vec<RequestDecisionCount>,
    /// Routed requests waiting for an eligible answer, oldest first (at most 50).
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub waiting: Vec<WaitingRequest>,
    /// How many routed requests wait, when more than `waiting` lists.
    #[serde(default)]
    pub waiting_count: i32,
    /// The latest decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<LastRequestDecision>,
    /// Rules whose route cannot be followed with the operator config (an unknown channel, a
    /// channel that takes no routes, an escalation without PagerDuty credentials); their
    /// requests wait untouched until it is fixed.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub unroutable: Vec<String>,
}

/// One count of [`RequestsStatus::decisions`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestDecisionCount {
    /// The rule's name.
    pub rule: String,
    /// The rule's action (`AutoApprove`, `Deny`, `Route`; `Lockdown` never counts here).
    pub action: String,
    /// What happened to the requests counted here.
    pub outcome: String,
    /// How many times.
    pub count: i64,
}

/// A routed request waiting on its ticket.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRequest {
    /// The Opal request's id.
    pub request_id: String,
    /// The rule that routed it.
    pub rule: String,
    /// The channel it waits in.
    pub channel: String,
    /// The ticket as people call it.
    #[serde(default)]
    pub ticket: String,
    /// When it was routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Set once the on-call was paged about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// The latest decision of a policy's rules.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastRequestDecision {
    /// The Opal request's id.
    pub request_id: String,
    /// The rule that decided it.
    pub rule: String,
    /// The rule's action.
    pub action: String,
    /// What happened.
    pub outcome: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// How many `requests` rules there are and which cannot be read (those match nothing).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRulesStatus {
    /// Rules in the spec.
    #[serde(default)]
    pub rules: i32,
    /// Each unreadable rule: its path and why.
    #[serde(default)]
    pub invalid: Vec<String>,
}

/// State of the revocation circuit breaker.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BreakerStatus {
    /// `Closed` (revocations flow) or `Tripped` (revocations held).
    pub state: BreakerState,
    /// Revocations the held plan contains.
    #[serde(default)]
    pub held_revocations: i32,
    /// Hash of the held plan; put it in the `opal-operator.io/approve-plan` annotation to let
    /// exactly that plan proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// When the breaker tripped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tripped_at: Option<DateTime<Utc>>,
    /// Why the breaker tripped.
    #[serde(default)]
    pub reason: String,
}

/// `Closed` or `Tripped`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Tripped,
}
