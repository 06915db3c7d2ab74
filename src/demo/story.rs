//! The story, chapter by chapter: each step changes the world, runs the real sync and reports
//! what it did.

use super::*;

/// The story's state between chapters.
pub(super) struct Demo<'o> {
    pub(super) world: DemoWorld,
    pub(super) notifier: Notifier,
    pub(super) out: &'o mut Narrator,
    /// Employee count of the last snapshot that passed the flood gate.
    pub(super) last_good: Option<usize>,
    pub(super) now: DateTime<Utc>,
    pub(super) reports: Vec<StepReport>,
}

impl Demo<'_> {
    pub(super) fn introduce(&mut self) -> Result<(), DemoError> {
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
    pub(super) async fn sync(&mut self, step: Step) -> Result<SyncOutcome, DemoError> {
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
    pub(super) fn notify(
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
    pub(super) fn person(&self, email: &str) -> Person {
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
    pub(super) fn operator_policy(&self, sets: impl Fn(&AccessPolicySpec) -> bool) -> ObjectRef {
        let namespace = &self.world.sources.operator_namespace;
        let key = self
            .world
            .manifests
            .access_policies
            .iter()
            .map(|policy| (manifests::key_of(&policy.metadata), &policy.spec))
            .find(|(key, spec)| key.namespace == *namespace && sets(spec))
            .map_or_else(
                || ObjectKey::new(namespace, SAFETY_DEFAULTS_POLICY),
                |(key, _)| key,
            );
        object_ref("AccessPolicy", &key)
    }

    /// Revocations of grants nobody desires, reported as one message to Slack.
    pub(super) fn notify_unwanted(
        &mut self,
        step: Step,
        outcome: &SyncOutcome,
    ) -> Result<(), DemoError> {
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

    pub(super) fn narrate_initial(&mut self, plan: &Plan) -> Result<(), DemoError> {
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

    pub(super) async fn new_hire(&mut self) -> Result<(), DemoError> {
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

    pub(super) async fn role_change(&mut self) -> Result<(), DemoError> {
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

    pub(super) async fn termination(&mut self) -> Result<(), DemoError> {
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

    pub(super) async fn opal_drift(&mut self) -> Result<(), DemoError> {
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

    pub(super) async fn lockdown(&mut self) -> Result<(), DemoError> {
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
                .lockdowns
                .iter()
                .find(|lockdown| manifests::key_of(&lockdown.metadata) == key)
                .map(|lockdown| lockdown.spec.clone())
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
    pub(super) fn lockdown_revocations(
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

    pub(super) async fn hr_outage(&mut self) -> Result<(), DemoError> {
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

    pub(super) async fn hr_glitch_and_recovery(&mut self) -> Result<(), DemoError> {
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
pub(super) fn applied(outcome: &SyncOutcome) -> impl Iterator<Item = &Operation> {
    outcome
        .execution
        .outcomes
        .iter()
        .filter(|(_, result)| *result == OperationOutcome::Applied)
        .map(|(op, _)| op)
}

pub(super) fn is_user(op: &Operation, email: &str) -> bool {
    op.user_email.eq_ignore_ascii_case(email)
}

pub(super) fn object_ref(kind: &str, key: &ObjectKey) -> ObjectRef {
    ObjectRef::new(kind, &key.namespace, &key.name)
}

pub(super) fn access_target(op: &Operation) -> AccessTarget {
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
pub(super) fn main_mapping(grants: &[&Operation]) -> Option<ObjectKey> {
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
pub(super) fn attribute_changes(before: &Employee, after: &Employee) -> Vec<AttributeChange> {
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

pub(super) fn group(name: &str) -> String {
    format!("group/{name}")
}

pub(super) fn resource(name: &str) -> String {
    format!("resource/{name}")
}

pub(super) fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "NO" }
}

pub(super) fn mapping_problems(plan: &Plan) -> Vec<String> {
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

pub(super) fn applied_changes(outcome: &SyncOutcome) -> Vec<Change> {
    applied(outcome).map(change_of).collect()
}

pub(super) fn change_of(op: &Operation) -> Change {
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
