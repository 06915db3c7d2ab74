//! `opal-operator demo`: the whole loop against in-process simulators, narrated.
//!
//! The sample org in `examples/demo` (HR export, Opal fixture, manifests, config) seeds a
//! BambooHR simulator and an Opal simulator. The demo then tells a story in ten syncs — initial
//! drift repair, a new hire, a role change, a termination, drift made by hand in Opal, a
//! lockdown that keeps its subject out, an HR outage, an HR glitch that would revoke most of the
//! company, and the recovery — printing what each sync changed. Every sync is the real one
//! ([`sync_once`]: observe, plan, apply, observe and plan again); only the world around it is
//! simulated. The clock is fixed ([`demo_clock`]) so the story is the same on every day.
//!
//! Notifications go through the operator's own [`Outbox`] to in-process recording simulators of
//! Slack, Jira and PagerDuty ([`NotificationSims`]): each chapter's message is built from what its
//! sync actually did, queued without waiting, and the outbox is drained before the summary. A
//! notification that cannot be queued or delivered is reported, never a reason for a sync to
//! fail. Jira loses the answer to the first ticket it opens, so the narration shows the outbox
//! finding that ticket on its retry instead of opening a second one.

mod narrate;
mod notify;
mod scenes;
mod story;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::config::{ConfigError, OperatorConfig};
use crate::crd::{AccessPolicySpec, ChangeAction, TargetKind, annotations};
use crate::engine::{Cause, ObjectKey, Operation, Plan, Withheld};
use crate::hris::{
    BambooHrSource, Employee, EmploymentStatus, FileConfig, FileFormat, FileSource, HrSource,
    HrisError, HttpConfig, InvalidRowPolicy,
};
use crate::http::RetryConfig;
use crate::manifests::{self, ManifestError, Manifests};
use crate::notify::{
    AccessChange, AccessTarget, AttributeChange, ChannelConfig, ChannelKind, ChannelRegistry,
    DeliveryOutcome, DeliveryReport, Event, JiraConfig, NoopMetrics, Notification, NotifyConfig,
    NotifyError, ObjectRef, Outbox, OutboxConfig, PagerDutyConfig, Person, Receipt, SlackApiConfig,
    TicketAction,
};
use crate::opal::{ApiToken, Client, ClientConfig, OpalError, RateLimitConfig};
use crate::reconcile::OperationOutcome;
use crate::secret::Secret;
use crate::secret::{KubeSecretSource, SecretKeySelector, SecretRef};
use crate::sim::hris::bamboohr::{BambooHrSim, BambooHrSimConfig};
use crate::sim::hris::{FaultRates, Roster};
use crate::sim::notify::Fault;
use crate::sim::notify::jira::{JiraSim, JiraSimConfig};
use crate::sim::notify::pagerduty::{PagerDutySim, PagerDutySimConfig};
use crate::sim::notify::slack::{SlackSim, SlackSimConfig};
use crate::sim::opal::{
    AccessLevel, FixtureUser, GrantSnapshot, GrantTarget, OrgFixture, RunningOpalSim, SimConfig,
    SimError, SimState,
};
use crate::standalone::{SAFETY_DEFAULTS_POLICY, Sources, StandaloneError, SyncOutcome, sync_once};

use narrate::*;
pub use notify::NotificationSims;
use notify::*;
use story::*;
use world::*;

/// The folder holding the sample org, relative to the repository root.
pub const DEFAULT_SAMPLE_ORG_DIR: &str = "examples/demo";

/// The demo's fixed "now": the sample org's dates (recent hires, leavers, a future hire) are
/// written relative to it.
pub fn demo_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The people the story follows; all but the new hire are in the sample org.
pub mod cast {
    /// Hired during the demo (Engineering, Berlin).
    pub const NEW_HIRE: &str = "priya.raman@acme.example";
    /// Moves from Customer Support to Site Reliability Engineering.
    pub const ROLE_CHANGE: &str = "erik.volkov@acme.example";
    /// Leaves the company during the demo.
    pub const LEAVER: &str = "yara.murphy@acme.example";
    /// Locked down after an incident.
    pub const LOCKED: &str = "ines.silva@acme.example";
    /// Loses Salesforce by hand in Opal; the operator gives it back.
    pub const SALESFORCE_REMOVED: &str = "samir.vargas@acme.example";
    /// Given AWS Staging PowerUser by hand; the operator removes it.
    pub const STAGING_POWER_USER: &str = "zara.hansen@acme.example";
    /// Added to the Security group by hand; the operator removes it.
    pub const ADDED_TO_SECURITY: &str = "sofia.chen@acme.example";
    /// Gets time-bound (just-in-time) AWS Production administrator access, which stays.
    pub const JIT_PROD_ADMIN: &str = "rafael.walsh@acme.example";
    /// Added to an ungoverned legacy resource, which the operator leaves alone.
    pub const LEGACY_JENKINS: &str = "chloe.vasquez@acme.example";
    /// Added to Engineering by hand while HR is down; removed once HR is back.
    pub const ADDED_DURING_OUTAGE: &str = "alice.schneider@acme.example";
    /// Holds an approved, time-bound SRE On-Call membership in the sample org.
    pub const SEEDED_JIT_ON_CALL: &str = "jin.schmidt@acme.example";
    /// Holds approved, time-bound AWS Production read access in the sample org.
    pub const SEEDED_JIT_PRODUCTION: &str = "ravi.petrov@acme.example";
}

/// Opal names and access levels the story touches.
mod target {
    pub const ENGINEERING: &str = "Engineering";
    pub const SECURITY: &str = "Security";
    pub const SRE_ON_CALL: &str = "SRE On-Call";
    pub const SALESFORCE: &str = "Salesforce";
    pub const SALESFORCE_STANDARD: &str = "standard_user";
    pub const AWS_STAGING: &str = "AWS Staging";
    pub const AWS_STAGING_POWER_USER: &str = "arn:aws:iam::444455556666:role/PowerUserAccess";
    pub const AWS_PRODUCTION: &str = "AWS Production";
    pub const AWS_PRODUCTION_ADMIN: &str = "arn:aws:iam::111122223333:role/AdministratorAccess";
    pub const LEGACY_JENKINS: &str = "Legacy Jenkins";
}

/// The demo's notification channels (names as the operator config would give them) and what
/// they point at.
pub mod channels {
    /// Slack Web API channel posting to [`SLACK_CONVERSATION`].
    pub const SLACK: &str = "security-slack";
    pub const SLACK_CONVERSATION: &str = "#security";
    /// Jira Cloud channel opening tickets in [`JIRA_PROJECT`].
    pub const JIRA: &str = "ops-jira";
    pub const JIRA_PROJECT: &str = "OPS";
    /// PagerDuty Events v2 channel.
    pub const PAGERDUTY: &str = "incident-pager";
}

/// Credentials the notification simulators accept; the channels read them from an in-memory
/// Secret, so the demo needs no environment variables or files.
mod credentials {
    pub const SECRET: &str = "demo-notify";
    pub const SLACK_TOKEN: &str = "xoxb-demo-slack-bot-token";
    pub const JIRA_EMAIL: &str = "opal-operator@acme.example";
    pub const JIRA_TOKEN: &str = "demo-jira-api-token";
    /// PagerDuty integration keys are 32 characters.
    pub const PAGERDUTY_ROUTING_KEY: &str = "R0DEMOROUTINGKEY0000000000000000";
}

/// Share of employees the HR glitch marks terminated: everyone whose ID is not a multiple of
/// this.
const GLITCH_KEEPS_EVERY: u64 = 5;

/// How long the outbox may take to deliver what is still queued once the story ends.
const NOTIFY_GRACE: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The sample org: `employees.csv`, `opal-org.yaml`, `manifests/` and `config.yaml`.
    pub sample_org_dir: PathBuf,
    /// Print nothing (tests).
    pub quiet: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            sample_org_dir: PathBuf::from(DEFAULT_SAMPLE_ORG_DIR),
            quiet: false,
        }
    }
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("reading the sample org's employees from {path}: {source}")]
    Employees {
        path: String,
        #[source]
        source: Box<HrisError>,
    },
    #[error("reading the sample org's config: {0}")]
    Config(#[from] ConfigError),
    #[error("reading the sample org's manifests: {0}")]
    Manifests(#[from] ManifestError),
    #[error("Opal simulator: {0}")]
    OpalSim(#[from] SimError),
    #[error("starting the BambooHR simulator: {0}")]
    HrSim(#[source] std::io::Error),
    #[error("starting the notification simulators: {0}")]
    NotifySim(#[source] std::io::Error),
    #[error("setting up the notification channels: {0}")]
    NotifyChannels(#[source] NotifyError),
    #[error("building the BambooHR client: {0}")]
    HrClient(#[source] Box<HrisError>),
    #[error("building the Opal client: {0}")]
    OpalClient(#[from] OpalError),
    #[error("step {step}: the sync failed: {source}")]
    Sync {
        step: &'static str,
        #[source]
        source: Box<StandaloneError>,
    },
    #[error("the sample org does not fit the story: {0}")]
    SampleOrg(String),
    #[error("writing to stdout: {0}")]
    Output(#[source] std::io::Error),
}

impl DemoError {
    pub fn label(&self) -> &'static str {
        match self {
            DemoError::Employees { .. } => "employees",
            DemoError::Config(_) => "config",
            DemoError::Manifests(_) => "manifests",
            DemoError::OpalSim(_) => "opal_sim",
            DemoError::HrSim(_) => "hr_sim",
            DemoError::NotifySim(_) => "notify_sim",
            DemoError::NotifyChannels(_) => "notify_channels",
            DemoError::HrClient(_) => "hr_client",
            DemoError::OpalClient(_) => "opal_client",
            DemoError::Sync { .. } => "sync",
            DemoError::SampleOrg(_) => "sample_org",
            DemoError::Output(_) => "output",
        }
    }
}

/// The chapters of the story, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    InitialSync,
    NewHire,
    RoleChange,
    Termination,
    OpalDrift,
    Lockdown,
    LockdownHolds,
    HrOutage,
    HrGlitch,
    HrRecovers,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::InitialSync,
        Step::NewHire,
        Step::RoleChange,
        Step::Termination,
        Step::OpalDrift,
        Step::Lockdown,
        Step::LockdownHolds,
        Step::HrOutage,
        Step::HrGlitch,
        Step::HrRecovers,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Step::InitialSync => "initial sync: onboarding and drift repair",
            Step::NewHire => "a new hire",
            Step::RoleChange => "a role change",
            Step::Termination => "a termination",
            Step::OpalDrift => "drift made by hand in Opal",
            Step::Lockdown => "a lockdown",
            Step::LockdownHolds => "the lockdown keeps them out",
            Step::HrOutage => "HR outage (503)",
            Step::HrGlitch => "HR glitch: most people terminated",
            Step::HrRecovers => "HR recovers",
        }
    }
}

/// One change the executor made, as people read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub action: ChangeAction,
    /// `group/<name>` or `resource/<name>`.
    pub target: String,
    pub user: String,
    /// Access level remote ID; empty for the default level.
    pub access_level: String,
    /// Why: `RoleMapping <ns>/<name>`, `unwanted`, `offboarding` or `Lockdown <ns>/<name>`.
    pub cause: String,
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: Step,
    /// Changes applied, in plan order.
    pub changes: Vec<Change>,
    /// Operations that failed.
    pub failed: usize,
    /// Revocations held back by the breaker or the HR flood gate.
    pub held: usize,
    /// Changes only Observe-mode mappings call for (reported, never made).
    pub observe_only: usize,
    /// Why the HR flood gate blocked revocations, if it did.
    pub hr_gate: Option<String>,
    /// Why the revocation breaker tripped, if it did.
    pub breaker: Option<String>,
    /// The plan hash a person would approve to let held revocations through.
    pub plan_hash: String,
    /// The confirming plan (after applying) has no operations left.
    pub converged: bool,
    /// Grant and revoke calls the Opal simulator received during the step.
    pub opal_grant_calls: u64,
    pub opal_revoke_calls: u64,
    /// HR requests the BambooHR simulator failed during the step.
    pub hr_failures: u64,
    pub elapsed: Duration,
}

impl StepReport {
    pub fn grants(&self) -> usize {
        self.count(ChangeAction::Grant)
    }

    pub fn revocations(&self) -> usize {
        self.count(ChangeAction::Revoke)
    }

    fn count(&self, action: ChangeAction) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// A direct grant someone holds when the demo ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldGrant {
    /// `group/<name>` or `resource/<name>`.
    pub target: String,
    pub access_level: String,
    /// Time-bound (just-in-time) grant.
    pub expires: bool,
}

/// Everything the demo did, as plain data.
#[derive(Clone, Debug)]
pub struct DemoSummary {
    /// HR records at the start.
    pub employees: usize,
    pub opal_users: usize,
    pub groups: usize,
    pub resources: usize,
    /// Active employees with no Opal account, at the start.
    pub unmatched_employees: Vec<String>,
    /// Mapping problems the first plan reported, as `<ns>/<name>: <Reason>: <message>`.
    pub mapping_problems: Vec<String>,
    pub steps: Vec<StepReport>,
    /// Every Opal user's direct grants at the end, by lower-case email.
    pub final_access: BTreeMap<String, Vec<HeldGrant>>,
    pub notifications: NotificationSummary,
    pub elapsed: Duration,
}

/// A notification the outbox delivered.
#[derive(Clone, Debug)]
pub struct DeliveredNotification {
    /// The chapter whose sync the message reports.
    pub step: Step,
    /// The channel's configured name.
    pub channel: String,
    pub kind: ChannelKind,
    /// The event type (`offboarded`, `lockdownActivated`, …).
    pub event: &'static str,
    pub title: String,
    /// Attempts the delivery took, the first included.
    pub attempts: u32,
    pub receipt: Receipt,
}

/// What became of the notifications; every message counts once per channel.
#[derive(Clone, Debug, Default)]
pub struct NotificationSummary {
    /// Messages the outbox accepted.
    pub queued: usize,
    /// Messages the outbox refused at once (unknown channel, full queue), with the reason.
    pub refused: Vec<String>,
    /// In step order, then by kind of channel.
    pub delivered: Vec<DeliveredNotification>,
    /// Messages given up on, as `<channel> <event>: <reason>`.
    pub failed: Vec<String>,
    /// Messages still queued when the grace period ended.
    pub undelivered: usize,
}

impl NotificationSummary {
    /// Messages delivered to `channel`.
    pub fn delivered_to(&self, channel: &str) -> usize {
        self.delivered
            .iter()
            .filter(|note| note.channel == channel)
            .count()
    }
}

impl DemoSummary {
    pub fn step(&self, step: Step) -> Option<&StepReport> {
        self.steps.iter().find(|report| report.step == step)
    }

    /// The direct grants `email` holds at the end (empty when none or unknown).
    pub fn access_of(&self, email: &str) -> &[HeldGrant] {
        self.final_access
            .get(&email.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// Runs the demo with its own notification simulators; see the module documentation.
pub async fn run(options: DemoOptions) -> Result<DemoSummary, DemoError> {
    let sims = NotificationSims::start().await?;
    run_with(options, &sims).await
}

/// Runs the demo, notifying through `sims`, which keep what they received for inspection.
/// Jira is told to lose the answer to the next ticket it opens.
pub async fn run_with(
    options: DemoOptions,
    sims: &NotificationSims,
) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    let mut out = Narrator::new(options.quiet);
    let dir = &options.sample_org_dir;
    let world = DemoWorld::start(dir).await?;
    let notifier = Notifier::start(sims).await?;
    let mut demo = Demo {
        world,
        notifier,
        out: &mut out,
        last_good: None,
        now: demo_clock(),
        reports: Vec::new(),
    };
    demo.introduce()?;
    let first = demo.sync(Step::InitialSync).await?;
    demo.narrate_initial(&first.plan)?;
    demo.new_hire().await?;
    demo.role_change().await?;
    demo.termination().await?;
    demo.opal_drift().await?;
    demo.lockdown().await?;
    demo.hr_outage().await?;
    demo.hr_glitch_and_recovery().await?;
    let final_access = demo.world.final_access();
    let notifications = demo.notifier.finish(NOTIFY_GRACE).await;
    let summary = DemoSummary {
        employees: demo.world.initial_employees,
        opal_users: demo.world.fixture.users.len(),
        groups: demo.world.fixture.groups.len(),
        resources: demo.world.fixture.resources.len(),
        unmatched_employees: demo.world.unmatched.clone(),
        mapping_problems: mapping_problems(&first.plan),
        steps: std::mem::take(&mut demo.reports),
        final_access,
        notifications,
        elapsed: started.elapsed(),
    };
    demo.out.notifications(&summary.notifications)?;
    demo.out.summary(&summary)?;
    demo.world.opal.shutdown().await;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_shortened_to_their_last_segment() {
        assert_eq!(
            short_level("arn:aws:iam::111122223333:role/ReadOnly"),
            "ReadOnly"
        );
        assert_eq!(short_level("push"), "push");
    }

    #[test]
    fn the_clock_is_the_sample_orgs_day() {
        assert_eq!(
            demo_clock().date_naive(),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
        );
    }
}
