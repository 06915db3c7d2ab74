//! The custom resources as the reflectors currently see them, turned into planner inputs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{AccessPolicy, Lockdown, ReviewSchedule, RoleMapping, SafetySpec};
use crate::engine::{LockdownInput, MappingInput, ObjectKey, PolicyInput};
use crate::manifests::Manifests;
use crate::standalone::safety_defaults_policy;

/// The kinds whose status shows the global plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    RoleMapping,
    AccessPolicy,
    Lockdown,
}

/// Reflector caches shared by the controllers and the sync loop.
#[derive(Clone)]
pub struct Stores {
    pub role_mappings: Store<RoleMapping>,
    pub access_policies: Store<AccessPolicy>,
    pub lockdowns: Store<Lockdown>,
    pub review_schedules: Store<ReviewSchedule>,
}

/// Planner inputs read from the caches at one moment.
pub struct Inputs {
    pub mappings: Vec<MappingInput>,
    pub policies: Vec<PolicyInput>,
    pub lockdowns: Vec<LockdownInput>,
    /// The AccessPolicies themselves, for what is not planning (offboarding notices).
    pub access_policies: Vec<AccessPolicy>,
    /// What the plan saw of every object: generation plus the annotations and deletion
    /// that change planning without bumping the generation.
    pub fingerprints: BTreeMap<(Kind, ObjectKey), String>,
    /// Lockdowns that are being deleted or have expired, whose release is still to be done.
    pub releasing: Vec<Lockdown>,
    /// When expiry was judged for `releasing`; plans from these inputs use the same moment,
    /// so a lockdown never expires in the plan without being released in the same sync.
    pub at: DateTime<Utc>,
}

impl Stores {
    /// Snapshot of the caches as planner inputs. `safety_defaults` joins as one more
    /// operator-namespace policy.
    pub fn inputs(
        &self,
        operator_namespace: &str,
        safety_defaults: Option<&SafetySpec>,
        now: DateTime<Utc>,
    ) -> Inputs {
        let manifests = Manifests {
            role_mappings: cloned(&self.role_mappings),
            access_policies: cloned(&self.access_policies),
            review_schedules: Vec::new(),
            lockdowns: cloned(&self.lockdowns),
            skipped: Vec::new(),
        };
        let mut fingerprints = BTreeMap::new();
        for object in &manifests.role_mappings {
            fingerprints.insert((Kind::RoleMapping, key_of(object)), fingerprint(object));
        }
        for object in &manifests.access_policies {
            fingerprints.insert((Kind::AccessPolicy, key_of(object)), fingerprint(object));
        }
        for object in &manifests.lockdowns {
            fingerprints.insert((Kind::Lockdown, key_of(object)), fingerprint(object));
        }
        let mut policies = manifests.policy_inputs();
        if let Some(safety) = safety_defaults {
            policies.push(safety_defaults_policy(operator_namespace, safety));
        }
        let lockdowns = manifests.lockdown_inputs();
        let releasing = lockdowns
            .iter()
            .zip(&manifests.lockdowns)
            .filter(|(input, _)| input.release_due(now))
            .map(|(_, object)| object.clone())
            .collect();
        Inputs {
            mappings: manifests.mapping_inputs(),
            policies,
            lockdowns,
            access_policies: manifests.access_policies,
            fingerprints,
            releasing,
            at: now,
        }
    }

    /// UIDs of the lockdowns in the cache.
    pub fn lockdown_uids(&self) -> std::collections::BTreeSet<String> {
        self.lockdowns
            .state()
            .iter()
            .filter_map(|l| l.metadata.uid.clone())
            .collect()
    }

    pub fn lockdown(&self, key: &ObjectKey) -> Option<std::sync::Arc<Lockdown>> {
        self.lockdowns
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    pub fn role_mapping(&self, key: &ObjectKey) -> Option<std::sync::Arc<RoleMapping>> {
        self.role_mappings
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    pub fn access_policy(&self, key: &ObjectKey) -> Option<std::sync::Arc<AccessPolicy>> {
        self.access_policies
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}

/// Finalizer that holds an Authoritative RoleMapping with `revokeOnDelete` until the grants
/// only it desired are revoked.
pub const REVOKE_ON_DELETE_FINALIZER: &str = "opal-operator.io/revoke-on-delete";

fn cloned<K: Clone + kube::Resource + 'static>(store: &Store<K>) -> Vec<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let mut objects: Vec<K> = store.state().iter().map(|o| (**o).clone()).collect();
    // The cache has no order; plans and Events should not depend on hash order.
    objects.sort_by(|a, b| {
        (a.meta().namespace.as_deref(), a.meta().name.as_deref())
            .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
    });
    objects
}

pub fn key_of<K: ResourceExt>(object: &K) -> ObjectKey {
    ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any())
}

/// Generation, the annotations the planner reads, and whether deletion started.
pub fn fingerprint<K: ResourceExt>(object: &K) -> String {
    let annotation = |key: &str| object.annotations().get(key).cloned().unwrap_or_default();
    format!(
        "{}|{}|{}|{}",
        generation(object),
        annotation(crate::crd::annotations::PAUSED),
        annotation(crate::crd::annotations::APPROVE_PLAN),
        object.meta().deletion_timestamp.is_some()
    )
}

pub fn generation<K: ResourceExt>(object: &K) -> i64 {
    object.meta().generation.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LockdownSpec, LockdownStatus, LockdownSubject};

    fn lockdown(
        expires_at: Option<DateTime<Utc>>,
        duration: Option<&str>,
        activated: Option<DateTime<Utc>>,
    ) -> Lockdown {
        let mut object = Lockdown::new(
            "incident",
            LockdownSpec {
                subjects: vec![LockdownSubject {
                    email: Some("ada@example.com".into()),
                    ..LockdownSubject::default()
                }],
                scope: None,
                break_glass: Vec::new(),
                reason: "test".into(),
                incident: None,
                expires_at,
                duration: duration.map(str::to_owned),
                restore_on_release: true,
                notify: Vec::new(),
            },
        );
        object.status = activated.map(|at| LockdownStatus {
            activated_at: Some(at),
            ..LockdownStatus::default()
        });
        object
    }

    #[test]
    fn the_fingerprint_changes_with_what_planning_reads() {
        let mut object = lockdown(None, Some("1h"), None);
        object.metadata.generation = Some(1);
        let first = fingerprint(&object);
        object
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::crd::annotations::PAUSED.into(), "true".into());
        let paused = fingerprint(&object);
        assert_ne!(first, paused);
        object
            .metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "x".into());
        assert_eq!(
            paused,
            fingerprint(&object),
            "labels do not change the plan"
        );
        object.metadata.generation = Some(2);
        assert_ne!(paused, fingerprint(&object));
    }
}
