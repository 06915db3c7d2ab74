//! Table tests for every planning rule.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::*;
use crate::{Employee, EmploymentStatus};

pub(crate) const NS: &str = "opal-system";

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub(crate) fn employee(id: &str, email: &str, department: &str) -> Employee {
    Employee {
        id: id.to_owned(),
        email: email.to_owned(),
        first_name: id.to_owned(),
        last_name: String::new(),
        department: Some(department.to_owned()),
        title: Some("Engineer".to_owned()),
        location: Some("Berlin".to_owned()),
        cost_center: None,
        employment_type: Some("FullTime".to_owned()),
        manager_id: None,
        manager_email: None,
        status: EmploymentStatus::Active,
        start_date: NaiveDate::from_ymd_opt(2020, 1, 1),
        termination_date: None,
        custom: Default::default(),
    }
}

pub(crate) fn user(id: &str, email: &str) -> OpalUser {
    OpalUser {
        id: id.to_owned(),
        email: email.to_owned(),
    }
}

pub(crate) fn group(id: &str, name: &str, tags: &[(&str, &str)]) -> OpalTarget {
    OpalTarget {
        kind: TargetKind::Group,
        id: id.to_owned(),
        name: name.to_owned(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        derived_membership: false,
    }
}

pub(crate) fn grant(kind: TargetKind, target: &str, user: &str) -> OpalGrant {
    OpalGrant {
        kind,
        target_id: target.to_owned(),
        user_id: user.to_owned(),
        access_level_remote_id: String::new(),
        access_level_name: String::new(),
        expires_at: None,
    }
}

pub(crate) fn group_grant(name: &str) -> GrantRule {
    GrantRule {
        target: Target::group_named(name),
        level: LevelRef::Default,
    }
}

pub(crate) fn selector(requirements: Vec<Requirement>) -> Result<CompiledSelector, SelectorError> {
    Ok(CompiledSelector::new(requirements))
}

pub(crate) fn mapping(name: &str, department: &str, grants: Vec<GrantRule>) -> MappingInput {
    MappingInput {
        key: ObjectKey::new(NS, name),
        rules: MappingRules {
            selector: selector(vec![Requirement::equals("department", department)]),
            grants,
            membership: Membership::Authoritative,
            enforcement: Enforcement::Enforce,
            exceptions: Vec::new(),
            revoke_on_delete: false,
            pre_start_days: 0,
            invalid: Vec::new(),
        },
        paused: false,
        deleting: false,
    }
}

pub(crate) fn policy(rules: PolicyRules) -> PolicyInput {
    PolicyInput {
        key: ObjectKey::new(NS, "baseline"),
        rules,
        approved_plan_hash: None,
    }
}

/// Permits the operator namespace to govern every target tagged `managed: yes`.
pub(crate) fn tenancy() -> PolicyRules {
    PolicyRules {
        safety: None,
        offboarding: None,
        tenancy: vec![TenancyGrant {
            namespaces: vec![NS.to_owned()],
            target_tags: [("managed".to_owned(), "yes".to_owned())].into(),
            target_names: Vec::new(),
            target_ids: Vec::new(),
            allow_lockdowns: false,
        }],
    }
}

/// Two engineers and one sales person; `eng` and `sales` groups managed; `legacy` not.
pub(crate) fn base_world() -> World {
    World {
        hr: HrState::Snapshot(vec![
            employee("E1", "Ada@Example.com", "Engineering"),
            employee("E2", "bob@example.com", "Engineering"),
            employee("E3", "cy@example.com", "Sales"),
        ]),
        last_good_employee_count: None,
        opal: OpalState {
            users: vec![
                user("u1", "ada@example.com"),
                user("u2", "bob@example.com"),
                user("u3", "cy@example.com"),
                user("u4", "eve@example.com"),
            ],
            targets: vec![
                group("g-eng", "eng", &[("managed", "yes")]),
                group("g-sales", "sales", &[("managed", "yes")]),
                group("g-legacy", "legacy", &[]),
            ],
            grants: Vec::new(),
        },
        mappings: vec![mapping("eng", "Engineering", vec![group_grant("eng")])],
        policies: vec![policy(tenancy())],
        lockdowns: Vec::new(),
        operator_namespace: NS.to_owned(),
    }
}

pub(crate) fn ops(plan: &Plan) -> Vec<String> {
    plan.operations
        .iter()
        .map(|op| {
            let action = match op.action {
                ChangeAction::Grant => "grant",
                ChangeAction::Revoke => "revoke",
            };
            format!("{action} {} {}", op.target_name, op.user_id)
        })
        .collect()
}

fn withheld(plan: &Plan) -> Vec<(String, Withheld)> {
    plan.withheld
        .iter()
        .map(|(op, why)| {
            (
                format!("{:?} {} {}", op.action, op.target_name, op.user_id),
                *why,
            )
        })
        .collect()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(NS, name)
}

#[test]
fn grants_matched_employees_linked_case_insensitively() {
    let world = base_world();
    let plan = plan(&world, now());
    assert_eq!(ops(&plan), ["grant eng u1", "grant eng u2"]);
    let findings = &plan.mappings[&key("eng")];
    assert_eq!(findings.matched_employees, 2);
    assert_eq!(findings.desired_grants, 2);
    assert_eq!(findings.to_grant, 2);
    assert_eq!(findings.pending_sample.len(), 2);
    assert!(matches!(&plan.operations[0].cause, Cause::Mapping(k) if *k == key("eng")));
}

#[test]
fn employees_without_an_opal_user_are_reported() {
    let mut world = base_world();
    if let HrState::Snapshot(employees) = &mut world.hr {
        employees.push(employee("E9", "new@example.com", "Engineering"));
    }
    let plan = plan(&world, now());
    let findings = &plan.mappings[&key("eng")];
    assert_eq!(findings.matched_employees, 3);
    assert_eq!(findings.unmatched_employees, 1);
    assert_eq!(findings.unmatched_sample, ["new@example.com"]);
}

#[test]
fn two_mappings_on_one_group_never_fight() {
    let mut world = base_world();
    world
        .mappings
        .push(mapping("sales", "Sales", vec![group_grant("eng")]));
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u3")];
    let plan = plan(&world, now());
    assert_eq!(
        ops(&plan),
        ["grant eng u1", "grant eng u2"],
        "u3 stays: sales desires it"
    );
}

#[test]
fn authoritative_revokes_unwanted_and_additive_does_not() {
    let mut world = base_world();
    world.opal.grants = vec![
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-eng", "u4"),
    ];
    let authoritative = plan(&world, now());
    assert_eq!(ops(&authoritative), ["grant eng u2", "revoke eng u4"]);
    assert_eq!(authoritative.mappings[&key("eng")].to_revoke, 1);

    world.mappings[0].rules.membership = Membership::Additive;
    let additive = plan(&world, now());
    assert_eq!(ops(&additive), ["grant eng u2"]);
}

#[test]
fn ungoverned_targets_are_never_touched() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-legacy", "u4")];
    assert_eq!(ops(&plan(&world, now())), ["grant eng u1", "grant eng u2"]);
}

#[test]
fn exemptions_keep_grants_on_authoritative_targets() {
    let mut world = base_world();
    let mut time_bound = grant(TargetKind::Group, "g-eng", "u3");
    time_bound.expires_at = Some(now() + Duration::hours(4));
    world.opal.grants = vec![
        time_bound,
        grant(TargetKind::Group, "g-eng", "u4"),
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-eng", "u2"),
    ];
    world.mappings[0].rules.exceptions = vec!["EVE@example.com".to_owned()];
    assert!(
        plan(&world, now()).is_converged(),
        "time-bound and excepted grants stay"
    );

    world.mappings[0].rules.exceptions.clear();
    let mut policy = tenancy();
    policy.safety = Some(SafetyRules {
        protected_users: vec!["eve@example.com".to_owned()],
        ..SafetyRules::default()
    });
    world.policies = vec![super::tests::policy(policy)];
    assert!(plan(&world, now()).is_converged(), "protected user stays");
}

#[test]
fn derived_groups_are_never_granted_or_revoked() {
    let mut world = base_world();
    world.opal.targets[0].derived_membership = true;
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u4")];
    let plan = plan(&world, now());
    assert!(plan.is_converged());
    let problems = &plan.mappings[&key("eng")].problems;
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason(), "TargetDerived");
}

#[test]
fn only_active_employees_match() {
    let mut world = base_world();
    if let HrState::Snapshot(employees) = &mut world.hr {
        employees[0].status = EmploymentStatus::OnLeave;
        employees[1].start_date = NaiveDate::from_ymd_opt(2026, 6, 20);
    }
    assert!(
        plan(&world, now()).operations.is_empty(),
        "on leave and not started"
    );

    world.mappings[0].rules.pre_start_days = 5;
    assert_eq!(
        ops(&plan(&world, now())),
        ["grant eng u2"],
        "starts within preStartDays"
    );
}

#[test]
fn match_expressions_select_employees() {
    let mut world = base_world();
    world.mappings[0].rules.selector = selector(vec![
        Requirement::one_of(
            "department",
            &["engineering".to_owned(), "sales".to_owned()],
        ),
        Requirement::matches("email", "(ada|cy)@.*", String::new()).expect("valid pattern"),
        Requirement::DoesNotExist {
            key: "costCenter".to_owned(),
        },
    ]);
    assert_eq!(ops(&plan(&world, now())), ["grant eng u1", "grant eng u3"]);

    world.mappings[0].rules.selector =
        Requirement::matches("email", "(", "matchExpressions[1] (email)".to_owned())
            .map(|requirement| CompiledSelector::new(vec![requirement]));
    let plan = plan(&world, now());
    assert!(plan.operations.is_empty());
    assert_eq!(
        plan.mappings[&key("eng")].problems[0].reason(),
        "InvalidSelector"
    );
}

#[test]
fn a_deleted_revoke_on_delete_mapping_retires_and_revokes_only_what_only_it_desired() {
    let mut world = base_world();
    world.mappings[0].rules.revoke_on_delete = true;
    // `everyone-eng` also desires cy in eng; ada and bob are desired by `eng` alone.
    let mut everyone = mapping("everyone-eng", "Sales", vec![group_grant("eng")]);
    everyone.rules.membership = Membership::Additive;
    world.mappings.push(everyone);
    world.opal.grants = ["u1", "u2", "u3"]
        .map(|user| grant(TargetKind::Group, "g-eng", user))
        .to_vec();
    assert!(plan(&world, now()).operations.is_empty());

    world.mappings[0].deleting = true;
    assert!(world.mappings[0].retiring());
    assert_eq!(
        ops(&plan(&world, now())),
        ["revoke eng u1", "revoke eng u2"]
    );

    // Without revokeOnDelete, or on an Additive mapping, deletion retires nothing.
    world.mappings[0].rules.revoke_on_delete = false;
    assert!(!world.mappings[0].retiring());
    world.mappings[0].rules.revoke_on_delete = true;
    world.mappings[0].rules.membership = Membership::Additive;
    assert!(!world.mappings[0].retiring());
    assert!(!world.mappings[0].rules.revokes_on_delete());
}

#[test]
fn a_mapping_whose_selector_cannot_compile_revokes_nothing() {
    let mut world = base_world();
    world.opal.grants = ["u1", "u2", "u4"]
        .map(|user| grant(TargetKind::Group, "g-eng", user))
        .to_vec();
    assert_eq!(ops(&plan(&world, now())), ["revoke eng u4"]);
    world.mappings[0].rules.selector =
        Requirement::matches("email", "(", "matchExpressions[0] (email)".to_owned())
            .map(|requirement| CompiledSelector::new(vec![requirement]));
    let plan = plan(&world, now());
    assert!(plan.operations.is_empty(), "{:?}", ops(&plan));
    assert_eq!(
        plan.mappings[&ObjectKey::new(NS, "eng")].problems[0].reason(),
        "InvalidSelector"
    );
}

#[test]
fn tenancy_gates_what_a_namespace_may_govern() {
    let mut world = base_world();
    world.mappings.push(MappingInput {
        key: ObjectKey::new("team-a", "sneaky"),
        ..mapping("sneaky", "Sales", vec![group_grant("eng")])
    });
    let plan1 = plan(&world, now());
    assert_eq!(
        ops(&plan1),
        ["grant eng u1", "grant eng u2"],
        "team-a grants nothing"
    );
    let problems = &plan1.mappings[&ObjectKey::new("team-a", "sneaky")].problems;
    assert_eq!(problems[0].reason(), "TargetNotPermitted");

    // A policy inside team-a cannot grant itself tenancy.
    let mut own = tenancy();
    own.tenancy[0].namespaces = vec!["team-a".to_owned()];
    world.policies.push(PolicyInput {
        key: ObjectKey::new("team-a", "self-service"),
        rules: own,
        approved_plan_hash: None,
    });
    let plan2 = plan(&world, now());
    assert_eq!(ops(&plan2), ["grant eng u1", "grant eng u2"]);
    assert!(plan2.policies[&ObjectKey::new("team-a", "self-service")].outside_operator_namespace);

    // Without any policy, every mapping is inert.
    world.policies.clear();
    assert!(plan(&world, now()).operations.is_empty());
}

#[test]
fn unknown_targets_and_levels_are_reported() {
    let mut world = base_world();
    world.mappings[0].rules.grants.push(group_grant("missing"));
    world.mappings[0].rules.grants.push(GrantRule {
        level: LevelRef::Name("Admin".to_owned()),
        ..group_grant("sales")
    });
    let plan = plan(&world, now());
    let reasons: Vec<&str> = plan.mappings[&key("eng")]
        .problems
        .iter()
        .map(|p| p.reason())
        .collect();
    assert_eq!(reasons, ["TargetNotFound", "AccessLevelNotFound"]);
    assert_eq!(
        ops(&plan),
        ["grant eng u1", "grant eng u2"],
        "the resolvable grant still applies"
    );
}

#[test]
fn access_levels_by_remote_id_and_by_observed_name() {
    let mut world = base_world();
    let mut admin = grant(TargetKind::Group, "g-sales", "u3");
    admin.access_level_remote_id = "role/admin".to_owned();
    admin.access_level_name = "Admin".to_owned();
    world.opal.grants = vec![admin];
    world.mappings[0].rules.grants = vec![GrantRule {
        level: LevelRef::Name("Admin".to_owned()),
        ..group_grant("sales")
    }];
    let plan = plan(&world, now());
    assert_eq!(
        ops(&plan),
        ["grant sales u1", "grant sales u2", "revoke sales u3"]
    );
    assert!(
        plan.operations
            .iter()
            .all(|op| op.access_level_remote_id == "role/admin")
    );
}

pub(crate) fn lockdown(name: &str, subjects: Vec<Subject>) -> LockdownInput {
    LockdownInput {
        key: ObjectKey::new(NS, name),
        rules: LockdownRules {
            subjects,
            end: LockEnd::After(Duration::hours(4)),
            ..LockdownRules::default()
        },
        activated_at: None,
        released: false,
        deleting: false,
    }
}

pub(crate) fn email_subject(email: &str) -> Subject {
    Subject::Email(email.to_owned())
}

#[test]
fn a_locked_user_loses_everything_and_is_never_granted() {
    let mut world = base_world();
    let mut jit = grant(TargetKind::Group, "g-sales", "u1");
    jit.expires_at = Some(now() + Duration::hours(1));
    world.opal.grants = vec![grant(TargetKind::Group, "g-legacy", "u1"), jit];
    world.lockdowns = vec![lockdown("ld", vec![email_subject("ada@example.com")])];
    let mut policy = tenancy();
    policy.safety = Some(SafetyRules {
        max_revocations: Some(0),
        protected_users: vec!["ada@example.com".to_owned()],
        ..SafetyRules::default()
    });
    world.policies = vec![super::tests::policy(policy)];
    let plan = plan(&world, now());
    assert_eq!(
        ops(&plan),
        ["revoke sales u1", "revoke legacy u1", "grant eng u2"],
        "lockdown outranks protection and the breaker; ada is not granted eng"
    );
    let findings = &plan.lockdowns[&ObjectKey::new(NS, "ld")];
    assert!(findings.active);
    assert_eq!(findings.locked_users, 1);
    assert_eq!(findings.to_revoke, 2);
    assert_eq!(findings.expires_at, Some(now() + Duration::hours(4)));
}

#[test]
fn a_lockdown_ends_at_its_time_or_its_duration_after_activation_and_is_then_due_for_release() {
    let at = now();
    let mut input = lockdown("incident", vec![email_subject("ada@example.com")]);
    input.rules.end = LockEnd::After(Duration::seconds(5));
    // Before activation the duration counts from now, so it cannot have run out.
    assert_eq!(input.expires_at(at), Ok(Some(at + Duration::seconds(5))));
    assert!(input.in_force(at) && !input.release_due(at));
    input.activated_at = Some(at - Duration::seconds(4));
    assert!(input.in_force(at) && !input.release_due(at));
    input.activated_at = Some(at - Duration::seconds(6));
    assert!(!input.in_force(at) && input.release_due(at));
    // An explicit end counts as given.
    input.rules.end = LockEnd::At(at + Duration::seconds(1));
    assert!(input.in_force(at) && !input.release_due(at));
    input.rules.end = LockEnd::At(at);
    assert!(!input.in_force(at) && input.release_due(at));
    // Once released it is neither in force nor due again.
    input.released = true;
    assert!(!input.in_force(at) && !input.release_due(at));
}

#[test]
fn a_deleted_lockdown_is_due_for_release_and_a_bad_duration_holds_it_without_releasing() {
    let at = now();
    let mut deleted = lockdown("deleted", vec![email_subject("ada@example.com")]);
    deleted.deleting = true;
    assert!(!deleted.in_force(at) && deleted.release_due(at));

    let mut unreadable = lockdown("unreadable", vec![email_subject("ada@example.com")]);
    unreadable.rules.end = LockEnd::Invalid("invalid duration \"soon\"".to_owned());
    assert!(unreadable.expires_at(at).is_err());
    assert!(
        !unreadable.in_force(at),
        "an unreadable duration does not lock"
    );
    assert!(!unreadable.release_due(at), "nor does it count as expired");

    let mut world = base_world();
    world.lockdowns = vec![deleted, unreadable];
    let plan = plan(&world, at);
    let deleted = &plan.lockdowns[&ObjectKey::new(NS, "deleted")];
    assert!(!deleted.active && deleted.release_due);
    let unreadable = &plan.lockdowns[&ObjectKey::new(NS, "unreadable")];
    assert!(!unreadable.active && !unreadable.release_due);
    assert!(unreadable.invalid_duration.is_some());
}

#[test]
fn expired_and_released_lockdowns_are_not_in_force() {
    let mut world = base_world();
    let mut expired = lockdown("old", vec![email_subject("ada@example.com")]);
    expired.activated_at = Some(now() - Duration::hours(5));
    let mut released = lockdown("done", vec![email_subject("bob@example.com")]);
    released.released = true;
    world.lockdowns = vec![expired, released];
    let plan = plan(&world, now());
    assert_eq!(ops(&plan), ["grant eng u1", "grant eng u2"]);
    assert!(!plan.lockdowns[&ObjectKey::new(NS, "old")].active);
}

#[test]
fn a_locked_target_keeps_only_break_glass_users() {
    let mut world = base_world();
    world.opal.grants = vec![
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-eng", "u2"),
    ];
    let mut locked = lockdown(
        "eng-frozen",
        vec![Subject::Target(Target::group_named("eng"))],
    );
    locked.rules.break_glass = vec!["bob@example.com".to_owned()];
    world.lockdowns = vec![locked];
    assert_eq!(ops(&plan(&world, now())), ["revoke eng u1"]);
}

#[test]
fn lockdown_subjects_resolve_by_hris_id_and_unknowns_are_reported() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-legacy", "u3")];
    world.lockdowns = vec![lockdown(
        "ld",
        vec![
            Subject::HrisId("E3".to_owned()),
            email_subject("ghost@example.com"),
        ],
    )];
    let plan = plan(&world, now());
    assert!(ops(&plan).contains(&"revoke legacy u3".to_owned()));
    let findings = &plan.lockdowns[&ObjectKey::new(NS, "ld")];
    assert_eq!(findings.unresolved_subjects.len(), 1);
}

fn offboarding_world(scope: OffboardingScope, when: OffboardingWhen) -> World {
    let mut world = base_world();
    if let HrState::Snapshot(employees) = &mut world.hr {
        employees[0].status = EmploymentStatus::Terminated;
        employees[0].termination_date = NaiveDate::from_ymd_opt(2026, 6, 15);
    }
    world.opal.grants = vec![
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-eng", "u2"),
        grant(TargetKind::Group, "g-legacy", "u1"),
    ];
    world.mappings[0].rules.membership = Membership::Additive;
    let mut policy = tenancy();
    policy.offboarding = Some(Ok(OffboardingRules { scope, when }));
    world.policies = vec![super::tests::policy(policy)];
    world
}

#[test]
fn offboarding_revokes_governed_or_all_grants() {
    let governed = offboarding_world(OffboardingScope::Governed, OffboardingWhen::Immediately);
    assert_eq!(
        ops(&plan(&governed, now())),
        ["revoke eng u1"],
        "additive target included"
    );
    assert!(matches!(
        plan(&governed, now()).operations[0].cause,
        Cause::Offboarding
    ));

    let all = offboarding_world(OffboardingScope::All, OffboardingWhen::Immediately);
    assert_eq!(
        ops(&plan(&all, now())),
        ["revoke eng u1", "revoke legacy u1"]
    );
}

#[test]
fn offboarding_waits_for_its_time() {
    let on_date = offboarding_world(OffboardingScope::All, OffboardingWhen::OnTerminationDate);
    assert_eq!(
        plan(&on_date, now()).operations.len(),
        2,
        "due on the termination date"
    );
    let before = now() - Duration::days(1);
    assert!(
        plan(&on_date, before).operations.is_empty(),
        "not due yet: still matched"
    );

    let after = offboarding_world(
        OffboardingScope::All,
        OffboardingWhen::After(Duration::hours(24)),
    );
    assert!(plan(&after, now()).operations.is_empty());
    assert_eq!(plan(&after, now() + Duration::days(1)).operations.len(), 2);
}

#[test]
fn observe_mode_and_pause_report_but_change_nothing() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u4")];
    world.mappings[0].rules.enforcement = Enforcement::Observe;
    let observed = plan(&world, now());
    assert!(observed.operations.is_empty());
    assert_eq!(observed.withheld.len(), 3);
    assert!(
        observed
            .withheld
            .iter()
            .all(|(_, why)| *why == Withheld::Observe)
    );
    let findings = &observed.mappings[&key("eng")];
    assert_eq!((findings.to_grant, findings.to_revoke), (2, 1));
    assert!(!findings.enforced);

    world.mappings[0].rules.enforcement = Enforcement::Enforce;
    world.mappings[0].paused = true;
    assert!(plan(&world, now()).operations.is_empty());
}

fn breaker_world(limit: SafetyRules) -> World {
    let mut world = base_world();
    world.opal.grants = (0..10)
        .map(|i| {
            let mut g = grant(TargetKind::Group, "g-eng", "u4");
            g.access_level_remote_id = format!("level-{i}");
            g
        })
        .chain([
            grant(TargetKind::Group, "g-eng", "u1"),
            grant(TargetKind::Group, "g-eng", "u2"),
        ])
        .collect();
    let mut policy = tenancy();
    policy.safety = Some(limit);
    world.policies = vec![super::tests::policy(policy)];
    world
}

#[test]
fn the_breaker_holds_revocations_until_that_exact_plan_is_approved() {
    let mut world = breaker_world(SafetyRules {
        max_revocations: Some(5),
        ..SafetyRules::default()
    });
    let tripped = plan(&world, now());
    assert!(tripped.breaker.tripped && !tripped.breaker.approved);
    assert!(tripped.operations.is_empty());
    assert_eq!(tripped.withheld.len(), 10);
    assert!(
        tripped
            .withheld
            .iter()
            .all(|(_, why)| *why == Withheld::Breaker)
    );
    assert!(tripped.breaker.reason.contains("maxRevocations 5"));

    world.policies[0].approved_plan_hash = Some("0000".to_owned());
    assert!(
        plan(&world, now()).operations.is_empty(),
        "a different hash approves nothing"
    );

    world.policies[0].approved_plan_hash = Some(tripped.revocation_hash.clone());
    let approved = plan(&world, now());
    assert!(approved.breaker.approved);
    assert_eq!(approved.operations.len(), 10);
}

#[test]
fn the_breaker_trips_on_percent_of_governed_grants() {
    let world = breaker_world(SafetyRules {
        max_revocation_percent: Some(50),
        ..SafetyRules::default()
    });
    let plan = plan(&world, now());
    assert_eq!(plan.breaker.governed_grants, 12);
    assert!(plan.breaker.tripped, "10 of 12 is above 50%");
}

#[test]
fn the_plan_hash_is_stable_and_order_independent() {
    let world = breaker_world(SafetyRules::default());
    let mut reversed = world.clone();
    reversed.opal.grants.reverse();
    reversed.opal.users.reverse();
    assert_eq!(
        plan(&world, now()).revocation_hash,
        plan(&reversed, now()).revocation_hash
    );
    let mut other = world.clone();
    other.opal.grants.pop();
    other.opal.grants.remove(0);
    assert_ne!(
        plan(&world, now()).revocation_hash,
        plan(&other, now()).revocation_hash
    );
}

#[test]
fn a_failed_hr_snapshot_changes_nothing_but_lockdowns() {
    let mut world = base_world();
    world.opal.grants = vec![
        grant(TargetKind::Group, "g-eng", "u1"),
        grant(TargetKind::Group, "g-legacy", "u3"),
    ];
    world.hr = HrState::Failed("connection refused".to_owned());
    let failed = plan(&world, now());
    assert!(failed.is_converged());
    assert!(
        failed
            .hr_gate
            .as_deref()
            .is_some_and(|r| r.contains("connection refused"))
    );

    world.lockdowns = vec![lockdown("ld", vec![email_subject("cy@example.com")])];
    assert_eq!(ops(&plan(&world, now())), ["revoke legacy u3"]);
}

#[test]
fn the_flood_gate_blocks_revocations_from_empty_or_shrunken_snapshots() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u4")];
    world.hr = HrState::Snapshot(Vec::new());
    let empty = plan(&world, now());
    assert!(empty.operations.is_empty());
    assert_eq!(
        withheld(&empty),
        [("Revoke eng u4".to_owned(), Withheld::HrGate)]
    );

    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u4")];
    world.last_good_employee_count = Some(10);
    let mut policy = tenancy();
    policy.safety = Some(SafetyRules {
        max_shrink_percent: Some(20),
        ..SafetyRules::default()
    });
    world.policies = vec![super::tests::policy(policy.clone())];
    let shrunk = plan(&world, now());
    assert_eq!(
        ops(&shrunk),
        ["grant eng u1", "grant eng u2"],
        "grants still flow"
    );
    assert!(
        shrunk
            .hr_gate
            .as_deref()
            .is_some_and(|r| r.contains("shrank from 10 to 3"))
    );

    policy.safety = Some(SafetyRules {
        min_employees: Some(4),
        ..SafetyRules::default()
    });
    world.policies = vec![super::tests::policy(policy)];
    world.last_good_employee_count = None;
    assert!(
        plan(&world, now())
            .hr_gate
            .as_deref()
            .is_some_and(|r| r.contains("minEmployees 4"))
    );
}

#[test]
fn an_incomplete_hr_snapshot_grants_but_holds_revocations() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u4")];
    let HrState::Snapshot(employees) = world.hr.clone() else {
        unreachable!("base world has a snapshot")
    };
    world.hr = HrState::Incomplete {
        employees,
        reason: "row 7: bad hire date".to_owned(),
    };
    let plan = plan(&world, now());
    assert_eq!(ops(&plan), ["grant eng u1", "grant eng u2"]);
    assert_eq!(
        withheld(&plan),
        [("Revoke eng u4".to_owned(), Withheld::HrGate)]
    );
    assert!(plan.hr_gate.as_deref().is_some_and(|r| r.contains("row 7")));
}

#[test]
fn replanning_one_employee_matches_a_full_plan() {
    let mut world = base_world();
    world.opal.grants = vec![grant(TargetKind::Group, "g-eng", "u1")];
    let mut planner = Planner::new(&world, now());
    let mut moved = employee("E1", "ada@example.com", "Sales");
    moved.title = Some("Account Executive".to_owned());
    planner.update_employee(moved.clone());
    planner.update_employee(employee("E4", "eve@example.com", "Engineering"));
    let incremental = planner.plan();

    if let HrState::Snapshot(employees) = &mut world.hr {
        employees[0] = moved;
        employees.push(employee("E4", "eve@example.com", "Engineering"));
    }
    let full = plan(&world, now());
    assert_eq!(incremental.operations, full.operations);
    assert_eq!(incremental.mappings, full.mappings);
    assert_eq!(
        ops(&full),
        ["grant eng u2", "grant eng u4", "revoke eng u1"]
    );
}

#[test]
fn a_safety_limit_that_cannot_be_read_trips_the_breaker() {
    let mut world = breaker_world(SafetyRules {
        invalid: vec!["maxRevocations -1 is negative".to_owned()],
        ..SafetyRules::default()
    });
    let held = plan(&world, now());
    assert!(held.breaker.tripped, "{:?}", held.breaker);
    assert!(held.breaker.reason.contains("maxRevocations -1"));
    assert!(held.operations.is_empty(), "every revocation is held");
    assert_eq!(held.withheld.len(), 10);
    assert!(
        held.policies[&ObjectKey::new(NS, "baseline")]
            .invalid_safety
            .is_some()
    );
    // A person can still approve exactly this plan.
    world.policies[0].approved_plan_hash = Some(held.revocation_hash.clone());
    assert_eq!(plan(&world, now()).operations.len(), 10);
}

#[test]
fn unreadable_parts_of_a_mapping_are_reported_and_the_rest_applies() {
    let mut world = base_world();
    world.mappings[0].rules.invalid =
        vec!["grants[1]: set exactly one of group or resource".into()];
    let plan = plan(&world, now());
    assert_eq!(ops(&plan), ["grant eng u1", "grant eng u2"]);
    let problems = &plan.mappings[&key("eng")].problems;
    assert_eq!(problems[0].reason(), "InvalidSpec");
}
