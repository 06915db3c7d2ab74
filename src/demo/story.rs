//! The story's state and what every chapter shares: running the real sync, sending its
//! notices, and the helpers that describe operations. The chapters are in `scenes.rs`.

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
