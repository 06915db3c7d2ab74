//! Tenancy beyond RoleMappings: which Lockdowns are honoured where, who hears of a
//! revocation, and offboarding delays nobody can read.

use chrono::Duration;

use super::tests::{
    NS, base_world, email_subject, grant, group_grant, lockdown, mapping, now, ops, policy, tenancy,
};
use super::*;

const TEAM: &str = "team-a";

/// ada (u1) holds the managed `eng` and the unmanaged `legacy`; bob (u2) holds `eng`.
fn world_with_grants() -> World {
    let mut world = base_world();
    world.opal.grants = vec![
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-legacy", "u1"),
        grant(TargetKind::Group, "g-eng", "u2"),
    ];
    world
}

fn in_team(mut input: LockdownInput) -> LockdownInput {
    input.key.namespace = TEAM.to_owned();
    input
}

fn group_subject(name: &str) -> Subject {
    Subject::Target(Target::group_named(name))
}

/// The base tenancy plus a rule for `team-a` on `eng`, with or without `allowLockdowns`.
fn team_rule(allow_lockdowns: bool) -> PolicyInput {
    let mut spec = tenancy();
    spec.tenancy.push(TenancyGrant {
        namespaces: vec![TEAM.to_owned()],
        target_tags: Default::default(),
        target_names: vec!["eng".to_owned()],
        target_ids: Vec::new(),
        allow_lockdowns,
    });
    policy(spec)
}

fn findings<'p>(plan: &'p Plan, name: &str) -> &'p LockdownFindings {
    &plan.lockdowns[&ObjectKey::new(TEAM, name)]
}

#[test]
fn a_lockdown_in_a_namespace_no_policy_lets_lock_revokes_nothing() {
    let mut world = world_with_grants();
    world.mappings.clear();
    world.lockdowns = vec![
        in_team(lockdown("ceo", vec![email_subject("ada@example.com")])),
        in_team(lockdown("prod", vec![group_subject("eng")])),
    ];
    let plan = plan(&world, now());
    assert!(ops(&plan).is_empty(), "{:?}", ops(&plan));
    for name in ["ceo", "prod"] {
        let found = findings(&plan, name);
        assert!(!found.active, "{name} must not be in force");
        let refusal = found.not_permitted.as_deref().unwrap_or_default();
        assert!(
            refusal.contains("team-a may not lock anything"),
            "{refusal}"
        );
        assert!(refusal.contains("allowLockdowns"), "{refusal}");
    }
}

#[test]
fn governing_a_target_is_not_permission_to_lock_it() {
    let mut world = world_with_grants();
    world.mappings.clear();
    world.policies = vec![team_rule(false)];
    world.lockdowns = vec![in_team(lockdown(
        "ld",
        vec![email_subject("ada@example.com")],
    ))];
    let plan = plan(&world, now());
    assert!(ops(&plan).is_empty());
    assert!(findings(&plan, "ld").not_permitted.is_some());
}

#[test]
fn a_permitted_namespace_locks_only_the_targets_it_may_lock() {
    let mut world = world_with_grants();
    world.mappings.clear();
    world.policies = vec![team_rule(true)];
    world.lockdowns = vec![in_team(lockdown(
        "ld",
        vec![email_subject("ada@example.com")],
    ))];
    let plan = plan(&world, now());
    // ada keeps the ungoverned `legacy`: team-a may not lock it.
    assert_eq!(ops(&plan), ["revoke eng u1"]);
    let found = findings(&plan, "ld");
    assert!(found.active);
    assert_eq!(found.not_permitted, None);

    // A target subject outside its reach is refused by name; the permitted one locks.
    world.lockdowns = vec![in_team(lockdown(
        "targets",
        vec![group_subject("eng"), group_subject("legacy")],
    ))];
    let targeted = super::plan(&world, now());
    assert_eq!(ops(&targeted), ["revoke eng u1", "revoke eng u2"]);
    let refusal = findings(&targeted, "targets")
        .not_permitted
        .clone()
        .unwrap_or_default();
    assert!(refusal.contains("may not lock group legacy"), "{refusal}");
    assert!(!refusal.contains("group eng"), "{refusal}");
}

#[test]
fn a_scoped_lockdown_is_cut_to_its_namespace_reach() {
    let mut world = world_with_grants();
    world.mappings.clear();
    world.policies = vec![team_rule(true)];
    let mut scoped = in_team(lockdown("ld", vec![email_subject("ada@example.com")]));
    scoped.rules.scope = LockScope::Targets(vec![group_grant("legacy").target]);
    world.lockdowns = vec![scoped];
    let plan = plan(&world, now());
    assert!(ops(&plan).is_empty(), "{:?}", ops(&plan));
    let found = findings(&plan, "ld");
    assert!(!found.active, "nothing it may lock is named");
    assert!(
        found
            .not_permitted
            .as_deref()
            .is_some_and(|r| r.contains("group legacy"))
    );
}

#[test]
fn the_operator_namespace_locks_anything() {
    let mut world = world_with_grants();
    world.mappings.clear();
    world.policies = vec![team_rule(false)];
    world.lockdowns = vec![lockdown("ld", vec![email_subject("ada@example.com")])];
    let plan = plan(&world, now());
    assert_eq!(ops(&plan), ["revoke eng u1", "revoke legacy u1"]);
    assert_eq!(
        plan.lockdowns[&ObjectKey::new(NS, "ld")].not_permitted,
        None
    );
}

#[test]
fn revocations_are_reported_only_on_mappings_permitted_to_govern_the_target() {
    let mut world = world_with_grants();
    // cy (u3) holds eng without being an engineer: an unwanted grant.
    world
        .opal
        .grants
        .push(grant(TargetKind::Group, "g-eng", "u3"));
    let mut outsider = mapping("names-eng", "Sales", vec![group_grant("eng")]);
    outsider.key.namespace = "team-b".to_owned();
    world.mappings.push(outsider);
    let plan = plan(&world, now());
    let revoke = plan
        .operations
        .iter()
        .find(|op| op.action == ChangeAction::Revoke && op.user_id == "u3")
        .expect("the unwanted grant is revoked");
    assert_eq!(plan.owners_of(revoke), vec![ObjectKey::new(NS, "eng")]);
    assert!(
        plan.mappings[&ObjectKey::new("team-b", "names-eng")]
            .pending_sample
            .is_empty()
    );
}

#[test]
fn an_unreadable_offboarding_delay_holds_offboarding() {
    let mut world = world_with_grants();
    if let HrState::Snapshot(employees) = &mut world.hr {
        employees[0].status = crate::EmploymentStatus::Terminated;
    }
    let mut spec = tenancy();
    // As the edge reads `after: "3 days"`.
    spec.offboarding = Some(Err(
        "offboarding.after: invalid duration \"3 days\"".to_owned()
    ));
    world.policies = vec![policy(spec)];
    let plan = plan(&world, now() + Duration::days(30));
    assert!(
        !ops(&plan).iter().any(|op| op.ends_with("u1")),
        "nothing of the leaver's is revoked: {:?}",
        ops(&plan)
    );
    let problem = plan.policies[&ObjectKey::new(NS, "baseline")]
        .invalid_offboarding
        .clone()
        .unwrap_or_default();
    assert!(problem.contains("offboarding.after"), "{problem}");
}
