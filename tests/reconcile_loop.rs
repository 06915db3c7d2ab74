//! The whole reconcile loop over HTTP against the Opal simulator, with random and scripted
//! faults (429 with and without `Retry-After`, 5xx, held requests, dropped connections) and the
//! simulator's rate limiter on: observe → plan → execute until a plan has no operations.
//!
//! The expected end state is written out here from the mapping rules by hand — it does not come
//! from the engine — and is checked against the simulator's own state, audit events and call
//! counters: every desired grant present once, every unwanted permanent grant on an
//! authoritative target gone, exempt grants untouched, the locked user holding nothing, one
//! audit event per change, no revocation the first plan did not call for.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use opal_operator::crd::{
    AccessLevelRef, AccessPolicySpec, AccessTarget, AttributeRequirement, ChangeAction,
    EmployeeSelector, Enforcement, LockdownSpec, LockdownSubject, MembershipMode, RoleMappingSpec,
    SafetySpec, SelectorOperator, TargetKind, TargetRef, TenancyRule,
};
use opal_operator::engine::{
    Cause, HrState, LockdownInput, MappingInput, MappingProblem, ObjectKey, Operation, Plan,
    PolicyInput, Withheld, World, plan,
};
use opal_operator::hris::{Employee, EmploymentStatus};
use opal_operator::http::RetryConfig;
use opal_operator::opal::{ApiToken, Client, ClientConfig, RateLimitConfig};
use opal_operator::reconcile::{
    ExecutionReport, Executor, ObservationScope, OperationOutcome, observe_opal,
};
use opal_operator::sim::opal::{
    self as sim, AccessLevel, BucketConfig, DuplicateGrant, FaultConfig, FixtureExpiry,
    FixtureGroup, FixtureMembership, FixtureResourceGrant, FixtureTag, GrantTarget, InjectedFault,
    OrgFixture, RunningOpalSim, SimConfig, SimState, TimeoutOutcome,
};

const NS: &str = "opal-system";
const USERS: usize = 300;
const GROUPS: usize = 20;
const RESOURCES: usize = 6;
/// Users `0..EMPLOYED` have an HR record; the rest are Opal-only accounts.
const EMPLOYED: usize = 280;
/// HR records whose email has no Opal user (all in Engineering).
const NEW_HIRES: usize = 5;
const MAX_ROUNDS: usize = 10;
const LOCKED: usize = 10;
const PROTECTED: [usize; 2] = [7, 290];
/// Listed in the `staff-engineers` mapping's `exceptions`.
const EXCEPTED: usize = 281;
/// An employee whose start date is a month away.
const FUTURE_START: usize = 40;
const ACCESS_RULE_GROUP: &str = "access-rule-admins";
const DAY_MINUTES: i64 = 24 * 60;

const ADD_GROUP_USER: &str = "POST /groups/{group_id}/users/{user_id}";
const ADD_RESOURCE_USER: &str = "POST /resources/{resource_id}/users/{user_id}";
const REMOVE_GROUP_USER: &str = "DELETE /groups/{group_id}/users/{user_id}";
const REMOVE_RESOURCE_USER: &str = "DELETE /resources/{resource_id}/users/{user_id}";
const UPDATE_GROUP_USER: &str = "PUT /groups/{group_id}/users/{user_id}";
const UPDATE_RESOURCE_USER: &str = "PUT /resources/{resource_id}/users/{user_id}";

/// A direct grant as the simulator keys it: target, user id, access level remote id.
type GrantKey = (GrantTarget, String, String);

/// A group or resource by name, before the simulator has assigned ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    Group(String),
    Resource(String),
}

fn group(index: usize) -> Target {
    Target::Group(format!("group-{index:05}"))
}

fn role(index: usize) -> Target {
    Target::Resource(format!("role-{index:05}"))
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Group(name) | Target::Resource(name) => name,
        }
    }

    /// Spreads which desired grants are pre-seeded across targets.
    fn spread(&self) -> usize {
        self.name().bytes().map(usize::from).sum()
    }

    fn resolve(&self, state: &SimState) -> GrantTarget {
        match self {
            Target::Group(name) => GrantTarget::Group(
                state
                    .group_id(name)
                    .unwrap_or_else(|| panic!("group {name} exists")),
            ),
            Target::Resource(name) => GrantTarget::Resource(
                state
                    .resource_id(name)
                    .unwrap_or_else(|| panic!("resource {name} exists")),
            ),
        }
    }
}

/// The non-default access levels the mappings use.
struct Levels {
    role1_read: AccessLevel,
    role1_admin: AccessLevel,
    role3_read: AccessLevel,
}

impl Levels {
    fn of(fixture: &OrgFixture) -> Self {
        let level = |resource: usize, name: &str| {
            fixture.resources[resource]
                .settings
                .access_levels
                .iter()
                .find(|level| level.name == name)
                .cloned()
                .unwrap_or_else(|| panic!("role {resource} declares level {name}"))
        };
        Self {
            role1_read: level(1, "ReadOnly"),
            role1_admin: level(1, "Admin"),
            role3_read: level(3, "ReadOnly"),
        }
    }

    fn named(&self, remote_id: &str) -> Option<AccessLevel> {
        [&self.role1_read, &self.role1_admin, &self.role3_read]
            .into_iter()
            .find(|level| level.remote_id == remote_id)
            .cloned()
    }
}

fn department(index: usize) -> &'static str {
    ["Engineering", "Sales", "Support", "Finance"][index % 4]
}

fn location(index: usize) -> &'static str {
    ["Berlin", "London", "New York"][index % 3]
}

fn title(index: usize) -> &'static str {
    match department(index) {
        "Engineering" if index.is_multiple_of(8) => "Staff Engineer",
        "Engineering" => "Engineer",
        "Sales" => "Account Executive",
        // Close to the staff-engineers pattern without matching it.
        "Support" if index % 16 == 2 => "Staffing Partner",
        "Support" => "Support Specialist",
        _ => "Analyst",
    }
}

fn employee(id: String, email: String, index: usize, today: NaiveDate) -> Employee {
    let status = if index % 25 == 24 {
        EmploymentStatus::OnLeave
    } else {
        EmploymentStatus::Active
    };
    let start_date = if index == FUTURE_START {
        today.checked_add_days(Days::new(30))
    } else {
        NaiveDate::from_ymd_opt(2021, 3, 1)
    };
    Employee {
        id,
        email,
        first_name: format!("First{index}"),
        last_name: format!("Last{index}"),
        department: Some(department(index).to_owned()),
        title: Some(title(index).to_owned()),
        location: Some(location(index).to_owned()),
        cost_center: None,
        employment_type: Some("FullTime".to_owned()),
        manager_id: None,
        manager_email: None,
        status,
        start_date,
        termination_date: None,
        custom: BTreeMap::new(),
    }
}

/// HR records: one per employed Opal user (every tenth with an upper-cased email, since the
/// link is case-insensitive), plus new hires Opal does not know yet.
fn employees(fixture: &OrgFixture, today: NaiveDate) -> Vec<Employee> {
    let mut employees: Vec<Employee> = fixture.users[..EMPLOYED]
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let email = if index.is_multiple_of(10) {
                user.email.to_uppercase()
            } else {
                user.email.clone()
            };
            employee(format!("E{index:05}"), email, index, today)
        })
        .collect();
    employees.extend((0..NEW_HIRES).map(|hire| {
        let mut record = employee(
            format!("N{hire:05}"),
            format!("new.hire{hire}@example.com"),
            0,
            today,
        );
        record.title = Some("Engineer".to_owned());
        record
    }));
    employees
}

fn is_eligible(employee: &Employee, today: NaiveDate) -> bool {
    employee.status == EmploymentStatus::Active
        && employee.start_date.is_none_or(|start| start <= today)
}

/// What the enforced, permitted mappings below give one employee, written out by hand from
/// their selectors so the expectation does not come from the engine.
fn enforced_birthright(
    employee: &Employee,
    today: NaiveDate,
    levels: &Levels,
) -> Vec<(Target, String)> {
    if !is_eligible(employee, today) {
        return Vec::new();
    }
    let department = employee.department.as_deref().unwrap_or_default();
    let location = employee.location.as_deref().unwrap_or_default();
    let title = employee.title.as_deref().unwrap_or_default();
    let mut grants = Vec::new();
    match department {
        "Engineering" => {
            grants.push((group(0), String::new()));
            grants.push((group(1), String::new()));
            grants.push((role(1), levels.role1_read.remote_id.clone()));
        }
        "Sales" => {
            grants.push((group(2), String::new()));
            grants.push((role(0), String::new()));
        }
        "Support" if location == "Berlin" => grants.push((group(3), String::new())),
        "Finance" => grants.push((role(3), levels.role3_read.remote_id.clone())),
        _ => {}
    }
    if !department.is_empty() {
        grants.push((group(4), String::new()));
    }
    if title.to_lowercase().starts_with("staff ") {
        grants.push((group(5), String::new()));
    }
    grants
}

/// What the Observe-mode mapping would give one employee.
fn observed_birthright(employee: &Employee, today: NaiveDate) -> Vec<(Target, String)> {
    let sales_in_london = employee.department.as_deref() == Some("Sales")
        && employee.location.as_deref() == Some("London");
    if is_eligible(employee, today) && sales_in_london {
        vec![(group(7), String::new())]
    } else {
        Vec::new()
    }
}

/// Seeded grants by (target, user index, level remote id), with an expiry in minutes for
/// time-bound ones.
type Seeds = BTreeMap<(Target, usize, String), Option<i64>>;

/// Drift: most desired grants present, some missing, unwanted and exempt grants besides.
fn seeds(employees: &[Employee], today: NaiveDate, levels: &Levels) -> Seeds {
    let mut seeds = Seeds::new();
    let mut permanent = |target: Target, user: usize, level: &str| {
        seeds.insert((target, user, level.to_owned()), None);
    };
    for (index, record) in employees[..EMPLOYED].iter().enumerate() {
        if index == FUTURE_START {
            continue;
        }
        // Someone on leave still holds what an active colleague would.
        let as_if_active = Employee {
            status: EmploymentStatus::Active,
            ..record.clone()
        };
        let on_leave = record.status == EmploymentStatus::OnLeave;
        let would_hold = enforced_birthright(&as_if_active, today, levels)
            .into_iter()
            .chain(observed_birthright(&as_if_active, today));
        for (target, level) in would_hold {
            if on_leave || (index + target.spread()) % 5 != 0 {
                permanent(target, index, &level);
            }
        }
        match department(index) {
            // Sales people in an Engineering-only group (only a non-permitted namespace maps
            // Sales there).
            "Sales" if index % 20 == 1 => permanent(group(1), index, ""),
            // Engineers at a level nobody maps.
            "Engineering" if index % 12 == 4 => {
                permanent(role(1), index, &levels.role1_admin.remote_id);
            }
            _ => {}
        }
        if department(index) == "Engineering" && index % 16 == 4 {
            permanent(group(5), index, "");
        }
        // The legacy mapping's target is not permitted: these stay, nothing is added.
        if department(index) == "Engineering" && index.is_multiple_of(3) {
            permanent(group(15), index, "");
        }
        // An untagged resource nobody governs.
        if index % 10 == 3 {
            permanent(role(4), index, "");
        }
    }
    for user in 282..=289 {
        permanent(group(0), user, "");
    }
    for user in PROTECTED {
        permanent(group(0), user, "");
    }
    permanent(group(2), PROTECTED[1], "");
    permanent(group(5), EXCEPTED, "");
    permanent(group(2), EXCEPTED, "");
    permanent(group(15), 282, "");
    permanent(group(16), 5, "");
    // Unwanted in an Observe-mode authoritative group: reported, never revoked.
    permanent(group(7), 2, "");
    for user in [0, 283, 284] {
        permanent(Target::Group(ACCESS_RULE_GROUP.to_owned()), user, "");
    }
    // Direct grants next to indirect access through a group (group i grants role i mod 6).
    permanent(role(1), 284, "");
    permanent(role(0), 8, "");
    // The locked user's access: governed, ungoverned and time-bound alike.
    permanent(group(4), LOCKED, "");
    permanent(group(16), LOCKED, "");
    permanent(role(4), LOCKED, "");
    permanent(role(1), LOCKED, &levels.role1_read.remote_id);
    let mut time_bound = |target: Target, user: usize, level: &str, minutes: i64| {
        seeds.insert((target, user, level.to_owned()), Some(minutes));
    };
    time_bound(group(0), LOCKED, "", DAY_MINUTES);
    time_bound(group(0), 1, "", DAY_MINUTES);
    time_bound(role(1), 3, &levels.role1_admin.remote_id, 2 * DAY_MINUTES);
    // A time-bound grant at a desired level counts as held.
    time_bound(group(1), 12, "", DAY_MINUTES);
    seeds
}

/// The synthetic organisation with tags, an access-rule group and the seeded drift.
fn organisation(today: NaiveDate) -> (OrgFixture, Vec<Employee>, Levels) {
    let mut fixture = OrgFixture::synthetic(USERS, GROUPS, RESOURCES, 0, 42);
    for (index, fixture_group) in fixture.groups.iter().enumerate() {
        assert_eq!(group(index).name(), fixture_group.name, "synthetic naming");
    }
    for (index, resource) in fixture.resources.iter().enumerate() {
        assert_eq!(role(index).name(), resource.name, "synthetic naming");
    }
    fixture.tags = vec![
        FixtureTag {
            key: "managed".to_owned(),
            value: Some("yes".to_owned()),
            ..FixtureTag::default()
        },
        FixtureTag {
            key: "team".to_owned(),
            value: Some("platform".to_owned()),
            ..FixtureTag::default()
        },
    ];
    for fixture_group in &mut fixture.groups[..=13] {
        fixture_group.settings.tags.push("managed:yes".to_owned());
    }
    for index in [0, 16] {
        fixture.groups[index]
            .settings
            .tags
            .push("team:platform".to_owned());
    }
    for resource in &mut fixture.resources[..=3] {
        resource.settings.tags.push("managed:yes".to_owned());
    }
    let mut access_rule = FixtureGroup {
        name: ACCESS_RULE_GROUP.to_owned(),
        group_type: "OPAL_ACCESS_RULE".to_owned(),
        ..FixtureGroup::default()
    };
    access_rule.settings.tags.push("managed:yes".to_owned());
    fixture.groups.push(access_rule);

    let levels = Levels::of(&fixture);
    let employees = employees(&fixture, today);
    for ((target, user, level), expires_in_minutes) in seeds(&employees, today, &levels) {
        let user = fixture.users[user].email.clone();
        let access_level = Some(levels.named(&level).unwrap_or_default());
        let expiry = FixtureExpiry {
            expiration_date: None,
            expires_in_minutes,
        };
        match target {
            Target::Group(group) => fixture.memberships.push(FixtureMembership {
                group,
                user,
                access_level,
                expiry,
            }),
            Target::Resource(resource) => fixture.resource_grants.push(FixtureResourceGrant {
                resource,
                user,
                access_level,
                expiry,
            }),
        }
    }
    (fixture, employees, levels)
}

fn group_ref(name: &str) -> AccessTarget {
    AccessTarget {
        group: Some(TargetRef {
            name: Some(name.to_owned()),
            id: None,
        }),
        resource: None,
        access_level: None,
    }
}

fn resource_ref(name: &str, access_level: Option<AccessLevelRef>) -> AccessTarget {
    AccessTarget {
        group: None,
        resource: Some(TargetRef {
            name: Some(name.to_owned()),
            id: None,
        }),
        access_level,
    }
}

fn labels(pairs: &[(&str, &str)]) -> EmployeeSelector {
    EmployeeSelector {
        match_labels: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        match_expressions: Vec::new(),
    }
}

fn expressions(requirements: &[(&str, SelectorOperator, &[&str])]) -> EmployeeSelector {
    EmployeeSelector {
        match_labels: BTreeMap::new(),
        match_expressions: requirements
            .iter()
            .map(|(key, operator, values)| AttributeRequirement {
                key: (*key).to_owned(),
                operator: *operator,
                values: values.iter().map(|value| (*value).to_owned()).collect(),
            })
            .collect(),
    }
}

struct MappingDraft {
    namespace: &'static str,
    name: &'static str,
    selector: EmployeeSelector,
    grants: Vec<AccessTarget>,
    membership: MembershipMode,
    enforcement: Enforcement,
    exceptions: Vec<String>,
}

impl MappingDraft {
    fn new(name: &'static str, selector: EmployeeSelector, grants: Vec<AccessTarget>) -> Self {
        Self {
            namespace: NS,
            name,
            selector,
            grants,
            membership: MembershipMode::Authoritative,
            enforcement: Enforcement::Enforce,
            exceptions: Vec::new(),
        }
    }

    fn additive(mut self) -> Self {
        self.membership = MembershipMode::Additive;
        self
    }

    fn build(self) -> MappingInput {
        MappingInput {
            key: ObjectKey::new(self.namespace, self.name),
            rules: RoleMappingSpec {
                selector: self.selector,
                pre_start_days: None,
                grants: self.grants,
                membership: self.membership,
                enforcement: self.enforcement,
                exceptions: self.exceptions,
                revoke_on_delete: false,
            }
            .rules(),
            paused: false,
            deleting: false,
        }
    }
}

/// The custom resources; `enforced_birthright` and `observed_birthright` mirror them.
struct Resources {
    mappings: Vec<MappingInput>,
    policies: Vec<PolicyInput>,
    lockdowns: Vec<LockdownInput>,
}

fn resources(fixture: &OrgFixture, levels: &Levels, activated_at: DateTime<Utc>) -> Resources {
    let email = |user: usize| fixture.users[user].email.clone();
    let name = |target: Target| target.name().to_owned();
    let engineering = MappingDraft::new(
        "engineering",
        labels(&[("department", "Engineering")]),
        vec![
            group_ref(&name(group(0))),
            group_ref(&name(group(1))),
            resource_ref(
                &name(role(1)),
                Some(AccessLevelRef {
                    remote_id: Some(levels.role1_read.remote_id.clone()),
                    name: None,
                }),
            ),
            // Opal derives this group's membership: reported, never changed.
            group_ref(ACCESS_RULE_GROUP),
        ],
    );
    let sales = MappingDraft::new(
        "sales",
        labels(&[("department", "sales")]),
        vec![
            group_ref(&name(group(2))),
            resource_ref(&name(role(0)), None),
        ],
    );
    let support_berlin = MappingDraft::new(
        "support-berlin",
        expressions(&[
            ("department", SelectorOperator::In, &["Support"]),
            ("location", SelectorOperator::In, &["Berlin", "Paris"]),
        ]),
        vec![group_ref(&name(group(3)))],
    );
    let everyone = MappingDraft::new(
        "everyone",
        expressions(&[("department", SelectorOperator::Exists, &[])]),
        vec![group_ref(&name(group(4)))],
    )
    .additive();
    let finance = MappingDraft::new(
        "finance-readonly",
        labels(&[("department", "Finance")]),
        vec![resource_ref(
            &name(role(3)),
            Some(AccessLevelRef {
                remote_id: None,
                name: Some(levels.role3_read.name.clone()),
            }),
        )],
    )
    .additive();
    let mut staff = MappingDraft::new(
        "staff-engineers",
        expressions(&[
            ("title", SelectorOperator::Matches, &["staff .*"]),
            ("department", SelectorOperator::NotIn, &["Sales", "Support"]),
        ]),
        vec![group_ref(&name(group(5)))],
    );
    staff.exceptions = vec![email(EXCEPTED).to_uppercase()];
    let mut observe = MappingDraft::new(
        "sales-london-observe",
        labels(&[("department", "Sales"), ("location", "London")]),
        vec![group_ref(&name(group(7)))],
    );
    observe.enforcement = Enforcement::Observe;
    // Untagged target: not permitted, so inert.
    let legacy = MappingDraft::new(
        "legacy-tools",
        labels(&[("department", "Engineering")]),
        vec![group_ref(&name(group(15)))],
    );
    // A namespace no tenancy rule names: inert too.
    let mut rogue = MappingDraft::new(
        "rogue",
        labels(&[("department", "Sales")]),
        vec![group_ref(&name(group(1)))],
    );
    rogue.namespace = "team-a";

    let policy = PolicyInput {
        key: ObjectKey::new(NS, "baseline"),
        rules: AccessPolicySpec {
            safety: Some(SafetySpec {
                max_revocations: Some(1_000),
                max_revocation_percent: None,
                protected_users: vec![email(PROTECTED[0]).to_uppercase(), email(PROTECTED[1])],
                hris_flood_gate: None,
            }),
            offboarding: None,
            requests: Vec::new(),
            resource_config: Vec::new(),
            incident_response: None,
            tenancy: vec![TenancyRule {
                namespaces: vec![NS.to_owned()],
                target_tags: [("managed".to_owned(), "yes".to_owned())].into(),
                target_names: Vec::new(),
                target_ids: Vec::new(),
                allow_lockdowns: false,
            }],
        }
        .rules(),
        approved_plan_hash: None,
    };
    let lockdown = LockdownInput {
        key: ObjectKey::new(NS, "incident-42"),
        rules: LockdownSpec {
            subjects: vec![LockdownSubject {
                email: Some(email(LOCKED)),
                ..LockdownSubject::default()
            }],
            scope: None,
            break_glass: Vec::new(),
            reason: "credentials seen in a public paste".to_owned(),
            incident: Some("INC-42".to_owned()),
            expires_at: Some(activated_at + TimeDelta::hours(4)),
            duration: None,
            restore_on_release: true,
            notify: Vec::new(),
        }
        .rules(),
        activated_at: Some(activated_at),
        released: false,
        deleting: false,
    };
    Resources {
        mappings: [
            engineering,
            sales,
            support_berlin,
            everyone,
            finance,
            staff,
            observe,
            legacy,
            rogue,
        ]
        .into_iter()
        .map(MappingDraft::build)
        .collect(),
        policies: vec![policy],
        lockdowns: vec![lockdown],
    }
}

/// The end state computed from the fixture and the hand-written rules.
struct Expected {
    /// Grants the enforced mappings want (the locked user excluded).
    desired: BTreeSet<GrantKey>,
    /// Grants in Opal before the loop, with their expiry.
    initial: BTreeMap<GrantKey, Option<DateTime<Utc>>>,
    /// Grants in Opal after convergence, with their expiry.
    end: BTreeMap<GrantKey, Option<DateTime<Utc>>>,
    /// What the Observe-mode mapping keeps reporting: grants to add and grants to revoke.
    observed_grants: BTreeSet<GrantKey>,
    observed_revocations: BTreeSet<GrantKey>,
    locked_user: String,
}

impl Expected {
    fn missing(&self) -> BTreeSet<GrantKey> {
        self.desired
            .iter()
            .filter(|key| !self.initial.contains_key(*key))
            .cloned()
            .collect()
    }

    fn revoked(&self) -> BTreeSet<GrantKey> {
        self.initial
            .keys()
            .filter(|key| !self.end.contains_key(*key))
            .cloned()
            .collect()
    }
}

fn expected(
    state: &SimState,
    fixture: &OrgFixture,
    employees: &[Employee],
    levels: &Levels,
    today: NaiveDate,
) -> Expected {
    let user_id = |index: usize| {
        state
            .user_by_email(&fixture.users[index].email)
            .expect("user exists")
            .user_id
    };
    let key = |(target, level): (Target, String), user: usize| {
        (target.resolve(state), user_id(user), level)
    };
    let mut desired = BTreeSet::new();
    let mut observed = BTreeSet::new();
    for (index, record) in employees[..EMPLOYED].iter().enumerate() {
        assert!(
            record
                .email
                .eq_ignore_ascii_case(&fixture.users[index].email),
            "employee {index} is user {index}"
        );
        if index == LOCKED {
            continue;
        }
        desired.extend(
            enforced_birthright(record, today, levels)
                .into_iter()
                .map(|grant| key(grant, index)),
        );
        observed.extend(
            observed_birthright(record, today)
                .into_iter()
                .map(|grant| key(grant, index)),
        );
    }
    let authoritative: BTreeSet<GrantTarget> = [group(0), group(1), group(2), group(3), group(5)]
        .into_iter()
        .chain([role(0), role(1)])
        .map(|target| target.resolve(state))
        .collect();
    let observe_target = group(7).resolve(state);
    let staff_target = group(5).resolve(state);
    let protected: BTreeSet<String> = PROTECTED.into_iter().map(user_id).collect();
    let excepted = user_id(EXCEPTED);
    let locked_user = user_id(LOCKED);

    let initial: BTreeMap<GrantKey, Option<DateTime<Utc>>> = state
        .all_grants()
        .into_iter()
        .map(|grant| {
            (
                (grant.target, grant.user_id, grant.access_level.remote_id),
                grant.expiration_date,
            )
        })
        .collect();
    assert!(
        initial.len() > 500,
        "the fixture seeds hundreds of grants, got {}",
        initial.len()
    );
    let mut end: BTreeMap<GrantKey, Option<DateTime<Utc>>> = initial
        .iter()
        .filter(|((target, user, level), expiry)| {
            let key = (target.clone(), user.clone(), level.clone());
            let exempt = expiry.is_some()
                || protected.contains(user)
                || (*target == staff_target && *user == excepted);
            let unwanted = authoritative.contains(target) && !exempt && !desired.contains(&key);
            *user != locked_user && !unwanted
        })
        .map(|(key, expiry)| (key.clone(), *expiry))
        .collect();
    for key in &desired {
        end.entry(key.clone()).or_insert(None);
    }
    let observed_grants = observed
        .iter()
        .filter(|key| !initial.contains_key(*key))
        .cloned()
        .collect();
    let observed_revocations = initial
        .iter()
        .filter(|((target, user, _), expiry)| {
            *target == observe_target && expiry.is_none() && !protected.contains(user)
        })
        .map(|(key, _)| key.clone())
        .filter(|key| !observed.contains(key) && key.1 != locked_user)
        .collect();
    Expected {
        desired,
        initial,
        end,
        observed_grants,
        observed_revocations,
        locked_user,
    }
}

/// Random faults: 12% 429, 6% 5xx, 1% held then 504, 1% dropped connections.
fn faults(retry_after: Option<Duration>) -> FaultConfig {
    FaultConfig {
        too_many_requests_rate: 0.12,
        retry_after,
        server_error_rate: 0.06,
        server_error_statuses: vec![500, 502, 503],
        timeout_rate: 0.01,
        timeout_hold: Duration::from_millis(150),
        timeout_outcome: TimeoutOutcome::GatewayTimeout,
        connection_reset_rate: 0.01,
        ..FaultConfig::none()
    }
}

fn sim_config(duplicate_grant: DuplicateGrant) -> SimConfig {
    SimConfig {
        page_cap: Some(64),
        duplicate_grant,
        faults: faults(None),
        // The write bucket holds fewer requests than the executor sends at once (8), so the
        // simulator's limiter answers 429 too, on top of the injected ones.
        rate_limit: sim::RateLimitConfig {
            enabled: true,
            overall: BucketConfig {
                per_second: 600.0,
                burst: 30.0,
            },
            writes: BucketConfig {
                per_second: 250.0,
                burst: 4.0,
            },
            retry_after_header: false,
        },
        seed: 0x10_0B,
        ..SimConfig::default()
    }
}

fn client(sim: &RunningOpalSim, max_attempts: u32) -> Client {
    let config = ClientConfig {
        base_url: sim.base_url(),
        max_concurrency: 8,
        request_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        page_size: 100,
        max_pages: 1_000,
        rate_limit: RateLimitConfig {
            requests_per_second: 1_000,
            writes_per_second: 200,
            burst: 16,
        },
        retry: RetryConfig {
            max_attempts,
            initial_backoff_ms: 5,
            max_backoff_ms: 200,
            max_total_delay_ms: 15_000,
        },
    };
    Client::new(config, ApiToken::new(sim.token()).expect("token")).expect("client")
}

fn grant_key(op: &Operation) -> GrantKey {
    let target = match op.kind {
        TargetKind::Group => GrantTarget::Group(op.target_id.clone()),
        TargetKind::Resource => GrantTarget::Resource(op.target_id.clone()),
    };
    (
        target,
        op.user_id.clone(),
        op.access_level_remote_id.clone(),
    )
}

fn keys_of(ops: &[Operation], action: ChangeAction) -> Vec<GrantKey> {
    let mut keys: Vec<GrantKey> = ops
        .iter()
        .filter(|op| op.action == action)
        .map(grant_key)
        .collect();
    keys.sort();
    keys
}

/// Compares two sorted lists as multisets and names only the differences.
#[track_caller]
fn assert_same<T: Ord + Clone + std::fmt::Debug>(actual: &[T], expected: &[T], what: &str) {
    if actual == expected {
        return;
    }
    let mut unexpected = actual.to_vec();
    let mut missing = Vec::new();
    for item in expected {
        match unexpected.iter().position(|candidate| candidate == item) {
            Some(index) => {
                unexpected.remove(index);
            }
            None => missing.push(item.clone()),
        }
    }
    panic!(
        "{what}: {} unexpected {unexpected:?}; {} missing {missing:?}",
        unexpected.len(),
        missing.len()
    );
}

fn sorted(keys: &BTreeSet<GrantKey>) -> Vec<GrantKey> {
    keys.iter().cloned().collect()
}

/// Grant changes recorded in the audit log since `baseline`, as sorted lists (so a duplicate
/// shows up twice), plus any other event type.
struct GrantEvents {
    added: Vec<GrantKey>,
    removed: Vec<GrantKey>,
    other: Vec<String>,
}

fn grant_events(state: &SimState, baseline: &HashSet<String>) -> GrantEvents {
    let mut events = GrantEvents {
        added: Vec::new(),
        removed: Vec::new(),
        other: Vec::new(),
    };
    for event in state.events() {
        if baseline.contains(&event.event_id) {
            continue;
        }
        let list = match event.event_type.as_str() {
            "GROUP_USER_ADDED" | "RESOURCE_USER_ADDED" => &mut events.added,
            "GROUP_USER_REMOVED" | "RESOURCE_USER_REMOVED" => &mut events.removed,
            other => {
                events.other.push(other.to_owned());
                continue;
            }
        };
        assert_eq!(event.sub_events.len(), 1, "one grant per event: {event:?}");
        let fields = &event.sub_events[0];
        let text = |field: &str| fields.get(field).and_then(|value| value.as_str());
        let target = match (text("group_id"), text("resource_id")) {
            (Some(id), _) => GrantTarget::Group(id.to_owned()),
            (None, Some(id)) => GrantTarget::Resource(id.to_owned()),
            (None, None) => panic!("grant event without a target: {event:?}"),
        };
        list.push((
            target,
            text("user_id").expect("user_id").to_owned(),
            text("access_level_remote_id")
                .expect("access_level_remote_id")
                .to_owned(),
        ));
    }
    events.added.sort();
    events.removed.sort();
    events
}

fn event_ids(state: &SimState) -> HashSet<String> {
    state
        .events()
        .into_iter()
        .map(|event| event.event_id)
        .collect()
}

/// The simulator's grants keyed as the simulator keys them; panics on a repeated key.
fn current_grants(state: &SimState) -> BTreeMap<GrantKey, Option<DateTime<Utc>>> {
    let mut grants = BTreeMap::new();
    for grant in state.all_grants() {
        let key = (grant.target, grant.user_id, grant.access_level.remote_id);
        let repeated = grants.insert(key.clone(), grant.expiration_date);
        assert!(repeated.is_none(), "grant listed twice: {key:?}");
    }
    grants
}

/// Changes Opal behind the executor's back between planning and applying: one planned grant
/// appears and one planned revocation disappears, so the executor meets a duplicate add and a
/// missing grant.
struct OutOfBand {
    granted: Operation,
    revoked: Operation,
}

impl OutOfBand {
    fn apply(plan: &Plan, state: &SimState) -> Self {
        let granted = plan
            .operations
            .iter()
            .find(|op| op.action == ChangeAction::Grant && op.kind == TargetKind::Group)
            .expect("the first plan grants group memberships")
            .clone();
        let revoked = plan
            .operations
            .iter()
            .find(|op| {
                op.action == ChangeAction::Revoke
                    && op.cause == Cause::Unwanted
                    && op.kind == TargetKind::Group
            })
            .expect("the first plan revokes unwanted group memberships")
            .clone();
        state
            .add_group_member(
                &granted.target_id,
                &granted.user_id,
                AccessLevel::new("", granted.access_level_remote_id.clone()),
                None,
            )
            .expect("out-of-band grant");
        let removed = match revoked.kind {
            TargetKind::Group => state.remove_group_member(
                &revoked.target_id,
                &revoked.user_id,
                &revoked.access_level_remote_id,
            ),
            TargetKind::Resource => state.remove_resource_user(
                &revoked.target_id,
                &revoked.user_id,
                &revoked.access_level_remote_id,
            ),
        };
        assert!(removed, "out-of-band revocation found the grant");
        Self { granted, revoked }
    }
}

/// Everything one scenario needs to run the loop.
struct Harness {
    sim: RunningOpalSim,
    /// Retries patiently: observations and the re-apply after convergence.
    client: Client,
    /// The loop's executor gives up after two attempts, so operations fail under the faults and
    /// later rounds have to finish the job.
    loop_executor: Executor,
    patient_executor: Executor,
    employees: Vec<Employee>,
    resources: Resources,
    scope: ObservationScope,
}

impl Harness {
    async fn start(duplicate_grant: DuplicateGrant) -> (Self, Expected) {
        let started = Utc::now();
        let today = started.date_naive();
        let (fixture, employees, levels) = organisation(today);
        let resources = resources(&fixture, &levels, started);
        let sim = RunningOpalSim::start(fixture.clone(), sim_config(duplicate_grant))
            .await
            .expect("simulator starts");
        let expected = expected(&sim.state(), &fixture, &employees, &levels, today);
        let patient = client(&sim, 10);
        let loop_executor = Executor::new(client(&sim, 2), 8);
        let patient_executor = Executor::new(patient.clone(), 8);
        let scope = ObservationScope::new(
            &resources.mappings,
            &resources.lockdowns,
            &HrState::Snapshot(employees.clone()),
            Vec::<String>::new(),
        );
        let harness = Self {
            sim,
            client: patient,
            loop_executor,
            patient_executor,
            employees,
            resources,
            scope,
        };
        (harness, expected)
    }

    /// Observes Opal, with random 429s carrying `retry_after`, and plans.
    async fn observe_and_plan(&self, retry_after: Option<Duration>) -> Result<Plan, String> {
        self.sim.set_faults(faults(retry_after));
        let opal = observe_opal(&self.client, &self.scope, 4)
            .await
            .map_err(|error| error.to_string())?;
        let world = World {
            hr: HrState::Snapshot(self.employees.clone()),
            last_good_employee_count: None,
            opal,
            mappings: self.resources.mappings.clone(),
            policies: self.resources.policies.clone(),
            lockdowns: self.resources.lockdowns.clone(),
            operator_namespace: NS.to_owned(),
        };
        Ok(plan(&world, Utc::now()))
    }

    /// Applies operations, with random 429s that carry no `Retry-After`.
    async fn apply(&self, executor: &Executor, operations: &[Operation]) -> ExecutionReport {
        self.sim.set_faults(faults(None));
        executor.apply(operations).await
    }
}

/// What the loop did.
struct LoopRun {
    first_plan: Plan,
    final_plan: Plan,
    plans: Vec<Plan>,
    reports: Vec<ExecutionReport>,
    observation_failures: Vec<String>,
    out_of_band: OutOfBand,
}

/// observe → plan → execute until a plan has no operations, at most `MAX_ROUNDS` times.
async fn reconcile_until_converged(harness: &Harness) -> LoopRun {
    let state = harness.sim.state();
    let mut plans: Vec<Plan> = Vec::new();
    let mut reports = Vec::new();
    let mut observation_failures = Vec::new();
    let mut out_of_band = None;
    for round in 0..MAX_ROUNDS {
        // Every honoured `Retry-After` costs a second, so only the first observation gets them.
        let retry_after = (round == 0).then_some(Duration::from_secs(1));
        let plan = match harness.observe_and_plan(retry_after).await {
            Ok(plan) => plan,
            Err(error) => {
                observation_failures.push(error);
                continue;
            }
        };
        if plan.operations.is_empty() {
            let out_of_band = out_of_band.expect("the first plan had operations");
            return LoopRun {
                first_plan: plans.first().cloned().expect("a first plan"),
                final_plan: plan,
                plans,
                reports,
                observation_failures,
                out_of_band,
            };
        }
        if plans.is_empty() {
            out_of_band = Some(OutOfBand::apply(&plan, &state));
            // Scripted faults of every kind on the first grants, before the random ones.
            harness.sim.inject_faults(
                Some(ADD_GROUP_USER),
                [
                    InjectedFault::TooManyRequests {
                        retry_after: Some(Duration::from_secs(1)),
                    },
                    InjectedFault::Timeout(Duration::from_millis(100), TimeoutOutcome::Drop),
                    InjectedFault::Timeout(
                        Duration::from_millis(100),
                        TimeoutOutcome::GatewayTimeout,
                    ),
                    InjectedFault::ConnectionReset,
                    InjectedFault::ServerError(503),
                ],
            );
            // Both attempts of every resource revocation fail: the next round must finish them.
            let resource_revocations = plan
                .operations
                .iter()
                .filter(|op| op.action == ChangeAction::Revoke && op.kind == TargetKind::Resource)
                .count();
            harness.sim.inject_faults(
                Some(REMOVE_RESOURCE_USER),
                vec![InjectedFault::ServerError(502); 2 * resource_revocations],
            );
        }
        reports.push(
            harness
                .apply(&harness.loop_executor, &plan.operations)
                .await,
        );
        // Limiter 429s can leave scripted faults unused; later rounds get random faults only.
        harness.sim.clear_injected_faults();
        plans.push(plan);
    }
    panic!(
        "no convergence within {MAX_ROUNDS} rounds; observation failures: {observation_failures:?}; \
         operations per plan: {:?}; failures in the last apply: {:?}",
        plans.iter().map(|p| p.operations.len()).collect::<Vec<_>>(),
        reports
            .last()
            .map(|r| r.failures().map(|(_, m)| m.to_owned()).collect::<Vec<_>>())
    );
}

async fn converges_and_reapplying_changes_nothing(duplicate_grant: DuplicateGrant) {
    let (harness, expected) = Harness::start(duplicate_grant).await;
    let state = harness.sim.state();
    let baseline = event_ids(&state);
    let run = reconcile_until_converged(&harness).await;
    let counters = harness.sim.counters();

    // The first plan is exactly the drift written out by hand.
    let first = &run.first_plan;
    assert_same(
        &keys_of(&first.operations, ChangeAction::Grant),
        &sorted(&expected.missing()),
        "first plan's grants (the missing desired grants, each once)",
    );
    assert_same(
        &keys_of(&first.operations, ChangeAction::Revoke),
        &sorted(&expected.revoked()),
        "first plan's revocations (unwanted permanent grants and the locked user's)",
    );
    let locked_grants: Vec<GrantKey> = expected
        .initial
        .keys()
        .filter(|(_, user, _)| *user == expected.locked_user)
        .cloned()
        .collect();
    let mut lockdown_revocations: Vec<GrantKey> = first
        .operations
        .iter()
        .filter(|op| matches!(op.cause, Cause::Lockdown(_)))
        .map(grant_key)
        .collect();
    lockdown_revocations.sort();
    assert_same(
        &lockdown_revocations,
        &locked_grants,
        "lockdown revocations",
    );
    assert!(
        first.operations[..locked_grants.len()]
            .iter()
            .all(|op| matches!(op.cause, Cause::Lockdown(_))),
        "lockdown revocations come first"
    );
    assert!(!first.breaker.tripped, "{:?}", first.breaker);
    let first_revocations: BTreeSet<GrantKey> = keys_of(&first.operations, ChangeAction::Revoke)
        .into_iter()
        .collect();
    // Each later plan is exactly what the previous apply left undone — every fault strikes
    // before the simulator acts, so a failed operation changed nothing — and nothing else: in
    // particular no revocation the first plan did not call for.
    let granted_aside = grant_key(&run.out_of_band.granted);
    let revoked_aside = grant_key(&run.out_of_band.revoked);
    let made_aside = [
        (ChangeAction::Grant, granted_aside.clone()),
        (ChangeAction::Revoke, revoked_aside.clone()),
    ];
    for (index, report) in run.reports.iter().enumerate() {
        let mut left_undone: Vec<(ChangeAction, GrantKey)> = report
            .failures()
            .map(|(op, _)| (op.action, grant_key(op)))
            .filter(|change| !made_aside.contains(change))
            .collect();
        left_undone.sort();
        let next = run.plans.get(index + 1).unwrap_or(&run.final_plan);
        let mut planned: Vec<(ChangeAction, GrantKey)> = next
            .operations
            .iter()
            .map(|op| (op.action, grant_key(op)))
            .collect();
        planned.sort();
        assert_same(
            &planned,
            &left_undone,
            &format!("plan after apply {} against what it left undone", index + 1),
        );
    }
    let first_report = &run.reports[0];
    let resource_revocations: Vec<&Operation> = first
        .operations
        .iter()
        .filter(|op| op.action == ChangeAction::Revoke && op.kind == TargetKind::Resource)
        .collect();
    assert!(!resource_revocations.is_empty());
    for op in resource_revocations {
        assert!(
            matches!(
                first_report.outcomes.iter().find(|(o, _)| o == op),
                Some((_, OperationOutcome::Failed { .. }))
            ),
            "scripted 502s fail every resource revocation of the first apply: {op:?}"
        );
    }

    // Converged to exactly the expected state; exempt grants kept with their expiry.
    let end = current_grants(&state);
    assert_eq!(
        end.len(),
        expected.end.len(),
        "grant count after convergence"
    );
    assert_same(
        &end.clone().into_iter().collect::<Vec<_>>(),
        &expected.end.clone().into_iter().collect::<Vec<_>>(),
        "end state (grant, expiry)",
    );
    assert!(expected.desired.iter().all(|key| end.contains_key(key)));
    assert!(
        state.user_grants(&expected.locked_user).is_empty(),
        "the locked user holds nothing"
    );
    let mut withheld: Vec<(ChangeAction, GrantKey)> = run
        .final_plan
        .withheld
        .iter()
        .map(|(op, why)| {
            assert_eq!(*why, Withheld::Observe, "{op:?}");
            (op.action, grant_key(op))
        })
        .collect();
    let expected_withheld: Vec<(ChangeAction, GrantKey)> = expected
        .observed_grants
        .iter()
        .map(|key| (ChangeAction::Grant, key.clone()))
        .chain(
            expected
                .observed_revocations
                .iter()
                .map(|key| (ChangeAction::Revoke, key.clone())),
        )
        .collect();
    withheld.sort();
    assert!(!expected_withheld.is_empty());
    assert_same(
        &withheld,
        &expected_withheld,
        "withheld by Observe mode, never acted on",
    );

    // One audit event per change: nothing doubled, nothing the plan did not call for.
    let events = grant_events(&state, &baseline);
    assert_eq!(events.other, Vec::<String>::new(), "only grant changes");
    let mut expected_added = sorted(&expected.missing());
    expected_added.retain(|key| *key != granted_aside);
    assert_same(&events.added, &expected_added, "*_USER_ADDED events");
    let mut expected_removed = sorted(&expected.revoked());
    expected_removed.retain(|key| *key != revoked_aside);
    assert_same(&events.removed, &expected_removed, "*_USER_REMOVED events");
    assert!(
        events
            .removed
            .iter()
            .all(|key| first_revocations.contains(key))
    );

    // Every operation that got an answer made its own change (Applied), except the two whose
    // change was made aside: they met a duplicate add and an absent grant.
    let duplicate_add = match duplicate_grant {
        DuplicateGrant::ReturnExisting => OperationOutcome::Applied,
        DuplicateGrant::Conflict => OperationOutcome::AlreadyDone,
    };
    let grant_aside = (ChangeAction::Grant, granted_aside);
    let revocation_aside = (ChangeAction::Revoke, revoked_aside);
    let mut answered_aside = (0u64, 0u64);
    for (op, outcome) in run.reports.iter().flat_map(|report| &report.outcomes) {
        if matches!(outcome, OperationOutcome::Failed { .. }) {
            continue;
        }
        let change = (op.action, grant_key(op));
        let expected_outcome = if change == grant_aside {
            answered_aside.0 += 1;
            &duplicate_add
        } else if change == revocation_aside {
            answered_aside.1 += 1;
            &OperationOutcome::AlreadyDone
        } else {
            &OperationOutcome::Applied
        };
        assert_eq!(outcome, expected_outcome, "{op:?}");
    }
    let (duplicate_adds, absent_removals) = answered_aside;

    // The calls behind it, from the simulator's counters.
    let answered = |route: &str, status: u16| counters.calls_with_status(route, status);
    let adds_ok = answered(ADD_GROUP_USER, 200) + answered(ADD_RESOURCE_USER, 200);
    let adds_conflict = answered(ADD_GROUP_USER, 409) + answered(ADD_RESOURCE_USER, 409);
    let (duplicates_ok, duplicates_conflict) = match duplicate_grant {
        DuplicateGrant::ReturnExisting => (duplicate_adds, 0),
        DuplicateGrant::Conflict => (0, duplicate_adds),
    };
    assert_eq!(
        adds_ok,
        events.added.len() as u64 + duplicates_ok,
        "successful adds: one per created grant, plus duplicates the simulator answers with 200"
    );
    assert_eq!(adds_conflict, duplicates_conflict, "409 answers");
    assert_eq!(
        answered(REMOVE_GROUP_USER, 200) + answered(REMOVE_RESOURCE_USER, 200),
        events.removed.len() as u64,
        "successful removals"
    );
    assert_eq!(
        answered(REMOVE_GROUP_USER, 404) + answered(REMOVE_RESOURCE_USER, 404),
        absent_removals,
        "only the revocation made aside found its grant gone"
    );
    assert_eq!(
        counters.calls(UPDATE_GROUP_USER) + counters.calls(UPDATE_RESOURCE_USER),
        0
    );

    // Faults really happened, at the rate the issue asks for.
    let server_errors: u64 = counters
        .by_status
        .iter()
        .filter(|(status, _)| (500..600).contains(*status))
        .map(|(_, count)| count)
        .sum();
    let failed = counters.status(429) + server_errors;
    assert!(
        failed * 10 >= counters.total,
        "429/5xx answers {failed} of {} requests",
        counters.total
    );
    assert!(counters.too_many_requests > counters.rate_limited);
    assert!(
        counters.rate_limited > 0,
        "the simulator's limiter answered"
    );
    assert!(
        [500, 502, 503]
            .iter()
            .all(|status| counters.status(*status) > 0),
        "{:?}",
        counters.by_status
    );
    assert!(counters.status(504) >= 1, "held requests answered 504");
    assert!(counters.dropped_connections >= 2, "dropped connections");
    assert!(
        run.reports.len() < MAX_ROUNDS,
        "converged in {} applies",
        run.reports.len()
    );
    eprintln!(
        "converged after {} applies ({} observation failures); {} requests, {} injected faults, \
         {} limiter 429s; first plan {} grants and {} revocations",
        run.reports.len(),
        run.observation_failures.len(),
        counters.total,
        counters.injected_faults,
        counters.rate_limited,
        expected_added.len() + 1,
        expected_removed.len() + 1
    );

    // Findings the final plan reports.
    let problems = |namespace: &str, name: &str| -> Vec<&'static str> {
        run.final_plan.mappings[&ObjectKey::new(namespace, name)]
            .problems
            .iter()
            .map(MappingProblem::reason)
            .collect()
    };
    assert_eq!(problems(NS, "engineering"), ["TargetDerived"]);
    assert_eq!(problems(NS, "legacy-tools"), ["TargetNotPermitted"]);
    assert_eq!(problems("team-a", "rogue"), ["TargetNotPermitted"]);
    assert_eq!(
        run.final_plan.mappings[&ObjectKey::new(NS, "engineering")].unmatched_employees,
        NEW_HIRES
    );
    let lockdown = &run.final_plan.lockdowns[&ObjectKey::new(NS, "incident-42")];
    assert!(lockdown.active);
    assert_eq!((lockdown.locked_users, lockdown.to_revoke), (1, 0));

    // Applying the first plan again after convergence changes nothing.
    let events_before = state.events();
    let grants_before = current_grants(&state);
    harness.sim.reset_counters();
    let again = harness
        .apply(&harness.patient_executor, &run.first_plan.operations)
        .await;
    let failures: Vec<_> = again.failures().collect();
    assert!(failures.is_empty(), "{failures:?}");
    for (op, outcome) in &again.outcomes {
        let expected_outcome = match op.action {
            ChangeAction::Grant => &duplicate_add,
            ChangeAction::Revoke => &OperationOutcome::AlreadyDone,
        };
        assert_eq!(outcome, expected_outcome, "{op:?}");
    }
    assert_eq!(state.events(), events_before, "no audit event");
    assert_eq!(current_grants(&state), grants_before, "no grant changed");
    let counters = harness.sim.counters();
    let answered = |route: &str, status: u16| counters.calls_with_status(route, status);
    let grants = keys_of(&run.first_plan.operations, ChangeAction::Grant).len() as u64;
    let revocations = keys_of(&run.first_plan.operations, ChangeAction::Revoke).len() as u64;
    let (duplicate_status, other_status) = match duplicate_grant {
        DuplicateGrant::ReturnExisting => (200, 409),
        DuplicateGrant::Conflict => (409, 200),
    };
    assert_eq!(
        answered(ADD_GROUP_USER, duplicate_status) + answered(ADD_RESOURCE_USER, duplicate_status),
        grants
    );
    assert_eq!(
        answered(ADD_GROUP_USER, other_status) + answered(ADD_RESOURCE_USER, other_status),
        0
    );
    assert_eq!(
        answered(REMOVE_GROUP_USER, 404) + answered(REMOVE_RESOURCE_USER, 404),
        revocations
    );
    assert_eq!(
        answered(REMOVE_GROUP_USER, 200) + answered(REMOVE_RESOURCE_USER, 200),
        0
    );
    let replan = harness
        .observe_and_plan(None)
        .await
        .expect("observation after re-apply");
    assert!(replan.operations.is_empty(), "{:?}", replan.operations);

    harness.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_converges_under_faults_and_reapply_is_a_no_op_when_duplicate_adds_return_existing() {
    converges_and_reapplying_changes_nothing(DuplicateGrant::ReturnExisting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_converges_under_faults_and_reapply_is_a_no_op_when_duplicate_adds_conflict() {
    converges_and_reapplying_changes_nothing(DuplicateGrant::Conflict).await;
}

/// A replica that loses the lease mid-apply makes no call it had not started: the rest fail as
/// `not_leader`, and Opal sees exactly the calls made while the fence was open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_executor_makes_no_call_once_the_fence_closes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (harness, _) = Harness::start(DuplicateGrant::ReturnExisting).await;
    let plan = harness.observe_and_plan(None).await.expect("first plan");
    let open_for = 3;
    assert!(
        plan.operations.len() > open_for,
        "the plan has work to cut short"
    );
    harness.sim.set_faults(FaultConfig::default());
    harness.sim.reset_counters();
    let asked = Arc::new(AtomicUsize::new(0));
    let fence = {
        let asked = asked.clone();
        Arc::new(move || asked.fetch_add(1, Ordering::SeqCst) < open_for)
    };
    // One call at a time, so "the first three asked" are the three made.
    let report = Executor::new(harness.client.clone(), 1)
        .with_fence(fence)
        .apply(&plan.operations)
        .await;

    let made = report
        .outcomes
        .iter()
        .filter(|(_, outcome)| {
            matches!(
                outcome,
                OperationOutcome::Applied | OperationOutcome::AlreadyDone
            )
        })
        .count();
    let fenced = report
        .outcomes
        .iter()
        .filter(|(_, outcome)| {
            matches!(
                outcome,
                OperationOutcome::Failed {
                    label: "not_leader",
                    ..
                }
            )
        })
        .count();
    assert_eq!(made, open_for);
    assert_eq!(fenced, plan.operations.len() - open_for);
    assert_eq!(harness.sim.counters().writes(), open_for as u64);
    harness.sim.shutdown().await;
}
