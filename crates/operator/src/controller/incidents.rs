//! Alerts become Lockdowns: the webhook server's incident sink, backed by the cluster.

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;

use super::objects::key_of;
use crate::crd::{AccessPolicy, Lockdown};
use crate::webhooks::{IncidentPolicy, IncidentSink, LockdownCreated};

/// Creates Lockdowns for alerts, as the operator namespace's AccessPolicy says.
pub(super) struct KubeIncidentSink {
    pub(super) client: kube::Client,
    pub(super) policies: Store<AccessPolicy>,
    pub(super) operator_namespace: String,
}

impl IncidentSink for KubeIncidentSink {
    fn incident_policy(&self) -> Option<IncidentPolicy> {
        let mut candidates: Vec<_> = self
            .policies
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(&self.operator_namespace))
            .filter(|p| p.spec.incident_response.is_some())
            .collect();
        candidates.sort_by_key(|p| p.name_any());
        let policy = candidates.first()?;
        Some(IncidentPolicy {
            policy: key_of(&**policy),
            spec: policy.spec.incident_response.clone()?,
        })
    }

    fn create_lockdown(
        &self,
        lockdown: Lockdown,
    ) -> BoxFuture<'_, Result<LockdownCreated, String>> {
        async move {
            let namespace = lockdown
                .namespace()
                .unwrap_or_else(|| self.operator_namespace.clone());
            let api: Api<Lockdown> = Api::namespaced(self.client.clone(), &namespace);
            match api.create(&PostParams::default(), &lockdown).await {
                Ok(_) => Ok(LockdownCreated::Created),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Ok(LockdownCreated::AlreadyExists)
                }
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
    }
}
