//! The planner: desired grants (the union of all permitted RoleMappings, minus lockdowns)
//! diffed against Opal's direct grants, with offboarding, exemptions and safety rails.
//!
//! The work is split per Opal user so that a change to one employee re-plans one user
//! ([`Planner::update_employee`]); global parts (indexes, tenancy, lockdowns, merged policy)
//! are prepared once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};

use super::duration::parse_go_duration;
use super::selector::CompiledSelector;
use super::world::{HrState, ObjectKey, World};
use crate::crd::{
    AccessLevelRef, AccessTarget, ChangeAction, Enforcement, LockdownScopeMode, MembershipMode,
    OffboardingScope, OffboardingTiming, PendingChange, TargetKind, TargetRef,
};
use crate::hris::{Employee, EmploymentStatus};

/// How many pending changes and unmatched emails a finding keeps.
pub const SAMPLE_LIMIT: usize = 20;

/// Why a change is due.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A RoleMapping desires the grant.
    Mapping(ObjectKey),
    /// An authoritative target holds a grant nobody desires.
    Unwanted,
    /// The user was terminated and offboarding is due.
    Offboarding,
    /// A Lockdown is in force.
    Lockdown(ObjectKey),
}

/// One call the executor makes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub action: ChangeAction,
    pub kind: TargetKind,
    pub target_id: String,
    pub target_name: String,
    pub user_id: String,
    pub user_email: String,
    pub access_level_remote_id: String,
    pub cause: Cause,
}

impl Operation {
    pub fn grant_key(&self) -> super::world::GrantKey {
        super::world::GrantKey {
            kind: self.kind,
            target_id: self.target_id.clone(),
            user_id: self.user_id.clone(),
            access_level_remote_id: self.access_level_remote_id.clone(),
        }
    }

    /// `group/<name>` or `resource/<name>`.
    pub fn target_label(&self) -> String {
        let kind = match self.kind {
            TargetKind::Group => "group",
            TargetKind::Resource => "resource",
        };
        format!("{kind}/{}", self.target_name)
    }
}

/// Why an operation the plan computed is not executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Withheld {
    /// Only Observe-mode or paused mappings call for it.
    Observe,
    /// The revocation breaker tripped and this plan is not approved.
    Breaker,
    /// The HR flood gate blocks revocations.
    HrGate,
}

/// A problem with one RoleMapping; each has a stable CamelCase reason for conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingProblem {
    InvalidSelector(String),
    TargetNotFound(String),
    TargetAmbiguous(String),
    TargetNotPermitted(String),
    TargetDerived(String),
    AccessLevelNotFound { target: String, level: String },
}

impl MappingProblem {
    pub fn reason(&self) -> &'static str {
        match self {
            MappingProblem::InvalidSelector(_) => "InvalidSelector",
            MappingProblem::TargetNotFound(_) => "TargetNotFound",
            MappingProblem::TargetAmbiguous(_) => "TargetAmbiguous",
            MappingProblem::TargetNotPermitted(_) => "TargetNotPermitted",
            MappingProblem::TargetDerived(_) => "TargetDerived",
            MappingProblem::AccessLevelNotFound { .. } => "AccessLevelNotFound",
        }
    }

    pub fn message(&self) -> String {
        match self {
            MappingProblem::InvalidSelector(message) => message.clone(),
            MappingProblem::TargetNotFound(target) => format!("{target} does not exist in Opal"),
            MappingProblem::TargetAmbiguous(target) => {
                format!("{target} names more than one Opal object; reference it by id")
            }
            MappingProblem::TargetNotPermitted(target) => {
                format!("no AccessPolicy tenancy rule permits this namespace to govern {target}")
            }
            MappingProblem::TargetDerived(target) => {
                format!("{target} has membership Opal derives (access rule); it cannot be granted")
            }
            MappingProblem::AccessLevelNotFound { target, level } => format!(
                "access level named {level:?} is not seen on {target}; reference it by remoteId"
            ),
        }
    }
}

/// What a RoleMapping's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingFindings {
    pub matched_employees: usize,
    pub unmatched_employees: usize,
    pub unmatched_sample: Vec<String>,
    pub desired_grants: usize,
    pub actual_grants: usize,
    pub to_grant: usize,
    pub to_revoke: usize,
    pub pending_sample: Vec<PendingChange>,
    pub problems: Vec<MappingProblem>,
    /// Enforce mode and not paused.
    pub enforced: bool,
}

/// What an AccessPolicy's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFindings {
    /// RoleMappings in the policy's namespace.
    pub governed_mappings: usize,
    /// Targets those mappings may govern.
    pub governed_targets: usize,
    /// The policy sits outside the operator namespace, so only its own namespace's view is
    /// reported; its safety, offboarding and tenancy settings are not applied.
    pub outside_operator_namespace: bool,
    /// Why its offboarding `after` cannot be used; every offboarding revocation is held
    /// meanwhile (the apiserver's CEL normally rejects such a value, `plan` and
    /// `run --standalone` read files that skipped it).
    pub invalid_offboarding_delay: Option<String>,
}

/// What a Lockdown's status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockdownFindings {
    pub active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub locked_users: usize,
    pub locked_targets: usize,
    pub unresolved_subjects: Vec<String>,
    /// Revocations this lockdown still needs.
    pub to_revoke: usize,
    /// Set when `duration` cannot be parsed (the schema normally prevents it).
    pub invalid_duration: Option<String>,
    /// Deleted or expired and not released yet: the controller releases it (and restores what
    /// it revoked) in this sync.
    pub release_due: bool,
    /// What the lockdown's namespace may not lock, when it names any such thing; those
    /// subjects revoke nothing.
    pub not_permitted: Option<String>,
}

/// The revocation circuit breaker's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerFinding {
    /// Revocations subject to the breaker (lockdowns are not).
    pub revocations: usize,
    /// Direct grants on governed targets, the base of `maxRevocationPercent`.
    pub governed_grants: usize,
    pub tripped: bool,
    pub approved: bool,
    /// Which limit tripped, for the condition message.
    pub reason: String,
}

/// The plan: what to do, what is held back and why, and what each object's status shows.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Lockdown revocations first, then grants, then other revocations; each group ordered by
    /// target and user as they appear in the observed Opal state.
    pub operations: Vec<Operation>,
    pub withheld: Vec<(Operation, Withheld)>,
    /// SHA-256 over the breaker-governed revocations; a person approves exactly this plan.
    pub revocation_hash: String,
    pub breaker: BreakerFinding,
    /// Why the HR flood gate blocks revocations, if it does.
    pub hr_gate: Option<String>,
    pub mappings: BTreeMap<ObjectKey, MappingFindings>,
    pub policies: BTreeMap<ObjectKey, PolicyFindings>,
    pub lockdowns: BTreeMap<ObjectKey, LockdownFindings>,
    /// The RoleMappings permitted to govern each target (kind and Opal id) that any governs.
    pub governing: BTreeMap<(TargetKind, String), Vec<ObjectKey>>,
}

impl Plan {
    /// The objects an operation is reported on: the mapping or lockdown that causes it, or,
    /// for revocations no single mapping causes, every mapping permitted to govern the target
    /// (a mapping that merely names a target it may not govern hears nothing of it).
    pub fn owners_of(&self, op: &Operation) -> Vec<ObjectKey> {
        match &op.cause {
            Cause::Mapping(key) | Cause::Lockdown(key) => vec![key.clone()],
            Cause::Unwanted | Cause::Offboarding => self
                .governing
                .get(&(op.kind, op.target_id.clone()))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// True when Opal already matches every mapping, including what Observe-mode mappings
    /// only report: nothing to do and nothing held back. (A sync has done all it may when
    /// `operations` is empty.)
    pub fn is_converged(&self) -> bool {
        self.operations.is_empty() && self.withheld.is_empty()
    }
}

/// Plans `world` at `now`.
pub fn plan(world: &World, now: DateTime<Utc>) -> Plan {
    Planner::new(world, now).plan()
}

type UserIdx = u32;
type TargetIdx = u32;
type LevelIdx = u32;
type MappingIdx = u32;

/// Internal operation: indexes instead of strings until the plan is assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CauseIdx {
    Mapping(MappingIdx),
    Unwanted,
    Offboarding,
    Lockdown(u32),
}

#[derive(Clone, Copy, Debug)]
struct PlannedOp {
    action: ChangeAction,
    target: TargetIdx,
    level: LevelIdx,
    cause: CauseIdx,
    /// False when only Observe-mode or paused mappings call for it.
    enforced: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MappingCounts {
    desired: usize,
    actual: usize,
    to_grant: usize,
    to_revoke: usize,
}

#[derive(Clone, Debug, Default)]
struct UserOutcome {
    ops: Vec<PlannedOp>,
    counts: Vec<(MappingIdx, MappingCounts)>,
}

struct CompiledMapping {
    key: ObjectKey,
    selector: Option<CompiledSelector>,
    /// False when the selector cannot be compiled: then nobody can tell whom the mapping
    /// wants, so it must not revoke anyone either.
    governs: bool,
    grants: Vec<(TargetIdx, LevelIdx)>,
    enforced: bool,
    authoritative: bool,
    pre_start_days: i64,
    problems: Vec<MappingProblem>,
}

#[derive(Default, Clone)]
struct TargetGovernance {
    /// Authoritative mappings govern it: unwanted grants are revoked (or reported).
    authoritative: bool,
    /// At least one authoritative governing mapping is enforced.
    enforced: bool,
    /// Every permitted mapping that grants on it, either membership mode.
    mappings: Vec<MappingIdx>,
    /// Users exempted by the `exceptions` of an authoritative governing mapping.
    exceptions: FxHashSet<UserIdx>,
}

/// Merged from the AccessPolicies of the operator namespace.
#[derive(Default)]
struct MergedPolicy {
    max_revocations: Option<usize>,
    max_revocation_percent: Option<usize>,
    min_employees: Option<usize>,
    max_shrink_percent: Option<usize>,
    protected_emails: FxHashSet<String>,
    offboarding: Option<(OffboardingScope, OffboardingTiming, chrono::Duration)>,
    /// Policies whose offboarding delay cannot be parsed, with why: offboarding is held.
    invalid_offboarding_delays: FxHashMap<ObjectKey, String>,
    approved_hashes: Vec<String>,
}

#[derive(Default)]
struct Locks {
    /// Users locked out of everything, with the lockdown that locks them.
    users_all: FxHashMap<UserIdx, u32>,
    /// Users locked out of some targets.
    users_targets: FxHashMap<UserIdx, Vec<(TargetIdx, u32)>>,
    /// Targets whose direct grants are revoked, with their break-glass users.
    targets: FxHashMap<TargetIdx, (u32, FxHashSet<UserIdx>)>,
}

impl Locks {
    fn lock_for(&self, user: UserIdx, target: TargetIdx) -> Option<u32> {
        if let Some(lockdown) = self.users_all.get(&user) {
            return Some(*lockdown);
        }
        if let Some(locked) = self.users_targets.get(&user)
            && let Some((_, lockdown)) = locked.iter().find(|(t, _)| *t == target)
        {
            return Some(*lockdown);
        }
        match self.targets.get(&target) {
            Some((lockdown, break_glass)) if !break_glass.contains(&user) => Some(*lockdown),
            _ => None,
        }
    }
}

/// Prepared global state plus per-user outcomes; re-plans one employee at a time.
pub struct Planner<'w> {
    world: &'w World,
    now: DateTime<Utc>,
    today: NaiveDate,
    user_by_email: FxHashMap<String, UserIdx>,
    levels: Vec<String>,
    grants_by_user: Vec<Vec<(TargetIdx, LevelIdx, bool)>>,
    mappings: Vec<CompiledMapping>,
    hinted: FxHashMap<String, FxHashMap<String, Vec<MappingIdx>>>,
    unhinted: Vec<MappingIdx>,
    governance: Vec<TargetGovernance>,
    governed_grants: usize,
    policy: MergedPolicy,
    protected_users: FxHashSet<UserIdx>,
    locks: Locks,
    lockdown_findings: Vec<(ObjectKey, LockdownFindings)>,
    hr_failed: Option<String>,
    hr_incomplete: Option<String>,
    /// The snapshot's employees, borrowed; replaced or added ones live in `changed_employees`.
    employees: &'w [Employee],
    changed_employees: FxHashMap<usize, Employee>,
    employee_count: usize,
    employee_index: FxHashMap<String, usize>,
    employees_of_user: Vec<Vec<usize>>,
    employee_user: Vec<Option<UserIdx>>,
    employee_matches: Vec<Vec<MappingIdx>>,
    outcomes: Vec<UserOutcome>,
    /// Aggregates kept current as outcomes change, so assembling a plan costs O(operations).
    totals: Vec<MappingCounts>,
    matched: Vec<usize>,
    unmatched: Vec<BTreeSet<usize>>,
    users_with_ops: BTreeSet<UserIdx>,
}

impl<'w> Planner<'w> {
    pub fn new(world: &'w World, now: DateTime<Utc>) -> Self {
        let opal = &world.opal;
        let mut user_by_email = FxHashMap::default();
        let mut user_by_id = FxHashMap::default();
        for (index, user) in opal.users.iter().enumerate() {
            user_by_email
                .entry(user.email.to_lowercase())
                .or_insert(index as UserIdx);
            user_by_id.insert(user.id.as_str(), index as UserIdx);
        }
        let mut target_by_id = FxHashMap::default();
        let mut target_by_name: FxHashMap<(TargetKind, &str), Option<TargetIdx>> =
            FxHashMap::default();
        for (index, target) in opal.targets.iter().enumerate() {
            target_by_id.insert((target.kind, target.id.as_str()), index as TargetIdx);
            target_by_name
                .entry((target.kind, target.name.as_str()))
                .and_modify(|existing| *existing = None)
                .or_insert(Some(index as TargetIdx));
        }

        let mut levels = Vec::new();
        let mut level_index: FxHashMap<String, LevelIdx> = FxHashMap::default();
        let mut intern = |remote_id: &str| -> LevelIdx {
            if let Some(index) = level_index.get(remote_id) {
                return *index;
            }
            let index = levels.len() as LevelIdx;
            levels.push(remote_id.to_owned());
            level_index.insert(remote_id.to_owned(), index);
            index
        };
        let mut level_names: FxHashMap<(TargetIdx, &str), LevelIdx> = FxHashMap::default();
        let mut grants_by_user = vec![Vec::new(); opal.users.len()];
        let mut grants_by_target = vec![0usize; opal.targets.len()];
        for grant in &opal.grants {
            let (Some(&user), Some(&target)) = (
                user_by_id.get(grant.user_id.as_str()),
                target_by_id.get(&(grant.kind, grant.target_id.as_str())),
            ) else {
                continue;
            };
            let level = intern(&grant.access_level_remote_id);
            if !grant.access_level_name.is_empty() {
                level_names.insert((target, grant.access_level_name.as_str()), level);
            }
            grants_by_user[user as usize].push((target, level, grant.expires_at.is_some()));
            grants_by_target[target as usize] += 1;
        }

        let policy = merge_policies(world);
        let tenancy = TenancyRules::new(world);
        let resolver = TargetResolver {
            world,
            by_id: &target_by_id,
            by_name: &target_by_name,
        };

        let mut mappings = Vec::with_capacity(world.mappings.len());
        for input in &world.mappings {
            let spec = &input.spec;
            let mut problems = Vec::new();
            // No selector matches nobody: a retiring mapping still governs its targets.
            let selector = match CompiledSelector::compile(&spec.selector) {
                Ok(_) if input.retiring() => None,
                Ok(selector) => Some(selector),
                Err(error) => {
                    problems.push(MappingProblem::InvalidSelector(error.to_string()));
                    None
                }
            };
            let mut grants = Vec::new();
            for grant in &spec.grants {
                let target = match resolver.resolve(grant) {
                    Ok(target) => target,
                    Err(problem) => {
                        problems.push(problem);
                        continue;
                    }
                };
                let described = resolver.describe(target);
                let opal_target = &opal.targets[target as usize];
                if !tenancy.permits(&input.key.namespace, opal_target) {
                    problems.push(MappingProblem::TargetNotPermitted(described));
                    continue;
                }
                if opal_target.derived_membership {
                    problems.push(MappingProblem::TargetDerived(described));
                    continue;
                }
                let level = match &grant.access_level {
                    None => intern(""),
                    Some(AccessLevelRef {
                        remote_id: Some(remote_id),
                        ..
                    }) => intern(remote_id),
                    Some(AccessLevelRef {
                        name: Some(name), ..
                    }) => match level_names.get(&(target, name.as_str())) {
                        Some(level) => *level,
                        None => {
                            problems.push(MappingProblem::AccessLevelNotFound {
                                target: described,
                                level: name.clone(),
                            });
                            continue;
                        }
                    },
                    Some(_) => intern(""),
                };
                grants.push((target, level));
            }
            grants.sort_unstable();
            grants.dedup();
            mappings.push(CompiledMapping {
                key: input.key.clone(),
                governs: !problems
                    .iter()
                    .any(|problem| matches!(problem, MappingProblem::InvalidSelector(_))),
                selector,
                grants,
                enforced: spec.enforcement == Enforcement::Enforce && !input.paused,
                authoritative: spec.membership == MembershipMode::Authoritative,
                pre_start_days: i64::from(spec.pre_start_days.unwrap_or(0)),
                problems,
            });
        }

        let mut governance = vec![TargetGovernance::default(); opal.targets.len()];
        for (index, mapping) in mappings.iter().enumerate().filter(|(_, m)| m.governs) {
            let exceptions: Vec<UserIdx> = if mapping.authoritative {
                world.mappings[index]
                    .spec
                    .exceptions
                    .iter()
                    .filter_map(|email| user_by_email.get(&email.to_lowercase()).copied())
                    .collect()
            } else {
                Vec::new()
            };
            for &(target, _) in &mapping.grants {
                let entry = &mut governance[target as usize];
                if entry.mappings.last() != Some(&(index as MappingIdx)) {
                    entry.mappings.push(index as MappingIdx);
                }
                if mapping.authoritative {
                    entry.authoritative = true;
                    entry.enforced |= mapping.enforced;
                    entry.exceptions.extend(exceptions.iter().copied());
                }
            }
        }
        let governed_grants = governance
            .iter()
            .zip(&grants_by_target)
            .filter(|(governed, _)| governed.authoritative)
            .map(|(_, count)| count)
            .sum();

        let mut hinted: FxHashMap<String, FxHashMap<String, Vec<MappingIdx>>> =
            FxHashMap::default();
        let mut unhinted = Vec::new();
        for (index, mapping) in mappings.iter().enumerate() {
            match mapping.selector.as_ref().and_then(|s| s.equality_hint()) {
                Some((key, value)) => hinted
                    .entry(key.to_owned())
                    .or_default()
                    .entry(value.to_owned())
                    .or_default()
                    .push(index as MappingIdx),
                None if mapping.selector.is_some() => unhinted.push(index as MappingIdx),
                None => {}
            }
        }

        let protected_users = policy
            .protected_emails
            .iter()
            .filter_map(|email| user_by_email.get(email).copied())
            .collect();

        let (employees, hr_failed, hr_incomplete): (&[Employee], _, _) = match &world.hr {
            HrState::Snapshot(employees) => (employees, None, None),
            HrState::Incomplete { employees, reason } => (employees, None, Some(reason.clone())),
            HrState::Failed(reason) => (&[], Some(reason.clone()), None),
        };
        let employee_index = employees
            .iter()
            .enumerate()
            .map(|(index, employee)| (employee.id.clone(), index))
            .collect();

        let mut planner = Self {
            world,
            now,
            today: now.date_naive(),
            user_by_email,
            levels,
            grants_by_user,
            mappings,
            hinted,
            unhinted,
            governance,
            governed_grants,
            policy,
            protected_users,
            locks: Locks::default(),
            lockdown_findings: Vec::new(),
            hr_failed,
            hr_incomplete,
            employees,
            changed_employees: FxHashMap::default(),
            employee_count: employees.len(),
            employee_index,
            employees_of_user: vec![Vec::new(); opal.users.len()],
            employee_user: Vec::new(),
            employee_matches: Vec::new(),
            outcomes: vec![UserOutcome::default(); opal.users.len()],
            totals: vec![MappingCounts::default(); world.mappings.len()],
            matched: vec![0; world.mappings.len()],
            unmatched: vec![BTreeSet::new(); world.mappings.len()],
            users_with_ops: BTreeSet::new(),
        };
        planner.prepare_lockdowns(&user_by_id, &resolver, &tenancy);
        planner.link_all_employees();
        for user in 0..opal.users.len() as UserIdx {
            planner.refresh_user(user);
        }
        planner
    }

    /// The lockdown in force that holds `user` (an index into the world's Opal users) away
    /// from `target` (an index into its targets), if any.
    pub(crate) fn lock_holder(&self, user: usize, target: usize) -> Option<&'w ObjectKey> {
        self.locks
            .lock_for(user as UserIdx, target as TargetIdx)
            .map(|lockdown| &self.world.lockdowns[lockdown as usize].key)
    }

    /// Replaces (or adds) one employee and re-plans only the users it touches.
    pub fn update_employee(&mut self, employee: Employee) {
        let index = match self.employee_index.get(&employee.id) {
            Some(&index) => {
                self.changed_employees.insert(index, employee);
                index
            }
            None => {
                let index = self.employee_count;
                self.employee_index.insert(employee.id.clone(), index);
                self.changed_employees.insert(index, employee);
                self.employee_count += 1;
                self.employee_user.push(None);
                self.employee_matches.push(Vec::new());
                index
            }
        };
        let old_user = self.employee_user[index];
        if let Some(user) = old_user {
            self.employees_of_user[user as usize].retain(|&e| e != index);
        }
        self.link_employee(index);
        let new_user = self.employee_user[index];
        for user in [old_user, new_user].into_iter().flatten() {
            self.refresh_user(user);
        }
    }

    fn employee(&self, index: usize) -> &Employee {
        self.changed_employees
            .get(&index)
            .unwrap_or_else(|| &self.employees[index])
    }

    /// Recomputes one user's outcome and moves the aggregates from the old one to the new.
    fn refresh_user(&mut self, user: UserIdx) {
        let outcome = self.user_outcome(user);
        let previous = std::mem::replace(&mut self.outcomes[user as usize], outcome);
        for (mapping, counts) in &previous.counts {
            let total = &mut self.totals[*mapping as usize];
            total.desired -= counts.desired;
            total.actual -= counts.actual;
            total.to_grant -= counts.to_grant;
            total.to_revoke -= counts.to_revoke;
        }
        for (mapping, counts) in &self.outcomes[user as usize].counts {
            let total = &mut self.totals[*mapping as usize];
            total.desired += counts.desired;
            total.actual += counts.actual;
            total.to_grant += counts.to_grant;
            total.to_revoke += counts.to_revoke;
        }
        if self.outcomes[user as usize].ops.is_empty() {
            self.users_with_ops.remove(&user);
        } else {
            self.users_with_ops.insert(user);
        }
    }

    fn link_all_employees(&mut self) {
        self.employee_user = vec![None; self.employee_count];
        self.employee_matches = vec![Vec::new(); self.employee_count];
        for index in 0..self.employee_count {
            self.link_employee(index);
        }
    }

    fn link_employee(&mut self, index: usize) {
        for &mapping in &self.employee_matches[index] {
            self.matched[mapping as usize] -= 1;
            self.unmatched[mapping as usize].remove(&index);
        }
        let user = self
            .user_by_email
            .get(&self.employee(index).email.to_lowercase())
            .copied();
        self.employee_user[index] = user;
        if let Some(user) = user {
            self.employees_of_user[user as usize].push(index);
        }
        self.employee_matches[index] = self.matching_mappings(self.employee(index));
        for &mapping in &self.employee_matches[index] {
            self.matched[mapping as usize] += 1;
            if user.is_none() {
                self.unmatched[mapping as usize].insert(index);
            }
        }
    }

    /// Mappings whose selector matches `employee` while it is eligible for birthright access.
    fn matching_mappings(&self, employee: &Employee) -> Vec<MappingIdx> {
        let terminated_but_not_due =
            employee.status == EmploymentStatus::Terminated && !self.offboarding_due(employee);
        if employee.status != EmploymentStatus::Active && !terminated_but_not_due {
            return Vec::new();
        }
        let mut candidates: Vec<MappingIdx> = self.unhinted.clone();
        for (key, by_value) in &self.hinted {
            if let Some(value) = employee.attribute(key)
                && let Some(mappings) = by_value.get(&value.to_lowercase())
            {
                candidates.extend_from_slice(mappings);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|&index| {
            let mapping = &self.mappings[index as usize];
            let started = employee.start_date.is_none_or(|start| {
                start - chrono::Duration::days(mapping.pre_start_days) <= self.today
            });
            started
                && mapping
                    .selector
                    .as_ref()
                    .is_some_and(|selector| selector.matches(employee))
        });
        candidates
    }

    fn offboarding_due(&self, employee: &Employee) -> bool {
        if employee.status != EmploymentStatus::Terminated {
            return false;
        }
        if !self.policy.invalid_offboarding_delays.is_empty() {
            // A delay nobody can read is no reason to revoke at once: hold until it is fixed.
            return false;
        }
        let Some((_, timing, delay)) = &self.policy.offboarding else {
            return true;
        };
        let Some(date) = employee.termination_date else {
            return true;
        };
        let start_of_day = date.and_time(chrono::NaiveTime::MIN).and_utc();
        match timing {
            OffboardingTiming::Immediately => true,
            OffboardingTiming::OnTerminationDate => self.now >= start_of_day,
            OffboardingTiming::After => self.now >= start_of_day + *delay,
        }
    }

    fn prepare_lockdowns(
        &mut self,
        user_by_id: &FxHashMap<&str, UserIdx>,
        resolver: &TargetResolver<'_>,
        tenancy: &TenancyRules<'_>,
    ) {
        for (index, input) in self.world.lockdowns.iter().enumerate() {
            let spec = &input.spec;
            let mut findings = LockdownFindings::default();
            let reach = LockReach::of(&input.key.namespace, self.world, tenancy);
            let mut refused: Vec<String> = Vec::new();
            match input.expires_at(self.now) {
                Ok(expires_at) => findings.expires_at = expires_at,
                Err(error) => findings.invalid_duration = Some(error.to_string()),
            }
            findings.active = input.in_force(self.now);
            findings.release_due = input.release_due(self.now);
            let lockdown = index as u32;
            let scope_targets: Option<Vec<TargetIdx>> = match &spec.scope {
                Some(scope) if scope.mode == LockdownScopeMode::Targets => Some(
                    scope
                        .targets
                        .iter()
                        .filter_map(|target| match resolver.resolve(target) {
                            Ok(target) if reach.covers(target) => Some(target),
                            Ok(target) => {
                                refused.push(resolver.describe(target));
                                None
                            }
                            Err(problem) => {
                                findings.unresolved_subjects.push(problem.message());
                                None
                            }
                        })
                        .collect(),
                ),
                // Outside the operator namespace "everything" means every target it may lock.
                _ => match &reach {
                    LockReach::Everything => None,
                    LockReach::Only(targets) => Some(targets.iter().copied().collect()),
                },
            };
            let break_glass: FxHashSet<UserIdx> = spec
                .break_glass
                .iter()
                .filter_map(|email| self.user_by_email.get(&email.to_lowercase()).copied())
                .collect();
            for subject in &spec.subjects {
                let target_ref = match (&subject.group, &subject.resource) {
                    (Some(group), _) => Some((TargetKind::Group, group)),
                    (None, Some(resource)) => Some((TargetKind::Resource, resource)),
                    _ => None,
                };
                if let Some((kind, reference)) = target_ref {
                    match resolver.resolve_ref(kind, reference) {
                        Ok(target) if !reach.covers(target) => {
                            refused.push(resolver.describe(target))
                        }
                        Ok(target) => {
                            findings.locked_targets += 1;
                            if findings.active {
                                self.locks
                                    .targets
                                    .insert(target, (lockdown, break_glass.clone()));
                            }
                        }
                        Err(problem) => findings.unresolved_subjects.push(problem.message()),
                    }
                    continue;
                }
                let user = if let Some(email) = &subject.email {
                    self.user_by_email.get(&email.to_lowercase()).copied()
                } else if let Some(id) = &subject.opal_user_id {
                    user_by_id.get(id.as_str()).copied()
                } else if let Some(hris_id) = &subject.hris_id {
                    self.employee_index
                        .get(hris_id)
                        .map(|&index| self.employee(index))
                        .and_then(|employee| {
                            self.user_by_email
                                .get(&employee.email.to_lowercase())
                                .copied()
                        })
                } else {
                    None
                };
                let Some(user) = user else {
                    findings.unresolved_subjects.push(subject_label(subject));
                    continue;
                };
                if scope_targets.as_ref().is_some_and(Vec::is_empty) {
                    // Nothing this namespace may lock: the user keeps everything.
                    continue;
                }
                findings.locked_users += 1;
                if !findings.active {
                    continue;
                }
                match &scope_targets {
                    None => {
                        self.locks.users_all.insert(user, lockdown);
                    }
                    Some(targets) => self
                        .locks
                        .users_targets
                        .entry(user)
                        .or_default()
                        .extend(targets.iter().map(|&target| (target, lockdown))),
                }
            }
            findings.not_permitted = reach.refusal(&input.key.namespace, self.world, refused);
            if findings.not_permitted.is_some()
                && findings.locked_users == 0
                && findings.locked_targets == 0
            {
                // Nothing it may lock: never reported as in force.
                findings.active = false;
            }
            self.lockdown_findings.push((input.key.clone(), findings));
        }
    }

    /// Desired versus actual for one Opal user.
    fn user_outcome(&self, user: UserIdx) -> UserOutcome {
        let mut outcome = UserOutcome::default();
        let employees = &self.employees_of_user[user as usize];
        let mut desired: FxHashMap<(TargetIdx, LevelIdx), Vec<MappingIdx>> = FxHashMap::default();
        for &employee in employees {
            for &mapping in &self.employee_matches[employee] {
                for &(target, level) in &self.mappings[mapping as usize].grants {
                    if self.locks.lock_for(user, target).is_some() {
                        continue;
                    }
                    let contributors = desired.entry((target, level)).or_default();
                    if !contributors.contains(&mapping) {
                        contributors.push(mapping);
                    }
                }
            }
        }
        let mut counts: FxHashMap<MappingIdx, MappingCounts> = FxHashMap::default();
        let actual = &self.grants_by_user[user as usize];
        let held: FxHashSet<(TargetIdx, LevelIdx)> =
            actual.iter().map(|&(t, l, _)| (t, l)).collect();

        for (&(target, level), contributors) in &desired {
            let present = held.contains(&(target, level));
            for &mapping in contributors {
                let entry = counts.entry(mapping).or_default();
                entry.desired += 1;
                if present {
                    entry.actual += 1;
                } else {
                    entry.to_grant += 1;
                }
            }
            if !present {
                let enforcing = contributors
                    .iter()
                    .copied()
                    .find(|&m| self.mappings[m as usize].enforced);
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Grant,
                    target,
                    level,
                    cause: CauseIdx::Mapping(enforcing.unwrap_or(contributors[0])),
                    enforced: enforcing.is_some(),
                });
            }
        }

        let offboarding = self.hr_failed.is_none()
            && !employees.is_empty()
            && employees
                .iter()
                .all(|&e| self.offboarding_due(self.employee(e)))
            && self.policy.offboarding.is_some();
        let offboard_all = matches!(self.policy.offboarding, Some((OffboardingScope::All, _, _)));
        let protected = self.protected_users.contains(&user);
        for &(target, level, time_bound) in actual {
            if let Some(lockdown) = self.locks.lock_for(user, target) {
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Revoke,
                    target,
                    level,
                    cause: CauseIdx::Lockdown(lockdown),
                    enforced: true,
                });
                continue;
            }
            if desired.contains_key(&(target, level)) || self.hr_failed.is_some() || protected {
                continue;
            }
            let governance = &self.governance[target as usize];
            let derived = self.world.opal.targets[target as usize].derived_membership;
            let op = if offboarding && !derived && (offboard_all || !governance.mappings.is_empty())
            {
                Some((CauseIdx::Offboarding, true))
            } else if governance.authoritative
                && !time_bound
                && !governance.exceptions.contains(&user)
            {
                Some((CauseIdx::Unwanted, governance.enforced))
            } else {
                None
            };
            if let Some((cause, enforced)) = op {
                outcome.ops.push(PlannedOp {
                    action: ChangeAction::Revoke,
                    target,
                    level,
                    cause,
                    enforced,
                });
                for &mapping in &governance.mappings {
                    if self.mappings[mapping as usize].authoritative
                        || cause == CauseIdx::Offboarding
                    {
                        counts.entry(mapping).or_default().to_revoke += 1;
                    }
                }
            }
        }
        outcome.counts = counts.into_iter().collect();
        outcome
    }

    fn operation(&self, user: UserIdx, op: &PlannedOp) -> Operation {
        let target = &self.world.opal.targets[op.target as usize];
        let opal_user = &self.world.opal.users[user as usize];
        Operation {
            action: op.action,
            kind: target.kind,
            target_id: target.id.clone(),
            target_name: target.name.clone(),
            user_id: opal_user.id.clone(),
            user_email: opal_user.email.clone(),
            access_level_remote_id: self.levels[op.level as usize].clone(),
            cause: match op.cause {
                CauseIdx::Mapping(mapping) => {
                    Cause::Mapping(self.mappings[mapping as usize].key.clone())
                }
                CauseIdx::Unwanted => Cause::Unwanted,
                CauseIdx::Offboarding => Cause::Offboarding,
                CauseIdx::Lockdown(lockdown) => {
                    Cause::Lockdown(self.world.lockdowns[lockdown as usize].key.clone())
                }
            },
        }
    }

    /// The HR flood gate's verdict on the current snapshot.
    fn hr_gate(&self) -> Option<String> {
        if let Some(reason) = &self.hr_failed {
            return Some(format!("HR snapshot unavailable: {reason}"));
        }
        if let Some(reason) = &self.hr_incomplete {
            return Some(format!("HR snapshot incomplete: {reason}"));
        }
        let count = self.employee_count;
        if count == 0 {
            return Some("HR snapshot is empty".to_owned());
        }
        if let Some(minimum) = self.policy.min_employees
            && count < minimum
        {
            return Some(format!(
                "HR snapshot has {count} employees, fewer than minEmployees {minimum}"
            ));
        }
        if let (Some(limit), Some(last)) = (
            self.policy.max_shrink_percent,
            self.world.last_good_employee_count,
        ) && last > 0
            && count < last
            && (last - count) * 100 > limit * last
        {
            return Some(format!(
                "HR snapshot shrank from {last} to {count} employees, more than maxShrinkPercent {limit}%"
            ));
        }
        None
    }

    /// Assembles the global plan from the per-user outcomes.
    pub fn plan(&self) -> Plan {
        let mut planned: Vec<(UserIdx, PlannedOp)> = Vec::new();
        for &user in &self.users_with_ops {
            planned.extend(
                self.outcomes[user as usize]
                    .ops
                    .iter()
                    .map(|op| (user, *op)),
            );
        }
        // Lockdown revocations first (an incident cannot wait), then grants, then other
        // revocations; within each, by target and user. Sorting on indexes keeps this cheap.
        planned.sort_unstable_by_key(|(user, op)| {
            let phase: u8 = match (op.cause, op.action) {
                (CauseIdx::Lockdown(_), _) => 0,
                (_, ChangeAction::Grant) => 1,
                (_, ChangeAction::Revoke) => 2,
            };
            (phase, op.target, *user, op.level)
        });

        let hr_gate = self.hr_gate();
        let built: Vec<Operation> = planned
            .iter()
            .map(|(user, op)| self.operation(*user, op))
            .collect();
        let subject_to_breaker = |op: &PlannedOp| {
            op.enforced
                && op.action == ChangeAction::Revoke
                && !matches!(op.cause, CauseIdx::Lockdown(_))
        };
        let breaker_governed: Vec<&Operation> = planned
            .iter()
            .zip(&built)
            .filter(|((_, op), _)| subject_to_breaker(op))
            .map(|(_, operation)| operation)
            .collect();
        let revocation_hash = revocation_hash(&breaker_governed);
        let breaker = self.breaker(breaker_governed.len(), &revocation_hash);

        let mappings = self.mapping_findings(&planned, &built);
        let mut operations = Vec::new();
        let mut withheld = Vec::new();
        for ((_, op), operation) in planned.iter().zip(built) {
            let verdict = if !op.enforced {
                Some(Withheld::Observe)
            } else if subject_to_breaker(op) && hr_gate.is_some() {
                Some(Withheld::HrGate)
            } else if subject_to_breaker(op) && breaker.tripped && !breaker.approved {
                Some(Withheld::Breaker)
            } else {
                None
            };
            match verdict {
                Some(reason) => withheld.push((operation, reason)),
                None => operations.push(operation),
            }
        }

        Plan {
            mappings,
            governing: self.governing(),
            policies: self.policy_findings(),
            lockdowns: self.lockdown_findings_with_pending(&planned),
            operations,
            withheld,
            revocation_hash,
            breaker,
            hr_gate,
        }
    }

    fn breaker(&self, revocations: usize, hash: &str) -> BreakerFinding {
        let mut reasons = Vec::new();
        if let Some(limit) = self.policy.max_revocations
            && revocations > limit
        {
            reasons.push(format!(
                "{revocations} revocations exceed maxRevocations {limit}"
            ));
        }
        if let Some(percent) = self.policy.max_revocation_percent
            && revocations > 0
            && revocations * 100 > percent * self.governed_grants.max(1)
        {
            reasons.push(format!(
                "{revocations} of {} governed grants exceed maxRevocationPercent {percent}%",
                self.governed_grants
            ));
        }
        let tripped = !reasons.is_empty();
        BreakerFinding {
            revocations,
            governed_grants: self.governed_grants,
            tripped,
            approved: tripped && self.policy.approved_hashes.iter().any(|h| h == hash),
            reason: reasons.join("; "),
        }
    }

    fn mapping_findings(
        &self,
        planned: &[(UserIdx, PlannedOp)],
        built: &[Operation],
    ) -> BTreeMap<ObjectKey, MappingFindings> {
        let mut findings: Vec<MappingFindings> = self
            .mappings
            .iter()
            .enumerate()
            .map(|(index, mapping)| {
                let totals = &self.totals[index];
                let unmatched = &self.unmatched[index];
                MappingFindings {
                    matched_employees: self.matched[index],
                    unmatched_employees: unmatched.len(),
                    unmatched_sample: unmatched
                        .iter()
                        .take(SAMPLE_LIMIT)
                        .map(|&employee| self.employee(employee).email.clone())
                        .collect(),
                    desired_grants: totals.desired,
                    actual_grants: totals.actual,
                    to_grant: totals.to_grant,
                    to_revoke: totals.to_revoke,
                    pending_sample: Vec::new(),
                    problems: mapping.problems.clone(),
                    enforced: mapping.enforced,
                }
            })
            .collect();
        for ((_, op), operation) in planned.iter().zip(built) {
            let concerned: &[MappingIdx] = match &op.cause {
                CauseIdx::Mapping(mapping) => std::slice::from_ref(mapping),
                CauseIdx::Unwanted | CauseIdx::Offboarding => {
                    &self.governance[op.target as usize].mappings
                }
                CauseIdx::Lockdown(_) => &[],
            };
            for &mapping in concerned {
                let sample = &mut findings[mapping as usize].pending_sample;
                if sample.len() < SAMPLE_LIMIT {
                    sample.push(PendingChange {
                        action: operation.action,
                        user: operation.user_email.clone(),
                        target: operation.target_label(),
                        access_level: operation.access_level_remote_id.clone(),
                    });
                }
            }
        }
        self.mappings
            .iter()
            .map(|mapping| mapping.key.clone())
            .zip(findings)
            .collect()
    }

    fn governing(&self) -> BTreeMap<(TargetKind, String), Vec<ObjectKey>> {
        self.governance
            .iter()
            .zip(&self.world.opal.targets)
            .filter(|(governance, _)| !governance.mappings.is_empty())
            .map(|(governance, target)| {
                let keys = governance
                    .mappings
                    .iter()
                    .map(|&mapping| self.mappings[mapping as usize].key.clone())
                    .collect();
                ((target.kind, target.id.clone()), keys)
            })
            .collect()
    }

    fn policy_findings(&self) -> BTreeMap<ObjectKey, PolicyFindings> {
        self.world
            .policies
            .iter()
            .map(|policy| {
                let namespace = &policy.key.namespace;
                let in_namespace: Vec<&CompiledMapping> = self
                    .mappings
                    .iter()
                    .filter(|mapping| &mapping.key.namespace == namespace)
                    .collect();
                let targets: FxHashSet<TargetIdx> = in_namespace
                    .iter()
                    .flat_map(|mapping| mapping.grants.iter().map(|(target, _)| *target))
                    .collect();
                (
                    policy.key.clone(),
                    PolicyFindings {
                        governed_mappings: in_namespace.len(),
                        governed_targets: targets.len(),
                        outside_operator_namespace: *namespace != self.world.operator_namespace,
                        invalid_offboarding_delay: self
                            .policy
                            .invalid_offboarding_delays
                            .get(&policy.key)
                            .cloned(),
                    },
                )
            })
            .collect()
    }

    fn lockdown_findings_with_pending(
        &self,
        planned: &[(UserIdx, PlannedOp)],
    ) -> BTreeMap<ObjectKey, LockdownFindings> {
        let mut findings: Vec<(ObjectKey, LockdownFindings)> = self.lockdown_findings.clone();
        for (_, op) in planned {
            if let CauseIdx::Lockdown(lockdown) = op.cause {
                findings[lockdown as usize].1.to_revoke += 1;
            }
        }
        findings.into_iter().collect()
    }
}

/// Stable hash of a set of revocations, independent of their order.
fn revocation_hash(revocations: &[&Operation]) -> String {
    let mut lines: Vec<String> = revocations
        .iter()
        .map(|op| {
            format!(
                "{}\t{}\t{}\t{}",
                op.target_label(),
                op.target_id,
                op.user_id,
                op.access_level_remote_id
            )
        })
        .collect();
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn subject_label(subject: &crate::crd::LockdownSubject) -> String {
    if let Some(email) = &subject.email {
        format!("user {email} has no Opal account")
    } else if let Some(id) = &subject.opal_user_id {
        format!("Opal user {id} does not exist")
    } else if let Some(id) = &subject.hris_id {
        format!("HR employee {id} has no Opal account")
    } else {
        "empty subject".to_owned()
    }
}

fn merge_policies(world: &World) -> MergedPolicy {
    let mut merged = MergedPolicy::default();
    fn stricter(current: Option<usize>, candidate: Option<i32>) -> Option<usize> {
        let candidate = candidate.and_then(|value| usize::try_from(value).ok());
        match (current, candidate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    for policy in &world.policies {
        if policy.key.namespace != world.operator_namespace {
            continue;
        }
        let spec = &policy.spec;
        if let Some(hash) = &policy.approved_plan_hash {
            merged.approved_hashes.push(hash.clone());
        }
        if let Some(safety) = &spec.safety {
            merged.max_revocations = stricter(merged.max_revocations, safety.max_revocations);
            merged.max_revocation_percent =
                stricter(merged.max_revocation_percent, safety.max_revocation_percent);
            merged
                .protected_emails
                .extend(safety.protected_users.iter().map(|e| e.to_lowercase()));
            if let Some(gate) = &safety.hris_flood_gate {
                let min = gate.min_employees.and_then(|v| usize::try_from(v).ok());
                merged.min_employees = match (merged.min_employees, min) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                merged.max_shrink_percent =
                    stricter(merged.max_shrink_percent, gate.max_shrink_percent);
            }
        }
        if let Some(offboarding) = &spec.offboarding {
            let delay = match offboarding.after.as_deref().map(parse_go_duration) {
                None => chrono::Duration::zero(),
                Some(Ok(delay)) => delay,
                Some(Err(error)) => {
                    merged.invalid_offboarding_delays.insert(
                        policy.key.clone(),
                        format!("offboarding.after: {error}; offboarding revocations are held"),
                    );
                    continue;
                }
            };
            let candidate = (offboarding.revoke, offboarding.when, delay);
            // Several policies: the widest scope and the earliest revocation win.
            merged.offboarding = Some(match merged.offboarding {
                None => candidate,
                Some((scope, timing, existing_delay)) => (
                    if scope == OffboardingScope::All {
                        scope
                    } else {
                        candidate.0
                    },
                    earliest(timing, candidate.1),
                    existing_delay.min(delay),
                ),
            });
        }
    }
    merged
}

fn earliest(a: OffboardingTiming, b: OffboardingTiming) -> OffboardingTiming {
    let rank = |timing| match timing {
        OffboardingTiming::Immediately => 0,
        OffboardingTiming::OnTerminationDate => 1,
        OffboardingTiming::After => 2,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// Tenancy rules from the operator namespace's AccessPolicies.
struct TenancyRules<'w> {
    rules: Vec<&'w crate::crd::TenancyRule>,
}

impl<'w> TenancyRules<'w> {
    fn new(world: &'w World) -> Self {
        Self {
            rules: world
                .policies
                .iter()
                .filter(|policy| policy.key.namespace == world.operator_namespace)
                .flat_map(|policy| policy.spec.tenancy.iter())
                .collect(),
        }
    }

    fn permits(&self, namespace: &str, target: &super::world::OpalTarget) -> bool {
        self.matching(namespace, target, false)
    }

    fn permits_lockdown(&self, namespace: &str, target: &super::world::OpalTarget) -> bool {
        self.matching(namespace, target, true)
    }

    fn matching(&self, namespace: &str, target: &super::world::OpalTarget, lockdown: bool) -> bool {
        self.rules.iter().any(|rule| {
            (rule.allow_lockdowns || !lockdown)
                && rule.namespaces.iter().any(|n| n == namespace)
                && (rule.target_ids.contains(&target.id)
                    || rule.target_names.contains(&target.name)
                    || (!rule.target_tags.is_empty()
                        && rule.target_tags.iter().all(|(key, value)| {
                            target
                                .tags
                                .iter()
                                .any(|(k, v)| k == key && (value.is_empty() || v == value))
                        })))
        })
    }
}

/// What one Lockdown may lock: everything in the operator namespace, elsewhere only the
/// targets a tenancy rule with `allowLockdowns` permits to its namespace.
enum LockReach {
    Everything,
    Only(BTreeSet<TargetIdx>),
}

impl LockReach {
    fn of(namespace: &str, world: &World, tenancy: &TenancyRules<'_>) -> Self {
        if namespace == world.operator_namespace {
            return LockReach::Everything;
        }
        LockReach::Only(
            world
                .opal
                .targets
                .iter()
                .enumerate()
                .filter(|(_, target)| tenancy.permits_lockdown(namespace, target))
                .map(|(index, _)| index as TargetIdx)
                .collect(),
        )
    }

    fn covers(&self, target: TargetIdx) -> bool {
        match self {
            LockReach::Everything => true,
            LockReach::Only(targets) => targets.contains(&target),
        }
    }

    /// The finding for what was refused, naming what is missing.
    fn refusal(&self, namespace: &str, world: &World, refused: Vec<String>) -> Option<String> {
        let rule = format!(
            "a tenancy rule with allowLockdowns in an AccessPolicy of {}",
            world.operator_namespace
        );
        match self {
            LockReach::Only(targets) if targets.is_empty() => Some(format!(
                "namespace {namespace} may not lock anything: no {rule} lists it"
            )),
            _ if refused.is_empty() => None,
            _ => Some(format!(
                "namespace {namespace} may not lock {}: no {rule} permits it",
                refused.join(", ")
            )),
        }
    }
}

struct TargetResolver<'a> {
    world: &'a World,
    by_id: &'a FxHashMap<(TargetKind, &'a str), TargetIdx>,
    by_name: &'a FxHashMap<(TargetKind, &'a str), Option<TargetIdx>>,
}

impl TargetResolver<'_> {
    fn resolve(&self, target: &AccessTarget) -> Result<TargetIdx, MappingProblem> {
        match (&target.group, &target.resource) {
            (Some(group), _) => self.resolve_ref(TargetKind::Group, group),
            (None, Some(resource)) => self.resolve_ref(TargetKind::Resource, resource),
            (None, None) => Err(MappingProblem::TargetNotFound("an empty target".to_owned())),
        }
    }

    fn resolve_ref(
        &self,
        kind: TargetKind,
        reference: &TargetRef,
    ) -> Result<TargetIdx, MappingProblem> {
        let label = |value: &str| {
            let kind = match kind {
                TargetKind::Group => "group",
                TargetKind::Resource => "resource",
            };
            format!("{kind} {value}")
        };
        if let Some(id) = &reference.id {
            return self
                .by_id
                .get(&(kind, id.as_str()))
                .copied()
                .ok_or_else(|| MappingProblem::TargetNotFound(label(id)));
        }
        let name = reference.name.as_deref().unwrap_or_default();
        match self.by_name.get(&(kind, name)) {
            Some(Some(target)) => Ok(*target),
            Some(None) => Err(MappingProblem::TargetAmbiguous(label(name))),
            None => Err(MappingProblem::TargetNotFound(label(name))),
        }
    }

    fn describe(&self, target: TargetIdx) -> String {
        let target = &self.world.opal.targets[target as usize];
        match target.kind {
            TargetKind::Group => format!("group {}", target.name),
            TargetKind::Resource => format!("resource {}", target.name),
        }
    }
}
