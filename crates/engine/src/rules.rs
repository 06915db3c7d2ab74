//! The engine's own reading of the custom resources. Specs are validated into these types once,
//! where they enter (`crd::rules`); a value that cannot be read arrives as a problem the plan
//! reports, never as a silent default. Planning then matches on enums instead of option pairs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::records::TargetKind;
use super::selector::{CompiledSelector, SelectorError};

/// How a spec names one Opal group or resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetRef {
    Id(String),
    Name(String),
}

/// One Opal group or resource, as a spec names it (resolved against Opal when planning).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub kind: TargetKind,
    pub by: TargetRef,
}

impl Target {
    pub fn group_named(name: impl Into<String>) -> Self {
        Self {
            kind: TargetKind::Group,
            by: TargetRef::Name(name.into()),
        }
    }

    pub fn resource_named(name: impl Into<String>) -> Self {
        Self {
            kind: TargetKind::Resource,
            by: TargetRef::Name(name.into()),
        }
    }
}

/// Which access level a grant asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LevelRef {
    /// Opal's default level (remote ID "").
    #[default]
    Default,
    RemoteId(String),
    /// A display name, looked up among the levels observed on the target.
    Name(String),
}

/// One grant a RoleMapping desires for everyone it selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantRule {
    pub target: Target,
    pub level: LevelRef,
}

/// Whether a RoleMapping owns its targets' membership or only adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Grants nobody desires are revoked.
    Authoritative,
    /// Only adds; never revokes.
    Additive,
}

/// Whether changes are made or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    Enforce,
    Observe,
}

/// A RoleMapping's spec as the planner reads it.
#[derive(Clone, Debug)]
pub struct MappingRules {
    /// A selector that cannot compile governs nothing and is reported.
    pub selector: Result<CompiledSelector, SelectorError>,
    pub grants: Vec<GrantRule>,
    pub membership: Membership,
    pub enforcement: Enforcement,
    /// Emails exempt from revocation on the mapping's targets (Authoritative only).
    pub exceptions: Vec<String>,
    pub revoke_on_delete: bool,
    /// Days before the start date that grants begin.
    pub pre_start_days: u32,
    /// Parts of the spec that cannot be read; each is reported and that part is ignored.
    pub invalid: Vec<String>,
}

impl MappingRules {
    /// Whether deleting the mapping must first revoke what only it desired: `revokeOnDelete`
    /// on an Authoritative mapping. An Additive mapping never revoked anything; retiring it
    /// would remove grants it never desired.
    pub fn revokes_on_delete(&self) -> bool {
        self.revoke_on_delete && self.membership == Membership::Authoritative
    }
}

/// Limits that hold revocations back (the revocation breaker and the HR flood gate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SafetyRules {
    pub max_revocations: Option<usize>,
    pub max_revocation_percent: Option<usize>,
    /// Emails never revoked except by a Lockdown.
    pub protected_users: Vec<String>,
    pub min_employees: Option<usize>,
    pub max_shrink_percent: Option<usize>,
    /// Limits that cannot be read. A limit nobody can read holds every revocation it
    /// would govern (the breaker trips) rather than lifting the limit.
    pub invalid: Vec<String>,
}

/// Which grants offboarding revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffboardingScope {
    /// Grants on targets a RoleMapping governs.
    Governed,
    /// Every direct grant the person holds.
    All,
}

/// When offboarding revokes, counted from HR's termination date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffboardingWhen {
    /// As soon as HR marks the person terminated.
    Immediately,
    OnTerminationDate,
    After(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffboardingRules {
    pub scope: OffboardingScope,
    pub when: OffboardingWhen,
}

/// One tenancy rule: the namespaces it lets govern (and maybe lock) the targets it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenancyGrant {
    pub namespaces: Vec<String>,
    /// All must match; an empty value matches any value of that tag.
    pub target_tags: BTreeMap<String, String>,
    pub target_names: Vec<String>,
    pub target_ids: Vec<String>,
    pub allow_lockdowns: bool,
}

impl TenancyGrant {
    /// Whether this rule lets `namespace` govern the target with this id, name and tags (and
    /// lock it, when `lockdown`).
    pub fn permits(
        &self,
        namespace: &str,
        (id, name, tags): (&str, &str, &[(String, String)]),
        lockdown: bool,
    ) -> bool {
        (self.allow_lockdowns || !lockdown)
            && self.namespaces.iter().any(|n| n == namespace)
            && (self.target_ids.iter().any(|t| t == id)
                || self.target_names.iter().any(|t| t == name)
                || (!self.target_tags.is_empty() && carries_tags(tags, &self.target_tags)))
    }
}

/// Whether `tags` include every wanted tag (an empty wanted value matches any value).
pub fn carries_tags(tags: &[(String, String)], wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(key, value)| {
        tags.iter()
            .any(|(k, v)| k == key && (value.is_empty() || v == value))
    })
}

/// The parts of an AccessPolicy the planner acts on.
#[derive(Clone, Debug, Default)]
pub struct PolicyRules {
    pub safety: Option<SafetyRules>,
    /// `Err` carries why the offboarding section cannot be read; offboarding is then held.
    pub offboarding: Option<Result<OffboardingRules, String>>,
    pub tenancy: Vec<TenancyGrant>,
}

/// Whom or what a Lockdown locks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Email(String),
    OpalUserId(String),
    HrisId(String),
    /// Every direct grant on this target is revoked, break-glass users excepted.
    Target(Target),
}

impl Subject {
    /// How the subject reads in a notice or finding.
    pub fn label(&self) -> String {
        match self {
            Subject::Email(value) | Subject::OpalUserId(value) | Subject::HrisId(value) => {
                value.clone()
            }
            Subject::Target(Target {
                by: TargetRef::Id(value) | TargetRef::Name(value),
                ..
            }) => value.clone(),
        }
    }
}

/// What a locked user loses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LockScope {
    /// Every direct grant (within what the lockdown's namespace may lock).
    #[default]
    Everything,
    Targets(Vec<Target>),
}

/// When a Lockdown ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LockEnd {
    /// Only when deleted.
    #[default]
    Never,
    At(DateTime<Utc>),
    /// Counted from activation.
    After(Duration),
    /// The end cannot be read: the lockdown is held neither in force nor released.
    Invalid(String),
}

/// A Lockdown's spec as the planner reads it.
#[derive(Clone, Debug, Default)]
pub struct LockdownRules {
    pub subjects: Vec<Subject>,
    pub scope: LockScope,
    /// Emails that keep their grants on locked targets.
    pub break_glass: Vec<String>,
    pub end: LockEnd,
    /// Subjects or scope targets that cannot be read; reported as unresolved.
    pub invalid: Vec<String>,
}
