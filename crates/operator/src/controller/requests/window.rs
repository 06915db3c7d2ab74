//! Windows of applied approvals. An approval the operator made is listed in the window index
//! before Opal is asked, so a restart between the approval and its record still follows it.
//! Each pass then cuts grants the rule approves for less than Opal gave (`grantAtMost`), and
//! once the window and the grace are over removes any grant Opal still shows: its expiry
//! failed, or it could never be cut. What to do with each grant is the engine's call
//! ([`window_step`]); this module reads Opal and writes what it says.

use chrono::Utc;

use super::ledger::{Entry, Index, Phase, WindowGrant, WindowRecord};
use super::{RequestContext, RequestError, announce, carry_out};
use crate::engine::{
    HeldGrant, TargetKind, WindowStep, approved_window, window_step, window_step_due,
};
use crate::opal::GrantOn;
use crate::opal::model::{GrantSpec, Request, RequestStatus};

/// Whether `action` approves.
pub(super) fn approves(action: &str) -> bool {
    matches!(action, "AutoApprove" | "Approve")
}

/// The window of `entry`'s approval of `request`, approved at `request.updated_at` (or now):
/// `None` when there is nothing to follow (an indefinite approval without a limit, or access
/// for a group, whose end Opal keeps on the group's own grant).
pub(super) fn window_for(entry: &Entry, request: &Request) -> Option<WindowRecord> {
    if request.target_group_id.is_some() {
        return None;
    }
    let approved_at = request.updated_at.unwrap_or_else(Utc::now);
    let requested = request
        .duration_minutes
        .filter(|minutes| *minutes > 0)
        .map(chrono::Duration::minutes);
    let limit = entry.grant_at_most_seconds.map(chrono::Duration::seconds);
    let window = approved_window(approved_at, requested, limit)?;
    let user_id = request
        .target_user_id
        .clone()
        .unwrap_or_else(|| request.requester_id.clone());
    let grants = request
        .requested_items_list
        .iter()
        .filter_map(|item| {
            let (kind, target_id) = match (&item.group_id, &item.resource_id) {
                (Some(group), _) => (TargetKind::Group, group.clone()),
                (None, Some(resource)) => (TargetKind::Resource, resource.clone()),
                (None, None) => return None,
            };
            Some(WindowGrant {
                kind,
                target_id,
                user_id: user_id.clone(),
                access_level_remote_id: item
                    .access_level_remote_id
                    .clone()
                    .filter(|level| !level.is_empty()),
                shortened: false,
                revoked: false,
            })
        })
        .collect();
    Some(WindowRecord {
        until: window.until,
        capped: window.capped,
        grants,
    })
}

fn grant_on(grant: &WindowGrant) -> GrantOn<'_> {
    match grant.kind {
        TargetKind::Group => GrantOn::Group(&grant.target_id),
        TargetKind::Resource => GrantOn::Resource(&grant.target_id),
    }
}

/// How Opal shows one grant now.
async fn held(context: &RequestContext, grant: &WindowGrant) -> Result<HeldGrant, RequestError> {
    let level = grant.access_level_remote_id.as_deref().unwrap_or("");
    let expiry = match grant.kind {
        TargetKind::Group => context
            .opal
            .list_user_groups(&grant.user_id)
            .await?
            .into_iter()
            .find(|member| {
                member.group_id == grant.target_id
                    && member.access_level.access_level_remote_id == level
            })
            .map(|member| member.expiration_date),
        TargetKind::Resource => {
            match context
                .opal
                .resource_user_grants(&grant.target_id, &grant.user_id)
                .await
            {
                Ok(grants) => grants
                    .into_iter()
                    .find(|user| user.access_level.access_level_remote_id == level)
                    .map(|user| user.expiration_date),
                // Opal answers 404 for a user without a grant on the resource.
                Err(error) if error.status() == Some(404) => None,
                Err(error) => return Err(error.into()),
            }
        }
    };
    Ok(expiry.map_or(HeldGrant::Absent, HeldGrant::Held))
}

/// Moves one indexed entry on: finishes an approval a restart interrupted, records the window
/// of one recorded without it, or follows the window of one under way.
pub(super) async fn follow(context: &RequestContext, mut entry: Entry) -> Result<(), RequestError> {
    match (approves(&entry.action), entry.phase) {
        // Carried out next by whichever loop owns it (the pending or the route pass).
        (_, Phase::Claimed | Phase::Routed) => return Ok(()),
        // Nothing was granted by this entry, so no window is left to follow.
        (false, _) | (true, Phase::DecidedElsewhere) => {
            return context
                .ledger
                .index(Index::Windows, &entry.request_id, false)
                .await
                .map_err(Into::into);
        }
        (true, Phase::Applied) => {}
    }
    let Some(mut window) = entry.window.clone() else {
        // Applied before its window was recorded (an approval Opal left pending on a later
        // review stage, or one found applied after a restart): record it once Opal grants.
        let request = context.opal.request(&entry.request_id).await?;
        if request.status == RequestStatus::Pending {
            return Ok(());
        }
        entry.window = if request.status == RequestStatus::Approved {
            window_for(&entry, &request)
        } else {
            None
        };
        if entry.window.is_some() {
            context.ledger.update(&entry).await?;
        } else {
            context
                .ledger
                .index(Index::Windows, &entry.request_id, false)
                .await?;
        }
        return Ok(());
    };
    let grace = context.expiry_grace;
    let now = Utc::now();
    let bounds = window.window();
    let mut changed = false;
    let mut finished = true;
    for grant in &mut window.grants {
        if grant.revoked {
            continue;
        }
        // Opal is read only when the answer could change what is done.
        if !window_step_due(&bounds, grant.shortened, now, grace) {
            finished = false;
            continue;
        }
        let state = held(context, grant).await?;
        match window_step(&bounds, grant.shortened, state, now, grace) {
            WindowStep::Wait => finished = false,
            WindowStep::Done => {}
            WindowStep::Shorten { minutes } => {
                finished = false;
                if !context.leadership.is_leader() {
                    return Err(RequestError::NotLeader(entry.request_id.clone()));
                }
                let spec = GrantSpec {
                    duration_minutes: minutes,
                    access_level_remote_id: grant.access_level_remote_id.clone(),
                };
                match grant.kind {
                    TargetKind::Group => {
                        context
                            .opal
                            .update_group_user(&grant.target_id, &grant.user_id, &spec)
                            .await?;
                    }
                    TargetKind::Resource => {
                        context
                            .opal
                            .update_resource_user(&grant.target_id, &grant.user_id, &spec)
                            .await?;
                    }
                }
                grant.shortened = true;
                changed = true;
                context.metrics.request_window("Shortened");
                tracing::info!(request = %entry.request_id, target = %grant.target_id, user = %grant.user_id, minutes, "approved grant cut to its rule's limit");
            }
            WindowStep::Revoke { reason } => {
                if !context.leadership.is_leader() {
                    return Err(RequestError::NotLeader(entry.request_id.clone()));
                }
                context
                    .opal
                    .revoke_user(
                        grant_on(grant),
                        &grant.user_id,
                        grant.access_level_remote_id.as_deref(),
                    )
                    .await?;
                grant.revoked = true;
                changed = true;
                context.metrics.request_window("Revoked");
                let note = format!(
                    "request {}: removed user {} from {:?} {} after the approved window ended at {}: {reason}",
                    entry.request_id,
                    grant.user_id,
                    grant.kind,
                    grant.target_id,
                    window.until.to_rfc3339()
                );
                tracing::warn!(request = %entry.request_id, target = %grant.target_id, user = %grant.user_id, %reason, "approved grant outlived its window; removed");
                announce(context, &entry, true, "ExpiredGrantRevoked", note);
            }
        }
    }
    if changed {
        let revoked = window.grants.iter().filter(|grant| grant.revoked).count();
        if revoked > 0 {
            entry.outcome = format!(
                "Approved in Opal; {revoked} grant(s) outlived the window ending {} and were removed",
                window.until.to_rfc3339()
            );
        }
        entry.window = Some(window);
        context.ledger.update(&entry).await?;
    }
    if finished {
        context
            .ledger
            .index(Index::Windows, &entry.request_id, false)
            .await?;
    }
    Ok(())
}

/// Lists an approval in the window index before Opal is asked to approve it.
pub(super) async fn watch(context: &RequestContext, entry: &Entry) -> Result<(), RequestError> {
    if approves(&entry.action) {
        context
            .ledger
            .index(Index::Windows, &entry.request_id, true)
            .await?;
    }
    Ok(())
}

/// Every indexed window, followed; one failure does not hold up the others.
pub(super) async fn follow_all(context: &RequestContext) -> Result<(), RequestError> {
    for request_id in context.ledger.listed(Index::Windows).await? {
        let followed = match context.ledger.get(&request_id).await {
            Ok(Some(entry)) if entry.phase == Phase::Claimed && approves(&entry.action) => {
                carry_out(context, &entry).await
            }
            Ok(Some(entry)) => follow(context, entry).await,
            Ok(None) => context
                .ledger
                .index(Index::Windows, &request_id, false)
                .await
                .map_err(Into::into),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = followed {
            context.metrics.request_window("Failed");
            tracing::warn!(request = %request_id, %error, "following an approval's window failed; retried next pass");
        }
    }
    Ok(())
}
