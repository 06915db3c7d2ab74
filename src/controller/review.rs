//! ReviewSchedule: when the next campaign is due and the Opal UAR it creates.
//!
//! Everything here is pure except [`resolve_scope_users`], [`start_campaign`] and
//! [`refresh_campaigns`], which reach Opal only through [`Client`].
//!
//! # Time zones and daylight saving time
//!
//! The cron expression is evaluated on the wall clock of `timeZone` (croner's rules, which follow
//! Vixie cron):
//! * A fixed-time schedule (one minute and one hour, e.g. `30 2 * * *`) whose time does not exist
//!   on a spring-forward day runs at the first instant after the gap (03:00 in Europe/Berlin on
//!   2025-03-30). It is not skipped: a quarterly review never slips by a quarter because of DST.
//! * A fixed-time schedule whose time occurs twice on a fall-back day runs once, at the first
//!   (still daylight-time) instant.
//! * A schedule with a list, range or step in its minute or hour field is an interval schedule:
//!   wall-clock times inside a gap are skipped, and a repeated time matches at both instants. Both
//!   instants carry the same campaign name, so the second finds the first still open and no
//!   second review starts.
//! * A deadline in days (`14d`) counts calendar days on the zone's wall clock (09:00 plus 14d is
//!   09:00 again, even across a DST change); a deadline in hours is elapsed time.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Days, Duration, LocalResult, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::crd::{
    Campaign, CampaignState, FilterOperator, ReviewScheduleSpec, ReviewScheduleStatus, ReviewScope,
    ReviewerAssignment,
};
use crate::engine::{ObjectKey, parse_go_duration};
use crate::opal::model::{
    CreateUar, GroupType, ResourceType, ReviewerAssignmentPolicy, TagFilter, UarFilterOperator,
    UarScope,
};
use crate::opal::{Client, OpalError};

/// Most finished campaigns kept in `status.history`.
pub const HISTORY_LIMIT: usize = 20;

/// Most campaigns followed in `status.activeCampaigns`; older ones move to history.
pub const ACTIVE_LIMIT: usize = 20;

/// Longest wait between two evaluations of one schedule, so deleted UARs and clock jumps are
/// noticed even when the next run is months away.
pub const MAX_REQUEUE: StdDuration = StdDuration::from_secs(3600);

/// Shortest wait, so an instant that is due "now" never becomes a hot loop.
const MIN_REQUEUE: StdDuration = StdDuration::from_secs(1);

/// Longest deadline accepted, the CRD's `9999d`.
const MAX_DEADLINE_DAYS: u64 = 9999;

/// Characters of a run-now value kept verbatim in a campaign name.
const RUN_NOW_NAME_CHARS: usize = 64;

/// Email lookups in flight at once while resolving a scope's users.
const USER_LOOKUP_CONCURRENCY: usize = 8;

/// What status says about a campaign's progress: Opal's UAR endpoints return only the settings
/// a review was created with.
pub const NO_COMPLETION_DATA: &str =
    "Opal's API exposes no completion or decision data for access reviews; progress is unknown";

/// Why a schedule cannot be evaluated or a campaign cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// `spec.schedule` is not a five-field cron expression, or it never matches.
    #[error("schedule {schedule:?} is invalid: {reason}")]
    InvalidSchedule { schedule: String, reason: String },
    /// `spec.timeZone` is not an IANA time zone name.
    #[error("timeZone {time_zone:?} is not an IANA time zone such as Europe/Berlin")]
    UnknownTimeZone { time_zone: String },
    /// `spec.deadline` is not a positive number of days or hours.
    #[error("deadline {deadline:?} is invalid: {reason}")]
    InvalidDeadline { deadline: String, reason: String },
    /// A `spec.reminders.daysBeforeDeadline` entry is out of range.
    #[error("reminders.daysBeforeDeadline {days} is outside 0..=365")]
    InvalidReminder { days: i32 },
    /// A `spec.scope.users` email matches no Opal user. Dropping it would widen the review.
    #[error("scope.users {email:?} is not an Opal user")]
    UnknownScopeUser { email: String },
    /// An Opal call failed.
    #[error(transparent)]
    Opal(#[from] OpalError),
}

impl ReviewError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::InvalidSchedule { .. } => "invalid_schedule",
            Self::UnknownTimeZone { .. } => "invalid_time_zone",
            Self::InvalidDeadline { .. } => "invalid_deadline",
            Self::InvalidReminder { .. } => "invalid_reminder",
            Self::UnknownScopeUser { .. } => "unknown_scope_user",
            Self::Opal(error) => error.label(),
        }
    }
}

/// Why a campaign starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunReason {
    /// The schedule's occurrence at `due_at` (the earliest one not yet acted on).
    Scheduled { due_at: DateTime<Utc> },
    /// A new `opal-operator.io/run-now` value (trimmed).
    RunNow { token: String },
}

/// What to do for one ReviewSchedule now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDecision {
    /// The campaign to start now, if any.
    pub run: Option<RunReason>,
    /// The value for `status.nextRun` once `run` (if any) has been acted on.
    pub next_run: DateTime<Utc>,
    /// When to evaluate again: the next run or the next active deadline, whichever comes first,
    /// within 1 s and [`MAX_REQUEUE`].
    pub requeue_after: StdDuration,
}

/// Opal user IDs for the emails of a scope's `users`, as [`resolve_scope_users`] found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeUsers(BTreeMap<String, String>);

impl ScopeUsers {
    /// Records the Opal user ID for an email (matched case-insensitively).
    pub fn insert(&mut self, email: &str, user_id: impl Into<String>) {
        self.0.insert(email.to_lowercase(), user_id.into());
    }

    /// The Opal user ID for an email, if known.
    pub fn id(&self, email: &str) -> Option<&str> {
        self.0.get(&email.to_lowercase()).map(String::as_str)
    }
}

/// How long reviewers have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// Calendar days on the schedule's wall clock.
    Days(u64),
    /// Elapsed time.
    Elapsed(Duration),
}

/// A validated spec: the cron expression, the zone it runs in and the deadline.
struct Schedule<'a> {
    expression: &'a str,
    deadline_text: &'a str,
    cron: Cron,
    zone: Tz,
    deadline: Deadline,
}

impl<'a> Schedule<'a> {
    fn parse(spec: &'a ReviewScheduleSpec) -> Result<Self, ReviewError> {
        Ok(Self {
            expression: &spec.schedule,
            deadline_text: &spec.deadline,
            cron: parse_cron(&spec.schedule)?,
            zone: spec
                .time_zone
                .parse()
                .map_err(|_| ReviewError::UnknownTimeZone {
                    time_zone: spec.time_zone.clone(),
                })?,
            deadline: parse_deadline(&spec.deadline)?,
        })
    }

    /// The first occurrence strictly after `after`.
    fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ReviewError> {
        // Occurrences fall on whole minutes; without sub-seconds "strictly after" is exact.
        let after = after.with_nanosecond(0).unwrap_or(after);
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .map(|next| next.with_timezone(&Utc))
            .map_err(|error| ReviewError::InvalidSchedule {
                schedule: self.expression.to_owned(),
                reason: format!("no occurrence after {after}: {error}"),
            })
    }

    /// Whether `at` is an occurrence of this schedule (a stored next run stays valid only then).
    fn is_occurrence(&self, at: DateTime<Utc>) -> Result<bool, ReviewError> {
        Ok(self.next_after(at - Duration::seconds(1))? == at)
    }

    fn deadline_after(&self, started_at: DateTime<Utc>) -> Result<DateTime<Utc>, ReviewError> {
        let too_far = || ReviewError::InvalidDeadline {
            deadline: self.deadline_text.to_owned(),
            reason: "ends beyond the representable calendar".to_owned(),
        };
        match self.deadline {
            Deadline::Days(days) => {
                let local = started_at
                    .with_timezone(&self.zone)
                    .naive_local()
                    .checked_add_days(Days::new(days))
                    .ok_or_else(too_far)?;
                match self.zone.from_local_datetime(&local) {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                        Ok(at.with_timezone(&Utc))
                    }
                    // The same wall-clock time falls in a DST gap that day: count elapsed days.
                    LocalResult::None => started_at
                        .checked_add_days(Days::new(days))
                        .ok_or_else(too_far),
                }
            }
            Deadline::Elapsed(elapsed) => {
                started_at.checked_add_signed(elapsed).ok_or_else(too_far)
            }
        }
    }
}

fn parse_cron(expression: &str) -> Result<Cron, ReviewError> {
    let invalid = |reason: String| ReviewError::InvalidSchedule {
        schedule: expression.to_owned(),
        reason,
    };
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(invalid(format!(
            "has {fields} fields; expected 5 (minute hour day-of-month month day-of-week)"
        )));
    }
    // croner also reads `@daily`, `#` and the like; the CRD's validation does not, and manifests
    // read without an API server must not accept a wider language.
    if let Some(bad) = expression.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || c.is_whitespace()
            || matches!(c, '*' | '?' | ',' | '-' | '/'))
    }) {
        return Err(invalid(format!("character {bad:?} is not allowed")));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|error| invalid(error.to_string()))
}

fn parse_deadline(raw: &str) -> Result<Deadline, ReviewError> {
    let invalid = |reason: &str| ReviewError::InvalidDeadline {
        deadline: raw.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(days) = raw.strip_suffix('d') {
        return days
            .parse::<u64>()
            .ok()
            .filter(|days| (1..=MAX_DEADLINE_DAYS).contains(days) && !raw.starts_with('+'))
            .map(Deadline::Days)
            .ok_or_else(|| invalid("use whole days from 1d to 9999d, or hours such as 72h"));
    }
    let elapsed = parse_go_duration(raw)
        .map_err(|_| invalid("use whole days such as 14d, or hours such as 72h"))?;
    let longest = Duration::days(MAX_DEADLINE_DAYS as i64);
    if elapsed <= Duration::zero() || elapsed > longest {
        return Err(invalid("must be longer than zero and at most 9999d"));
    }
    Ok(Deadline::Elapsed(elapsed))
}

/// The next occurrence of `spec.schedule` strictly after `after`, evaluated on the wall clock of
/// `spec.timeZone` (see the module documentation for DST), in UTC. Also validates the deadline,
/// so one call reports every unusable field.
pub fn next_run(
    spec: &ReviewScheduleSpec,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, ReviewError> {
    Schedule::parse(spec)?.next_after(after)
}

/// Decides whether a campaign starts now and when to look again.
///
/// * The pending occurrence is `status.nextRun`, or the first occurrence after `created_at`
///   when there is none. A scheduled run is due when it is at or before `now`; however many
///   occurrences were missed (operator down, or status lost), one campaign starts and the next
///   run counts from `now`.
/// * A stored next run that is no occurrence of the current schedule (the schedule or time zone
///   was edited) is replaced by the first occurrence after `now`: editing never starts a review.
/// * A `run_now` value (trimmed, non-empty) different from `status.lastRunNow` starts one
///   campaign; a scheduled run due at the same time is covered by it.
/// * `suspend` starts nothing. The reported next run keeps moving forward, so resuming never
///   starts a catch-up review; a run-now value set meanwhile still counts once resumed.
pub fn decide(
    spec: &ReviewScheduleSpec,
    status: Option<&ReviewScheduleStatus>,
    run_now: Option<&str>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ReviewDecision, ReviewError> {
    let schedule = Schedule::parse(spec)?;
    let pending = match status.and_then(|status| status.next_run) {
        Some(stored) if schedule.is_occurrence(stored)? => stored,
        Some(_) => schedule.next_after(now)?,
        None => schedule.next_after(created_at)?,
    };
    let scheduled_due = pending <= now;
    let next_run = if scheduled_due {
        schedule.next_after(now)?
    } else {
        pending
    };
    let last_run_now = status.and_then(|status| status.last_run_now.as_deref());
    let token = run_now
        .map(str::trim)
        .filter(|token| !token.is_empty() && Some(*token) != last_run_now);
    let run = match (spec.suspend, token) {
        (true, _) => None,
        (false, Some(token)) => Some(RunReason::RunNow {
            token: token.to_owned(),
        }),
        (false, None) => scheduled_due.then_some(RunReason::Scheduled { due_at: pending }),
    };
    Ok(ReviewDecision {
        run,
        next_run,
        requeue_after: requeue_after(status, next_run, now),
    })
}

fn requeue_after(
    status: Option<&ReviewScheduleStatus>,
    next_run: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StdDuration {
    let wake = status
        .into_iter()
        .flat_map(|status| &status.active_campaigns)
        .map(|campaign| campaign.deadline)
        .filter(|deadline| *deadline > now)
        .fold(next_run, std::cmp::min);
    let wait = (wake - now).to_std().unwrap_or_default();
    // Whole seconds, rounded up, so the wake-up never lands just before the instant.
    let wait = StdDuration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
    wait.clamp(MIN_REQUEUE, MAX_REQUEUE)
}

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

fn assignment_policy(assignment: ReviewerAssignment) -> ReviewerAssignmentPolicy {
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
fn push_history(status: &mut ReviewScheduleStatus, finished: Vec<Campaign>) {
    status
        .history
        .retain(|old| finished.iter().all(|new| new.uar_id != old.uar_id));
    status.history.extend(finished);
    status
        .history
        .sort_by_key(|campaign| std::cmp::Reverse(campaign.started_at));
    status.history.truncate(HISTORY_LIMIT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ReminderSpec, TagSelector};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid UTC time")
    }

    fn spec(schedule: &str, time_zone: &str) -> ReviewScheduleSpec {
        ReviewScheduleSpec {
            schedule: schedule.to_owned(),
            time_zone: time_zone.to_owned(),
            scope: None,
            reviewer_assignment: ReviewerAssignment::ByManager,
            deadline: "14d".to_owned(),
            reminders: None,
            escalation: None,
            outcomes: Vec::new(),
            self_review_allowed: false,
            instantly_action_reviews: false,
            notify_reviewers: true,
            suspend: false,
        }
    }

    fn campaign(uar_id: &str, started_at: DateTime<Utc>, deadline: DateTime<Utc>) -> Campaign {
        Campaign {
            uar_id: uar_id.to_owned(),
            name: format!("team/review {uar_id}"),
            started_at,
            deadline,
            state: CampaignState::Running,
            progress: NO_COMPLETION_DATA.to_owned(),
        }
    }

    #[test]
    fn next_run_in_utc_is_strictly_after() {
        let daily = spec("0 9 * * *", "UTC");
        assert_eq!(
            next_run(&daily, utc(2025, 1, 1, 8, 59)).unwrap(),
            utc(2025, 1, 1, 9, 0)
        );
        assert_eq!(
            next_run(&daily, utc(2025, 1, 1, 9, 0)).unwrap(),
            utc(2025, 1, 2, 9, 0)
        );
        let just_after = utc(2025, 1, 1, 9, 0) + Duration::milliseconds(300);
        assert_eq!(next_run(&daily, just_after).unwrap(), utc(2025, 1, 2, 9, 0));
        let quarterly = spec("0 9 1 1,4,7,10 *", "UTC");
        assert_eq!(
            next_run(&quarterly, utc(2025, 1, 1, 9, 0)).unwrap(),
            utc(2025, 4, 1, 9, 0)
        );
    }

    #[test]
    fn next_run_follows_a_non_utc_zone_across_summer_and_winter() {
        let berlin = spec("0 9 1 * *", "Europe/Berlin");
        // CET (UTC+1) in January, CEST (UTC+2) in July.
        assert_eq!(
            next_run(&berlin, utc(2025, 1, 1, 0, 0)).unwrap(),
            utc(2025, 1, 1, 8, 0)
        );
        assert_eq!(
            next_run(&berlin, utc(2025, 6, 15, 0, 0)).unwrap(),
            utc(2025, 7, 1, 7, 0)
        );
        let tokyo = spec("30 18 * * MON", "Asia/Tokyo");
        // Monday 2025-03-03 18:30 JST is 09:30 UTC.
        assert_eq!(
            next_run(&tokyo, utc(2025, 3, 1, 0, 0)).unwrap(),
            utc(2025, 3, 3, 9, 30)
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_right_after_the_gap() {
        // Europe/Berlin jumps from 02:00 CET to 03:00 CEST on 2025-03-30.
        let berlin = spec("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            next_run(&berlin, utc(2025, 3, 29, 12, 0)).unwrap(),
            utc(2025, 3, 30, 1, 0),
            "03:00 CEST, the first instant after the gap"
        );
        assert_eq!(
            next_run(&berlin, utc(2025, 3, 30, 1, 0)).unwrap(),
            utc(2025, 3, 31, 0, 30),
            "back to 02:30 CEST the next day"
        );
        // America/New_York jumps from 02:00 EST to 03:00 EDT on 2025-03-09.
        let new_york = spec("30 2 9 3 *", "America/New_York");
        assert_eq!(
            next_run(&new_york, utc(2025, 3, 1, 0, 0)).unwrap(),
            utc(2025, 3, 9, 7, 0)
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once_at_the_first_instant() {
        // America/New_York repeats 01:00-02:00 on 2025-11-02 (EDT, then EST).
        let new_york = spec("30 1 * * *", "America/New_York");
        let first = next_run(&new_york, utc(2025, 11, 1, 12, 0)).unwrap();
        assert_eq!(first, utc(2025, 11, 2, 5, 30), "01:30 EDT");
        let second = next_run(&new_york, first).unwrap();
        assert_eq!(second, utc(2025, 11, 3, 6, 30), "01:30 EST the next day");
        // Europe/Berlin repeats 02:00-03:00 on 2025-10-26.
        let berlin = spec("30 2 26 10 *", "Europe/Berlin");
        let first = next_run(&berlin, utc(2025, 10, 1, 0, 0)).unwrap();
        assert_eq!(first, utc(2025, 10, 26, 0, 30), "02:30 CEST");
        assert_eq!(
            next_run(&berlin, first).unwrap(),
            utc(2026, 10, 26, 1, 30),
            "a year later, in CET"
        );
    }

    #[test]
    fn invalid_fields_are_named_with_their_value() {
        let cases = [
            (spec("0 9 * *", "UTC"), "invalid_schedule", "\"0 9 * *\""),
            (spec("0 0 9 * * *", "UTC"), "invalid_schedule", "6 fields"),
            (spec("@daily x y z w", "UTC"), "invalid_schedule", "'@'"),
            (
                spec("61 9 * * *", "UTC"),
                "invalid_schedule",
                "\"61 9 * * *\"",
            ),
            (
                spec("0 0 30 2 *", "UTC"),
                "invalid_schedule",
                "no occurrence",
            ),
            (
                spec("0 9 * * *", "Mars/Olympus"),
                "invalid_time_zone",
                "Mars/Olympus",
            ),
        ];
        for (spec, label, needle) in cases {
            let error = next_run(&spec, utc(2025, 1, 1, 0, 0)).unwrap_err();
            assert_eq!(error.label(), label, "{error}");
            assert!(error.to_string().contains(needle), "{error}");
        }
        for deadline in ["0d", "14", "2w", "10000d", "+5d", "-3h", "0h", ""] {
            let mut bad = spec("0 9 * * *", "UTC");
            bad.deadline = deadline.to_owned();
            let error = next_run(&bad, utc(2025, 1, 1, 0, 0)).unwrap_err();
            assert_eq!(error.label(), "invalid_deadline", "{deadline}: {error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("deadline {deadline:?}")),
                "{error}"
            );
        }
    }

    fn status_with_next(next_run: DateTime<Utc>) -> ReviewScheduleStatus {
        ReviewScheduleStatus {
            next_run: Some(next_run),
            ..ReviewScheduleStatus::default()
        }
    }

    #[test]
    fn nothing_runs_before_the_first_occurrence_after_creation() {
        let daily = spec("0 9 * * *", "UTC");
        let created = utc(2025, 1, 1, 10, 0);
        let decision = decide(&daily, None, None, created, utc(2025, 1, 1, 12, 0)).unwrap();
        assert_eq!(decision.run, None);
        assert_eq!(decision.next_run, utc(2025, 1, 2, 9, 0));
        assert_eq!(decision.requeue_after, MAX_REQUEUE);
        let decision = decide(&daily, None, None, created, utc(2025, 1, 2, 8, 59)).unwrap();
        assert_eq!(decision.run, None);
        assert_eq!(decision.requeue_after, StdDuration::from_secs(60));
    }

    #[test]
    fn a_due_occurrence_runs_once_and_the_next_counts_from_now() {
        let daily = spec("0 9 * * *", "UTC");
        let created = utc(2025, 1, 1, 10, 0);
        let now = utc(2025, 1, 2, 9, 0) + Duration::seconds(2);
        let decision = decide(&daily, None, None, created, now).unwrap();
        assert_eq!(
            decision.run,
            Some(RunReason::Scheduled {
                due_at: utc(2025, 1, 2, 9, 0)
            })
        );
        assert_eq!(decision.next_run, utc(2025, 1, 3, 9, 0));
        // Once recorded, the same instant decides nothing.
        let status = status_with_next(decision.next_run);
        let again = decide(&daily, Some(&status), None, created, now).unwrap();
        assert_eq!(again.run, None);
        assert_eq!(again.next_run, utc(2025, 1, 3, 9, 0));
    }

    #[test]
    fn many_missed_occurrences_start_one_campaign() {
        let daily = spec("0 9 * * *", "UTC");
        let status = status_with_next(utc(2025, 1, 2, 9, 0));
        let now = utc(2025, 1, 20, 12, 0);
        let decision = decide(&daily, Some(&status), None, utc(2025, 1, 1, 0, 0), now).unwrap();
        assert_eq!(
            decision.run,
            Some(RunReason::Scheduled {
                due_at: utc(2025, 1, 2, 9, 0)
            })
        );
        assert_eq!(decision.next_run, utc(2025, 1, 21, 9, 0));
        let recorded = status_with_next(decision.next_run);
        let after = decide(&daily, Some(&recorded), None, utc(2025, 1, 1, 0, 0), now).unwrap();
        assert_eq!(after.run, None);
    }

    #[test]
    fn an_edited_schedule_counts_from_now_without_a_catch_up_run() {
        let monthly = spec("0 9 1 * *", "UTC");
        // Stored by the former daily schedule; not an occurrence of the monthly one.
        let status = status_with_next(utc(2025, 1, 2, 9, 0));
        let now = utc(2025, 1, 20, 12, 0);
        let decision = decide(&monthly, Some(&status), None, utc(2025, 1, 1, 0, 0), now).unwrap();
        assert_eq!(decision.run, None);
        assert_eq!(decision.next_run, utc(2025, 2, 1, 9, 0));
    }

    #[test]
    fn suspend_never_runs_but_reports_the_next_run() {
        let mut daily = spec("0 9 * * *", "UTC");
        daily.suspend = true;
        let status = status_with_next(utc(2025, 1, 2, 9, 0));
        let now = utc(2025, 1, 5, 12, 0);
        let decision = decide(
            &daily,
            Some(&status),
            Some("now"),
            utc(2025, 1, 1, 0, 0),
            now,
        )
        .unwrap();
        assert_eq!(decision.run, None);
        assert_eq!(decision.next_run, utc(2025, 1, 6, 9, 0));
        let future = status_with_next(utc(2025, 1, 6, 9, 0));
        let decision = decide(&daily, Some(&future), None, utc(2025, 1, 1, 0, 0), now).unwrap();
        assert_eq!(decision.run, None);
        assert_eq!(decision.next_run, utc(2025, 1, 6, 9, 0));
    }

    #[test]
    fn run_now_runs_once_per_distinct_value() {
        let quarterly = spec("0 9 1 1,4,7,10 *", "UTC");
        let created = utc(2025, 1, 1, 0, 0);
        let now = utc(2025, 2, 10, 12, 0);
        let mut status = status_with_next(utc(2025, 4, 1, 9, 0));
        let decision = decide(&quarterly, Some(&status), Some(" one "), created, now).unwrap();
        let reason = RunReason::RunNow {
            token: "one".to_owned(),
        };
        assert_eq!(decision.run, Some(reason.clone()));
        assert_eq!(
            decision.next_run,
            utc(2025, 4, 1, 9, 0),
            "a run-now leaves the schedule alone"
        );
        record_campaign(
            &mut status,
            campaign("u1", now, utc(2025, 2, 24, 12, 0)),
            &reason,
            decision.next_run,
        );
        assert_eq!(status.last_run_now.as_deref(), Some("one"));
        let same = decide(&quarterly, Some(&status), Some("one"), created, now).unwrap();
        assert_eq!(same.run, None);
        let empty = decide(&quarterly, Some(&status), Some("  "), created, now).unwrap();
        assert_eq!(empty.run, None);
        let other = decide(&quarterly, Some(&status), Some("two"), created, now).unwrap();
        assert_eq!(
            other.run,
            Some(RunReason::RunNow {
                token: "two".to_owned()
            })
        );
    }

    #[test]
    fn run_now_with_a_due_occurrence_is_one_campaign_that_covers_both() {
        let daily = spec("0 9 * * *", "UTC");
        let status = status_with_next(utc(2025, 1, 2, 9, 0));
        let now = utc(2025, 1, 2, 10, 0);
        let decision = decide(
            &daily,
            Some(&status),
            Some("go"),
            utc(2025, 1, 1, 0, 0),
            now,
        )
        .unwrap();
        assert!(matches!(decision.run, Some(RunReason::RunNow { .. })));
        assert_eq!(decision.next_run, utc(2025, 1, 3, 9, 0));
    }

    #[test]
    fn requeue_wakes_for_an_active_deadline_before_the_next_run() {
        let yearly = spec("0 9 1 1 *", "UTC");
        let now = utc(2025, 3, 1, 12, 0);
        let mut status = status_with_next(utc(2026, 1, 1, 9, 0));
        status.active_campaigns.push(campaign(
            "u1",
            utc(2025, 2, 1, 9, 0),
            now + Duration::seconds(90) + Duration::milliseconds(1),
        ));
        let decision = decide(&yearly, Some(&status), None, utc(2024, 1, 1, 0, 0), now).unwrap();
        assert_eq!(decision.requeue_after, StdDuration::from_secs(91));
    }

    fn full_spec() -> ReviewScheduleSpec {
        let mut full = spec("0 9 1 1,4,7,10 *", "Europe/Berlin");
        full.reviewer_assignment = ReviewerAssignment::ByOwningTeamAdminAll;
        full.deadline = "14d".to_owned();
        full.reminders = Some(ReminderSpec {
            days_before_deadline: vec![7, 3, 1, 0],
            include_manager: true,
        });
        full.self_review_allowed = true;
        full.instantly_action_reviews = true;
        full.notify_reviewers = false;
        full.scope = Some(ReviewScope {
            tags: vec![
                TagSelector {
                    key: "env".to_owned(),
                    value: Some("prod".to_owned()),
                },
                TagSelector {
                    key: "pii".to_owned(),
                    value: None,
                },
            ],
            names: vec!["payments".to_owned()],
            apps: vec!["app-1".to_owned()],
            group_types: vec!["okta_group".to_owned(), "NEW_KIND".to_owned()],
            resource_types: vec!["AWS_IAM_ROLE".to_owned()],
            users: vec!["Ada@Example.com".to_owned()],
            filter_operator: FilterOperator::All,
            include_group_bindings: true,
        });
        full
    }

    #[test]
    fn the_request_maps_every_field() {
        let key = ObjectKey::new("team-a", "quarterly");
        let mut users = ScopeUsers::default();
        users.insert("ada@example.com", "user-ada");
        let due_at = utc(2025, 1, 1, 8, 0);
        let started_at = due_at + Duration::milliseconds(2500);
        let request = uar_request(
            &key,
            &full_spec(),
            &RunReason::Scheduled { due_at },
            started_at,
            &users,
        )
        .unwrap();
        assert_eq!(request.name, "team-a/quarterly 2025-01-01 09:00");
        assert_eq!(
            request.deadline,
            utc(2025, 1, 15, 8, 0) + Duration::seconds(2)
        );
        assert_eq!(
            request.reviewer_assignment_policy,
            ReviewerAssignmentPolicy::ByOwningTeamAdminAll
        );
        assert!(!request.send_reviewer_assignment_notification);
        assert_eq!(request.time_zone, "Europe/Berlin");
        assert!(request.self_review_allowed);
        assert_eq!(request.instantly_action_reviews, Some(true));
        assert_eq!(request.reminder_schedule, vec![7, 3, 1, 0]);
        assert_eq!(request.reminder_include_manager, Some(true));
        let scope = request.uar_scope.clone().expect("scope");
        assert_eq!(scope.filter_operator, Some(UarFilterOperator::All));
        assert_eq!(scope.users, vec!["user-ada"]);
        assert_eq!(scope.apps, vec!["app-1"]);
        assert_eq!(scope.names, vec!["payments"]);
        assert_eq!(
            scope.group_types,
            vec![
                GroupType::OktaGroup,
                GroupType::Unknown("NEW_KIND".to_owned())
            ]
        );
        assert_eq!(scope.resource_types, vec![ResourceType::AwsIamRole]);
        assert_eq!(scope.include_group_bindings, Some(true));
        assert_eq!(
            scope.tags,
            vec![
                TagFilter {
                    key: "env".to_owned(),
                    value: Some("prod".to_owned())
                },
                TagFilter {
                    key: "pii".to_owned(),
                    value: None
                },
            ]
        );
        assert_eq!(scope.group_visibility, None);
        assert!(scope.entities.is_empty() && scope.admins.is_empty());
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(
            wire["reviewer_assignment_policy"],
            "BY_OWNING_TEAM_ADMIN_ALL"
        );
        assert_eq!(wire["deadline"], "2025-01-15T08:00:02Z");
        assert_eq!(wire["uar_scope"]["group_types"][0], "OKTA_GROUP");
        assert_eq!(wire["uar_scope"]["filter_operator"], "ALL");
    }

    #[test]
    fn the_request_defaults_and_every_assignment_policy() {
        let key = ObjectKey::new("ns", "r");
        let reason = RunReason::Scheduled {
            due_at: utc(2025, 1, 1, 9, 0),
        };
        let at = utc(2025, 1, 1, 9, 0);
        let plain = spec("0 9 * * *", "UTC");
        let request = uar_request(&key, &plain, &reason, at, &ScopeUsers::default()).unwrap();
        assert_eq!(request.uar_scope, None);
        assert!(request.reminder_schedule.is_empty());
        assert_eq!(request.reminder_include_manager, None);
        assert!(request.send_reviewer_assignment_notification);
        assert_eq!(request.instantly_action_reviews, Some(false));
        let pairs = [
            (ReviewerAssignment::Manually, "MANUALLY"),
            (
                ReviewerAssignment::ByOwningTeamAdmin,
                "BY_OWNING_TEAM_ADMIN",
            ),
            (
                ReviewerAssignment::ByOwningTeamAdminAll,
                "BY_OWNING_TEAM_ADMIN_ALL",
            ),
            (ReviewerAssignment::ByManager, "BY_MANAGER"),
            (ReviewerAssignment::ByApprovers, "BY_APPROVERS"),
            (ReviewerAssignment::ByApproversAll, "BY_APPROVERS_ALL"),
        ];
        for (assignment, wire) in pairs {
            assert_eq!(assignment_policy(assignment).as_str(), wire);
        }
    }

    #[test]
    fn day_deadlines_keep_the_wall_clock_and_hour_deadlines_are_elapsed() {
        let key = ObjectKey::new("ns", "r");
        // 2025-03-20 09:00 CET; 14 days later is 2025-04-03 09:00 CEST.
        let started_at = utc(2025, 3, 20, 8, 0);
        let reason = RunReason::Scheduled { due_at: started_at };
        let days = spec("0 9 * * *", "Europe/Berlin");
        let request = uar_request(&key, &days, &reason, started_at, &ScopeUsers::default());
        assert_eq!(request.unwrap().deadline, utc(2025, 4, 3, 7, 0));
        let mut hours = days.clone();
        hours.deadline = "72h".to_owned();
        let request = uar_request(&key, &hours, &reason, started_at, &ScopeUsers::default());
        assert_eq!(request.unwrap().deadline, utc(2025, 3, 23, 8, 0));
    }

    #[test]
    fn run_now_names_carry_the_value_and_stay_distinct_when_long() {
        let key = ObjectKey::new("ns", "r");
        let at = utc(2025, 1, 1, 9, 0);
        let name = |token: &str| {
            let reason = RunReason::RunNow {
                token: token.to_owned(),
            };
            uar_request(
                &key,
                &spec("0 9 * * *", "UTC"),
                &reason,
                at,
                &ScopeUsers::default(),
            )
            .unwrap()
            .name
        };
        assert_eq!(name("2025-01-01T09:00"), "ns/r run-now 2025-01-01T09:00");
        assert_eq!(name("a\nb"), "ns/r run-now ab");
        let long_a = format!("{}a", "x".repeat(100));
        let long_b = format!("{}b", "x".repeat(100));
        assert_ne!(name(&long_a), name(&long_b));
        assert!(name(&long_a).chars().count() <= "ns/r run-now ".len() + RUN_NOW_NAME_CHARS);
    }

    #[test]
    fn unknown_scope_users_and_bad_reminders_are_errors() {
        let key = ObjectKey::new("ns", "r");
        let at = utc(2025, 1, 1, 9, 0);
        let reason = RunReason::Scheduled { due_at: at };
        let error =
            uar_request(&key, &full_spec(), &reason, at, &ScopeUsers::default()).unwrap_err();
        assert_eq!(error.label(), "unknown_scope_user");
        assert!(error.to_string().contains("Ada@Example.com"), "{error}");
        let mut reminders = spec("0 9 * * *", "UTC");
        reminders.reminders = Some(ReminderSpec {
            days_before_deadline: vec![3, -1],
            include_manager: false,
        });
        let error = uar_request(&key, &reminders, &reason, at, &ScopeUsers::default()).unwrap_err();
        assert_eq!(error.label(), "invalid_reminder");
        assert!(error.to_string().contains("-1"), "{error}");
    }

    #[test]
    fn record_campaign_updates_status_and_bounds_it() {
        let mut status = ReviewScheduleStatus::default();
        let start = utc(2025, 1, 1, 9, 0);
        let reason = RunReason::Scheduled { due_at: start };
        record_campaign(
            &mut status,
            campaign("u0", start, start + Duration::days(14)),
            &reason,
            utc(2025, 1, 2, 9, 0),
        );
        assert_eq!(status.last_run, Some(start));
        assert_eq!(status.last_run_now, None);
        assert_eq!(status.next_run, Some(utc(2025, 1, 2, 9, 0)));
        // The same UAR found again replaces its entry.
        record_campaign(
            &mut status,
            campaign("u0", start, start + Duration::days(14)),
            &reason,
            utc(2025, 1, 2, 9, 0),
        );
        assert_eq!(status.active_campaigns.len(), 1);
        for index in 1..=ACTIVE_LIMIT {
            let at = start + Duration::days(index as i64);
            record_campaign(
                &mut status,
                campaign(&format!("u{index}"), at, at + Duration::days(400)),
                &RunReason::Scheduled { due_at: at },
                at + Duration::days(1),
            );
        }
        assert_eq!(status.active_campaigns.len(), ACTIVE_LIMIT);
        assert!(status.active_campaigns.iter().all(|c| c.uar_id != "u0"));
        assert_eq!(status.history.len(), 1);
        assert_eq!(status.history[0].uar_id, "u0");
        assert_eq!(status.history[0].state, CampaignState::Unknown);

        let finished = (0..HISTORY_LIMIT + 5)
            .map(|index| {
                let at = start - Duration::days(index as i64 + 1);
                campaign(&format!("old{index}"), at, at + Duration::days(1))
            })
            .collect();
        push_history(&mut status, finished);
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].uar_id, "u0", "newest first");
        assert!(
            status
                .history
                .windows(2)
                .all(|pair| pair[0].started_at >= pair[1].started_at)
        );
    }
}
