//! The just-in-time request decider. On the leader only, every `requests.pollInterval` or when
//! the Opal doorbell rings: read Opal's pending requests, gather what the rules need (the
//! requester's Opal and HR records, the targets' tags and ratings, Lockdowns), let the engine
//! decide, and carry an `AutoApprove` or `Deny` out exactly once through the ledger:
//! claim → re-read the request → act with the decision's comment → record. A `Route` opens a
//! ticket after its claim and waits for an eligible answer there (`route.rs`).

mod book;
mod clicks;
mod gc;
mod ledger;
mod memo;
mod route;
mod secrets;
mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};

pub use self::book::StatusBook;
pub use self::clicks::{ClickRecorder, MAX_CLICKS_PER_REQUEST};
pub use self::ledger::{
    Entry, Index, LEDGER_TYPE, Ledger, LedgerError, Phase, ROUTE_INDEX, RouteRecord, WINDOW_INDEX,
    WindowGrant, WindowRecord, entry_name,
};
pub use self::memo::UnmatchedMemo;
use super::SyncView;
use super::events::EventSink;
use super::leader::Leadership;
use super::objects::{Stores, key_of};
use crate::crd::{Sensitivity, WaitingRequest};
use crate::engine::{
    LockdownInput, ObjectKey, OnCallAnswer, OnCallCondition, PolicyRequestRules, RequestDecision,
    RequestFacts, RequestVerdict, RequestedTarget, TargetKind, TenancyGrant, decide_request,
    lockdowns_on_request,
};
use crate::metrics::Metrics;
use crate::notify::{OnCallQuery, PagerDutyRest, RouteDesk};
use crate::opal::model::{ApprovalLevel, Request, RequestStatus, RiskSensitivity};
use crate::opal::{Client as OpalClient, OpalError, RequestFilter};
use crate::webhooks::Doorbell;

/// Why one pass over the pending requests stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("Opal: {0}")]
    Opal(#[from] OpalError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("lost the lease before acting on request {0}; the new leader resumes its entry")]
    NotLeader(String),
    #[error(
        "route: no jiraServiceManagement, serviceNow, jira (with decisions) or slack (channel a conversation ID, with webhooks.slack set) channel {0:?} in the operator config"
    )]
    NoDesk(String),
    #[error(
        "route: the requester's manager is not known until HR has been read; retried next pass"
    )]
    HrNotRead,
    #[error(
        "route escalation: no pagerDuty channel {0:?} with rest credentials in the operator config"
    )]
    NoPager(String),
    #[error("route: {0}")]
    Desk(#[from] crate::notify::NotifyError),
}

/// Wakes the decider at once (the Opal event-stream doorbell).
pub struct RequestDoorbell(pub Arc<Notify>);

impl Doorbell for RequestDoorbell {
    fn ring(&self) {
        self.0.notify_one();
    }
}

/// What the decider reads and writes.
pub struct RequestContext {
    pub opal: OpalClient,
    pub ledger: Ledger,
    pub stores: Stores,
    pub views: watch::Receiver<Option<Arc<SyncView>>>,
    pub metrics: Arc<Metrics>,
    pub operator_namespace: String,
    /// PagerDuty REST clients by channel name, for `requesterOnCall` and route escalations.
    pub on_call: BTreeMap<String, PagerDutyRest>,
    /// Asked right before approving or denying, so a replica that lost the lease stops.
    pub leadership: Leadership,
    /// Route desks by channel name, for `action: Route`.
    pub desks: BTreeMap<String, RouteDesk>,
    /// Each decision is an Event on the AccessPolicy (or Lockdown) that made it.
    pub events: EventSink,
    /// How long an approved grant may still show in Opal after its window before it is
    /// removed.
    pub expiry_grace: chrono::Duration,
    /// Each policy's `status.requests`.
    pub book: StatusBook,
    /// How long decided entries are kept (`requests.ledgerRetention`); `None`: forever.
    pub ledger_retention: Option<chrono::Duration>,
    /// Pending requests no rule matched lately, not judged again every pass.
    pub unmatched: UnmatchedMemo,
}

/// How often old ledger entries are looked for: a quarter of the retention, between a second
/// and an hour.
fn collection_interval(retention: chrono::Duration) -> Duration {
    (retention / 4)
        .to_std()
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Records an Event on the object that decided `entry`: its AccessPolicy, or its Lockdown.
pub(super) fn announce(
    context: &RequestContext,
    entry: &Entry,
    warning: bool,
    reason: &str,
    note: String,
) {
    let Some((namespace, name)) = entry.decided_by.split_once('/') else {
        return;
    };
    let key = ObjectKey::new(namespace, name);
    let events = &context.events;
    if let Some(policy) = context.stores.access_policy(&key) {
        context
            .book
            .record(&policy, key.clone(), entry, reason, Utc::now());
        if warning {
            events.warning(&*policy, reason, "Request", note);
        } else {
            events.normal(&*policy, reason, "Request", note);
        }
    } else if let Some(lockdown) = context.stores.lockdown(&key) {
        events.normal(&*lockdown, reason, "Request", note);
    }
}

/// Runs passes until dropped: after `poll` (when set), a doorbell ring, or gaining the lease.
pub async fn run_request_loop(
    context: Arc<RequestContext>,
    doorbell: Arc<Notify>,
    poll: Option<Duration>,
) {
    let mut leadership = context.leadership.clone();
    let mut collected_at: Option<tokio::time::Instant> = None;
    loop {
        if leadership.is_leader() {
            match decide_pending(&context).await {
                Ok(decided) if decided > 0 => tracing::info!(decided, "pending requests decided"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "deciding pending requests failed"),
            }
            if let Some(retention) = context.ledger_retention
                && collected_at.is_none_or(|at| at.elapsed() >= collection_interval(retention))
            {
                collected_at = Some(tokio::time::Instant::now());
                match gc::collect(&context, retention).await {
                    Ok(removed) if removed > 0 => {
                        tracing::info!(removed, "old request ledger entries removed");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "removing old ledger entries failed"),
                }
            }
        }
        let wait = async {
            match poll {
                Some(poll) => tokio::time::sleep(poll).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait => {},
            () = doorbell.notified() => {},
            // Another replica may have counted meanwhile: read the counts again.
            _ = leadership.changed() => context.book.forget(),
        }
    }
}

/// What one pass decides with, read once from the caches.
struct Pass {
    rules: Vec<PolicyRequestRules>,
    tenancy: Vec<TenancyGrant>,
    lockdowns: Vec<LockdownInput>,
    at: chrono::DateTime<Utc>,
    /// Every on-call condition some rule names, looked up per requester.
    on_call_conditions: BTreeSet<OnCallCondition>,
    /// Changes whenever the rules, the tenancy, the lockdowns or the HR view do.
    fingerprint: u64,
}

impl Pass {
    fn read(context: &RequestContext) -> Option<Self> {
        let rules: Vec<PolicyRequestRules> = context
            .stores
            .access_policies
            .state()
            .iter()
            .filter(|policy| !policy.spec.requests.is_empty())
            .map(|policy| policy.spec.request_rules(key_of(policy.as_ref())))
            .collect();
        if rules.is_empty() {
            return None;
        }
        let inputs = context
            .stores
            .inputs(&context.operator_namespace, None, Utc::now());
        let tenancy = inputs
            .policies
            .iter()
            .filter(|policy| policy.key.namespace == context.operator_namespace)
            .flat_map(|policy| policy.rules.tenancy.iter().cloned())
            .collect();
        let on_call_conditions = rules
            .iter()
            .flat_map(|policy| &policy.rules)
            .filter_map(|rule| rule.conditions.requester_on_call.clone())
            .collect();
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            // The HR view too: a requester unknown to HR before a sync may match after it.
            let hr_read_at = context.views.borrow().as_ref().map(|view| view.finished_at);
            format!("{rules:?}{tenancy:?}{:?}{hr_read_at:?}", inputs.lockdowns).hash(&mut hasher);
            hasher.finish()
        };
        Some(Self {
            rules,
            tenancy,
            lockdowns: inputs.lockdowns,
            at: inputs.at,
            on_call_conditions,
            fingerprint,
        })
    }

    fn decide(&self, context: &RequestContext, mut facts: RequestFacts) -> Option<RequestDecision> {
        facts.lockdowns = lockdowns_on_request(
            &self.lockdowns,
            self.at,
            &context.operator_namespace,
            &self.tenancy,
            &facts,
        );
        decide_request(
            &facts,
            &self.rules,
            &context.operator_namespace,
            &self.tenancy,
        )
    }
}

/// One pass: every pending request a rule matches is decided; returns how many were.
pub async fn decide_pending(context: &RequestContext) -> Result<usize, RequestError> {
    let Some(pass) = Pass::read(context) else {
        return Ok(0);
    };
    let pending = context
        .opal
        .list_requests(&RequestFilter {
            pending_only: true,
            ..Default::default()
        })
        .await?;
    let mut decided = 0;
    context
        .unmatched
        .keep_only(pending.iter().map(|request| request.id.as_str()));
    for request in pending
        .iter()
        .filter(|r| r.status == RequestStatus::Pending)
    {
        let now = std::time::Instant::now();
        if context.unmatched.fresh(&request.id, pass.fingerprint, now) {
            continue;
        }
        let entry = match context.ledger.get(&request.id).await? {
            Some(entry) => entry,
            None => {
                let facts = gather_facts(context, &pass, request).await?;
                let Some(decision) = pass.decide(context, facts) else {
                    context
                        .unmatched
                        .remember(&request.id, pass.fingerprint, now);
                    continue;
                };
                let verdict = decision.verdict();
                let (decided_by, rule) = match &decision {
                    RequestDecision::Rule { policy, rule, .. } => {
                        (policy.to_string(), rule.clone())
                    }
                    RequestDecision::Locked { lockdown } => {
                        (lockdown.to_string(), "lockdown".to_owned())
                    }
                };
                let claim = Entry {
                    request_id: request.id.clone(),
                    phase: Phase::Claimed,
                    decided_by,
                    rule,
                    action: verdict.label().to_owned(),
                    comment: decision.comment(),
                    claimed_at: Utc::now(),
                    outcome: String::new(),
                    route: match &verdict {
                        RequestVerdict::Route(plan) => Some(RouteRecord::from_plan(plan)),
                        _ => None,
                    },
                    grant_at_most_seconds: decision.grant_at_most().map(|most| most.num_seconds()),
                    window: None,
                };
                context.ledger.claim(&claim).await?
            }
        };
        match (entry.phase, entry.route.is_some()) {
            // Claimed now, or before a restart that came before its ticket was opened.
            (Phase::Claimed, true) if entry.action == "Route" => {
                start_route(context, entry, request).await;
            }
            // Routes under way are followed through the open-route index below.
            (_, true) => continue,
            (Phase::Claimed, false) => carry_out(context, &entry).await?,
            _ => continue,
        }
        decided += 1;
    }
    // One route's failure (its ticket system down, say) must not hold the others up.
    let mut waiting: BTreeMap<ObjectKey, Vec<WaitingRequest>> = BTreeMap::new();
    for request_id in context.ledger.listed(Index::Routes).await? {
        let followed = match context.ledger.get(&request_id).await {
            Ok(Some(entry)) => {
                if let Some((key, request)) = waiting_request(&entry) {
                    waiting.entry(key).or_default().push(request);
                }
                route::follow(context, entry).await
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = followed {
            context.metrics.request_decision("Route", "Failed");
            tracing::warn!(request = %request_id, %error, "following a routed request failed; retried next pass");
        }
    }
    window::follow_all(context).await?;
    let desks: BTreeSet<&str> = context.desks.keys().map(String::as_str).collect();
    let pagers: BTreeSet<&str> = context.on_call.keys().map(String::as_str).collect();
    let unroutable = pass
        .rules
        .iter()
        .map(|rules| {
            (
                rules.policy.clone(),
                book::unroutable_rules(rules, &desks, &pagers),
            )
        })
        .collect();
    let policies: Vec<_> = context
        .stores
        .access_policies
        .state()
        .into_iter()
        .filter(|policy| !policy.spec.requests.is_empty())
        .collect();
    context.book.publish(&policies, waiting, unroutable).await;
    Ok(decided)
}

/// A routed entry still waiting for its answer, as its policy's status lists it.
fn waiting_request(entry: &Entry) -> Option<(ObjectKey, WaitingRequest)> {
    let route = entry.route.as_ref()?;
    if entry.phase != Phase::Routed {
        return None;
    }
    let (namespace, name) = entry.decided_by.split_once('/')?;
    Some((
        ObjectKey::new(namespace, name),
        WaitingRequest {
            request_id: entry.request_id.clone(),
            rule: entry.rule.clone(),
            channel: route.channel.clone(),
            ticket: route
                .ticket_display
                .clone()
                .or_else(|| route.ticket.clone())
                .unwrap_or_default(),
            since: route.routed_at,
            incident: route.incident.clone(),
        },
    ))
}

/// Opens a claimed route's ticket. A failure (the channel missing from the config, its
/// service down) is logged and retried next pass without holding up the other requests.
async fn start_route(context: &RequestContext, entry: Entry, request: &Request) {
    let request_id = entry.request_id.clone();
    if let Err(error) = route::start(context, entry, request).await {
        context.metrics.request_decision("Route", "Failed");
        tracing::warn!(request = %request_id, %error, "routing a request failed; retried next pass");
    }
}

/// Asks PagerDuty, for each condition, whether the requester is on call now.
async fn on_call_answers(
    context: &RequestContext,
    pass: &Pass,
    email: Option<&str>,
) -> BTreeMap<OnCallCondition, OnCallAnswer> {
    let mut answers = BTreeMap::new();
    let Some(email) = email else {
        return answers;
    };
    for condition in &pass.on_call_conditions {
        let answer = match context.on_call.get(&condition.channel) {
            None => OnCallAnswer::Unknown(format!(
                "no PagerDuty channel {:?} with rest credentials in the operator config",
                condition.channel
            )),
            Some(pagerduty) => {
                let query = OnCallQuery {
                    schedule_ids: condition.schedule_ids.clone(),
                    escalation_policy_ids: condition.escalation_policy_ids.clone(),
                    max_escalation_level: condition.max_escalation_level,
                };
                match pagerduty.is_on_call(email, &query).await {
                    Ok(true) => OnCallAnswer::OnCall,
                    Ok(false) => OnCallAnswer::NotOnCall,
                    Err(error) => {
                        tracing::warn!(%error, channel = %condition.channel, "on-call lookup failed");
                        OnCallAnswer::Unknown(error.to_string())
                    }
                }
            }
        };
        answers.insert(condition.clone(), answer);
    }
    answers
}

/// Acts on a claimed entry: re-reads the request, and approves or denies it only while it is
/// still pending; a request found decided with this entry's comment was decided by this
/// entry before a restart.
async fn carry_out(context: &RequestContext, entry: &Entry) -> Result<(), RequestError> {
    let current = context.opal.request(&entry.request_id).await?;
    if current.status != RequestStatus::Pending {
        let comments = context.opal.request_comments(&entry.request_id).await?;
        let ours = comments.iter().any(|c| c.comment == entry.comment);
        let (phase, outcome) = if ours {
            (Phase::Applied, format!("{:?} in Opal", current.status))
        } else {
            (
                Phase::DecidedElsewhere,
                format!(
                    "already {:?} in Opal before the operator acted",
                    current.status
                ),
            )
        };
        let settled = Entry {
            phase,
            outcome: outcome.clone(),
            window: applied_window(entry, &current, ours),
            ..entry.clone()
        };
        context.ledger.update(&settled).await?;
        context
            .metrics
            .request_decision(&entry.action, phase.as_str());
        if phase == Phase::DecidedElsewhere {
            announce(
                context,
                entry,
                false,
                "RequestDecidedElsewhere",
                format!("request {}: {outcome}", entry.request_id),
            );
        }
        return Ok(());
    }
    if !context.leadership.is_leader() {
        return Err(RequestError::NotLeader(entry.request_id.clone()));
    }
    window::watch(context, entry).await?;
    let result = match entry.action.as_str() {
        "AutoApprove" | "Approve" => {
            context
                .opal
                .approve_request(
                    &entry.request_id,
                    &ApprovalLevel::Regular,
                    Some(&entry.comment),
                )
                .await
        }
        _ => {
            context
                .opal
                .deny_request(&entry.request_id, &entry.comment, None)
                .await
        }
    };
    match result {
        Ok(request) => {
            let outcome = format!("{:?} in Opal", request.status);
            let applied = Entry {
                phase: Phase::Applied,
                outcome,
                window: applied_window(entry, &request, true),
                ..entry.clone()
            };
            context.ledger.update(&applied).await?;
            context.metrics.request_decision(&entry.action, "Applied");
            let reason = match entry.action.as_str() {
                "AutoApprove" | "Approve" => "RequestApproved",
                _ => "RequestDenied",
            };
            announce(
                context,
                entry,
                false,
                reason,
                format!("request {}: {}", entry.request_id, entry.comment),
            );
            let latency = Utc::now() - current.created_at.unwrap_or_else(Utc::now);
            context
                .metrics
                .request_decision_latency(latency.to_std().unwrap_or_default());
            tracing::info!(request = %entry.request_id, action = %entry.action, rule = %entry.rule, by = %entry.decided_by, "request decided");
            Ok(())
        }
        // Opal does not document its answer for a request that is no longer pending: any 4xx
        // is read as "decided meanwhile" and settled by the next pass's re-read.
        Err(error)
            if error
                .status()
                .is_some_and(|status| (400..500).contains(&status)) =>
        {
            tracing::info!(request = %entry.request_id, %error, "request changed while deciding; re-read next pass");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// The window to follow for `entry` now that Opal shows `request`: set only for an approval
/// of this entry that Opal has granted.
fn applied_window(entry: &Entry, request: &Request, ours: bool) -> Option<WindowRecord> {
    (ours && window::approves(&entry.action) && request.status == RequestStatus::Approved)
        .then(|| window::window_for(entry, request))
        .flatten()
}

fn sensitivity(rating: Option<&RiskSensitivity>) -> Option<Sensitivity> {
    match rating? {
        RiskSensitivity::None => Some(Sensitivity::None),
        RiskSensitivity::Low => Some(Sensitivity::Low),
        RiskSensitivity::Medium => Some(Sensitivity::Medium),
        RiskSensitivity::High => Some(Sensitivity::High),
        RiskSensitivity::Critical => Some(Sensitivity::Critical),
        RiskSensitivity::Unrated | RiskSensitivity::Unknown(_) => None,
    }
}

/// The requester's records, the targets as Opal describes them, the duration and the time.
async fn gather_facts(
    context: &RequestContext,
    pass: &Pass,
    request: &Request,
) -> Result<RequestFacts, RequestError> {
    let opal = &context.opal;
    let requester = opal.user_by_id(&request.requester_id).await?;
    let requester_email = requester.map(|user| user.email);
    let employee = {
        let view = context.views.borrow().clone();
        requester_email.as_ref().and_then(|email| {
            view?
                .employees
                .iter()
                .find(|employee| employee.email.eq_ignore_ascii_case(email))
                .cloned()
        })
    };
    let mut targets = Vec::with_capacity(request.requested_items_list.len());
    for item in &request.requested_items_list {
        let target = match (&item.group_id, &item.resource_id) {
            (Some(id), _) => {
                let group = opal.group(id).await?;
                let tags = opal.group_tags(id).await?;
                RequestedTarget {
                    kind: TargetKind::Group,
                    id: id.clone(),
                    name: group.name,
                    tags: tags
                        .into_iter()
                        .map(|t| (t.key, t.value.unwrap_or_default()))
                        .collect(),
                    sensitivity: sensitivity(
                        group
                            .risk_sensitivity_override
                            .as_ref()
                            .or(group.risk_sensitivity.as_ref()),
                    ),
                }
            }
            (None, Some(id)) => {
                let resource = opal.resource(id).await?;
                let tags = opal.resource_tags(id).await?;
                RequestedTarget {
                    kind: TargetKind::Resource,
                    id: id.clone(),
                    name: resource.name,
                    tags: tags
                        .into_iter()
                        .map(|t| (t.key, t.value.unwrap_or_default()))
                        .collect(),
                    sensitivity: sensitivity(
                        resource
                            .risk_sensitivity_override
                            .as_ref()
                            .or(resource.risk_sensitivity.as_ref()),
                    ),
                }
            }
            (None, None) => continue,
        };
        targets.push(target);
    }
    let on_behalf_of = match (&request.target_user_id, &request.target_group_id) {
        (Some(user), _) if *user != request.requester_id => Some(format!("user {user}")),
        (_, Some(group)) => Some(format!("group {group}")),
        _ => None,
    };
    let on_call = on_call_answers(context, pass, requester_email.as_deref()).await;
    Ok(RequestFacts {
        request_id: request.id.clone(),
        requester_user_id: request.requester_id.clone(),
        requester_email,
        requester: employee,
        targets,
        duration: request
            .duration_minutes
            .filter(|minutes| *minutes > 0)
            .map(chrono::Duration::minutes),
        created_at: request.created_at.unwrap_or_else(Utc::now),
        on_call,
        lockdowns: Vec::new(),
        on_behalf_of,
    })
}
