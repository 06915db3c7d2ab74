//! `opal-operator demo` runs in the test command: the whole story against the in-process
//! simulators, with its end state asserted from the demo's summary (which reads the Opal
//! simulator's own state and call counters, not the executor's bookkeeping).
//!
//! The expected numbers come from how the sample org in `examples/demo` was seeded (its
//! README lists the drift) and from the manifests' rules, not from the engine.
//!
//! The notifications are checked from what the Slack, Jira and PagerDuty simulators recorded:
//! which messages arrived where, with which evidence, and that the one Jira ticket was opened
//! exactly once although Jira lost the answer to its creation.
//!
//! A second test checks that `examples/demo/config.yaml` works for `plan`: its file HR source
//! reads `employees.csv`, and the first plan against the sample org's Opal fixture is the one
//! the demo's first sync applies.

use std::collections::BTreeSet;
use std::path::PathBuf;

use opal_operator::config::OperatorConfig;
use opal_operator::crd::ChangeAction;
use opal_operator::demo::{
    self, Change, DemoOptions, DemoSummary, HeldGrant, NotificationSims, Step, cast, channels,
};
use opal_operator::engine::{Withheld, plan};
use opal_operator::hris::HrSource;
use opal_operator::manifests::Manifests;
use opal_operator::notify::{ChannelKind, Receipt, Thread, TicketAction};
use opal_operator::opal::{ApiToken, Client, ClientConfig};
use opal_operator::sim::notify::InjectedFault;
use opal_operator::sim::notify::pagerduty::AlertStatus;
use opal_operator::sim::opal::{OrgFixture, RunningOpalSim, SimConfig};
use opal_operator::standalone::{Sources, observe_world};
use serde_json::Value;

const PROD_READ: &str = "arn:aws:iam::111122223333:role/ReadOnly";
const PROD_ADMIN: &str = "arn:aws:iam::111122223333:role/AdministratorAccess";
const STAGING_READ: &str = "arn:aws:iam::444455556666:role/ReadOnly";
const STAGING_POWER_USER: &str = "arn:aws:iam::444455556666:role/PowerUserAccess";
const LOCKDOWN: &str = "Lockdown opal-system/inc-4711";

fn sample_org() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// (action, target, user, access level, cause) of every change in a step, sorted.
type ChangeKey = (ChangeAction, String, String, String, String);

fn keys(changes: &[Change]) -> BTreeSet<ChangeKey> {
    changes
        .iter()
        .map(|c| {
            (
                c.action,
                c.target.clone(),
                c.user.clone(),
                c.access_level.clone(),
                c.cause.clone(),
            )
        })
        .collect()
}

fn change(action: ChangeAction, target: &str, user: &str, level: &str, cause: &str) -> ChangeKey {
    (
        action,
        target.to_owned(),
        user.to_owned(),
        level.to_owned(),
        cause.to_owned(),
    )
}

fn grant(target: &str, level: &str) -> HeldGrant {
    HeldGrant {
        target: target.to_owned(),
        access_level: level.to_owned(),
        expires: false,
    }
}

fn holds(summary: &DemoSummary, email: &str, target: &str, level: &str) -> Option<bool> {
    summary
        .access_of(email)
        .iter()
        .find(|g| g.target == target && g.access_level == level)
        .map(|g| g.expires)
}

fn report(summary: &DemoSummary, step: Step) -> &demo::StepReport {
    summary
        .step(step)
        .unwrap_or_else(|| panic!("the demo ran no {step:?} step"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_its_story_and_ends_in_the_desired_state() {
    let sims = NotificationSims::start()
        .await
        .unwrap_or_else(|error| panic!("notification simulators: {error}"));
    let summary = demo::run_with(
        DemoOptions {
            sample_org_dir: sample_org(),
            quiet: true,
        },
        &sims,
    )
    .await
    .unwrap_or_else(|error| panic!("the demo failed ({}): {error}", error.label()));

    // The sample org's shape.
    assert_eq!(summary.employees, 409);
    assert_eq!(summary.opal_users, 403);
    assert_eq!(summary.groups, 25);
    assert_eq!(summary.resources, 16);
    assert_eq!(summary.unmatched_employees.len(), 8);
    assert_eq!(
        summary.mapping_problems.len(),
        1,
        "{:?}",
        summary.mapping_problems
    );
    assert!(
        summary.mapping_problems[0].starts_with("sales-ops/sales-leadership: TargetNotPermitted")
            && summary.mapping_problems[0].contains("resource NetSuite"),
        "{:?}",
        summary.mapping_problems
    );

    // Every chapter ran, in order; every sync converged (nothing left for the executor) and
    // nothing failed; only the two HR chapters were held by a safety rail.
    let steps: Vec<Step> = summary.steps.iter().map(|r| r.step).collect();
    assert_eq!(steps, Step::ALL);
    for step in &summary.steps {
        assert!(step.converged, "{:?} did not converge", step.step);
        assert_eq!(step.failed, 0, "{:?} had failures", step.step);
        // The simulator saw exactly the calls behind the changes reported.
        assert_eq!(
            step.opal_grant_calls as usize,
            step.grants(),
            "{:?}",
            step.step
        );
        assert_eq!(
            step.opal_revoke_calls as usize,
            step.revocations(),
            "{:?}",
            step.step
        );
        if !matches!(step.step, Step::HrOutage | Step::HrGlitch) {
            assert!(
                step.hr_gate.is_none(),
                "{:?}: {:?}",
                step.step,
                step.hr_gate
            );
            assert!(
                step.breaker.is_none(),
                "{:?}: {:?}",
                step.step,
                step.breaker
            );
            assert_eq!(step.held, 0, "{:?}", step.step);
        }
        // The staff-engineer mapping is in Observe mode: 8 staff and principal engineers would
        // get production admin (2 already hold it); it is reported every time, never made.
        if !matches!(step.step, Step::HrOutage | Step::HrGlitch) {
            assert_eq!(step.observe_only, 8, "{:?}", step.step);
        }
    }
    let permanent_prod_admins = summary
        .final_access
        .values()
        .flatten()
        .filter(|g| g.target == "resource/AWS Production" && g.access_level == PROD_ADMIN)
        .filter(|g| !g.expires)
        .count();
    assert_eq!(
        permanent_prod_admins, 3,
        "2 seeded staff engineers + break-glass"
    );

    initial_sync(&summary);
    new_hire(&summary);
    role_change(&summary);
    termination(&summary);
    opal_drift(&summary);
    lockdown(&summary);
    hr_outage_and_glitch(&summary);
    untouched_access(&summary);
    notifications(&summary, &sims);
}

/// The seeded drift: 8 recent hires lacking 39 birthright grants, 3 more missing grants and a
/// wrong access level (43 grants); 5 grants nobody desires and 2 leavers' 11 grants (16
/// revocations).
fn initial_sync(summary: &DemoSummary) {
    let step = report(summary, Step::InitialSync);
    assert_eq!(step.grants(), 43);
    assert_eq!(step.revocations(), 16);
    let changes = keys(&step.changes);
    let revoke = ChangeAction::Revoke;
    for expected in [
        change(
            revoke,
            "resource/GitHub: acme/monorepo",
            "felix.dimitrov@acme.example",
            "push",
            "unwanted",
        ),
        change(
            revoke,
            "group/SRE On-Call",
            "kwame.lindqvist@acme.example",
            "",
            "unwanted",
        ),
        change(
            revoke,
            "group/Engineering",
            "dev.contractor@partner-agency.example",
            "",
            "unwanted",
        ),
        change(
            revoke,
            "group/Security",
            "amina.torres@acme.example",
            "",
            "unwanted",
        ),
        change(
            revoke,
            "resource/GitHub: acme/monorepo",
            "lucia.schneider@acme.example",
            "admin",
            "unwanted",
        ),
        change(
            ChangeAction::Grant,
            "resource/GitHub: acme/monorepo",
            "lucia.schneider@acme.example",
            "push",
            "RoleMapping opal-system/engineering",
        ),
        change(
            ChangeAction::Grant,
            "resource/Salesforce",
            "zara.ivanova@acme.example",
            "standard_user",
            "RoleMapping opal-system/sales",
        ),
        change(
            revoke,
            "group/legacy-vpn-users",
            "sakura.hoffmann@acme.example",
            "",
            "offboarding",
        ),
    ] {
        assert!(changes.contains(&expected), "missing {expected:?}");
    }
    let offboarded: BTreeSet<&str> = step
        .changes
        .iter()
        .filter(|c| c.cause == "offboarding")
        .map(|c| c.user.as_str())
        .collect();
    assert_eq!(
        offboarded,
        BTreeSet::from(["sakura.hoffmann@acme.example", "uma.volkov@acme.example"])
    );
    assert_eq!(
        step.changes
            .iter()
            .filter(|c| c.cause == "offboarding")
            .count(),
        11
    );
    for leaver in ["sakura.hoffmann@acme.example", "uma.volkov@acme.example"] {
        assert!(summary.access_of(leaver).is_empty(), "{leaver} kept access");
    }
}

fn new_hire(summary: &DemoSummary) {
    let step = report(summary, Step::NewHire);
    let hire = cast::NEW_HIRE;
    let birthright = [
        ("group/All Employees", "", "all-employees"),
        ("group/Office: Berlin", "", "office-berlin"),
        ("group/Engineering", "", "engineering"),
        ("resource/GitHub: acme/monorepo", "push", "engineering"),
        ("resource/AWS Staging", STAGING_READ, "engineering"),
        ("resource/Datadog", "", "engineering"),
    ];
    let expected: BTreeSet<ChangeKey> = birthright
        .iter()
        .map(|(target, level, mapping)| {
            change(
                ChangeAction::Grant,
                target,
                hire,
                level,
                &format!("RoleMapping opal-system/{mapping}"),
            )
        })
        .collect();
    assert_eq!(keys(&step.changes), expected);
    let mut held: Vec<HeldGrant> = birthright
        .iter()
        .map(|(target, level, _)| grant(target, level))
        .collect();
    held.sort();
    assert_eq!(summary.access_of(hire), held.as_slice());
}

fn role_change(summary: &DemoSummary) {
    let step = report(summary, Step::RoleChange);
    let who = cast::ROLE_CHANGE;
    let grants = [
        ("group/Engineering", "", "engineering"),
        ("resource/GitHub: acme/monorepo", "push", "engineering"),
        ("resource/AWS Staging", STAGING_READ, "engineering"),
        ("resource/Datadog", "", "engineering"),
        ("group/SRE On-Call", "", "site-reliability"),
        ("resource/AWS Production", PROD_READ, "site-reliability"),
        ("resource/PagerDuty", "responder", "site-reliability"),
    ];
    let mut expected: BTreeSet<ChangeKey> = grants
        .iter()
        .map(|(target, level, mapping)| {
            change(
                ChangeAction::Grant,
                target,
                who,
                level,
                &format!("RoleMapping opal-system/{mapping}"),
            )
        })
        .collect();
    expected.insert(change(
        ChangeAction::Revoke,
        "group/Customer Support",
        who,
        "",
        "unwanted",
    ));
    expected.insert(change(
        ChangeAction::Revoke,
        "resource/Zendesk",
        who,
        "agent",
        "unwanted",
    ));
    assert_eq!(keys(&step.changes), expected);
    for (target, level, _) in grants {
        assert_eq!(holds(summary, who, target, level), Some(false), "{target}");
    }
    assert_eq!(holds(summary, who, "group/Customer Support", ""), None);
    assert_eq!(holds(summary, who, "resource/Zendesk", "agent"), None);
}

fn termination(summary: &DemoSummary) {
    let step = report(summary, Step::Termination);
    assert_eq!(step.revocations(), 8);
    assert_eq!(step.grants(), 0);
    assert!(
        step.changes
            .iter()
            .all(|c| c.user == cast::LEAVER && c.cause == "offboarding"),
        "{:?}",
        step.changes
    );
    // `revoke: All`: ungoverned legacy access goes too.
    let targets: BTreeSet<&str> = step.changes.iter().map(|c| c.target.as_str()).collect();
    assert!(targets.contains("group/legacy-vpn-users"), "{targets:?}");
    assert!(targets.contains("resource/Legacy Jenkins"), "{targets:?}");
    assert!(summary.access_of(cast::LEAVER).is_empty());
}

fn opal_drift(summary: &DemoSummary) {
    let step = report(summary, Step::OpalDrift);
    assert_eq!(
        keys(&step.changes),
        BTreeSet::from([
            change(
                ChangeAction::Grant,
                "resource/Salesforce",
                cast::SALESFORCE_REMOVED,
                "standard_user",
                "RoleMapping opal-system/sales",
            ),
            change(
                ChangeAction::Revoke,
                "resource/AWS Staging",
                cast::STAGING_POWER_USER,
                STAGING_POWER_USER,
                "unwanted",
            ),
            change(
                ChangeAction::Revoke,
                "group/Security",
                cast::ADDED_TO_SECURITY,
                "",
                "unwanted",
            ),
        ])
    );
    assert_eq!(
        holds(
            summary,
            cast::SALESFORCE_REMOVED,
            "resource/Salesforce",
            "standard_user"
        ),
        Some(false)
    );
    // The approved time-bound grant and the ungoverned legacy grant stay.
    assert_eq!(
        holds(
            summary,
            cast::JIT_PROD_ADMIN,
            "resource/AWS Production",
            PROD_ADMIN
        ),
        Some(true)
    );
    assert_eq!(
        holds(summary, cast::LEGACY_JENKINS, "resource/Legacy Jenkins", ""),
        Some(false)
    );
}

fn lockdown(summary: &DemoSummary) {
    let step = report(summary, Step::Lockdown);
    assert_eq!(step.revocations(), 11);
    assert_eq!(step.grants(), 0);
    assert!(
        step.changes
            .iter()
            .all(|c| c.user == cast::LOCKED && c.cause == LOCKDOWN),
        "{:?}",
        step.changes
    );
    // Everything goes: governed, legacy, and the just-in-time break-glass membership.
    let targets: BTreeSet<&str> = step.changes.iter().map(|c| c.target.as_str()).collect();
    for target in [
        "group/SRE On-Call",
        "resource/AWS Production",
        "group/legacy-vpn-users",
        "group/Production Break-Glass",
    ] {
        assert!(
            targets.contains(target),
            "{target} not revoked: {targets:?}"
        );
    }

    let again = report(summary, Step::LockdownHolds);
    assert_eq!(
        keys(&again.changes),
        BTreeSet::from([change(
            ChangeAction::Revoke,
            "group/SRE On-Call",
            cast::LOCKED,
            "",
            LOCKDOWN
        )])
    );
    assert!(summary.access_of(cast::LOCKED).is_empty());
    // Nobody ever granted the locked user anything after the lockdown.
    assert!(
        summary
            .steps
            .iter()
            .skip_while(|r| r.step != Step::Lockdown)
            .flat_map(|r| &r.changes)
            .all(|c| !(c.user == cast::LOCKED && c.action == ChangeAction::Grant))
    );
}

fn hr_outage_and_glitch(summary: &DemoSummary) {
    let outage = report(summary, Step::HrOutage);
    let gate = outage.hr_gate.as_deref().unwrap_or_default();
    assert!(
        gate.contains("HR snapshot unavailable") && gate.contains("503"),
        "{gate}"
    );
    assert!(outage.hr_failures >= 2, "{}", outage.hr_failures);
    assert!(outage.changes.is_empty(), "{:?}", outage.changes);
    assert_eq!((outage.opal_grant_calls, outage.opal_revoke_calls), (0, 0));

    let glitch = report(summary, Step::HrGlitch);
    assert!(glitch.hr_gate.is_none(), "{:?}", glitch.hr_gate);
    let reason = glitch.breaker.as_deref().unwrap_or_default();
    assert!(reason.contains("exceed maxRevocations 25"), "{reason}");
    assert!(glitch.held > 1_000, "only {} held", glitch.held);
    assert!(glitch.changes.is_empty(), "{:?}", glitch.changes);
    assert_eq!((glitch.opal_grant_calls, glitch.opal_revoke_calls), (0, 0));
    assert_eq!(glitch.plan_hash.len(), 16);

    // Once HR is back, the drift made during the outage is repaired, and nothing else moves.
    let recovered = report(summary, Step::HrRecovers);
    assert_eq!(
        keys(&recovered.changes),
        BTreeSet::from([change(
            ChangeAction::Revoke,
            "group/Engineering",
            cast::ADDED_DURING_OUTAGE,
            "",
            "unwanted"
        )])
    );
    assert_eq!(
        holds(summary, cast::ADDED_DURING_OUTAGE, "group/Engineering", ""),
        None
    );
}

/// Exemptions and ungoverned access survive the whole story.
fn untouched_access(summary: &DemoSummary) {
    assert_eq!(
        holds(summary, cast::SEEDED_JIT_ON_CALL, "group/SRE On-Call", ""),
        Some(true)
    );
    assert_eq!(
        holds(
            summary,
            cast::SEEDED_JIT_PRODUCTION,
            "resource/AWS Production",
            PROD_READ
        ),
        Some(true)
    );
    let mut breakglass = vec![
        grant("group/Security", ""),
        grant("group/SRE On-Call", ""),
        grant("resource/AWS Production", PROD_ADMIN),
        grant("resource/Vault: production secrets", ""),
    ];
    breakglass.sort();
    assert_eq!(
        summary.access_of("breakglass-admin@acme.example"),
        breakglass.as_slice(),
        "a protected user is never revoked"
    );
    // Additive mapping: analysts outside the data team keep their warehouse access.
    let readers = summary
        .final_access
        .values()
        .flatten()
        .filter(|g| g.target == "resource/Snowflake: ANALYTICS" && g.access_level == "READER")
        .count();
    assert_eq!(readers, 5);
    // The future hire has an account but no access before the start date.
    assert!(summary.access_of("andrei.mahlangu@acme.example").is_empty());
    assert_eq!(
        holds(
            summary,
            "old.intern@acme.example",
            "group/legacy-vpn-users",
            ""
        ),
        Some(false),
        "ungoverned access of someone not in HR is left alone"
    );
    // The agency account lost Engineering in the first sync but keeps its ungoverned group.
    assert!(
        summary
            .final_access
            .contains_key("dev.contractor@partner-agency.example")
    );
    assert_eq!(
        holds(
            summary,
            "dev.contractor@partner-agency.example",
            "group/Contractors",
            ""
        ),
        Some(false)
    );
}

/// Every string under a `text` key of Slack blocks: what a person reads.
fn block_texts(value: &Value, texts: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| block_texts(item, texts)),
        Value::Object(fields) => {
            for (key, field) in fields {
                match field {
                    Value::String(text) if key == "text" => texts.push(text.clone()),
                    other => block_texts(other, texts),
                }
            }
        }
        _ => {}
    }
}

/// The text nodes of an Atlassian Document Format document, one per line.
fn adf_text(document: &Value) -> String {
    fn collect(node: &Value, texts: &mut Vec<String>) {
        if node["type"] == "text" {
            texts.extend(node["text"].as_str().map(str::to_owned));
        }
        for child in node["content"].as_array().into_iter().flatten() {
            collect(child, texts);
        }
    }
    let mut texts = Vec::new();
    collect(document, &mut texts);
    texts.join("\n")
}

/// How the message model names a target in evidence: `group "Name"` or
/// `resource "Name" (level)`.
fn evidence_target(change: &Change) -> String {
    let (kind, name) = change.target.split_once('/').expect("kind/name label");
    if change.access_level.is_empty() {
        format!("{kind} \"{name}\"")
    } else {
        format!("{kind} \"{name}\" ({})", change.access_level)
    }
}

/// The messages the Slack, Jira and PagerDuty simulators accepted, read from their records.
fn notifications(summary: &DemoSummary, sims: &NotificationSims) {
    let notes = &summary.notifications;
    assert!(
        notes.failed.is_empty() && notes.refused.is_empty(),
        "failed {:?}, refused {:?}",
        notes.failed,
        notes.refused
    );
    assert_eq!(notes.queued, 10);
    assert_eq!(notes.delivered.len(), 10);
    assert_eq!(notes.undelivered, 0);
    assert_eq!(notes.delivered_to(channels::SLACK), 8);
    assert_eq!(notes.delivered_to(channels::JIRA), 1);
    assert_eq!(notes.delivered_to(channels::PAGERDUTY), 1);
    let steps_notified: Vec<(Step, ChannelKind, &str)> = notes
        .delivered
        .iter()
        .map(|note| (note.step, note.kind, note.event))
        .collect();
    for expected in [
        (Step::NewHire, ChannelKind::Slack, "onboarded"),
        (Step::RoleChange, ChannelKind::Slack, "roleChanged"),
        (Step::Termination, ChannelKind::Slack, "offboarded"),
        (Step::Termination, ChannelKind::Jira, "offboarded"),
        (Step::OpalDrift, ChannelKind::Slack, "accessRevoked"),
        (Step::Lockdown, ChannelKind::Slack, "lockdownActivated"),
        (Step::Lockdown, ChannelKind::PagerDuty, "lockdownActivated"),
        (Step::LockdownHolds, ChannelKind::Slack, "accessRevoked"),
        (Step::HrGlitch, ChannelKind::Slack, "breakerTripped"),
        (Step::HrRecovers, ChannelKind::Slack, "accessRevoked"),
    ] {
        assert!(
            steps_notified.contains(&expected),
            "{expected:?} not in {steps_notified:?}"
        );
    }

    slack_messages(summary, sims);
    jira_ticket(summary, sims);
    pagerduty_alert(summary, sims);
}

fn slack_messages(summary: &DemoSummary, sims: &NotificationSims) {
    // One chat.postMessage per message, each accepted: nothing was retried or refused.
    let calls = sims.slack().requests_to("POST /api/chat.postMessage");
    assert_eq!(calls.len(), 8);
    assert!(
        calls
            .iter()
            .all(|call| call.status == 200 && call.injected.is_none())
    );
    for call in &calls {
        assert_eq!(
            call.json().expect("JSON body")["channel"],
            channels::SLACK_CONVERSATION
        );
    }
    let posts = sims.slack().posts();
    assert_eq!(posts.len(), 8);
    for post in &posts {
        assert_eq!(post.channel, channels::SLACK_CONVERSATION);
    }
    let texts: Vec<String> = posts
        .iter()
        .map(|post| {
            let mut texts = Vec::new();
            block_texts(post.blocks.as_ref().expect("blocks"), &mut texts);
            texts.join("\n")
        })
        .collect();
    let titles: Vec<&str> = posts
        .iter()
        .map(|post| post.text.as_deref().expect("fallback text"))
        .collect();
    let breaker_hash = &report(summary, Step::HrGlitch).plan_hash;
    let expected: [(&str, Vec<String>); 8] = [
        (
            "Onboarded Priya Raman <priya.raman@acme.example>",
            vec![
                "RoleMapping opal-system/engineering".into(),
                "*Grants*\n6".into(),
                "group \"Office: Berlin\"".into(),
                "resource \"GitHub: acme/monorepo\" (push)".into(),
            ],
        ),
        (
            "Role changed for Erik Volkov <erik.volkov@acme.example>",
            vec![
                "department: Customer Support → Engineering".into(),
                "title: Support Engineer → Site Reliability Engineer".into(),
                "*Granted*\n7".into(),
                "*Revoked*\n2".into(),
                "revoked: resource \"Zendesk\" (agent)".into(),
                "granted: group \"SRE On-Call\"".into(),
            ],
        ),
        (
            "Offboarded Yara Murphy <yara.murphy@acme.example>",
            vec![
                "AccessPolicy opal-system/baseline".into(),
                "*Termination date*\n2026-12-01".into(),
                "*Grants revoked*\n8".into(),
                "resource \"Legacy Jenkins\"".into(),
            ],
        ),
        (
            "2 grant(s) revoked by AccessPolicy opal-system/baseline",
            vec![
                format!("{}&gt; → group \"Security\"", cast::ADDED_TO_SECURITY),
                format!(
                    "{}&gt; → resource \"AWS Staging\" ({STAGING_POWER_USER})",
                    cast::STAGING_POWER_USER
                ),
            ],
        ),
        (
            "Lockdown inc-4711 activated for ines.silva@acme.example",
            vec![
                "*Incident*\nINC-4711".into(),
                "*Grants revoked*\n11".into(),
                "*Expires*\n2026-12-01T17:00:00Z".into(),
                format!("{}&gt; → group \"Production Break-Glass\"", cast::LOCKED),
            ],
        ),
        (
            "1 grant(s) revoked by Lockdown opal-system/inc-4711",
            vec![format!("{}&gt; → group \"SRE On-Call\"", cast::LOCKED)],
        ),
        (
            "Revocation breaker tripped for AccessPolicy opal-system/baseline",
            vec![
                format!("*Plan*\n{breaker_hash}"),
                format!("opal-operator.io/approve-plan={breaker_hash}"),
                "exceed maxRevocations 25".into(),
            ],
        ),
        (
            "1 grant(s) revoked by AccessPolicy opal-system/baseline",
            vec![format!(
                "{}&gt; → group \"Engineering\"",
                cast::ADDED_DURING_OUTAGE
            )],
        ),
    ];
    for (index, (title, facts)) in expected.iter().enumerate() {
        // The fallback text is Slack mrkdwn: `<`, `>` and `&` arrive escaped.
        let title = title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            titles[index].starts_with(&title),
            "message {index}: {:?} does not start with {title:?}",
            titles[index]
        );
        for fact in facts {
            assert!(
                texts[index].contains(fact.as_str()),
                "message {index} ({title}) lacks {fact:?}:\n{}",
                texts[index]
            );
        }
    }
    let held = report(summary, Step::HrGlitch).held;
    assert!(
        titles[6].ends_with(&format!(": {held} revocations held")),
        "{}",
        titles[6]
    );
}

fn jira_ticket(summary: &DemoSummary, sims: &NotificationSims) {
    // Exactly one create call: Jira made the issue but lost its answer (an injected 503), and the
    // retry found the issue by its label instead of creating another.
    let creates = sims.jira().requests_to("POST /rest/api/3/issue");
    let answers: Vec<_> = creates.iter().map(|r| (r.status, r.injected)).collect();
    assert_eq!(creates.len(), 1, "create answers: {answers:?}");
    assert_eq!(creates[0].status, 503);
    assert_eq!(creates[0].injected, Some(InjectedFault::Scripted));
    let issues = sims.jira().issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert_eq!(issue.key, format!("{}-1", channels::JIRA_PROJECT));
    assert_eq!(issue.issue_type, "Task");
    assert_eq!(
        issue.summary,
        "Offboarded Yara Murphy <yara.murphy@acme.example>"
    );
    // Recorded and closed at once: it documents finished work.
    assert_eq!(issue.status, "Done");
    assert!(issue.labels.iter().any(|l| l == "opal-operator"));
    assert!(
        issue
            .labels
            .iter()
            .any(|l| l.starts_with("opal-operator-") && l.len() == "opal-operator-".len() + 24),
        "{:?}",
        issue.labels
    );
    let description = adf_text(&issue.description);
    assert!(description.contains(cast::LEAVER), "{description}");
    assert!(description.contains("Grants revoked: "), "{description}");
    let revoked: Vec<&Change> = report(summary, Step::Termination).changes.iter().collect();
    assert_eq!(revoked.len(), 8);
    for change in revoked {
        let item = evidence_target(change);
        assert!(
            description.lines().any(|line| line == item),
            "the ticket lacks {item:?}:\n{description}"
        );
    }
    let delivered = summary
        .notifications
        .delivered
        .iter()
        .find(|note| note.kind == ChannelKind::Jira)
        .expect("jira delivery");
    assert_eq!(delivered.attempts, 2);
    assert_eq!(
        delivered.receipt,
        Receipt::Ticket {
            key: issue.key.clone(),
            created: false,
            action: TicketAction::Record,
        }
    );
}

fn pagerduty_alert(summary: &DemoSummary, sims: &NotificationSims) {
    let events = sims.pagerduty().requests_to("POST /v2/enqueue");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, 202);
    // The alert's key is the lockdown's thread token, so later messages about the same
    // lockdown (its release) reach the same alert.
    let dedup_key = Thread {
        key: "lockdown/Lockdown/opal-system/inc-4711".to_owned(),
        action: TicketAction::Open,
    }
    .token();
    let event = events[0].json().expect("JSON event");
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], dedup_key.as_str());
    let alerts = sims.pagerduty().alerts();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.dedup_key, dedup_key);
    assert_eq!(alert.status, AlertStatus::Triggered);
    assert_eq!(
        alert.payload["summary"],
        "Lockdown inc-4711 activated for ines.silva@acme.example"
    );
    assert_eq!(alert.payload["severity"], "critical");
    assert_eq!(alert.payload["class"], "lockdownActivated");
    let details = &alert.payload["custom_details"];
    assert_eq!(details["Incident"], "INC-4711");
    assert_eq!(
        details["Grants revoked"],
        report(summary, Step::Lockdown).revocations().to_string()
    );
    assert_eq!(
        details["Reason"],
        "Session token found in a public paste; suspended until rotated."
    );
}

/// `examples/demo/config.yaml` as `plan` reads it: the file HR source on `employees.csv` and
/// the Opal simulator seeded from `opal-org.yaml` give the plan the demo's first sync applies.
#[tokio::test]
async fn the_sample_config_plans_the_seeded_drift() {
    let dir = sample_org();
    let config = OperatorConfig::from_path(&dir.join("config.yaml")).expect("config parses");
    assert_eq!(config.operator_namespace, "opal-system");
    let fixture = OrgFixture::from_path(dir.join("opal-org.yaml")).expect("fixture");
    let sim = RunningOpalSim::start(fixture, SimConfig::default())
        .await
        .expect("simulator");
    let client = Client::new(
        ClientConfig {
            base_url: sim.base_url(),
            ..config.opal.client.clone()
        },
        ApiToken::new("opal-sim-token").expect("token"),
    )
    .expect("client");
    // The config names the CSV relative to the repository root, where `cargo test` runs.
    let sources = Sources {
        hr: HrSource::from_config(&config.hris).expect("file HR source"),
        opal: client,
        concurrency: config.sync.concurrency,
        operator_namespace: config.operator_namespace.clone(),
        safety_defaults: config.safety_defaults.clone(),
    };
    let manifests = Manifests::load_dir(&dir.join("manifests")).expect("manifests");
    assert_eq!(manifests.role_mappings.len(), 21);
    assert_eq!(manifests.access_policies.len(), 1);
    assert_eq!(manifests.review_schedules.len(), 1);
    let world = observe_world(&sources, &manifests, None)
        .await
        .expect("observe");
    let first = plan(&world, demo::demo_clock());
    let count = |action| {
        first
            .operations
            .iter()
            .filter(|op| op.action == action)
            .count()
    };
    assert_eq!(count(ChangeAction::Grant), 43);
    assert_eq!(count(ChangeAction::Revoke), 16);
    assert!(!first.breaker.tripped && first.hr_gate.is_none());
    assert_eq!(
        first
            .withheld
            .iter()
            .filter(|(_, why)| *why == Withheld::Observe)
            .count(),
        8
    );
    assert_eq!(first.withheld.len(), 8);
    // Sanity check of the HR side: 409 people, the same records as the CSV.
    match &world.hr {
        opal_operator::engine::HrState::Snapshot(employees) => assert_eq!(employees.len(), 409),
        other => panic!("HR snapshot failed: {other:?}"),
    }
    sim.shutdown().await;
}
