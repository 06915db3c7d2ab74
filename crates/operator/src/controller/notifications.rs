//! Tells people what the operator did, through the channels of the config's `notify` section:
//! offboardings (with a ticket when the policy asks), lockdowns activated and released. The
//! outbox delivers in the background, so a failing channel never holds up an access change;
//! it shows as `NotificationsDegraded` on the operator namespace's AccessPolicies.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::objects::key_of;
use crate::crd::{AccessPolicy, ChangeAction, Lockdown, RevokedGrant, TargetKind};
use crate::engine::{Cause, ObjectKey, Subject};
use crate::hris::Employee;
use crate::metrics::Metrics;
use crate::notify::{
    AccessChange, AccessTarget, ChannelRegistry, Event, Notification, NotifyConfig, NotifyError,
    ObjectRef, Outbox, Person,
};
use crate::reconcile::{ExecutionReport, OperationOutcome};
use crate::secret::KubeSecretSource;

/// Reads `secretKeyRef` credentials from Secrets in the operator namespace.
pub struct NamespaceSecrets {
    secrets: Api<Secret>,
}

impl NamespaceSecrets {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client, namespace),
        }
    }
}

impl KubeSecretSource for NamespaceSecrets {
    fn read<'a>(&'a self, name: &'a str, key: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let secret = self
                .secrets
                .get(name)
                .await
                .map_err(|error| format!("cannot read Secret {name}: {error}"))?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|data| data.get(key))
                .ok_or_else(|| format!("Secret {name} has no key {key}"))?;
            String::from_utf8(bytes.0.clone())
                .map(|value| value.trim_end().to_owned())
                .map_err(|_| format!("Secret {name} key {key} is not UTF-8 text"))
        })
    }
}

/// The outbox and what the operator sends through it.
pub struct Notifier {
    outbox: Outbox,
}

impl Notifier {
    /// Builds the channels (reading their credentials now) and starts their workers.
    pub async fn start(
        config: &NotifyConfig,
        secrets: &dyn KubeSecretSource,
        metrics: &Metrics,
    ) -> Result<Self, NotifyError> {
        let registry = ChannelRegistry::from_config(config, secrets).await?;
        Ok(Self {
            outbox: Outbox::start(&registry, metrics.notify_metrics()),
        })
    }

    /// A one-line reason when any channel is failing, for `NotificationsDegraded`.
    pub fn degraded(&self) -> Option<String> {
        self.outbox.health().condition_message()
    }

    fn send(&self, channels: &[String], notification: &Notification) {
        let names: Vec<&str> = channels.iter().map(String::as_str).collect();
        for error in self.outbox.enqueue_all(&names, notification) {
            // The channel's health and metrics show refusals; the change itself stands.
            tracing::warn!(%error, "notification not queued");
        }
    }

    /// One `Offboarded` message per person whose grants offboarding revoked in this sync, to
    /// the offboarding policy's `notify` channels and its ticket channel.
    pub fn offboarded(
        &self,
        execution: &ExecutionReport,
        policies: &[AccessPolicy],
        operator_namespace: &str,
        employees: &[Employee],
        now: DateTime<Utc>,
    ) {
        let Some(policy) = policies.iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(operator_namespace)
                && p.spec.offboarding.is_some()
        }) else {
            return;
        };
        let key = key_of(policy);
        let Some(offboarding) = &policy.spec.offboarding else {
            return;
        };
        let mut channels = offboarding.notify.clone();
        channels.extend(offboarding.ticket.iter().map(|t| t.channel.clone()));
        if channels.is_empty() {
            return;
        }
        let mut by_person: BTreeMap<&str, Vec<AccessTarget>> = BTreeMap::new();
        for (op, outcome) in &execution.outcomes {
            if op.action == ChangeAction::Revoke
                && op.cause == Cause::Offboarding
                && *outcome == OperationOutcome::Applied
            {
                by_person
                    .entry(op.user_email.as_str())
                    .or_default()
                    .push(target(op.kind, &op.target_name, &op.access_level_remote_id));
            }
        }
        for (email, revoked) in by_person {
            let employee = employees
                .iter()
                .find(|e| e.email.eq_ignore_ascii_case(email));
            let event = Event::Offboarded {
                person: person(email, employee),
                policy: object_ref("AccessPolicy", &key),
                termination_date: employee.and_then(|e| e.termination_date),
                revoked,
            };
            self.send(&channels, &Notification::new(event, now));
        }
    }

    /// A Lockdown took effect.
    pub fn lockdown_activated(
        &self,
        lockdown: &Lockdown,
        key: &ObjectKey,
        revoked: &[RevokedGrant],
        now: DateTime<Utc>,
    ) {
        if lockdown.spec.notify.is_empty() {
            return;
        }
        let event = Event::LockdownActivated {
            lockdown: object_ref("Lockdown", key),
            subjects: lockdown
                .spec
                .rules()
                .subjects
                .iter()
                .map(Subject::label)
                .collect(),
            reason: lockdown.spec.reason.clone(),
            incident: lockdown.spec.incident.clone(),
            revoked: revoked.iter().map(change).collect(),
            expires_at: lockdown.status.as_ref().and_then(|s| s.expires_at),
        };
        self.send(&lockdown.spec.notify, &Notification::new(event, now));
    }

    /// A Lockdown ended; `restored` is what came back.
    pub fn lockdown_released(
        &self,
        lockdown: &Lockdown,
        key: &ObjectKey,
        restored: &[RevokedGrant],
        now: DateTime<Utc>,
    ) {
        if lockdown.spec.notify.is_empty() {
            return;
        }
        let event = Event::LockdownReleased {
            lockdown: object_ref("Lockdown", key),
            reason: if lockdown.metadata.deletion_timestamp.is_some() {
                "deleted".into()
            } else {
                "expired".into()
            },
            restored: restored.iter().map(change).collect(),
        };
        self.send(&lockdown.spec.notify, &Notification::new(event, now));
    }
}

fn object_ref(kind: &str, key: &ObjectKey) -> ObjectRef {
    ObjectRef::new(kind, &key.namespace, &key.name)
}

fn person(email: &str, employee: Option<&Employee>) -> Person {
    let person = Person::new(email);
    match employee {
        Some(e) if !e.first_name.is_empty() || !e.last_name.is_empty() => person.named(
            format!("{} {}", e.first_name, e.last_name)
                .trim()
                .to_owned(),
        ),
        _ => person,
    }
}

fn target(kind: TargetKind, name: &str, level: &str) -> AccessTarget {
    let target = match kind {
        TargetKind::Group => AccessTarget::group(name),
        TargetKind::Resource => AccessTarget::resource(name),
    };
    if level.is_empty() {
        target
    } else {
        target.with_level(level)
    }
}

fn change(grant: &RevokedGrant) -> AccessChange {
    AccessChange::new(
        Person::new(&grant.email),
        target(
            grant.kind,
            &grant.target_name,
            &grant.access_level_remote_id,
        ),
    )
}

/// Shared so the sync loop and the status reporters see the same outbox.
pub type SharedNotifier = Option<Arc<Notifier>>;
