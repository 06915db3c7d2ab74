//! Property tests on random HR data, Opal state and specs (the invariants are listed in
//! ARCHITECTURE.md, "Tests, in tiers").

use chrono::Duration;
use proptest::prelude::*;

use super::tests::{NS, base_world, employee, mapping, now, tenancy, user};
use super::*;
use crate::EmploymentStatus;

const DEPARTMENTS: [&str; 3] = ["Engineering", "Sales", "Finance"];
const TARGETS: [(&str, &str, TargetKind, bool); 5] = [
    ("g1", "eng", TargetKind::Group, true),
    ("g2", "sales", TargetKind::Group, true),
    ("g3", "legacy", TargetKind::Group, false),
    ("r1", "prod-db", TargetKind::Resource, true),
    ("r2", "wiki", TargetKind::Resource, true),
];
const USERS: usize = 8;

/// Applies operations the way Opal would: grants add a permanent direct grant, revocations
/// remove the direct grant at that level. Returns how many changed anything.
fn apply(state: &mut OpalState, operations: &[Operation]) -> usize {
    let mut changed = 0;
    for op in operations {
        let position = state.grants.iter().position(|g| {
            g.kind == op.kind
                && g.target_id == op.target_id
                && g.user_id == op.user_id
                && g.access_level_remote_id == op.access_level_remote_id
        });
        match (op.action, position) {
            (ChangeAction::Grant, None) => {
                state.grants.push(OpalGrant {
                    kind: op.kind,
                    target_id: op.target_id.clone(),
                    user_id: op.user_id.clone(),
                    access_level_remote_id: op.access_level_remote_id.clone(),
                    access_level_name: String::new(),
                    expires_at: None,
                });
                changed += 1;
            }
            (ChangeAction::Revoke, Some(index)) => {
                state.grants.swap_remove(index);
                changed += 1;
            }
            _ => {}
        }
    }
    changed
}

#[derive(Debug, Clone)]
struct Scenario {
    world: World,
    protected: Vec<String>,
    locked: Vec<String>,
    max_revocations: Option<usize>,
}

fn target_ref(index: usize) -> GrantRule {
    let (_, name, kind, _) = TARGETS[index];
    GrantRule {
        target: Target {
            kind,
            by: TargetRef::Name(name.to_owned()),
        },
        level: LevelRef::Default,
    }
}

prop_compose! {
    fn scenario()(
        employees in prop::collection::vec((0..3usize, 0..4u8, any::<bool>()), 0..USERS),
        grants in prop::collection::vec((0..TARGETS.len(), 0..USERS, 0..2u8, any::<bool>()), 0..30),
        mappings in prop::collection::vec(
            (0..3usize, prop::collection::vec(0..TARGETS.len(), 1..4), any::<bool>(), any::<bool>()),
            0..4,
        ),
        protected in prop::collection::vec(0..USERS, 0..2),
        locked in prop::collection::vec(0..USERS, 0..2),
        max_revocations in prop::option::of(0..5usize),
        hr_failed in prop::bool::weighted(0.15),
        offboard_all in any::<bool>(),
    ) -> Scenario {
        let mut world = base_world();
        world.opal.users = (0..USERS).map(|i| user(&format!("u{i}"), &format!("user{i}@example.com"))).collect();
        world.opal.targets = TARGETS
            .iter()
            .map(|(id, name, kind, managed)| OpalTarget {
                kind: *kind,
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                tags: if *managed { vec![("managed".to_owned(), "yes".to_owned())] } else { Vec::new() },
                derived_membership: false,
            })
            .collect();
        world.opal.grants = grants
            .into_iter()
            .map(|(target, user, level, time_bound)| {
                let (id, _, kind, _) = TARGETS[target];
                OpalGrant {
                    kind,
                    target_id: id.to_owned(),
                    user_id: format!("u{user}"),
                    access_level_remote_id: if level == 0 { String::new() } else { "admin".to_owned() },
                    access_level_name: String::new(),
                    expires_at: time_bound.then(|| now() + Duration::hours(2)),
                }
            })
            .fold(Vec::<OpalGrant>::new(), |mut unique, grant| {
                // Opal keys a grant by (target, user, access level): no duplicates.
                if !unique.iter().any(|g| g.target_id == grant.target_id && g.user_id == grant.user_id && g.access_level_remote_id == grant.access_level_remote_id) {
                    unique.push(grant);
                }
                unique
            });
        let people = employees
            .iter()
            .enumerate()
            .map(|(index, (department, status, has_user))| {
                let email = if *has_user { format!("USER{index}@example.com") } else { format!("nobody{index}@example.com") };
                let mut person = employee(&format!("E{index}"), &email, DEPARTMENTS[*department]);
                person.status = match status {
                    0 => EmploymentStatus::Terminated,
                    1 => EmploymentStatus::OnLeave,
                    _ => EmploymentStatus::Active,
                };
                person
            })
            .collect();
        world.hr = if hr_failed { HrState::Failed("timeout".to_owned()) } else { HrState::Snapshot(people) };
        world.mappings = mappings
            .into_iter()
            .enumerate()
            .map(|(index, (department, targets, additive, observe))| {
                let mut input = mapping(&format!("m{index}"), DEPARTMENTS[department], targets.into_iter().map(target_ref).collect());
                if additive { input.rules.membership = Membership::Additive; }
                if observe { input.rules.enforcement = Enforcement::Observe; }
                input
            })
            .collect();
        let protected: Vec<String> = protected.iter().map(|i| format!("user{i}@example.com")).collect();
        let locked: Vec<String> = locked.iter().map(|i| format!("user{i}@example.com")).collect();
        let mut policy = tenancy();
        policy.safety = Some(SafetyRules {
            max_revocations,
            protected_users: protected.clone(),
            ..SafetyRules::default()
        });
        policy.offboarding = Some(Ok(OffboardingRules {
            scope: if offboard_all { OffboardingScope::All } else { OffboardingScope::Governed },
            when: OffboardingWhen::Immediately,
        }));
        world.policies = vec![super::tests::policy(policy)];
        world.lockdowns = locked
            .iter()
            .enumerate()
            .map(|(index, email)| LockdownInput {
                key: ObjectKey::new(NS, format!("ld{index}")),
                rules: LockdownRules {
                    subjects: vec![Subject::Email(email.clone())],
                    end: LockEnd::After(chrono::Duration::hours(1)),
                    ..LockdownRules::default()
                },
                activated_at: None,
                released: false,
                deleting: false,
            })
            .collect();
        Scenario { world, protected, locked, max_revocations }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn applying_a_plan_converges_and_a_second_apply_changes_nothing(scenario in scenario()) {
        let mut world = scenario.world;
        let first = plan(&world, now());
        apply(&mut world.opal, &first.operations);
        let second = plan(&world, now());
        prop_assert!(second.operations.is_empty(), "not converged: {:?}", second.operations);
        prop_assert_eq!(apply(&mut world.opal, &first.operations), 0, "second apply made changes");
    }

    #[test]
    fn a_locked_user_is_never_granted(scenario in scenario()) {
        let plan = plan(&scenario.world, now());
        for op in plan.operations.iter().chain(plan.withheld.iter().map(|(op, _)| op)) {
            if op.action == ChangeAction::Grant {
                prop_assert!(!scenario.locked.contains(&op.user_email), "granted locked {}", op.user_email);
            }
        }
    }

    #[test]
    fn a_protected_user_is_never_revoked_outside_a_lockdown(scenario in scenario()) {
        let plan = plan(&scenario.world, now());
        for op in &plan.operations {
            if op.action == ChangeAction::Revoke && !matches!(op.cause, Cause::Lockdown(_)) {
                prop_assert!(!scenario.protected.contains(&op.user_email), "revoked protected {}", op.user_email);
            }
        }
    }

    #[test]
    fn the_breaker_bounds_revocations(scenario in scenario()) {
        let plan = plan(&scenario.world, now());
        if let Some(limit) = scenario.max_revocations {
            let revocations = plan
                .operations
                .iter()
                .filter(|op| op.action == ChangeAction::Revoke && !matches!(op.cause, Cause::Lockdown(_)))
                .count();
            prop_assert!(revocations <= limit, "{revocations} revocations above {limit}");
        }
    }

    #[test]
    fn an_hr_failure_yields_no_revocations_but_lockdowns(scenario in scenario()) {
        let mut world = scenario.world;
        world.hr = HrState::Failed("503 from HR".to_owned());
        let plan = plan(&world, now());
        for op in &plan.operations {
            prop_assert!(
                op.action == ChangeAction::Revoke && matches!(op.cause, Cause::Lockdown(_)),
                "unexpected {:?} with HR down", op
            );
        }
    }

    #[test]
    fn incremental_replan_equals_full_plan(scenario in scenario(), department in 0..3usize, index in 0..USERS) {
        let mut world = scenario.world;
        let HrState::Snapshot(employees) = &world.hr else { return Ok(()); };
        let mut changed = employees.get(index).cloned().unwrap_or_else(|| employee("NEW", "user3@example.com", "Sales"));
        changed.department = Some(DEPARTMENTS[department].to_owned());
        let mut planner = Planner::new(&world, now());
        planner.update_employee(changed.clone());
        let incremental = planner.plan();
        if let HrState::Snapshot(employees) = &mut world.hr {
            match employees.iter_mut().find(|e| e.id == changed.id) {
                Some(slot) => *slot = changed,
                None => employees.push(changed),
            }
        }
        let full = plan(&world, now());
        prop_assert_eq!(incremental.operations, full.operations);
        prop_assert_eq!(incremental.mappings, full.mappings);
    }
}
