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
use crate::manifests::{ManifestError, Manifests};
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

/// Recording simulators of Slack, Jira and PagerDuty, set up with the credentials, channel and
/// project the demo's notification channels use.
#[derive(Debug)]
pub struct NotificationSims {
    slack: SlackSim,
    jira: JiraSim,
    pagerduty: PagerDutySim,
}

impl NotificationSims {
    pub async fn start() -> Result<Self, DemoError> {
        let slack = SlackSim::start(SlackSimConfig {
            bot_token: credentials::SLACK_TOKEN.to_owned(),
            channels: vec![channels::SLACK_CONVERSATION.to_owned()],
            ..SlackSimConfig::default()
        })
        .await
        .map_err(DemoError::NotifySim)?;
        let jira = JiraSim::start(JiraSimConfig {
            email: credentials::JIRA_EMAIL.to_owned(),
            api_token: credentials::JIRA_TOKEN.to_owned(),
            projects: vec![channels::JIRA_PROJECT.to_owned()],
            service_desks: Vec::new(),
            ..JiraSimConfig::default()
        })
        .await
        .map_err(DemoError::NotifySim)?;
        let pagerduty = PagerDutySim::start(PagerDutySimConfig {
            routing_keys: vec![credentials::PAGERDUTY_ROUTING_KEY.to_owned()],
        })
        .await
        .map_err(DemoError::NotifySim)?;
        Ok(Self {
            slack,
            jira,
            pagerduty,
        })
    }

    pub fn slack(&self) -> &SlackSim {
        &self.slack
    }

    pub fn jira(&self) -> &JiraSim {
        &self.jira
    }

    pub fn pagerduty(&self) -> &PagerDutySim {
        &self.pagerduty
    }

    /// The operator config's `notify` section for the three channels.
    fn config(&self) -> NotifyConfig {
        let secret = |key: &str| {
            SecretRef::SecretKeyRef(SecretKeySelector {
                name: credentials::SECRET.to_owned(),
                key: key.to_owned(),
            })
        };
        let channels = BTreeMap::from([
            (
                channels::SLACK.to_owned(),
                ChannelConfig::Slack(SlackApiConfig {
                    api_url: self.slack.api_url(),
                    token: secret("slack-token"),
                    channel: Some(channels::SLACK_CONVERSATION.to_owned()),
                    direct_messages: false,
                }),
            ),
            (
                channels::JIRA.to_owned(),
                ChannelConfig::Jira(JiraConfig {
                    url: self.jira.site_url(),
                    email: credentials::JIRA_EMAIL.to_owned(),
                    api_token: secret("jira-api-token"),
                    project_key: channels::JIRA_PROJECT.to_owned(),
                    issue_type: "Task".to_owned(),
                    labels: Vec::new(),
                    resolve_transition: None,
                }),
            ),
            (
                channels::PAGERDUTY.to_owned(),
                ChannelConfig::PagerDuty(PagerDutyConfig {
                    events_url: self.pagerduty.events_url(),
                    routing_key: secret("pagerduty-routing-key"),
                    source: "opal-operator".to_owned(),
                    component: Some("access".to_owned()),
                    group: None,
                }),
            ),
        ]);
        NotifyConfig {
            channels,
            // Quick retries keep the story short; the simulators answer in microseconds.
            outbox: OutboxConfig {
                queue_capacity: 100,
                request_timeout_ms: 5_000,
                connect_timeout_ms: 1_000,
                retry: RetryConfig {
                    max_attempts: 5,
                    initial_backoff_ms: 50,
                    max_backoff_ms: 500,
                    max_total_delay_ms: 5_000,
                },
            },
        }
    }
}

/// The channels' credentials, served as keys of one in-memory Secret.
struct DemoSecrets;

impl KubeSecretSource for DemoSecrets {
    fn read<'a>(&'a self, name: &'a str, key: &'a str) -> BoxFuture<'a, Result<String, String>> {
        let value = match (name, key) {
            (credentials::SECRET, "slack-token") => Some(credentials::SLACK_TOKEN),
            (credentials::SECRET, "jira-api-token") => Some(credentials::JIRA_TOKEN),
            (credentials::SECRET, "pagerduty-routing-key") => {
                Some(credentials::PAGERDUTY_ROUTING_KEY)
            }
            _ => None,
        };
        Box::pin(async move {
            value
                .map(str::to_owned)
                .ok_or_else(|| format!("Secret {name} has no key {key}"))
        })
    }
}

/// A message handed to the outbox, remembered to narrate its delivery.
struct Queued {
    step: Step,
    title: String,
}

/// The outbox and what was queued on it.
struct Notifier {
    outbox: Outbox,
    reports: broadcast::Receiver<DeliveryReport>,
    /// By idempotency key (one message may go to several channels under one key).
    queued: BTreeMap<String, Queued>,
    summary: NotificationSummary,
}

impl Notifier {
    async fn start(sims: &NotificationSims) -> Result<Self, DemoError> {
        let registry = ChannelRegistry::from_config(&sims.config(), &DemoSecrets)
            .await
            .map_err(DemoError::NotifyChannels)?;
        // The first ticket is created but its answer is lost, as after a timeout.
        sims.jira.inject(
            Fault::status(503)
                .on("POST", "/rest/api/3/issue")
                .after_effect(),
        );
        let outbox = Outbox::start(&registry, std::sync::Arc::new(NoopMetrics));
        let reports = outbox.subscribe();
        Ok(Self {
            outbox,
            reports,
            queued: BTreeMap::new(),
            summary: NotificationSummary::default(),
        })
    }

    /// Queues `notification` for each of `channels` without waiting; returns the channels that
    /// took it. Refusals are recorded, never raised.
    fn send(&mut self, step: Step, channels: &[&str], notification: Notification) -> Vec<String> {
        let mut accepted = Vec::new();
        for channel in channels {
            match self.outbox.enqueue(channel, notification.clone()) {
                Ok(()) => {
                    self.summary.queued += 1;
                    accepted.push((*channel).to_owned());
                }
                Err(error) => self.summary.refused.push(error.to_string()),
            }
        }
        self.queued.insert(
            notification.idempotency_key().to_owned(),
            Queued {
                step,
                title: notification.title(),
            },
        );
        accepted
    }

    /// Lets the outbox deliver what is queued (for up to `grace`), then tallies every report.
    async fn finish(self, grace: Duration) -> NotificationSummary {
        let Self {
            outbox,
            mut reports,
            queued,
            mut summary,
        } = self;
        // What shutdown reports as pending can be off when a message is delivered before
        // its enqueue is counted, so the undelivered are the accepted ones without a report.
        outbox.shutdown(grace).await;
        loop {
            let report = match reports.try_recv() {
                Ok(report) => report,
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let Some(message) = queued.get(&report.idempotency_key) else {
                continue;
            };
            match report.outcome {
                DeliveryOutcome::Delivered(receipt) => {
                    summary.delivered.push(DeliveredNotification {
                        step: message.step,
                        channel: report.channel,
                        kind: report.kind,
                        event: report.event,
                        title: message.title.clone(),
                        attempts: report.attempts,
                        receipt,
                    });
                }
                DeliveryOutcome::Failed(error) => summary
                    .failed
                    .push(format!("{} {}: {error}", report.channel, report.event)),
            }
        }
        summary.delivered.sort_by_key(|note| (note.step, note.kind));
        summary.undelivered = summary
            .queued
            .saturating_sub(summary.delivered.len() + summary.failed.len());
        summary
    }
}

/// The simulators, the client side built on them, and the rules.
struct DemoWorld {
    fixture: OrgFixture,
    opal: RunningOpalSim,
    hr: BambooHrSim,
    sources: Sources,
    manifests: Manifests,
    initial_employees: usize,
    unmatched: Vec<String>,
    /// Opal target names by id.
    target_names: BTreeMap<GrantTarget, String>,
}

impl DemoWorld {
    async fn start(dir: &Path) -> Result<Self, DemoError> {
        let config = OperatorConfig::from_path(&dir.join("config.yaml"))?;
        let manifests = Manifests::load_dir(&dir.join("manifests"))?;
        let employees = read_employees(&dir.join("employees.csv")).await?;
        let fixture = OrgFixture::from_path(dir.join("opal-org.yaml"))?;

        // Opal's own rate limits are lifted (simulator and client alike) so the story runs in
        // seconds; the loop, the client and the wire format are the production ones.
        let opal = RunningOpalSim::start(
            fixture.clone(),
            SimConfig {
                rate_limit: crate::sim::opal::RateLimitConfig::disabled(),
                ..SimConfig::default()
            },
        )
        .await?;
        let client = Client::new(
            ClientConfig {
                base_url: opal.base_url(),
                rate_limit: RateLimitConfig {
                    requests_per_second: 5_000,
                    writes_per_second: 5_000,
                    burst: 500,
                },
                ..ClientConfig::default()
            },
            ApiToken::new(opal.token())?,
        )?;

        let initial_employees = employees.len();
        let opal_emails: BTreeSet<String> = fixture
            .users
            .iter()
            .map(|user| user.email.to_lowercase())
            .collect();
        let today = demo_clock().date_naive();
        let unmatched = employees
            .iter()
            .filter(|e| is_working(e, today) && !opal_emails.contains(&e.email.to_lowercase()))
            .map(|e| e.email.clone())
            .collect();
        let hr = BambooHrSim::start(employees, BambooHrSimConfig::default())
            .await
            .map_err(DemoError::HrSim)?;
        let mut hr_config = hr.client_config();
        // Fail fast when the simulated HR system is down: one retry after its Retry-After.
        hr_config.http = HttpConfig {
            retry: RetryConfig {
                max_attempts: 3,
                initial_backoff_ms: 50,
                max_backoff_ms: 200,
                max_total_delay_ms: 1_500,
            },
            ..HttpConfig::default()
        };
        let hr_client = |error| DemoError::HrClient(Box::new(error));
        let api_key = Secret::new(hr.api_key()).map_err(|error| hr_client(error.into()))?;
        let hr_source = BambooHrSource::new(&hr_config, api_key).map_err(hr_client)?;

        let state = opal.state();
        let mut target_names = BTreeMap::new();
        for group in &fixture.groups {
            if let Some(id) = state.group_id(&group.name) {
                target_names.insert(GrantTarget::Group(id), self::group(&group.name));
            }
        }
        for resource in &fixture.resources {
            if let Some(id) = state.resource_id(&resource.name) {
                target_names.insert(GrantTarget::Resource(id), self::resource(&resource.name));
            }
        }
        Ok(Self {
            sources: Sources {
                hr: HrSource::BambooHr(hr_source),
                opal: client,
                concurrency: config.sync.concurrency,
                operator_namespace: config.operator_namespace,
                safety_defaults: config.safety_defaults,
            },
            fixture,
            opal,
            hr,
            manifests,
            initial_employees,
            unmatched,
            target_names,
        })
    }

    fn state(&self) -> SimState {
        self.opal.state()
    }

    fn roster(&self) -> &Roster {
        self.hr.roster()
    }

    fn user_id(&self, email: &str) -> Result<String, DemoError> {
        self.state()
            .user_by_email(email)
            .map(|user| user.user_id)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal user {email}")))
    }

    fn group_id(&self, name: &str) -> Result<String, DemoError> {
        self.state()
            .group_id(name)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal group {name}")))
    }

    fn resource_id(&self, name: &str) -> Result<String, DemoError> {
        self.state()
            .resource_id(name)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal resource {name}")))
    }

    fn employee(&self, email: &str) -> Result<Employee, DemoError> {
        self.roster()
            .employees()
            .into_iter()
            .find(|e| e.email.eq_ignore_ascii_case(email))
            .ok_or_else(|| DemoError::SampleOrg(format!("no employee {email}")))
    }

    fn employee_id(&self, email: &str) -> Result<String, DemoError> {
        self.employee(email).map(|e| e.id)
    }

    /// The direct grant `email` holds on the target labelled `group/<name>` or
    /// `resource/<name>`, if any.
    fn holding(&self, email: &str, label: &str) -> Option<GrantSnapshot> {
        let state = self.state();
        let user = state.user_by_email(email)?;
        state
            .user_grants(&user.user_id)
            .into_iter()
            .find(|grant| self.label(&grant.target) == label)
    }

    fn label(&self, target: &GrantTarget) -> String {
        self.target_names
            .get(target)
            .cloned()
            .unwrap_or_else(|| match target {
                GrantTarget::Group(id) => format!("group/{id}"),
                GrantTarget::Resource(id) => format!("resource/{id}"),
            })
    }

    fn final_access(&self) -> BTreeMap<String, Vec<HeldGrant>> {
        let state = self.state();
        let mut access: BTreeMap<String, Vec<HeldGrant>> = state
            .users()
            .into_iter()
            .map(|user| (user.email.to_lowercase(), Vec::new()))
            .collect();
        let email_of: BTreeMap<String, String> = state
            .users()
            .into_iter()
            .map(|user| (user.user_id, user.email.to_lowercase()))
            .collect();
        for grant in state.all_grants() {
            if let Some(email) = email_of.get(&grant.user_id) {
                access.entry(email.clone()).or_default().push(HeldGrant {
                    target: self.label(&grant.target),
                    access_level: grant.access_level.remote_id.clone(),
                    expires: grant.expiration_date.is_some(),
                });
            }
        }
        for grants in access.values_mut() {
            grants.sort();
        }
        access
    }
}

/// Reads the HR export with the operator's own file source, as `plan` would.
async fn read_employees(path: &Path) -> Result<Vec<Employee>, DemoError> {
    let config = FileConfig {
        location: path.display().to_string(),
        format: Some(FileFormat::Csv),
        records: None,
        delimiter: None,
        columns: Default::default(),
        bearer_token: None,
        invalid_rows: InvalidRowPolicy::Reject,
        http: HttpConfig::default(),
    };
    let error = |source| DemoError::Employees {
        path: path.display().to_string(),
        source: Box::new(source),
    };
    let source = FileSource::new(&config, None).map_err(error)?;
    Ok(source.snapshot().await.map_err(error)?.employees)
}

fn is_working(employee: &Employee, today: NaiveDate) -> bool {
    employee.status == EmploymentStatus::Active && employee.start_date.is_none_or(|d| d <= today)
}

/// The story's state between chapters.
struct Demo<'o> {
    world: DemoWorld,
    notifier: Notifier,
    out: &'o mut Narrator,
    /// Employee count of the last snapshot that passed the flood gate.
    last_good: Option<usize>,
    now: DateTime<Utc>,
    reports: Vec<StepReport>,
}

impl Demo<'_> {
    fn introduce(&mut self) -> Result<(), DemoError> {
        let world = &self.world;
        let employees = world.roster().employees();
        let terminated = employees
            .iter()
            .filter(|e| e.status == EmploymentStatus::Terminated)
            .count();
        let manifests = &world.manifests;
        let grants = world.state().all_grants().len();
        self.out.line(
            "opal-operator demo: the sample org, in-process Opal and BambooHR simulators, the real loop",
        )?;
        self.out.line(format!(
            "  HR     {} people ({} terminated) from employees.csv, served by the BambooHR simulator",
            employees.len(),
            terminated
        ))?;
        self.out.line(format!(
            "  Opal   {} users, {} groups, {} resources, {} direct grants from opal-org.yaml",
            world.fixture.users.len(),
            world.fixture.groups.len(),
            world.fixture.resources.len(),
            grants
        ))?;
        self.out.line(format!(
            "  Rules  {} RoleMappings, {} AccessPolicy, {} ReviewSchedule from manifests/",
            manifests.role_mappings.len(),
            manifests.access_policies.len(),
            manifests.review_schedules.len()
        ))?;
        self.out.line(format!(
            "  Clock  {} (fixed, so the story reads the same every day)",
            self.now.format("%Y-%m-%d %H:%M UTC")
        ))?;
        self.out.line("")?;
        self.out.heading(Step::InitialSync)?;
        self.out.text(
            "First contact: recent hires lack most of their birthright access, people added by hand \
             hold access nobody desires, and two leavers still hold everything.",
        )
    }

    /// One sync with progress, its report recorded and narrated.
    async fn sync(&mut self, step: Step) -> Result<SyncOutcome, DemoError> {
        self.world.opal.reset_counters();
        self.world.hr.reset_counts();
        let started = Instant::now();
        let sync = sync_once(
            &self.world.sources,
            &self.world.manifests,
            self.last_good,
            self.now,
        );
        let outcome = self
            .out
            .while_running(sync)
            .await?
            .map_err(|source| DemoError::Sync {
                step: step.title(),
                source: Box::new(source),
            })?;
        self.last_good = outcome.good_employee_count;
        let counters = self.world.opal.counters();
        let hr_counts = self.world.hr.counts();
        let report = StepReport {
            step,
            changes: applied_changes(&outcome),
            failed: outcome.execution.failures().count(),
            held: outcome
                .plan
                .withheld
                .iter()
                .filter(|(_, why)| *why != Withheld::Observe)
                .count(),
            observe_only: outcome
                .plan
                .withheld
                .iter()
                .filter(|(_, why)| *why == Withheld::Observe)
                .count(),
            hr_gate: outcome.plan.hr_gate.clone(),
            breaker: outcome
                .plan
                .breaker
                .tripped
                .then(|| outcome.plan.breaker.reason.clone()),
            plan_hash: outcome.plan.revocation_hash.clone(),
            converged: outcome.confirmation.operations.is_empty(),
            opal_grant_calls: counters.calls("POST /groups/{group_id}/users/{user_id}")
                + counters.calls("POST /resources/{resource_id}/users/{user_id}"),
            opal_revoke_calls: counters.calls("DELETE /groups/{group_id}/users/{user_id}")
                + counters.calls("DELETE /resources/{resource_id}/users/{user_id}"),
            hr_failures: hr_counts
                .by_route_status
                .iter()
                .filter(|((_, status), _)| *status >= 400)
                .map(|(_, count)| count)
                .sum(),
            elapsed: started.elapsed(),
        };
        self.out.outcome(&report, &outcome)?;
        self.reports.push(report);
        Ok(outcome)
    }

    /// Queues `notification` for `channels` and says so; a refusal is narrated, not raised.
    fn notify(
        &mut self,
        step: Step,
        channels: &[&str],
        notification: Notification,
    ) -> Result<(), DemoError> {
        let title = notification.title();
        let accepted = self.notifier.send(step, channels, notification);
        if accepted.len() < channels.len() {
            self.out.note(
                "notify",
                format!(
                    "{} of {} channel(s) refused the message; the sync is not affected",
                    channels.len() - accepted.len(),
                    channels.len()
                ),
            )?;
        }
        if accepted.is_empty() {
            return Ok(());
        }
        self.out.note(
            "notify",
            format!("queued for {}: {title}", accepted.join(", ")),
        )
    }

    /// The person behind `email`, with their name and IDs as HR and Opal know them.
    fn person(&self, email: &str) -> Person {
        let employee = self
            .world
            .roster()
            .employees()
            .into_iter()
            .find(|e| e.email.eq_ignore_ascii_case(email));
        let mut person = Person::new(email);
        if let Some(employee) = employee {
            person = person.named(format!("{} {}", employee.first_name, employee.last_name));
            person.hris_id = Some(employee.id);
        }
        person.opal_user_id = self.world.state().user_by_email(email).map(|u| u.user_id);
        person
    }

    /// The AccessPolicy of the operator namespace that `sets` applies to; else the config's
    /// safety defaults, which the planner treats as one more such policy.
    fn operator_policy(&self, sets: impl Fn(&AccessPolicySpec) -> bool) -> ObjectRef {
        let namespace = &self.world.sources.operator_namespace;
        let key = self
            .world
            .manifests
            .policy_inputs()
            .into_iter()
            .find(|policy| policy.key.namespace == *namespace && sets(&policy.spec))
            .map_or_else(
                || ObjectKey::new(namespace, SAFETY_DEFAULTS_POLICY),
                |policy| policy.key,
            );
        object_ref("AccessPolicy", &key)
    }

    /// Revocations of grants nobody desires, reported as one message to Slack.
    fn notify_unwanted(&mut self, step: Step, outcome: &SyncOutcome) -> Result<(), DemoError> {
        let revocations: Vec<AccessChange> = applied(outcome)
            .filter(|op| op.action == ChangeAction::Revoke && op.cause == Cause::Unwanted)
            .map(|op| AccessChange::new(self.person(&op.user_email), access_target(op)))
            .collect();
        if revocations.is_empty() {
            return Ok(());
        }
        let rule = self.operator_policy(|spec| !spec.tenancy.is_empty());
        let notification = Notification::new(
            Event::AccessRevoked {
                rule,
                reason: "held on a governed target without a RoleMapping granting it".to_owned(),
                revocations,
            },
            self.now,
        );
        self.notify(step, &[channels::SLACK], notification)
    }

    fn narrate_initial(&mut self, plan: &Plan) -> Result<(), DemoError> {
        for (key, findings) in &plan.mappings {
            if findings.enforced {
                continue;
            }
            self.out.note(
                "observe",
                format!(
                    "{key} is in Observe mode: {} grant(s) reported, none made",
                    findings.to_grant
                ),
            )?;
        }
        for problem in mapping_problems(plan) {
            self.out.note("inert", problem)?;
        }
        let unmatched = &self.world.unmatched;
        self.out.note(
            "unmatched",
            format!(
                "{} active employee(s) have no Opal account yet, e.g. {}",
                unmatched.len(),
                unmatched
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )?;
        let kept: Vec<String> = [
            (cast::SEEDED_JIT_ON_CALL, group(target::SRE_ON_CALL)),
            (
                cast::SEEDED_JIT_PRODUCTION,
                resource(target::AWS_PRODUCTION),
            ),
        ]
        .into_iter()
        .filter(|(email, label)| {
            self.world
                .holding(email, label)
                .is_some_and(|g| g.expiration_date.is_some())
        })
        .map(|(email, label)| format!("{email} on {label}"))
        .collect();
        self.out.note(
            "kept",
            format!(
                "just-in-time grants on governed targets: {}; protected break-glass account; \
             ungoverned legacy access",
                kept.join(", ")
            ),
        )
    }

    async fn new_hire(&mut self) -> Result<(), DemoError> {
        let step = Step::NewHire;
        self.out.heading(step)?;
        let roster = self.world.roster().employees();
        if roster
            .iter()
            .any(|e| e.email.eq_ignore_ascii_case(cast::NEW_HIRE))
        {
            return Err(DemoError::SampleOrg(format!(
                "{} is already employed",
                cast::NEW_HIRE
            )));
        }
        let next_id = roster
            .iter()
            .filter_map(|e| e.id.parse::<u64>().ok())
            .max()
            .unwrap_or(1000)
            + 1;
        let managers: Vec<&Employee> = roster
            .iter()
            .filter(|e| {
                e.title.as_deref() == Some("Engineering Manager")
                    && e.status == EmploymentStatus::Active
            })
            .collect();
        let manager = managers
            .iter()
            .find(|e| e.location.as_deref() == Some("Berlin"))
            .or(managers.first())
            .ok_or_else(|| DemoError::SampleOrg("no Engineering Manager to report to".into()))?;
        let hire = Employee {
            id: next_id.to_string(),
            email: cast::NEW_HIRE.to_owned(),
            first_name: "Priya".to_owned(),
            last_name: "Raman".to_owned(),
            department: Some("Engineering".to_owned()),
            title: Some("Software Engineer".to_owned()),
            location: Some("Berlin".to_owned()),
            cost_center: Some("CC-100".to_owned()),
            employment_type: Some("Full-Time".to_owned()),
            manager_id: Some(manager.id.clone()),
            manager_email: Some(manager.email.clone()),
            status: EmploymentStatus::Active,
            start_date: Some(self.now.date_naive()),
            termination_date: None,
            custom: BTreeMap::new(),
        };
        self.out.text(&format!(
            "Priya Raman joins Engineering in Berlin today (HR record {next_id}, reporting to {}); \
             the identity provider has just created her Opal account.",
            manager.email
        ))?;
        self.world.roster().hire(hire);
        self.world.state().add_user(FixtureUser {
            email: cast::NEW_HIRE.to_owned(),
            first_name: "Priya".to_owned(),
            last_name: "Raman".to_owned(),
            position: "Software Engineer".to_owned(),
            hr_idp_status: Some("ACTIVE".to_owned()),
            ..FixtureUser::default()
        })?;
        let outcome = self.sync(step).await?;
        let grants: Vec<&Operation> = applied(&outcome)
            .filter(|op| op.action == ChangeAction::Grant && is_user(op, cast::NEW_HIRE))
            .collect();
        let Some(rule) = main_mapping(&grants) else {
            return Ok(());
        };
        let notification = Notification::new(
            Event::Onboarded {
                person: self.person(cast::NEW_HIRE),
                rule: object_ref("RoleMapping", &rule),
                grants: grants.iter().map(|op| access_target(op)).collect(),
            },
            self.now,
        );
        self.notify(step, &[channels::SLACK], notification)
    }

    async fn role_change(&mut self) -> Result<(), DemoError> {
        let step = Step::RoleChange;
        self.out.heading(step)?;
        self.out.text(&format!(
            "{} moves from Customer Support to Engineering as a Site Reliability Engineer: \
             engineering and on-call access come, support access goes.",
            cast::ROLE_CHANGE
        ))?;
        let before = self.world.employee(cast::ROLE_CHANGE)?;
        self.world.roster().update(&before.id, |employee| {
            employee.department = Some("Engineering".to_owned());
            employee.title = Some("Site Reliability Engineer".to_owned());
            employee.cost_center = Some("CC-100".to_owned());
        });
        let after = self.world.employee(cast::ROLE_CHANGE)?;
        let outcome = self.sync(step).await?;
        let (grants, revocations): (Vec<&Operation>, Vec<&Operation>) = applied(&outcome)
            .filter(|op| is_user(op, cast::ROLE_CHANGE))
            .partition(|op| op.action == ChangeAction::Grant);
        let Some(rule) = main_mapping(&grants) else {
            return Ok(());
        };
        let notification = Notification::new(
            Event::RoleChanged {
                person: self.person(cast::ROLE_CHANGE),
                rule: object_ref("RoleMapping", &rule),
                changes: attribute_changes(&before, &after),
                granted: grants.iter().map(|op| access_target(op)).collect(),
                revoked: revocations.iter().map(|op| access_target(op)).collect(),
            },
            self.now,
        );
        self.notify(step, &[channels::SLACK], notification)
    }

    async fn termination(&mut self) -> Result<(), DemoError> {
        let step = Step::Termination;
        self.out.heading(step)?;
        self.out.text(&format!(
            "HR marks {} terminated as of today. The AccessPolicy offboards with `revoke: All`: \
             every grant goes, governed or legacy.",
            cast::LEAVER
        ))?;
        self.out.text(
            "The offboarding goes to Slack and is recorded in a Jira ticket. Jira will lose its \
             answer to the ticket's creation: the outbox's retry must find that ticket, not open \
             a second one.",
        )?;
        let id = self.world.employee_id(cast::LEAVER)?;
        let today = self.now.date_naive();
        self.world.roster().terminate(&id, today);
        let outcome = self.sync(step).await?;
        let revoked: Vec<AccessTarget> = applied(&outcome)
            .filter(|op| {
                op.action == ChangeAction::Revoke
                    && op.cause == Cause::Offboarding
                    && is_user(op, cast::LEAVER)
            })
            .map(access_target)
            .collect();
        if revoked.is_empty() {
            return Ok(());
        }
        let notification = Notification::new(
            Event::Offboarded {
                person: self.person(cast::LEAVER),
                policy: self.operator_policy(|spec| spec.offboarding.is_some()),
                termination_date: Some(today),
                revoked,
            },
            self.now,
        );
        self.notify(step, &[channels::SLACK, channels::JIRA], notification)
    }

    async fn opal_drift(&mut self) -> Result<(), DemoError> {
        let step = Step::OpalDrift;
        self.out.heading(step)?;
        self.out.text(
            "Admins change Opal by hand: a birthright grant is removed, two grants nobody desires \
             are added, an approved just-in-time grant is made, and a legacy system gets a user.",
        )?;
        let world = &self.world;
        let state = world.state();
        let salesforce = world.resource_id(target::SALESFORCE)?;
        let samir = world.user_id(cast::SALESFORCE_REMOVED)?;
        if !state.remove_resource_user(&salesforce, &samir, target::SALESFORCE_STANDARD) {
            return Err(DemoError::SampleOrg(format!(
                "{} holds no Salesforce grant to remove",
                cast::SALESFORCE_REMOVED
            )));
        }
        state.add_resource_user(
            &world.resource_id(target::AWS_STAGING)?,
            &world.user_id(cast::STAGING_POWER_USER)?,
            AccessLevel::new("PowerUser", target::AWS_STAGING_POWER_USER),
            None,
        )?;
        state.add_group_member(
            &world.group_id(target::SECURITY)?,
            &world.user_id(cast::ADDED_TO_SECURITY)?,
            AccessLevel::new("", ""),
            None,
        )?;
        state.add_resource_user(
            &world.resource_id(target::AWS_PRODUCTION)?,
            &world.user_id(cast::JIT_PROD_ADMIN)?,
            AccessLevel::new("Administrator", target::AWS_PRODUCTION_ADMIN),
            Some(state.now() + TimeDelta::hours(4)),
        )?;
        state.add_resource_user(
            &world.resource_id(target::LEGACY_JENKINS)?,
            &world.user_id(cast::LEGACY_JENKINS)?,
            AccessLevel::new("", ""),
            None,
        )?;
        for line in [
            format!(
                "- {} loses Salesforce (someone cleaned up the CRM)",
                cast::SALESFORCE_REMOVED
            ),
            format!("+ {} gets AWS Staging PowerUser", cast::STAGING_POWER_USER),
            format!("+ {} joins the Security group", cast::ADDED_TO_SECURITY),
            format!(
                "+ {} gets AWS Production Administrator for 4 h (approved request)",
                cast::JIT_PROD_ADMIN
            ),
            format!(
                "+ {} gets Legacy Jenkins (not governed)",
                cast::LEGACY_JENKINS
            ),
        ] {
            self.out.note("opal", line)?;
        }
        let outcome = self.sync(step).await?;
        self.notify_unwanted(step, &outcome)?;
        let world = &self.world;
        let jit_kept = world
            .holding(cast::JIT_PROD_ADMIN, &resource(target::AWS_PRODUCTION))
            .is_some_and(|g| g.access_level.remote_id == target::AWS_PRODUCTION_ADMIN);
        let legacy_kept = world
            .holding(cast::LEGACY_JENKINS, &resource(target::LEGACY_JENKINS))
            .is_some();
        self.out.note(
            "kept",
            format!(
                "just-in-time admin grant: {}; Legacy Jenkins user: {}",
                yes_no(jit_kept),
                yes_no(legacy_kept)
            ),
        )
    }

    async fn lockdown(&mut self) -> Result<(), DemoError> {
        let step = Step::Lockdown;
        self.out.heading(step)?;
        self.out.text(&format!(
            "Incident INC-4711: a session token of {} turned up in a public paste. Security \
             creates a Lockdown; it outranks every RoleMapping and no breaker applies.",
            cast::LOCKED
        ))?;
        let lockdown = format!(
            "apiVersion: opal-operator.io/v1alpha1
kind: Lockdown
metadata:
  name: inc-4711
  namespace: {namespace}
spec:
  subjects:
    - email: {email}
  reason: Session token found in a public paste; suspended until rotated.
  incident: INC-4711
  duration: 8h
",
            namespace = self.world.sources.operator_namespace,
            email = cast::LOCKED
        );
        for line in lockdown.lines().skip(1) {
            self.out.line(format!("      {line}"))?;
        }
        let incident = Manifests::from_yaml_str("lockdown inc-4711", &lockdown)?;
        self.world.manifests.lockdowns.extend(incident.lockdowns);
        let outcome = self.sync(step).await?;
        for (key, revoked) in self.lockdown_revocations(&outcome) {
            let Some(spec) = self
                .world
                .manifests
                .lockdown_inputs()
                .into_iter()
                .find(|input| input.key == key)
                .map(|input| input.spec)
            else {
                continue;
            };
            let notification = Notification::new(
                Event::LockdownActivated {
                    lockdown: object_ref("Lockdown", &key),
                    subjects: spec
                        .subjects
                        .iter()
                        .filter_map(|subject| subject.email.clone())
                        .collect(),
                    reason: spec.reason,
                    incident: spec.incident,
                    revoked,
                    expires_at: outcome
                        .plan
                        .lockdowns
                        .get(&key)
                        .and_then(|findings| findings.expires_at),
                },
                self.now,
            );
            self.notify(step, &[channels::SLACK, channels::PAGERDUTY], notification)?;
        }

        let step = Step::LockdownHolds;
        self.out.heading(step)?;
        self.out.text(&format!(
            "The on-call lead, unaware of the incident, adds {} back to SRE On-Call in Opal.",
            cast::LOCKED
        ))?;
        let world = &self.world;
        world.state().add_group_member(
            &world.group_id(target::SRE_ON_CALL)?,
            &world.user_id(cast::LOCKED)?,
            AccessLevel::new("", ""),
            None,
        )?;
        let outcome = self.sync(step).await?;
        for (key, revocations) in self.lockdown_revocations(&outcome) {
            let notification = Notification::new(
                Event::AccessRevoked {
                    rule: object_ref("Lockdown", &key),
                    reason: "granted again while the lockdown is in force".to_owned(),
                    revocations,
                },
                self.now,
            );
            self.notify(step, &[channels::SLACK], notification)?;
        }
        Ok(())
    }

    /// Revocations a Lockdown caused in this sync, by Lockdown.
    fn lockdown_revocations(
        &self,
        outcome: &SyncOutcome,
    ) -> BTreeMap<ObjectKey, Vec<AccessChange>> {
        let mut by_lockdown: BTreeMap<ObjectKey, Vec<AccessChange>> = BTreeMap::new();
        for op in applied(outcome).filter(|op| op.action == ChangeAction::Revoke) {
            if let Cause::Lockdown(key) = &op.cause {
                by_lockdown
                    .entry(key.clone())
                    .or_default()
                    .push(AccessChange::new(
                        self.person(&op.user_email),
                        access_target(op),
                    ));
            }
        }
        by_lockdown
    }

    async fn hr_outage(&mut self) -> Result<(), DemoError> {
        let step = Step::HrOutage;
        self.out.heading(step)?;
        self.out.text(&format!(
            "BambooHR answers every request with 503 (Retry-After: 1). Meanwhile someone adds {} \
             to the Engineering group by hand.",
            cast::ADDED_DURING_OUTAGE
        ))?;
        self.world.hr.set_fault_rates(FaultRates {
            service_unavailable: 1.0,
            retry_after: Some(Duration::from_secs(1)),
            ..FaultRates::default()
        });
        let world = &self.world;
        world.state().add_group_member(
            &world.group_id(target::ENGINEERING)?,
            &world.user_id(cast::ADDED_DURING_OUTAGE)?,
            AccessLevel::new("", ""),
            None,
        )?;
        self.sync(step).await?;
        let still_there = self
            .world
            .holding(cast::ADDED_DURING_OUTAGE, &group(target::ENGINEERING))
            .is_some();
        self.out.note(
            "waiting",
            format!(
                "{} still in Engineering: {} (nothing that relies on HR data changes \
             until HR answers again)",
                cast::ADDED_DURING_OUTAGE,
                yes_no(still_there)
            ),
        )
    }

    async fn hr_glitch_and_recovery(&mut self) -> Result<(), DemoError> {
        let step = Step::HrGlitch;
        self.out.heading(step)?;
        let roster = self.world.roster().clone();
        let before = roster.employees();
        self.world.hr.clear_faults();
        let today = self.now.date_naive();
        let mut terminated = 0;
        for employee in &before {
            let keep = employee
                .id
                .parse::<u64>()
                .is_ok_and(|id| id % GLITCH_KEEPS_EVERY == 0);
            if employee.status == EmploymentStatus::Active
                && !keep
                && roster.terminate(&employee.id, today)
            {
                terminated += 1;
            }
        }
        self.out.text(&format!(
            "BambooHR is back, but a bad bulk edit marks {terminated} of {} people terminated \
             today. Offboarding would revoke most of the company.",
            before.len()
        ))?;
        let outcome = self.sync(step).await?;
        let breaker = &outcome.plan.breaker;
        if breaker.tripped {
            let notification = Notification::new(
                Event::BreakerTripped {
                    policy: self.operator_policy(|spec| spec.safety.is_some()),
                    plan_hash: outcome.plan.revocation_hash.clone(),
                    planned_revocations: u64::try_from(breaker.revocations).unwrap_or(u64::MAX),
                    limit: breaker.reason.clone(),
                    approval_annotation: annotations::APPROVE_PLAN.to_owned(),
                },
                self.now,
            );
            self.notify(step, &[channels::SLACK], notification)?;
        }

        let step = Step::HrRecovers;
        self.out.heading(step)?;
        self.out.text(
            "HR reverts the bulk edit. The breaker closes by itself: the next plan revokes only \
             what is really unwanted.",
        )?;
        for employee in before {
            roster.hire(employee);
        }
        let outcome = self.sync(step).await?;
        self.notify_unwanted(step, &outcome)
    }
}

/// The operations a sync applied.
fn applied(outcome: &SyncOutcome) -> impl Iterator<Item = &Operation> {
    outcome
        .execution
        .outcomes
        .iter()
        .filter(|(_, result)| *result == OperationOutcome::Applied)
        .map(|(op, _)| op)
}

fn is_user(op: &Operation, email: &str) -> bool {
    op.user_email.eq_ignore_ascii_case(email)
}

fn object_ref(kind: &str, key: &ObjectKey) -> ObjectRef {
    ObjectRef::new(kind, &key.namespace, &key.name)
}

fn access_target(op: &Operation) -> AccessTarget {
    let mut target = match op.kind {
        TargetKind::Group => AccessTarget::group(&op.target_name),
        TargetKind::Resource => AccessTarget::resource(&op.target_name),
    };
    target.id = Some(op.target_id.clone());
    if !op.access_level_remote_id.is_empty() {
        target = target.with_level(&op.access_level_remote_id);
    }
    target
}

/// The RoleMapping behind most of `grants` (the first of equals), if any.
fn main_mapping(grants: &[&Operation]) -> Option<ObjectKey> {
    let mut counts: Vec<(&ObjectKey, usize)> = Vec::new();
    for op in grants {
        if let Cause::Mapping(key) = &op.cause {
            match counts.iter_mut().find(|(known, _)| *known == key) {
                Some((_, count)) => *count += 1,
                None => counts.push((key, 1)),
            }
        }
    }
    let most = counts.iter().map(|(_, count)| *count).max()?;
    counts
        .into_iter()
        .find(|(_, count)| *count == most)
        .map(|(key, _)| key.clone())
}

/// The HR attributes that differ between two versions of a record.
fn attribute_changes(before: &Employee, after: &Employee) -> Vec<AttributeChange> {
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_owned());
    [
        ("department", &before.department, &after.department),
        ("title", &before.title, &after.title),
        ("location", &before.location, &after.location),
        ("costCenter", &before.cost_center, &after.cost_center),
        ("managerEmail", &before.manager_email, &after.manager_email),
    ]
    .into_iter()
    .filter(|(_, from, to)| from != to)
    .map(|(attribute, from, to)| AttributeChange {
        attribute: attribute.to_owned(),
        from: shown(from),
        to: shown(to),
    })
    .collect()
}

fn group(name: &str) -> String {
    format!("group/{name}")
}

fn resource(name: &str) -> String {
    format!("resource/{name}")
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "NO" }
}

fn mapping_problems(plan: &Plan) -> Vec<String> {
    plan.mappings
        .iter()
        .flat_map(|(key, findings)| {
            findings
                .problems
                .iter()
                .map(move |problem| format!("{key}: {}: {}", problem.reason(), problem.message()))
        })
        .collect()
}

fn applied_changes(outcome: &SyncOutcome) -> Vec<Change> {
    applied(outcome).map(change_of).collect()
}

fn change_of(op: &Operation) -> Change {
    Change {
        action: op.action,
        target: op.target_label(),
        user: op.user_email.clone(),
        access_level: op.access_level_remote_id.clone(),
        cause: match &op.cause {
            Cause::Mapping(key) => format!("RoleMapping {key}"),
            Cause::Unwanted => "unwanted".to_owned(),
            Cause::Offboarding => "offboarding".to_owned(),
            Cause::Lockdown(key) => format!("Lockdown {key}"),
        },
    }
}

/// Example lines printed per step and kind of change.
const EXAMPLES: usize = 4;

/// Writes the story: plain lines, plus a spinner while a sync runs on a terminal.
struct Narrator {
    quiet: bool,
    terminal: bool,
    step_number: usize,
}

impl Narrator {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stdout().is_terminal(),
            step_number: 0,
        }
    }

    fn line(&mut self, text: impl AsRef<str>) -> Result<(), DemoError> {
        if self.quiet {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", text.as_ref()).map_err(DemoError::Output)
    }

    fn heading(&mut self, step: Step) -> Result<(), DemoError> {
        self.step_number += 1;
        if self.step_number > 1 {
            self.line("")?;
        }
        self.line(format!(
            "[{}/{}] {}",
            self.step_number,
            Step::ALL.len(),
            capitalized(step.title())
        ))
    }

    /// Wrapped prose under a heading.
    fn text(&mut self, text: &str) -> Result<(), DemoError> {
        let mut line = String::from("  ");
        for word in text.split_whitespace() {
            if line.len() + word.len() > 98 && !line.trim().is_empty() {
                self.line(&line)?;
                line = String::from("  ");
            }
            if line.len() > 2 {
                line.push(' ');
            }
            line.push_str(word);
        }
        if line.trim().is_empty() {
            return Ok(());
        }
        self.line(&line)
    }

    /// A detail line under a short label, so labels line up.
    fn note(&mut self, label: &str, text: impl AsRef<str>) -> Result<(), DemoError> {
        self.line(format!("    {label:<9} {}", text.as_ref()))
    }

    /// Awaits `work`, showing a spinner meanwhile when stdout is a terminal.
    async fn while_running<T>(&mut self, work: impl Future<Output = T>) -> Result<T, DemoError> {
        if self.quiet {
            return Ok(work.await);
        }
        if !self.terminal {
            self.line("  syncing (observe HR and Opal, plan, apply, confirm) ...")?;
            return Ok(work.await);
        }
        const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(80));
        let mut frame = 0usize;
        let mut work = std::pin::pin!(work);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticker.tick() => {
                    let mut stdout = std::io::stdout().lock();
                    write!(
                        stdout,
                        "\r\x1b[2K  {} syncing: observe, plan, apply, confirm … {:.1} s",
                        FRAMES[frame % FRAMES.len()],
                        started.elapsed().as_secs_f64()
                    )
                    .and_then(|()| stdout.flush())
                    .map_err(DemoError::Output)?;
                    frame += 1;
                }
            }
        };
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "\r\x1b[2K")
            .and_then(|()| stdout.flush())
            .map_err(DemoError::Output)?;
        Ok(result)
    }

    fn outcome(&mut self, report: &StepReport, outcome: &SyncOutcome) -> Result<(), DemoError> {
        if self.quiet {
            return Ok(());
        }
        let mut verdict = format!(
            "  {} granted, {} revoked",
            report.grants(),
            report.revocations()
        );
        if report.held > 0 {
            let _ = write!(verdict, ", {} held", report.held);
        }
        if report.failed > 0 {
            let _ = write!(verdict, ", {} failed", report.failed);
        }
        let _ = write!(
            verdict,
            " in {:.2} s; {}",
            report.elapsed.as_secs_f64(),
            convergence(report)
        );
        self.line(verdict)?;
        if let Some(gate) = &report.hr_gate {
            self.note("HR gate", gate)?;
            if report.hr_failures > 0 {
                self.note(
                    "HR",
                    format!(
                        "BambooHR failed {} request(s); the client honoured Retry-After, \
                     then gave up within its retry budget",
                        report.hr_failures
                    ),
                )?;
            }
        }
        if let Some(reason) = &report.breaker {
            self.note("breaker", format!("tripped: {reason}"))?;
            self.note(
                "breaker",
                format!(
                    "nothing is revoked unless a person approves exactly this plan: \
                 annotate the AccessPolicy with opal-operator.io/approve-plan: {}",
                    report.plan_hash
                ),
            )?;
        }
        for action in [ChangeAction::Grant, ChangeAction::Revoke] {
            let changes: Vec<&Change> = report
                .changes
                .iter()
                .filter(|c| c.action == action)
                .collect();
            for change in changes.iter().take(EXAMPLES) {
                self.note(action_word(change.action), change_line(change))?;
            }
            if changes.len() > EXAMPLES {
                self.note("", format!("… and {} more", changes.len() - EXAMPLES))?;
            }
        }
        let held: Vec<&(Operation, Withheld)> = outcome
            .plan
            .withheld
            .iter()
            .filter(|(_, why)| *why != Withheld::Observe)
            .collect();
        for (op, why) in held.iter().take(EXAMPLES) {
            let why = match why {
                Withheld::Breaker => "breaker",
                Withheld::HrGate => "HR gate",
                Withheld::Observe => "observe",
            };
            self.note(
                "held",
                format!(
                    "{:<6} {:<33} {:<30} {why}",
                    action_word(op.action),
                    op.target_label(),
                    op.user_email
                ),
            )?;
        }
        if held.len() > EXAMPLES {
            self.note("", format!("… and {} more", held.len() - EXAMPLES))?;
        }
        for (op, outcome) in &outcome.execution.outcomes {
            if let OperationOutcome::Failed { message, .. } = outcome {
                self.note(
                    "failed",
                    format!(
                        "{} {} {}: {message}",
                        action_word(op.action),
                        op.target_label(),
                        op.user_email
                    ),
                )?;
            }
        }
        Ok(())
    }

    fn notifications(&mut self, notes: &NotificationSummary) -> Result<(), DemoError> {
        self.line("")?;
        self.line(format!(
            "Notifications (outbox drained): {} of {} delivered",
            notes.delivered.len(),
            notes.queued
        ))?;
        for note in &notes.delivered {
            self.note("notify", delivery_line(note))?;
        }
        for failure in &notes.failed {
            self.note("failed", failure)?;
        }
        for refusal in &notes.refused {
            self.note("refused", refusal)?;
        }
        if notes.undelivered > 0 {
            self.note(
                "notify",
                format!(
                    "{} message(s) still queued when the grace period ended",
                    notes.undelivered
                ),
            )?;
        }
        Ok(())
    }

    fn summary(&mut self, summary: &DemoSummary) -> Result<(), DemoError> {
        self.line("")?;
        self.line("Summary")?;
        self.line(format!(
            "  {:<3} {:<42} {:>7} {:>7} {:>6} {:<9} {}",
            "#", "step", "granted", "revoked", "held", "safety", "converged"
        ))?;
        for (index, report) in summary.steps.iter().enumerate() {
            let safety = match (&report.hr_gate, &report.breaker) {
                (Some(_), Some(_)) => "HR gate+breaker",
                (Some(_), None) => "HR gate",
                (None, Some(_)) => "breaker",
                (None, None) => "-",
            };
            self.line(format!(
                "  {:<3} {:<42} {:>7} {:>7} {:>6} {:<9} {}",
                index + 1,
                report.step.title(),
                report.grants(),
                report.revocations(),
                report.held,
                safety,
                convergence(report)
            ))?;
        }
        let grants: usize = summary.steps.iter().map(StepReport::grants).sum();
        let revocations: usize = summary.steps.iter().map(StepReport::revocations).sum();
        self.line(format!(
            "  {} syncs, {} grants and {} revocations applied, in {:.1} s",
            summary.steps.len(),
            grants,
            revocations,
            summary.elapsed.as_secs_f64()
        ))?;
        let notes = &summary.notifications;
        self.line(format!(
            "  {} notifications queued: {} delivered, {} failed, {} refused, {} left queued",
            notes.queued,
            notes.delivered.len(),
            notes.failed.len(),
            notes.refused.len(),
            notes.undelivered
        ))?;
        self.line(format!(
            "  {} now holds: {}",
            cast::LOCKED,
            access_words(summary.access_of(cast::LOCKED))
        ))?;
        self.line(format!(
            "  {} now holds: {}",
            cast::LEAVER,
            access_words(summary.access_of(cast::LEAVER))
        ))
    }
}

/// One delivered message as people read it: where it went, what it did there, and its title.
fn delivery_line(note: &DeliveredNotification) -> String {
    let place = match &note.receipt {
        Receipt::Posted { .. } => format!("{} {}", note.kind, channels::SLACK_CONVERSATION),
        Receipt::Ticket {
            key,
            created,
            action,
        } => {
            let found = match (*created, note.attempts) {
                (true, _) => "opened",
                (false, 1) => "already open (found by its label)",
                (false, _) => "found by its label on the retry, not opened twice,",
            };
            let closed = match action {
                TicketAction::Record | TicketAction::Resolve => " and closed",
                TicketAction::Open | TicketAction::Update => "",
            };
            format!("{} {key} {found}{closed}", note.kind)
        }
        Receipt::Paged { dedup_key } => format!("{} paged (dedup_key {dedup_key})", note.kind),
        other => format!("{} {other:?}", note.kind),
    };
    let attempts = if note.attempts > 1 {
        format!(" ({} attempts)", note.attempts)
    } else {
        String::new()
    };
    format!("{place}: {}{attempts}", note.title)
}

fn access_words(grants: &[HeldGrant]) -> String {
    if grants.is_empty() {
        "nothing".to_owned()
    } else {
        grants
            .iter()
            .map(|g| g.target.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn convergence(report: &StepReport) -> &'static str {
    match (
        report.converged,
        report.held > 0 || report.hr_gate.is_some(),
    ) {
        (true, false) => "converged",
        (true, true) => "held by the safety rails",
        (false, _) => "NOT converged",
    }
}

fn action_word(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Grant => "grant",
        ChangeAction::Revoke => "revoke",
    }
}

fn change_line(change: &Change) -> String {
    let target = if change.access_level.is_empty() {
        change.target.clone()
    } else {
        format!("{} [{}]", change.target, short_level(&change.access_level))
    };
    let cause = change
        .cause
        .strip_prefix("RoleMapping ")
        .unwrap_or(&change.cause);
    format!("{target:<40} {:<30} {cause}", change.user)
}

/// The last path segment of an ARN-like remote ID, which is what people recognise.
fn short_level(remote_id: &str) -> &str {
    remote_id.rsplit('/').next().unwrap_or(remote_id)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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
