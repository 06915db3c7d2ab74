//! ReviewSchedule: when the next campaign is due and the Opal UAR it creates.
//!
//! Everything here is pure; `campaign.rs` holds the steps that reach Opal through [`Client`]
//! ([`resolve_scope_users`], [`start_campaign`], [`refresh_campaigns`]).
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

mod campaign;
#[cfg(test)]
mod tests;

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

pub use campaign::{
    record_campaign, refresh_campaigns, resolve_scope_users, start_campaign, uar_request,
};

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
