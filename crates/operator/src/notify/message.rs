//! The typed notification model: what happened, to whom, by which rule, with links, plus the
//! keys that make delivery idempotent.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A custom resource that caused or governs an event (the "rule").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Kubernetes UID: tells apart two objects that had the same name at different times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: None,
        }
    }

    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// `Kind namespace/name`.
    pub fn display(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    fn thread_part(&self) -> String {
        let base = format!("{}/{}/{}", self.kind, self.namespace, self.name);
        match &self.uid {
            Some(uid) => format!("{base}/{uid}"),
            None => base,
        }
    }
}

/// A person, as known to the HRIS and Opal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opal_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hris_id: Option<String>,
}

impl Person {
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
            opal_user_id: None,
            hris_id: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `Name <email>` or the email alone.
    pub fn display(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} <{}>", self.email),
            None => self.email.clone(),
        }
    }
}

/// Whether an access target is an Opal group or resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    Group,
    Resource,
}

/// An Opal group or resource, with the access level when one applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTarget {
    pub kind: TargetKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
}

impl AccessTarget {
    pub fn group(name: impl Into<String>) -> Self {
        Self {
            kind: TargetKind::Group,
            name: name.into(),
            id: None,
            access_level: None,
        }
    }

    pub fn resource(name: impl Into<String>) -> Self {
        Self {
            kind: TargetKind::Resource,
            ..Self::group(name)
        }
    }

    pub fn with_level(mut self, level: impl Into<String>) -> Self {
        self.access_level = Some(level.into());
        self
    }

    /// `group "Eng" (admin)`.
    pub fn display(&self) -> String {
        let kind = match self.kind {
            TargetKind::Group => "group",
            TargetKind::Resource => "resource",
        };
        match self.access_level.as_deref().filter(|l| !l.is_empty()) {
            Some(level) => format!("{kind} \"{}\" ({level})", self.name),
            None => format!("{kind} \"{}\"", self.name),
        }
    }
}

/// One person's access to one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessChange {
    pub person: Person,
    pub target: AccessTarget,
}

impl AccessChange {
    pub fn new(person: Person, target: AccessTarget) -> Self {
        Self { person, target }
    }

    fn display(&self) -> String {
        format!("{} → {}", self.person.display(), self.target.display())
    }
}

/// Direction of a planned change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    Grant,
    Revoke,
}

/// A change the plan would make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    pub op: ChangeOp,
    pub change: AccessChange,
}

/// An HR attribute that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeChange {
    pub attribute: String,
    pub from: String,
    pub to: String,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// Grants a rule asked for were made in Opal.
    GrantsApplied {
        rule: ObjectRef,
        grants: Vec<AccessChange>,
    },
    /// Grants were removed from Opal.
    AccessRevoked {
        rule: ObjectRef,
        reason: String,
        revocations: Vec<AccessChange>,
    },
    /// Opal differs from what a rule declares.
    DriftDetected {
        rule: ObjectRef,
        /// `Enforce` or `Observe`.
        enforcement: String,
        plan_hash: String,
        to_grant: u64,
        to_revoke: u64,
        /// A bounded sample of the planned changes.
        sample: Vec<PlannedChange>,
    },
    /// The revocation circuit breaker held back a plan.
    BreakerTripped {
        policy: ObjectRef,
        plan_hash: String,
        planned_revocations: u64,
        /// The limit that was exceeded, e.g. `maxRevocations: 25`.
        limit: String,
        /// The annotation that approves this exact plan.
        approval_annotation: String,
    },
    /// A Lockdown revoked access during an incident.
    LockdownActivated {
        lockdown: ObjectRef,
        subjects: Vec<String>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident: Option<String>,
        revoked: Vec<AccessChange>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// A Lockdown ended.
    LockdownReleased {
        lockdown: ObjectRef,
        reason: String,
        restored: Vec<AccessChange>,
    },
    /// A new hire received birthright access.
    Onboarded {
        person: Person,
        rule: ObjectRef,
        grants: Vec<AccessTarget>,
    },
    /// HR attributes changed and access followed.
    RoleChanged {
        person: Person,
        rule: ObjectRef,
        changes: Vec<AttributeChange>,
        granted: Vec<AccessTarget>,
        revoked: Vec<AccessTarget>,
    },
    /// A terminated employee's access was removed.
    Offboarded {
        person: Person,
        policy: ObjectRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        termination_date: Option<NaiveDate>,
        revoked: Vec<AccessTarget>,
    },
    /// An access review campaign started in Opal.
    ReviewLaunched {
        schedule: ObjectRef,
        review_id: String,
        review_name: String,
        deadline: DateTime<Utc>,
        reviewers: Vec<Person>,
    },
    /// An access review passed its deadline.
    ReviewOverdue {
        schedule: ObjectRef,
        review_id: String,
        review_name: String,
        deadline: DateTime<Utc>,
        escalated_to: Vec<Person>,
    },
}

/// How urgent an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What a message does to its ticket on ticketing channels (Jira, JSM, ServiceNow) and to its
/// alert on PagerDuty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TicketAction {
    /// Open the thread's ticket (once).
    Open,
    /// Comment on the thread's ticket, opening it first if it does not exist.
    Update,
    /// Close the thread's ticket with notes, opening it first if it does not exist.
    Resolve,
    /// A finished piece of work: open a ticket as the record and close it at once.
    Record,
}

/// Messages about one subject (a lockdown, a review, a held plan) share a thread: one ticket,
/// one PagerDuty alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    /// Human-readable key, e.g. `lockdown/Lockdown/secops/eve/<uid>`.
    pub key: String,
    pub action: TicketAction,
}

impl Thread {
    /// A stable token of the thread usable as a Jira label, ServiceNow `correlation_id` and
    /// PagerDuty `dedup_key`: `opal-operator-` and 24 hex digits of SHA-256 of the key.
    pub fn token(&self) -> String {
        let digest = Sha256::digest(self.key.as_bytes());
        format!("opal-operator-{}", &hex::encode(digest)[..24])
    }
}

/// A link a person can follow for more evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub text: String,
    pub url: String,
}

/// One message, addressed to any number of channels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event: Event,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub links: Vec<Link>,
    /// People to address directly (email, Slack direct message), by email.
    #[serde(default)]
    pub recipients: Vec<String>,
    idempotency_key: String,
}

impl Notification {
    /// A message whose idempotency key is derived from the event and when it occurred, so the
    /// same event reported again (say after an operator restart) gets the same key.
    pub fn new(event: Event, occurred_at: DateTime<Utc>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&event).unwrap_or_default());
        hasher.update(occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true));
        let idempotency_key = hex::encode(&hasher.finalize()[..16]);
        Self {
            event,
            occurred_at,
            links: Vec::new(),
            recipients: Vec::new(),
            idempotency_key,
        }
    }

    /// Replaces the derived key with one the caller keeps stable by other means.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    pub fn with_link(mut self, text: impl Into<String>, url: impl Into<String>) -> Self {
        self.links.push(Link {
            text: text.into(),
            url: url.into(),
        });
        self
    }

    pub fn with_recipient(mut self, email: impl Into<String>) -> Self {
        self.recipients.push(email.into());
        self
    }

    /// Stable per message; sent as PagerDuty-independent idempotency key to webhooks, as the
    /// HEC event id, in the email `Message-ID`, and as the marker of ticket comments.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// Stable low-cardinality name of the event type.
    pub fn kind(&self) -> &'static str {
        match &self.event {
            Event::GrantsApplied { .. } => "grantsApplied",
            Event::AccessRevoked { .. } => "accessRevoked",
            Event::DriftDetected { .. } => "driftDetected",
            Event::BreakerTripped { .. } => "breakerTripped",
            Event::LockdownActivated { .. } => "lockdownActivated",
            Event::LockdownReleased { .. } => "lockdownReleased",
            Event::Onboarded { .. } => "onboarded",
            Event::RoleChanged { .. } => "roleChanged",
            Event::Offboarded { .. } => "offboarded",
            Event::ReviewLaunched { .. } => "reviewLaunched",
            Event::ReviewOverdue { .. } => "reviewOverdue",
        }
    }

    pub fn severity(&self) -> Severity {
        match &self.event {
            Event::BreakerTripped { .. } | Event::LockdownActivated { .. } => Severity::Critical,
            Event::DriftDetected { .. }
            | Event::AccessRevoked { .. }
            | Event::Offboarded { .. }
            | Event::ReviewOverdue { .. } => Severity::Warning,
            Event::GrantsApplied { .. }
            | Event::LockdownReleased { .. }
            | Event::Onboarded { .. }
            | Event::RoleChanged { .. }
            | Event::ReviewLaunched { .. } => Severity::Info,
        }
    }

    /// The thread this message belongs to and what it does there.
    pub fn thread(&self) -> Thread {
        let (key, action) = match &self.event {
            Event::DriftDetected {
                rule, plan_hash, ..
            } => (
                format!("drift/{}/{plan_hash}", rule.thread_part()),
                TicketAction::Open,
            ),
            Event::BreakerTripped {
                policy, plan_hash, ..
            } => (
                format!("breaker/{}/{plan_hash}", policy.thread_part()),
                TicketAction::Open,
            ),
            Event::LockdownActivated { lockdown, .. } => (
                format!("lockdown/{}", lockdown.thread_part()),
                TicketAction::Open,
            ),
            Event::LockdownReleased { lockdown, .. } => (
                format!("lockdown/{}", lockdown.thread_part()),
                TicketAction::Resolve,
            ),
            Event::ReviewLaunched { review_id, .. } => {
                (format!("review/{review_id}"), TicketAction::Open)
            }
            Event::ReviewOverdue { review_id, .. } => {
                (format!("review/{review_id}"), TicketAction::Update)
            }
            Event::GrantsApplied { .. }
            | Event::AccessRevoked { .. }
            | Event::Onboarded { .. }
            | Event::RoleChanged { .. }
            | Event::Offboarded { .. } => (
                format!("message/{}", self.idempotency_key),
                TicketAction::Record,
            ),
        };
        Thread { key, action }
    }

    /// The thread's title: a ticket's summary, an email's subject, a chat message's headline.
    pub fn title(&self) -> String {
        match &self.event {
            Event::GrantsApplied { rule, grants } => {
                format!("{} grant(s) applied by {}", grants.len(), rule.display())
            }
            Event::AccessRevoked {
                rule, revocations, ..
            } => format!(
                "{} grant(s) revoked by {}",
                revocations.len(),
                rule.display()
            ),
            Event::DriftDetected {
                rule,
                to_grant,
                to_revoke,
                ..
            } => format!(
                "Drift detected for {}: {to_grant} to grant, {to_revoke} to revoke",
                rule.display()
            ),
            Event::BreakerTripped {
                policy,
                planned_revocations,
                ..
            } => format!(
                "Revocation breaker tripped for {}: {planned_revocations} revocations held",
                policy.display()
            ),
            Event::LockdownActivated {
                lockdown, subjects, ..
            } => format!(
                "Lockdown {} activated for {}",
                lockdown.name,
                subjects.join(", ")
            ),
            Event::LockdownReleased { lockdown, .. } => {
                format!("Lockdown {} released", lockdown.name)
            }
            Event::Onboarded { person, .. } => format!("Onboarded {}", person.display()),
            Event::RoleChanged { person, .. } => format!("Role changed for {}", person.display()),
            Event::Offboarded { person, .. } => format!("Offboarded {}", person.display()),
            Event::ReviewLaunched { review_name, .. } => {
                format!("Access review \"{review_name}\" launched")
            }
            Event::ReviewOverdue { review_name, .. } => {
                format!("Access review \"{review_name}\" is overdue")
            }
        }
    }

    /// Labelled facts (who, what, which rule, when) every rendering shows.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = Vec::new();
        match &self.event {
            Event::GrantsApplied { rule, grants } => {
                facts.push(("Rule", rule.display()));
                facts.push(("Grants", grants.len().to_string()));
            }
            Event::AccessRevoked {
                rule,
                reason,
                revocations,
            } => {
                facts.push(("Rule", rule.display()));
                facts.push(("Reason", reason.clone()));
                facts.push(("Revocations", revocations.len().to_string()));
            }
            Event::DriftDetected {
                rule,
                enforcement,
                plan_hash,
                to_grant,
                to_revoke,
                ..
            } => {
                facts.push(("Rule", rule.display()));
                facts.push(("Enforcement", enforcement.clone()));
                facts.push(("To grant", to_grant.to_string()));
                facts.push(("To revoke", to_revoke.to_string()));
                facts.push(("Plan", plan_hash.clone()));
            }
            Event::BreakerTripped {
                policy,
                plan_hash,
                planned_revocations,
                limit,
                approval_annotation,
            } => {
                facts.push(("Policy", policy.display()));
                facts.push(("Revocations held", planned_revocations.to_string()));
                facts.push(("Limit", limit.clone()));
                facts.push(("Plan", plan_hash.clone()));
                facts.push((
                    "To approve",
                    format!(
                        "kubectl annotate -n {} {} {} {approval_annotation}={plan_hash}",
                        policy.namespace,
                        policy.kind.to_lowercase(),
                        policy.name
                    ),
                ));
            }
            Event::LockdownActivated {
                lockdown,
                subjects,
                reason,
                incident,
                revoked,
                expires_at,
            } => {
                facts.push(("Lockdown", lockdown.display()));
                facts.push(("Subjects", subjects.join(", ")));
                facts.push(("Reason", reason.clone()));
                if let Some(incident) = incident {
                    facts.push(("Incident", incident.clone()));
                }
                facts.push(("Grants revoked", revoked.len().to_string()));
                if let Some(at) = expires_at {
                    facts.push(("Expires", rfc3339(at)));
                }
            }
            Event::LockdownReleased {
                lockdown,
                reason,
                restored,
            } => {
                facts.push(("Lockdown", lockdown.display()));
                facts.push(("Reason", reason.clone()));
                facts.push(("Grants restored", restored.len().to_string()));
            }
            Event::Onboarded {
                person,
                rule,
                grants,
            } => {
                facts.push(("Person", person.display()));
                facts.push(("Rule", rule.display()));
                facts.push(("Grants", grants.len().to_string()));
            }
            Event::RoleChanged {
                person,
                rule,
                changes,
                granted,
                revoked,
            } => {
                facts.push(("Person", person.display()));
                facts.push(("Rule", rule.display()));
                for change in changes {
                    facts.push((
                        "Changed",
                        format!("{}: {} → {}", change.attribute, change.from, change.to),
                    ));
                }
                facts.push(("Granted", granted.len().to_string()));
                facts.push(("Revoked", revoked.len().to_string()));
            }
            Event::Offboarded {
                person,
                policy,
                termination_date,
                revoked,
            } => {
                facts.push(("Person", person.display()));
                facts.push(("Policy", policy.display()));
                if let Some(date) = termination_date {
                    facts.push(("Termination date", date.to_string()));
                }
                facts.push(("Grants revoked", revoked.len().to_string()));
            }
            Event::ReviewLaunched {
                schedule,
                review_id,
                deadline,
                reviewers,
                ..
            } => {
                facts.push(("Schedule", schedule.display()));
                facts.push(("Review", review_id.clone()));
                facts.push(("Deadline", rfc3339(deadline)));
                facts.push(("Reviewers", reviewers.len().to_string()));
            }
            Event::ReviewOverdue {
                schedule,
                review_id,
                deadline,
                escalated_to,
                ..
            } => {
                facts.push(("Schedule", schedule.display()));
                facts.push(("Review", review_id.clone()));
                facts.push(("Deadline", rfc3339(deadline)));
                if !escalated_to.is_empty() {
                    facts.push((
                        "Escalated to",
                        escalated_to
                            .iter()
                            .map(Person::display)
                            .collect::<Vec<_>>()
                            .join(", "),
                    ));
                }
            }
        }
        facts.push(("Occurred", rfc3339(&self.occurred_at)));
        facts
    }

    /// The itemised evidence (each grant, revocation or reviewer), in full; renderers bound it.
    pub fn items(&self) -> Vec<String> {
        match &self.event {
            Event::GrantsApplied { grants: list, .. }
            | Event::AccessRevoked {
                revocations: list, ..
            }
            | Event::LockdownActivated { revoked: list, .. }
            | Event::LockdownReleased { restored: list, .. } => {
                list.iter().map(AccessChange::display).collect()
            }
            Event::DriftDetected { sample, .. } => sample
                .iter()
                .map(|planned| {
                    let op = match planned.op {
                        ChangeOp::Grant => "grant",
                        ChangeOp::Revoke => "revoke",
                    };
                    format!("{op}: {}", planned.change.display())
                })
                .collect(),
            Event::Onboarded { grants: list, .. } | Event::Offboarded { revoked: list, .. } => {
                list.iter().map(AccessTarget::display).collect()
            }
            Event::RoleChanged {
                granted, revoked, ..
            } => granted
                .iter()
                .map(|t| format!("granted: {}", t.display()))
                .chain(revoked.iter().map(|t| format!("revoked: {}", t.display())))
                .collect(),
            Event::ReviewLaunched { reviewers, .. } => reviewers
                .iter()
                .map(|p| format!("reviewer: {}", p.display()))
                .collect(),
            Event::ReviewOverdue { escalated_to, .. } => escalated_to
                .iter()
                .map(|p| format!("escalated to: {}", p.display()))
                .collect(),
            Event::BreakerTripped { .. } => Vec::new(),
        }
    }
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn lockdown(activated: bool) -> Notification {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("time");
        let lockdown = ObjectRef::new("Lockdown", "secops", "eve").with_uid("uid-1");
        let event = if activated {
            Event::LockdownActivated {
                lockdown,
                subjects: vec!["eve@example.com".into()],
                reason: "impossible travel".into(),
                incident: Some("INC-7".into()),
                revoked: vec![AccessChange::new(
                    Person::new("eve@example.com"),
                    AccessTarget::group("prod-admins"),
                )],
                expires_at: None,
            }
        } else {
            Event::LockdownReleased {
                lockdown,
                reason: "expired".into(),
                restored: Vec::new(),
            }
        };
        Notification::new(event, at)
    }

    #[test]
    fn keys_are_stable_and_content_derived() {
        assert_eq!(
            lockdown(true).idempotency_key(),
            lockdown(true).idempotency_key()
        );
        assert_ne!(
            lockdown(true).idempotency_key(),
            lockdown(false).idempotency_key()
        );
        assert_eq!(lockdown(true).idempotency_key().len(), 32);
    }

    #[test]
    fn activation_and_release_share_a_thread() {
        let open = lockdown(true).thread();
        let close = lockdown(false).thread();
        assert_eq!(open.key, close.key);
        assert_eq!(open.token(), close.token());
        assert_eq!(open.action, TicketAction::Open);
        assert_eq!(close.action, TicketAction::Resolve);
        assert!(open.token().starts_with("opal-operator-"));
        assert_eq!(open.token().len(), "opal-operator-".len() + 24);
    }

    #[test]
    fn evidence_names_who_what_and_rule() {
        let note = lockdown(true);
        let facts = note.facts();
        assert!(facts.contains(&("Lockdown", "Lockdown secops/eve".to_owned())));
        assert!(facts.contains(&("Incident", "INC-7".to_owned())));
        assert_eq!(
            note.items(),
            vec!["eve@example.com → group \"prod-admins\"".to_owned()]
        );
        assert_eq!(note.severity(), Severity::Critical);
        let json = serde_json::to_value(&note.event).expect("json");
        assert_eq!(json["type"], "lockdownActivated");
        assert_eq!(json["lockdown"]["namespace"], "secops");
    }
}
