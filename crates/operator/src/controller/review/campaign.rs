//! The steps of a ReviewSchedule that reach Opal: resolving the scope's users, starting a
//! campaign (or finding it again after a lost answer), and following it to its deadline.

use super::*;

/// Looks up the Opal user ID of every email in `spec.scope.users` (`GET /user?email=`).
/// An email Opal does not know is an error: leaving it out would widen the review.
pub async fn resolve_scope_users(
    opal: &Client,
    spec: &ReviewScheduleSpec,
) -> Result<ScopeUsers, ReviewError> {
    // One lookup per address, spelled as written (Opal may store mixed case).
    let mut emails = BTreeMap::new();
    for email in spec.scope.iter().flat_map(|scope| &scope.users) {
        emails.entry(email.to_lowercase()).or_insert(email.as_str());
    }
    // Owned items: a future over a borrowed stream item is not `Send` for the compiler when
    // the controller runs it on a spawned task.
    let found: Vec<(String, String)> =
        futures::stream::iter(emails.into_values().map(str::to_owned))
            .map(|email| async move {
                match opal.user_by_email(&email).await? {
                    Some(user) => Ok((email, user.user_id)),
                    None => Err(ReviewError::UnknownScopeUser { email }),
                }
            })
            .buffer_unordered(USER_LOOKUP_CONCURRENCY)
            .try_collect()
            .await?;
    let mut users = ScopeUsers::default();
    for (email, user_id) in found {
        users.insert(&email, user_id);
    }
    Ok(users)
}

/// The `POST /uar` body for one run of `schedule`.
///
/// The name is `<namespace>/<name> <YYYY-MM-DD HH:MM>` with the due occurrence on the schedule's
/// wall clock, or `<namespace>/<name> run-now <value>` for a run-now; it depends only on the
/// run, so [`start_campaign`] can find the review again after a lost answer. The deadline is
/// `started_at` plus `spec.deadline`. Scope `users` are emails and are sent as the Opal IDs in
/// `users`; the CRD has no counterpart for Opal's `group_visibility`, `entities` and `admins`.
pub fn uar_request(
    schedule: &ObjectKey,
    spec: &ReviewScheduleSpec,
    reason: &RunReason,
    started_at: DateTime<Utc>,
    users: &ScopeUsers,
) -> Result<CreateUar, ReviewError> {
    let parsed = Schedule::parse(spec)?;
    let started_at = started_at.with_nanosecond(0).unwrap_or(started_at);
    let name = match reason {
        RunReason::Scheduled { due_at } => format!(
            "{schedule} {}",
            due_at.with_timezone(&parsed.zone).format("%Y-%m-%d %H:%M")
        ),
        RunReason::RunNow { token } => format!("{schedule} run-now {}", run_now_label(token)),
    };
    let reminders = spec.reminders.as_ref();
    let reminder_schedule = reminders
        .map(|reminders| &reminders.days_before_deadline[..])
        .unwrap_or_default()
        .iter()
        .map(|&days| {
            if (0..=365).contains(&days) {
                Ok(i64::from(days))
            } else {
                Err(ReviewError::InvalidReminder { days })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CreateUar {
        name,
        deadline: parsed.deadline_after(started_at)?,
        reviewer_assignment_policy: assignment_policy(spec.reviewer_assignment),
        send_reviewer_assignment_notification: spec.notify_reviewers,
        time_zone: spec.time_zone.clone(),
        self_review_allowed: spec.self_review_allowed,
        instantly_action_reviews: Some(spec.instantly_action_reviews),
        reminder_schedule,
        reminder_include_manager: reminders.map(|reminders| reminders.include_manager),
        uar_scope: spec
            .scope
            .as_ref()
            .map(|scope| uar_scope(scope, users))
            .transpose()?,
    })
}

/// A run-now value as it appears in a campaign name: control characters removed, and a long
/// value shortened with a digest of the whole so distinct values keep distinct names.
fn run_now_label(token: &str) -> String {
    let clean: String = token.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= RUN_NOW_NAME_CHARS {
        return clean;
    }
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let prefix: String = clean.chars().take(RUN_NOW_NAME_CHARS - 13).collect();
    format!("{prefix}~{}", &digest[..12])
}

pub(super) fn assignment_policy(assignment: ReviewerAssignment) -> ReviewerAssignmentPolicy {
    match assignment {
        ReviewerAssignment::Manually => ReviewerAssignmentPolicy::Manually,
        ReviewerAssignment::ByOwningTeamAdmin => ReviewerAssignmentPolicy::ByOwningTeamAdmin,
        ReviewerAssignment::ByOwningTeamAdminAll => ReviewerAssignmentPolicy::ByOwningTeamAdminAll,
        ReviewerAssignment::ByManager => ReviewerAssignmentPolicy::ByManager,
        ReviewerAssignment::ByApprovers => ReviewerAssignmentPolicy::ByApprovers,
        ReviewerAssignment::ByApproversAll => ReviewerAssignmentPolicy::ByApproversAll,
    }
}

fn uar_scope(scope: &ReviewScope, users: &ScopeUsers) -> Result<UarScope, ReviewError> {
    let user_ids = scope
        .users
        .iter()
        .map(|email| {
            users
                .id(email)
                .map(str::to_owned)
                .ok_or_else(|| ReviewError::UnknownScopeUser {
                    email: email.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UarScope {
        group_visibility: None,
        filter_operator: Some(match scope.filter_operator {
            FilterOperator::Any => UarFilterOperator::Any,
            FilterOperator::All => UarFilterOperator::All,
        }),
        users: user_ids,
        entities: Vec::new(),
        apps: scope.apps.clone(),
        admins: Vec::new(),
        // Types Opal added after this client was written pass through verbatim; Opal judges them.
        group_types: scope
            .group_types
            .iter()
            .map(|kind| GroupType::from_wire(kind))
            .collect(),
        resource_types: scope
            .resource_types
            .iter()
            .map(|kind| ResourceType::from_wire(kind))
            .collect(),
        include_group_bindings: Some(scope.include_group_bindings),
        tags: scope
            .tags
            .iter()
            .map(|tag| TagFilter {
                key: tag.key.clone(),
                value: tag.value.clone(),
            })
            .collect(),
        names: scope.names.clone(),
    })
}

/// Starts the review `request` describes, or finds it if an earlier attempt already did.
///
/// Opal has no idempotency key for `POST /uar`, so the UARs are listed first and an open one
/// (deadline after `started_at`) with the same name is reused: a retry after a lost answer
/// never opens a second review. A same-named review that has closed is history, not a lost
/// answer. For a reused review `started_at` is this attempt's time.
pub async fn start_campaign(
    opal: &Client,
    request: &CreateUar,
    started_at: DateTime<Utc>,
) -> Result<Campaign, ReviewError> {
    let existing = opal.list_uars().await?.into_iter().find(|uar| {
        uar.name == request.name && uar.deadline.is_none_or(|deadline| deadline > started_at)
    });
    let uar = match existing {
        Some(uar) => uar,
        None => opal.create_uar(request).await?,
    };
    Ok(Campaign {
        uar_id: uar.uar_id,
        name: request.name.clone(),
        started_at,
        deadline: uar.deadline.unwrap_or(request.deadline),
        state: CampaignState::Running,
        progress: NO_COMPLETION_DATA.to_owned(),
    })
}

/// Checks every active campaign against Opal (`GET /uar/{id}`): one whose deadline has passed
/// moves to history as `PastDue` (`Escalated` stays so), one Opal no longer has moves to history
/// as `Unknown`. Opal's deadline wins over the recorded one (it can be changed in Opal).
///
/// A campaign whose lookup fails otherwise stays as it was; the first such error is returned
/// after every other campaign has been updated, so the status is worth writing either way.
pub async fn refresh_campaigns(
    opal: &Client,
    status: &mut ReviewScheduleStatus,
    now: DateTime<Utc>,
) -> Result<(), ReviewError> {
    let mut first_error = None;
    let mut active = Vec::new();
    let mut finished = Vec::new();
    for mut campaign in std::mem::take(&mut status.active_campaigns) {
        match opal.uar(&campaign.uar_id).await {
            Ok(uar) => {
                if let Some(deadline) = uar.deadline {
                    campaign.deadline = deadline;
                }
                if campaign.deadline > now {
                    active.push(campaign);
                    continue;
                }
                if campaign.state != CampaignState::Escalated {
                    campaign.state = CampaignState::PastDue;
                }
                campaign.progress = format!(
                    "deadline passed; {NO_COMPLETION_DATA}, so whether every item was reviewed is not known"
                );
                finished.push(campaign);
            }
            Err(error) if error.is_not_found() => {
                campaign.state = CampaignState::Unknown;
                campaign.progress = format!(
                    "UAR {} no longer exists in Opal; its outcome is not known",
                    campaign.uar_id
                );
                finished.push(campaign);
            }
            Err(error) => {
                first_error.get_or_insert(error);
                active.push(campaign);
            }
        }
    }
    status.active_campaigns = active;
    push_history(status, finished);
    first_error.map_or(Ok(()), |error| Err(error.into()))
}

/// Records a started campaign: `lastRun`, `lastRunNow` for a run-now, `nextRun` (from
/// [`ReviewDecision::next_run`]) and the active list (a campaign found again replaces its
/// earlier entry; beyond [`ACTIVE_LIMIT`] the oldest move to history as `Unknown`).
pub fn record_campaign(
    status: &mut ReviewScheduleStatus,
    campaign: Campaign,
    reason: &RunReason,
    next_run: DateTime<Utc>,
) {
    status.last_run = Some(campaign.started_at);
    if let RunReason::RunNow { token } = reason {
        status.last_run_now = Some(token.clone());
    }
    status.next_run = Some(next_run);
    status
        .active_campaigns
        .retain(|active| active.uar_id != campaign.uar_id);
    status.active_campaigns.push(campaign);
    if status.active_campaigns.len() > ACTIVE_LIMIT {
        status
            .active_campaigns
            .sort_by_key(|active| active.started_at);
        let overflow = status.active_campaigns.len() - ACTIVE_LIMIT;
        let dropped = status
            .active_campaigns
            .drain(..overflow)
            .map(|mut campaign| {
                campaign.state = CampaignState::Unknown;
                campaign.progress = format!(
                    "no longer followed: more than {ACTIVE_LIMIT} reviews were open at once"
                );
                campaign
            })
            .collect();
        push_history(status, dropped);
    }
}

/// Adds finished campaigns to history, newest first, bounded by [`HISTORY_LIMIT`].
pub(super) fn push_history(status: &mut ReviewScheduleStatus, finished: Vec<Campaign>) {
    status
        .history
        .retain(|old| finished.iter().all(|new| new.uar_id != old.uar_id));
    status.history.extend(finished);
    status
        .history
        .sort_by_key(|campaign| std::cmp::Reverse(campaign.started_at));
    status.history.truncate(HISTORY_LIMIT);
}
