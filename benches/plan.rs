//! Planner at DESIGN §9 scale: 100k employees, 2k targets, 500k existing grants.
//!
//! `cargo bench --bench plan` prints criterion timings for a full plan and for an
//! incremental re-plan after one employee changes, then the process's peak RSS.

use chrono::{NaiveDate, TimeZone, Utc};
use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use opal_operator::engine::*;
use opal_operator::hris::{Employee, EmploymentStatus};

const EMPLOYEES: usize = 100_000;
const TARGETS: usize = 2_000;
const DEPARTMENTS: usize = 50;
const TITLES: usize = 20;
const MAPPINGS_PER_DEPARTMENT: usize = 4;

fn department(index: usize) -> String {
    format!("dept-{:02}", index % DEPARTMENTS)
}

fn title(index: usize) -> String {
    format!("title-{:02}", (index / DEPARTMENTS) % TITLES)
}

/// An org with some drift: each department has four mappings that split its titles between
/// them and grant three targets each, so every employee desires three grants.
fn world() -> World {
    let employees: Vec<Employee> = (0..EMPLOYEES)
        .map(|i| Employee {
            id: format!("E{i:06}"),
            email: format!("person{i}@example.com"),
            first_name: format!("Person{i}"),
            last_name: "Example".to_owned(),
            department: Some(department(i)),
            title: Some(title(i)),
            location: Some(format!("site-{}", i % 10)),
            cost_center: Some(format!("cc-{}", i % 100)),
            employment_type: Some("FullTime".to_owned()),
            manager_id: Some(format!("E{:06}", i / 10)),
            manager_email: None,
            status: EmploymentStatus::Active,
            start_date: NaiveDate::from_ymd_opt(2020, 1, 1),
            termination_date: None,
            custom: Default::default(),
        })
        .collect();
    let users = (0..EMPLOYEES)
        .map(|i| OpalUser {
            id: format!("u{i:06}"),
            email: format!("person{i}@example.com"),
        })
        .collect();
    let targets = (0..TARGETS)
        .map(|t| OpalTarget {
            kind: if t.is_multiple_of(10) {
                TargetKind::Resource
            } else {
                TargetKind::Group
            },
            id: format!("t{t:05}"),
            name: format!("target-{t:05}"),
            tags: vec![("managed".to_owned(), "yes".to_owned())],
            derived_membership: false,
        })
        .collect::<Vec<_>>();

    let mut mappings = Vec::new();
    for d in 0..DEPARTMENTS {
        for m in 0..MAPPINGS_PER_DEPARTMENT {
            let index = d * MAPPINGS_PER_DEPARTMENT + m;
            let grants = (0..3)
                .map(|g| {
                    let t = (index * 5 + g) % TARGETS;
                    let name = format!("target-{t:05}");
                    GrantRule {
                        target: if t.is_multiple_of(10) {
                            Target::resource_named(name)
                        } else {
                            Target::group_named(name)
                        },
                        level: LevelRef::Default,
                    }
                })
                .collect();
            let titles = (0..TITLES)
                .filter(|t| t % MAPPINGS_PER_DEPARTMENT == m)
                .map(|t| format!("title-{t:02}"))
                .collect::<Vec<String>>();
            mappings.push(MappingInput {
                key: ObjectKey::new("opal-system", format!("mapping-{index:03}")),
                rules: MappingRules {
                    selector: Ok(CompiledSelector::new(vec![
                        Requirement::equals("department", &department(d)),
                        Requirement::one_of("title", &titles),
                    ])),
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
            });
        }
    }
    let policy = PolicyInput {
        key: ObjectKey::new("opal-system", "baseline"),
        rules: PolicyRules {
            safety: Some(SafetyRules {
                max_revocation_percent: Some(5),
                ..SafetyRules::default()
            }),
            offboarding: None,
            tenancy: vec![TenancyGrant {
                namespaces: vec!["opal-system".to_owned()],
                target_tags: [("managed".to_owned(), "yes".to_owned())].into(),
                target_names: Vec::new(),
                target_ids: Vec::new(),
                allow_lockdowns: false,
            }],
        },
        approved_plan_hash: None,
    };

    let mut world = World {
        hr: HrState::Snapshot(employees),
        last_good_employee_count: Some(EMPLOYEES),
        opal: OpalState {
            users,
            targets,
            grants: Vec::new(),
        },
        mappings,
        policies: vec![policy],
        lockdowns: Vec::new(),
        operator_namespace: "opal-system".to_owned(),
    };
    // Every employee's one matching mapping grants three targets; 1% of those grants are
    // missing (drift to repair), and the rest of the 500k grants are time-bound JIT grants
    // plus, for 1% of users, a permanent grant nobody desires (drift to revoke).
    let mut grants: Vec<OpalGrant> = (0..EMPLOYEES)
        .flat_map(|i| {
            let mapping = (i % DEPARTMENTS) * MAPPINGS_PER_DEPARTMENT
                + ((i / DEPARTMENTS) % TITLES) % MAPPINGS_PER_DEPARTMENT;
            (0..3).map(move |g| (i, (mapping * 5 + g) % TARGETS))
        })
        .enumerate()
        .filter(|(n, _)| !n.is_multiple_of(100))
        .map(|(_, (user, target))| OpalGrant {
            kind: if target.is_multiple_of(10) {
                TargetKind::Resource
            } else {
                TargetKind::Group
            },
            target_id: format!("t{target:05}"),
            user_id: format!("u{user:06}"),
            access_level_remote_id: String::new(),
            access_level_name: String::new(),
            expires_at: None,
        })
        .collect();
    let mut filler = 0usize;
    while grants.len() < 500_000 {
        let user = filler % EMPLOYEES;
        let target = (filler * 7) % TARGETS;
        grants.push(OpalGrant {
            kind: if target.is_multiple_of(10) {
                TargetKind::Resource
            } else {
                TargetKind::Group
            },
            target_id: format!("t{target:05}"),
            user_id: format!("u{user:06}"),
            access_level_remote_id: if user.is_multiple_of(100) {
                String::new()
            } else {
                format!("jit-{filler}")
            },
            access_level_name: String::new(),
            expires_at: (!user.is_multiple_of(100)).then(|| now() + chrono::Duration::hours(8)),
        });
        filler += 1;
    }
    world.opal.grants = grants;
    world
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let world = world();
    let rss_world = peak_rss_mib();
    let baseline = plan(&world, now());
    println!(
        "world: {} employees, {} targets, {} grants, {} mappings; plan: {} operations, {} withheld",
        EMPLOYEES,
        world.opal.targets.len(),
        world.opal.grants.len(),
        world.mappings.len(),
        baseline.operations.len(),
        baseline.withheld.len()
    );
    let rss_first_plan = peak_rss_mib();

    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    criterion.bench_function("plan_100k_employees_2k_targets_500k_grants", |b| {
        b.iter(|| black_box(plan(black_box(&world), now())))
    });
    let mut planner = Planner::new(&world, now());
    let HrState::Snapshot(employees) = &world.hr else {
        unreachable!("the benchmark world has a snapshot")
    };
    let mut moved = employees[4242].clone();
    moved.department = Some(department(4243));
    criterion.bench_function("replan_after_one_employee_changes", |b| {
        b.iter_batched(
            || moved.clone(),
            |employee| {
                planner.update_employee(employee);
                black_box(planner.plan())
            },
            BatchSize::SmallInput,
        )
    });
    criterion.final_summary();
    if let (Some(world), Some(first), Some(end)) = (rss_world, rss_first_plan, peak_rss_mib()) {
        println!(
            "peak RSS: {world:.0} MiB with the world built, {first:.0} MiB after one plan \
             (the planner's share: {:.0} MiB), {end:.0} MiB at the end",
            first - world
        );
    }
}
