//! Routed requests: the ticket is opened after the claim (and after the request joins the
//! open-route index), its approval is polled every pass, the first eligible answer becomes an
//! ordinary claimed decision carried out like a rule's, and the ticket is closed with what
//! happened. Every step is recorded before the next, so a restart resumes where it stopped.

use chrono::Utc;

use super::ledger::{Entry, Index, Phase};
use super::{RequestContext, RequestError, announce, carry_out};
use crate::engine::{
    RouteAnswer, RouteJudgment, escalation_due, judge_route_answer, route_expired,
};
use crate::notify::RouteDesk;
use crate::opal::model::{Request, RequestStatus};

/// The label that finds a request's ticket again: the entry's Secret name.
fn ticket_token(request_id: &str) -> String {
    super::entry_name(request_id)
}

fn describe(request: &Request, requester: &str, entry: &Entry) -> (String, String) {
    let items: Vec<String> = request
        .requested_items_list
        .iter()
        .map(|item| {
            let name = item
                .name
                .clone()
                .or_else(|| item.group_id.clone())
                .or_else(|| item.resource_id.clone())
                .unwrap_or_default();
            match &item.access_level_name {
                Some(level) if !level.is_empty() => format!("{name} ({level})"),
                _ => name,
            }
        })
        .collect();
    let duration = match request.duration_minutes {
        Some(minutes) if minutes > 0 => format!("{minutes} minutes"),
        _ => "indefinitely".to_owned(),
    };
    let summary = format!("Opal access request from {requester}: {}", items.join(", "));
    let description = format!(
        "{requester} asks for {} for {duration}.\nReason: {}\nOpal request: {}\n{}\nApprove or decline this request's approval; opal-operator carries the answer out in Opal.",
        items.join(", "),
        request.reason,
        request.id,
        entry.comment
    );
    (summary, description)
}

async fn requester_email(
    context: &RequestContext,
    request: &Request,
) -> Result<Option<String>, RequestError> {
    Ok(context
        .opal
        .user_by_id(&request.requester_id)
        .await?
        .map(|user| user.email))
}

/// Opens the ticket of a claimed `Route` entry and records it: indexed first, so a ticket is
/// never open without the index knowing to follow it.
pub(super) async fn start(
    context: &RequestContext,
    mut entry: Entry,
    request: &Request,
) -> Result<(), RequestError> {
    let Some(mut route) = entry.route.clone() else {
        return Ok(());
    };
    let desk = context
        .desks
        .get(&route.channel)
        .ok_or_else(|| RequestError::NoDesk(route.channel.clone()))?;
    context
        .ledger
        .index(Index::Routes, &entry.request_id, true)
        .await?;
    if !context.leadership.is_leader() {
        return Err(RequestError::NotLeader(entry.request_id.clone()));
    }
    // Only shown on the ticket: the id stands in when Opal cannot say.
    let requester = requester_email(context, request)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| request.requester_id.clone());
    let (summary, description) = describe(request, &requester, &entry);
    let opened = desk
        .open(
            &ticket_token(&entry.request_id),
            &summary,
            &description,
            entry.claimed_at,
        )
        .await?;
    let ticket = opened.display.clone();
    route.ticket = Some(opened.id.clone());
    route.ticket_display = (opened.display != opened.id).then_some(opened.display);
    route.routed_at = Some(Utc::now());
    entry.route = Some(route.clone());
    entry.phase = Phase::Routed;
    entry.outcome = format!("waiting in {} {ticket}", route.channel);
    context.ledger.update(&entry).await?;
    context.metrics.request_decision("Route", "Routed");
    announce(
        context,
        &entry,
        false,
        "RequestRouted",
        format!(
            "request {} routed to {} {ticket}: {}",
            entry.request_id, route.channel, entry.comment
        ),
    );
    tracing::info!(request = %entry.request_id, channel = %route.channel, %ticket, "request routed");
    Ok(())
}

/// Moves one indexed entry on: follows a waiting route, resumes an interrupted decision, or
/// closes the ticket of a settled one.
pub(super) async fn follow(context: &RequestContext, entry: Entry) -> Result<(), RequestError> {
    match entry.phase {
        Phase::Routed => wait(context, entry).await,
        Phase::Claimed if entry.action == "Route" => {
            let request = context.opal.request(&entry.request_id).await?;
            start(context, entry, &request).await
        }
        Phase::Claimed => {
            carry_out(context, &entry).await?;
            settle(context, &entry.request_id).await
        }
        Phase::Applied | Phase::DecidedElsewhere => settle(context, &entry.request_id).await,
    }
}

async fn wait(context: &RequestContext, mut entry: Entry) -> Result<(), RequestError> {
    let Some(route) = entry.route.clone() else {
        return Ok(());
    };
    let Some(ticket) = route.ticket.clone() else {
        return Ok(());
    };
    let desk = context
        .desks
        .get(&route.channel)
        .ok_or_else(|| RequestError::NoDesk(route.channel.clone()))?;
    let request = context.opal.request(&entry.request_id).await?;
    if request.status != RequestStatus::Pending {
        entry.phase = Phase::DecidedElsewhere;
        entry.outcome = format!(
            "already {:?} in Opal before an answer in {ticket}; opal-operator did nothing",
            request.status
        );
        context.ledger.update(&entry).await?;
        context
            .metrics
            .request_decision(&entry.action, Phase::DecidedElsewhere.as_str());
        announce(
            context,
            &entry,
            false,
            "RequestDecidedElsewhere",
            format!("request {}: {}", entry.request_id, entry.outcome),
        );
        return settle(context, &entry.request_id).await;
    }
    let shown = route
        .ticket_display
        .clone()
        .unwrap_or_else(|| ticket.clone());
    let place = desk.place(&shown);
    let decided_by = format!("AccessPolicy {} rule {:?}", entry.decided_by, entry.rule);
    let clicks = match desk {
        RouteDesk::Slack(_) => context.ledger.clicks(&entry.request_id).await?,
        _ => Vec::new(),
    };
    let answers = desk.answers(&ticket, &clicks).await?;
    let manager = if route.plan().requester_manager && !answers.is_empty() {
        manager_email(context, &request).await?
    } else {
        None
    };
    let mut carried = None;
    // The first eligible answer decides; each ineligible one before it is noted once.
    for answer in answers {
        let decider_user_id = match &answer.decider_email {
            Some(email) => context
                .opal
                .user_by_email(email)
                .await?
                .map(|user| user.user_id),
            None => None,
        };
        let judgment = judge_route_answer(
            &route.plan(),
            &RouteAnswer {
                approve: answer.approve,
                decider_email: answer.decider_email,
                decider_user_id,
                place: place.clone(),
            },
            &request.requester_id,
            manager.as_deref(),
            &decided_by,
        );
        match judgment {
            RouteJudgment::Carry { approve, comment } => {
                carried = Some((approve, comment));
                break;
            }
            RouteJudgment::Refuse { reason } => {
                let noted = desk
                    .note_once(
                        &ticket,
                        &format!("[opal-operator refused: {reason}]"),
                        "This answer was not carried out in Opal; the request still waits for an eligible approver.",
                    )
                    .await?;
                if noted {
                    announce(
                        context,
                        &entry,
                        true,
                        "RouteAnswerRefused",
                        format!("request {} in {shown}: {reason}", entry.request_id),
                    );
                }
            }
        }
    }
    let (approve, comment) = match carried {
        Some(carried) => carried,
        None if expired(&entry) => (false, timeout_comment(&entry, &place, &decided_by)),
        None => return escalate(context, entry, &place).await,
    };
    entry.phase = Phase::Claimed;
    entry.action = if approve { "Approve" } else { "Deny" }.to_owned();
    entry.comment = format!("opal-operator: {comment}");
    context.ledger.update(&entry).await?;
    carry_out(context, &entry).await?;
    settle(context, &entry.request_id).await
}

/// Pages the route's escalation once the request has waited long enough: one incident, keyed
/// by the entry's name so that a retry finds the open one instead of paging twice, and
/// recorded before anything else happens to the entry.
async fn escalate(
    context: &RequestContext,
    mut entry: Entry,
    place: &str,
) -> Result<(), RequestError> {
    let Some(mut route) = entry.route.clone() else {
        return Ok(());
    };
    let plan = route.plan();
    let (Some(escalation), Some(routed_at), None) =
        (&plan.escalation, route.routed_at, &route.incident)
    else {
        return Ok(());
    };
    let now = Utc::now();
    if !escalation_due(&plan, routed_at, now) {
        return Ok(());
    }
    let pagerduty = context
        .on_call
        .get(&escalation.channel)
        .ok_or_else(|| RequestError::NoPager(escalation.channel.clone()))?;
    if !context.leadership.is_leader() {
        return Err(RequestError::NotLeader(entry.request_id.clone()));
    }
    let waited = (now - routed_at).num_minutes();
    let title = format!(
        "Opal access request {} waits for an approver in {place}",
        entry.request_id
    );
    let details = format!(
        "{}\nIt has waited {waited} minute(s) without an eligible answer. Decide it in {place}; opal-operator carries the answer out in Opal.",
        entry.comment
    );
    let incident = pagerduty
        .open_incident(&title, &ticket_token(&entry.request_id), &details)
        .await?;
    route.incident = Some(incident.clone());
    entry.route = Some(route);
    context.ledger.update(&entry).await?;
    context.metrics.request_decision("Route", "Escalated");
    announce(
        context,
        &entry,
        false,
        "RequestEscalated",
        format!(
            "request {} has waited {waited} minute(s) in {place}: paged PagerDuty incident {incident} on {}",
            entry.request_id, escalation.channel
        ),
    );
    tracing::info!(request = %entry.request_id, %incident, channel = %escalation.channel, "routed request escalated");
    Ok(())
}

fn expired(entry: &Entry) -> bool {
    entry.route.as_ref().is_some_and(|route| {
        route
            .routed_at
            .is_some_and(|at| route_expired(&route.plan(), at, Utc::now()))
    })
}

fn timeout_comment(entry: &Entry, place: &str, decided_by: &str) -> String {
    let wait = entry
        .route
        .as_ref()
        .and_then(|route| route.wait_seconds)
        .map_or_else(String::new, |seconds| format!(" within {seconds}s"));
    format!("denied: no eligible answer{wait} in {place} (routed by {decided_by}).")
}

/// The requester's HR manager. A lookup that fails, or HR not read yet, is an error rather
/// than "no manager": the manager's answer would otherwise be refused on the ticket.
async fn manager_email(
    context: &RequestContext,
    request: &Request,
) -> Result<Option<String>, RequestError> {
    let Some(requester) = requester_email(context, request).await? else {
        return Ok(None);
    };
    let view = context
        .views
        .borrow()
        .clone()
        .ok_or(RequestError::HrNotRead)?;
    Ok(view
        .employees
        .iter()
        .find(|employee| employee.email.eq_ignore_ascii_case(&requester))
        .and_then(|employee| employee.manager_email.clone()))
}

/// Closes a settled entry's ticket with what happened and takes it out of the index.
async fn settle(context: &RequestContext, request_id: &str) -> Result<(), RequestError> {
    let Some(mut entry) = context.ledger.get(request_id).await? else {
        return Ok(());
    };
    if !matches!(entry.phase, Phase::Applied | Phase::DecidedElsewhere) {
        // Carrying out was refused for now (a 4xx re-read next pass, or lost leadership).
        return Ok(());
    }
    let Some(mut route) = entry.route.clone() else {
        return Ok(());
    };
    if !route.closed
        && let (Some(ticket), Some(desk)) = (&route.ticket, context.desks.get(&route.channel))
    {
        let text = match entry.phase {
            Phase::DecidedElsewhere => entry.outcome.clone(),
            _ => format!("{} Outcome: {}.", entry.comment, entry.outcome),
        };
        desk.close(ticket, &ticket_token(request_id), &text).await?;
        route.closed = true;
        entry.route = Some(route.clone());
        context.ledger.update(&entry).await?;
    }
    if let Some(incident) = route.incident.clone().filter(|_| !route.incident_resolved) {
        let channel = route.escalation_channel.clone().unwrap_or_default();
        let pagerduty = context
            .on_call
            .get(&channel)
            .ok_or_else(|| RequestError::NoPager(channel.clone()))?;
        pagerduty
            .add_note(&incident, &format!("Settled: {}", entry.outcome))
            .await?;
        pagerduty.resolve_incident(&incident).await?;
        route.incident_resolved = true;
        entry.route = Some(route);
        context.ledger.update(&entry).await?;
    }
    context
        .ledger
        .index(Index::Routes, request_id, false)
        .await?;
    Ok(())
}
