//! The story, chapter by chapter: each step changes the world, runs the real sync and reports
//! what it did.

use super::story::*;
use super::*;

impl Demo<'_> {
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
