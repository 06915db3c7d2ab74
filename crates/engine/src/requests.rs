//! Decisions on pending Opal access requests: the AccessPolicies' `requests` rules, read once at
//! the edge into [`RequestRule`]s, evaluated first match wins over the facts the controller
//! gathered about one request. Pure: the clock reading and every lookup (HR, Opal tags,
//! PagerDuty on-call) arrive in [`RequestFacts`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::employee::{Employee, EmploymentStatus};
use super::records::{Sensitivity, TargetKind};
use super::rules::{LockScope, Subject};
use super::rules::{Target, TargetRef, TenancyGrant, carries_tags};
use super::selector::CompiledSelector;
use super::world::{LockdownInput, ObjectKey};

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestVerdict {
    AutoApprove,
    Deny,
    /// Opens an approval on a channel of the operator config and waits for its answer.
    Route(RoutePlan),
}

/// Where a routed request goes and who may answer it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutePlan {
    pub channel: String,
    /// Lowercased emails of the people who may decide; empty (and no `requester_manager`):
    /// anyone the channel lets answer, except the requester.
    pub approvers: Vec<String>,
    /// The requester's manager in HR may decide.
    pub requester_manager: bool,
    /// How long the request may wait for an eligible answer before it is denied.
    pub wait_at_most: Option<Duration>,
    /// Who is paged when the request waits too long.
    pub escalation: Option<RouteEscalation>,
}

/// Paging the on-call responders of a PagerDuty service about a request that waits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteEscalation {
    /// The PagerDuty channel whose REST credentials and service open the incident.
    pub channel: String,
    /// How long the request waits without an eligible answer before the page.
    pub after: Duration,
}

/// An answer read back from the channel a request was routed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAnswer {
    pub approve: bool,
    /// The decider's email as the channel reports it.
    pub decider_email: Option<String>,
    /// The Opal user with that email, if there is one.
    pub decider_user_id: Option<String>,
    /// Where it was answered, for people: `Jira Service Management ITSD-4`.
    pub place: String,
}

/// What to do with an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteJudgment {
    /// Carry the answer out in Opal with this comment.
    Carry { approve: bool, comment: String },
    /// The answer does not count; the request keeps waiting. `reason` goes on the ticket.
    Refuse { reason: String },
}

/// Judges an answer on a routed request: the decider must be known by email, be an Opal user,
/// not be the requester, and be eligible under the route (listed, or the requester's HR
/// manager when the route allows it).
pub fn judge_route_answer(
    plan: &RoutePlan,
    answer: &RouteAnswer,
    requester_user_id: &str,
    requester_manager_email: Option<&str>,
    decided_by: &str,
) -> RouteJudgment {
    let refuse = |reason: String| RouteJudgment::Refuse { reason };
    let Some(email) = answer
        .decider_email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_lowercase)
    else {
        return refuse(format!(
            "the answer in {} carries no email for its decider, so it cannot be matched to an Opal user",
            answer.place
        ));
    };
    let Some(decider) = answer.decider_user_id.as_deref() else {
        return refuse(format!("{email} is not an Opal user"));
    };
    if decider == requester_user_id {
        return refuse(format!("{email} made this request and may not decide it"));
    }
    let restricted = !plan.approvers.is_empty() || plan.requester_manager;
    let listed = plan.approvers.contains(&email);
    let manager = plan.requester_manager
        && requester_manager_email.is_some_and(|m| m.trim().eq_ignore_ascii_case(&email));
    if restricted && !listed && !manager {
        return refuse(format!("{email} is not an approver for {decided_by}"));
    }
    let verb = if answer.approve { "approved" } else { "denied" };
    RouteJudgment::Carry {
        approve: answer.approve,
        comment: format!(
            "{verb} by {email} in {} (routed by {decided_by}).",
            answer.place
        ),
    }
}

/// Whether a request routed at `routed_at` has waited longer than its route allows.
pub fn route_expired(plan: &RoutePlan, routed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    plan.wait_at_most
        .is_some_and(|wait| now.signed_duration_since(routed_at) > wait)
}

/// How long an approved request's access may last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovedWindow {
    /// When the approved access must be gone.
    pub until: DateTime<Utc>,
    /// The rule approves less than Opal grants: each grant is cut to end at `until`.
    pub capped: bool,
}

/// The window of a request approved at `approved_at`: what it asked for, cut to the rule's
/// limit. `None`: an indefinite approval under a rule without a limit (nothing to enforce).
pub fn approved_window(
    approved_at: DateTime<Utc>,
    requested: Option<Duration>,
    grant_at_most: Option<Duration>,
) -> Option<ApprovedWindow> {
    let (length, capped) = match (requested, grant_at_most) {
        (None, None) => return None,
        (Some(requested), None) => (requested, false),
        (None, Some(most)) => (most, true),
        (Some(requested), Some(most)) => (requested.min(most), requested > most),
    };
    Some(ApprovedWindow {
        until: approved_at + length,
        capped,
    })
}

/// One approved grant as Opal shows it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldGrant {
    Absent,
    /// Held, until this time (`None`: indefinitely).
    Held(Option<DateTime<Utc>>),
}

/// What to do about one grant of an approved window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowStep {
    /// Nothing now; look again next pass.
    Wait,
    /// Cut the grant to this many minutes from now, so Opal ends it with the window.
    Shorten { minutes: i64 },
    /// The window is over and this grant outlived it: remove it, saying why.
    Revoke { reason: String },
    /// Nothing more to do for this grant.
    Done,
}

/// Judges one grant of an approved window. Opal ends a time-bound grant itself; the operator
/// cuts grants the rule approves for less than Opal gave, and removes a grant still held
/// `grace` after the window when Opal's own expiry did not take it (its end date has passed)
/// or when it could never be cut (`shortened` false on a capped window). A grant ending
/// within a minute after the window (Opal counts whole minutes) is waited for; one extended
/// further after it was cut was extended by a later decision and is left alone.
pub fn window_step(
    window: &ApprovedWindow,
    shortened: bool,
    held: HeldGrant,
    now: DateTime<Utc>,
    grace: Duration,
) -> WindowStep {
    let over = now > window.until + grace;
    let HeldGrant::Held(expires) = held else {
        return if over {
            WindowStep::Done
        } else {
            WindowStep::Wait
        };
    };
    let rounding = Duration::minutes(1);
    if !over {
        let outlasts = expires.is_none_or(|end| end > window.until + rounding);
        if window.capped && !shortened && outlasts && now < window.until {
            let seconds = (window.until - now).num_seconds();
            return WindowStep::Shorten {
                minutes: (seconds + 59) / 60,
            };
        }
        return WindowStep::Wait;
    }
    match expires {
        Some(end) if end <= now => WindowStep::Revoke {
            reason: format!(
                "Opal still shows it {} after it ended at {}",
                written(now - end),
                end.to_rfc3339()
            ),
        },
        // Cut to end with the window, rounded up to Opal's whole minutes: about to end.
        Some(end) if end <= window.until + rounding => WindowStep::Wait,
        _ if window.capped && !shortened => WindowStep::Revoke {
            reason: format!(
                "the rule approved it until {} and it could not be shortened in Opal",
                window.until.to_rfc3339()
            ),
        },
        _ => WindowStep::Done,
    }
}

/// Whether [`window_step`] could answer anything but `Wait` for a grant at `now`, so that its
/// state in Opal is worth reading: while a capped grant may still be cut, and after the window
/// and its grace.
pub fn window_step_due(
    window: &ApprovedWindow,
    shortened: bool,
    now: DateTime<Utc>,
    grace: Duration,
) -> bool {
    now > window.until + grace || (window.capped && !shortened && now < window.until)
}

/// Whether a request routed at `routed_at` has waited long enough to page its escalation.
pub fn escalation_due(plan: &RoutePlan, routed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    plan.escalation
        .as_ref()
        .is_some_and(|escalation| now.signed_duration_since(routed_at) >= escalation.after)
}

impl RequestVerdict {
    /// `AutoApprove`, `Deny` or `Route`, as the spec spells the action.
    pub fn label(&self) -> &'static str {
        match self {
            RequestVerdict::AutoApprove => "AutoApprove",
            RequestVerdict::Deny => "Deny",
            RequestVerdict::Route(_) => "Route",
        }
    }
}

/// A weekly window in a time zone; minutes count from midnight, `end` may be 1440 (24:00).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessWindow {
    pub zone: Tz,
    pub days: Vec<Weekday>,
    pub start_minute: u32,
    pub end_minute: u32,
}

impl BusinessWindow {
    /// Whether `at` falls on an open day, at or after the opening and before the closing.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone);
        let minute = local.hour() * 60 + local.minute();
        self.days.contains(&local.weekday())
            && self.start_minute <= minute
            && minute < self.end_minute
    }
}

impl fmt::Display for BusinessWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = self.days.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02} {}",
            days.join(","),
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60,
            self.zone
        )
    }
}

/// Who must be on call in PagerDuty for a rule to match. The controller asks PagerDuty once
/// per condition and requester, and hands the answer over in [`RequestFacts::on_call`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnCallCondition {
    /// The PagerDuty channel whose REST credentials answer.
    pub channel: String,
    pub escalation_policy_ids: Vec<String>,
    pub schedule_ids: Vec<String>,
    /// Only the first N escalation levels count.
    pub max_escalation_level: Option<u32>,
}

/// What PagerDuty said about one requester and one [`OnCallCondition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnCallAnswer {
    OnCall,
    NotOnCall,
    /// The lookup failed; the condition does not hold (never approve on a guess).
    Unknown(String),
}

/// Conditions of one rule; every one given must hold.
#[derive(Clone, Debug, Default)]
pub struct RequestConditions {
    pub requester: Option<CompiledSelector>,
    /// Every requested target must be one of these.
    pub targets: Vec<Target>,
    /// Every requested target must carry these tags (an empty value matches any value).
    pub target_tags: BTreeMap<String, String>,
    /// Every requested target must be rated at most this; an unrated target never matches.
    pub max_sensitivity: Option<Sensitivity>,
    /// The requested duration must be at most this; an indefinite request never matches.
    pub duration_at_most: Option<Duration>,
    /// The requested duration must be above this, or indefinite.
    pub duration_above: Option<Duration>,
    /// The request must have been made inside this window.
    pub business_hours: Option<BusinessWindow>,
    pub requester_on_call: Option<OnCallCondition>,
}

/// One rule of an AccessPolicy's `requests`.
#[derive(Clone, Debug)]
pub struct RequestRule {
    pub name: String,
    pub conditions: RequestConditions,
    pub verdict: RequestVerdict,
    /// The longest access an approval under this rule gives; a longer (or indefinite) request
    /// is approved and its grants cut to this.
    pub grant_at_most: Option<Duration>,
}

/// One AccessPolicy's request rules, in spec order.
#[derive(Clone, Debug)]
pub struct PolicyRequestRules {
    pub policy: ObjectKey,
    pub rules: Vec<RequestRule>,
    /// Rules that cannot be read, by index and why: they match nothing, and the policy
    /// reports them.
    pub invalid: Vec<(usize, String)>,
}

/// One requested group or resource as Opal describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedTarget {
    pub kind: TargetKind,
    pub id: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    /// `None` when Opal has no rating for it.
    pub sensitivity: Option<Sensitivity>,
}

/// Everything known about one pending request when it is decided.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub request_id: String,
    pub requester_user_id: String,
    pub requester_email: Option<String>,
    /// The requester's HR record, found through their Opal email.
    pub requester: Option<Employee>,
    pub targets: Vec<RequestedTarget>,
    /// `None` for an indefinite request.
    pub duration: Option<Duration>,
    pub created_at: DateTime<Utc>,
    /// PagerDuty's answers for the rules' on-call conditions (missing: not asked, so false).
    pub on_call: BTreeMap<OnCallCondition, OnCallAnswer>,
    /// Lockdowns in force on the requester or a requested target.
    pub lockdowns: Vec<ObjectKey>,
    /// Set when the access is for someone else (another user or a group): such a request is
    /// never auto-approved on the requester's attributes.
    pub on_behalf_of: Option<String>,
}

/// Who decided a request, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDecision {
    /// A rule matched; `because` lists each condition that held, readable.
    Rule {
        policy: ObjectKey,
        rule: String,
        verdict: RequestVerdict,
        because: Vec<String>,
        grant_at_most: Option<Duration>,
    },
    /// A Lockdown in force covers the requester or a target: the request is denied.
    Locked { lockdown: ObjectKey },
}

impl RequestDecision {
    pub fn verdict(&self) -> RequestVerdict {
        match self {
            RequestDecision::Rule { verdict, .. } => verdict.clone(),
            RequestDecision::Locked { .. } => RequestVerdict::Deny,
        }
    }

    /// The longest access an approval of this decision gives, if the rule limits it.
    pub fn grant_at_most(&self) -> Option<Duration> {
        match self {
            RequestDecision::Rule { grant_at_most, .. } => *grant_at_most,
            RequestDecision::Locked { .. } => None,
        }
    }

    /// The comment left on the Opal request (and any ticket): the policy, the rule and why.
    pub fn comment(&self) -> String {
        match self {
            RequestDecision::Rule {
                policy,
                rule,
                verdict,
                because,
                grant_at_most,
            } => {
                let action = match verdict {
                    RequestVerdict::AutoApprove => "approved".to_owned(),
                    RequestVerdict::Deny => "denied".to_owned(),
                    RequestVerdict::Route(route) => format!("routed to {}", route.channel),
                };
                let why = if because.is_empty() {
                    "it matches every request".to_owned()
                } else {
                    because.join("; ")
                };
                let limit = match (verdict, grant_at_most) {
                    (RequestVerdict::Deny, _) | (_, None) => String::new(),
                    (_, Some(most)) => {
                        format!(" An approval gives access for at most {}.", written(*most))
                    }
                };
                format!(
                    "opal-operator {action} this request by AccessPolicy {policy} rule {rule:?}: {why}.{limit}"
                )
            }
            RequestDecision::Locked { lockdown } => format!(
                "opal-operator denied this request: Lockdown {lockdown} is in force on the requester or a requested target."
            ),
        }
    }
}

/// Decides one request: a Lockdown in force denies it; otherwise the first matching rule, over
/// the operator namespace's policies and then the other namespaces' (each in name order). A
/// policy outside the operator namespace only decides requests whose every target its
/// namespace may govern under the operator namespace's tenancy rules. `None`: no rule matched,
/// the request is left to Opal's own reviewers.
pub fn decide_request(
    facts: &RequestFacts,
    policies: &[PolicyRequestRules],
    operator_namespace: &str,
    tenancy: &[TenancyGrant],
) -> Option<RequestDecision> {
    if let Some(lockdown) = facts.lockdowns.iter().min() {
        return Some(RequestDecision::Locked {
            lockdown: lockdown.clone(),
        });
    }
    let mut ordered: Vec<&PolicyRequestRules> = policies.iter().collect();
    ordered.sort_by_key(|policy| {
        (
            policy.policy.namespace != operator_namespace,
            policy.policy.namespace.clone(),
            policy.policy.name.clone(),
        )
    });
    ordered
        .into_iter()
        .filter(|policy| {
            policy.policy.namespace == operator_namespace
                || (!facts.targets.is_empty()
                    && facts.targets.iter().all(|target| {
                        tenancy_permits(tenancy, &policy.policy.namespace, target, false)
                    }))
        })
        .find_map(|policy| {
            policy.rules.iter().find_map(|rule| {
                let because = matches(rule, facts)?;
                Some(RequestDecision::Rule {
                    policy: policy.policy.clone(),
                    rule: rule.name.clone(),
                    verdict: rule.verdict.clone(),
                    because,
                    grant_at_most: rule.grant_at_most,
                })
            })
        })
}

/// The Lockdowns in force that cover the requester (by email, Opal user ID or HR ID) on a
/// requested target, or a requested target itself. A Lockdown outside the operator namespace
/// counts only when its namespace may lock every requested target, as in the plan.
pub fn lockdowns_on_request(
    lockdowns: &[LockdownInput],
    now: DateTime<Utc>,
    operator_namespace: &str,
    tenancy: &[TenancyGrant],
    facts: &RequestFacts,
) -> Vec<ObjectKey> {
    let is_requester = |subject: &Subject| match subject {
        Subject::Email(email) => facts
            .requester_email
            .as_ref()
            .is_some_and(|own| own.eq_ignore_ascii_case(email)),
        Subject::OpalUserId(id) => *id == facts.requester_user_id,
        Subject::HrisId(id) => facts.requester.as_ref().is_some_and(|e| e.id == *id),
        Subject::Target(_) => false,
    };
    let mut covering: Vec<ObjectKey> = lockdowns
        .iter()
        .filter(|lockdown| lockdown.in_force(now))
        .filter(|lockdown| {
            lockdown.key.namespace == operator_namespace
                || (!facts.targets.is_empty()
                    && facts.targets.iter().all(|target| {
                        tenancy_permits(tenancy, &lockdown.key.namespace, target, true)
                    }))
        })
        .filter(|lockdown| {
            let rules = &lockdown.rules;
            let user_locked = rules.subjects.iter().any(is_requester)
                && match &rules.scope {
                    LockScope::Everything => true,
                    LockScope::Targets(scope) => facts
                        .targets
                        .iter()
                        .any(|requested| scope.iter().any(|target| names(target, requested))),
                };
            let target_locked = rules.subjects.iter().any(|subject| match subject {
                Subject::Target(target) => facts
                    .targets
                    .iter()
                    .any(|requested| names(target, requested)),
                _ => false,
            });
            user_locked || target_locked
        })
        .map(|lockdown| lockdown.key.clone())
        .collect();
    covering.sort();
    covering
}

fn tenancy_permits(
    tenancy: &[TenancyGrant],
    namespace: &str,
    target: &RequestedTarget,
    lockdown: bool,
) -> bool {
    tenancy.iter().any(|rule| {
        rule.permits(
            namespace,
            (&target.id, &target.name, &target.tags),
            lockdown,
        )
    })
}

fn names(target: &Target, requested: &RequestedTarget) -> bool {
    target.kind == requested.kind
        && match &target.by {
            TargetRef::Id(id) => *id == requested.id,
            TargetRef::Name(name) => *name == requested.name,
        }
}

/// A duration as a spec would write it (`4h`, `90m`).
fn written(duration: Duration) -> String {
    let secs = u32::try_from(duration.num_seconds().max(0)).unwrap_or(u32::MAX);
    crate::duration::GoDuration::from_secs(secs).to_string()
}

/// The conditions of `rule` that hold, readable; `None` when one does not hold.
fn matches(rule: &RequestRule, facts: &RequestFacts) -> Option<Vec<String>> {
    let conditions = &rule.conditions;
    let mut because = Vec::new();
    if rule.verdict == RequestVerdict::AutoApprove && facts.on_behalf_of.is_some() {
        return None;
    }
    if rule.verdict == RequestVerdict::AutoApprove || conditions.requester.is_some() {
        // Approving on behalf of someone HR does not list as active would hand access to a
        // leaver; the requester's HR record must exist and be active.
        let employee = facts.requester.as_ref()?;
        if employee.status != EmploymentStatus::Active {
            return None;
        }
        if let Some(selector) = &conditions.requester {
            if !selector.matches(employee) {
                return None;
            }
            because.push(format!(
                "requester {} matches the HR selector",
                employee.email
            ));
        }
    }
    if !conditions.targets.is_empty() {
        let all_listed = !facts.targets.is_empty()
            && facts.targets.iter().all(|requested| {
                conditions
                    .targets
                    .iter()
                    .any(|target| names(target, requested))
            });
        if !all_listed {
            return None;
        }
        because.push("every requested target is listed".to_owned());
    }
    if !conditions.target_tags.is_empty() {
        if facts.targets.is_empty()
            || !facts
                .targets
                .iter()
                .all(|target| carries_tags(&target.tags, &conditions.target_tags))
        {
            return None;
        }
        let tags: Vec<String> = conditions
            .target_tags
            .iter()
            .map(|(key, value)| {
                if value.is_empty() {
                    key.clone()
                } else {
                    format!("{key}={value}")
                }
            })
            .collect();
        because.push(format!(
            "every requested target is tagged {}",
            tags.join(",")
        ));
    }
    if let Some(max) = conditions.max_sensitivity {
        if facts.targets.is_empty()
            || !facts
                .targets
                .iter()
                .all(|target| target.sensitivity.is_some_and(|rated| rated <= max))
        {
            return None;
        }
        because.push(format!("every requested target is rated {max:?} or lower"));
    }
    if let Some(most) = conditions.duration_at_most {
        let requested = facts.duration.filter(|requested| *requested <= most)?;
        because.push(format!(
            "duration {} is at most {}",
            written(requested),
            written(most)
        ));
    }
    if let Some(above) = conditions.duration_above {
        match facts.duration {
            None => because.push(format!("indefinite duration is above {}", written(above))),
            Some(requested) if requested > above => because.push(format!(
                "duration {} is above {}",
                written(requested),
                written(above)
            )),
            Some(_) => return None,
        }
    }
    if let Some(window) = &conditions.business_hours {
        if !window.contains(facts.created_at) {
            return None;
        }
        because.push(format!("made within business hours ({window})"));
    }
    if let Some(on_call) = &conditions.requester_on_call {
        if facts.on_call.get(on_call) != Some(&OnCallAnswer::OnCall) {
            return None;
        }
        because.push(format!(
            "requester is on call in PagerDuty ({})",
            on_call.channel
        ));
    }
    Some(because)
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
