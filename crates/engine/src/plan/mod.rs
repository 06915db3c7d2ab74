//! The planner: desired grants (the union of all permitted RoleMappings, minus lockdowns)
//! diffed against Opal's direct grants, with offboarding, exemptions and safety rails.
//!
//! The work is split per Opal user so that a change to one employee re-plans one user
//! ([`Planner::update_employee`]); global parts (indexes, tenancy, lockdowns, merged policy)
//! are prepared once.

mod assemble;
mod lockdowns;
mod output;
mod policy;
mod report;
mod resolve;
mod user;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};

use super::records::{ChangeAction, PendingChange, TargetKind};
use super::rules::{
    Enforcement, LevelRef, LockScope, Membership, OffboardingScope, OffboardingWhen, Subject,
    Target, TargetRef,
};
use super::selector::CompiledSelector;
use super::world::{HrState, ObjectKey, World};
use crate::{Employee, EmploymentStatus};

use lockdowns::Locks;
pub use output::*;
use policy::{LockReach, MergedPolicy, TenancyRules, merge_policies};
use resolve::TargetResolver;

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
            let rules = &input.rules;
            let mut problems: Vec<MappingProblem> = rules
                .invalid
                .iter()
                .cloned()
                .map(MappingProblem::InvalidSpec)
                .collect();
            // No selector matches nobody: a retiring mapping still governs its targets.
            let selector = match &rules.selector {
                Ok(_) if input.retiring() => None,
                Ok(selector) => Some(selector.clone()),
                Err(error) => {
                    problems.push(MappingProblem::InvalidSelector(error.to_string()));
                    None
                }
            };
            let mut grants = Vec::new();
            for grant in &rules.grants {
                let target = match resolver.resolve(&grant.target) {
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
                let level = match &grant.level {
                    LevelRef::Default => intern(""),
                    LevelRef::RemoteId(remote_id) => intern(remote_id),
                    LevelRef::Name(name) => match level_names.get(&(target, name.as_str())) {
                        Some(level) => *level,
                        None => {
                            problems.push(MappingProblem::AccessLevelNotFound {
                                target: described,
                                level: name.clone(),
                            });
                            continue;
                        }
                    },
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
                enforced: rules.enforcement == Enforcement::Enforce && !input.paused,
                authoritative: rules.membership == Membership::Authoritative,
                pre_start_days: i64::from(rules.pre_start_days),
                problems,
            });
        }

        let mut governance = vec![TargetGovernance::default(); opal.targets.len()];
        for (index, mapping) in mappings.iter().enumerate().filter(|(_, m)| m.governs) {
            let exceptions: Vec<UserIdx> = if mapping.authoritative {
                world.mappings[index]
                    .rules
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

    pub(super) fn employee(&self, index: usize) -> &Employee {
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
}
