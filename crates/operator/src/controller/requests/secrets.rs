//! Where the ledger's Secrets live: the apiserver, or this process's memory when the decider
//! runs without a cluster (the demo, benchmarks). The memory store answers the four calls the
//! ledger makes the way the apiserver does — 409 on a second create, 404 on patching or
//! deleting what is not there, `stringData` merged into `data` — so the ledger's own code is
//! the same on both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::Status;

#[derive(Clone)]
pub(super) enum SecretStore {
    Cluster(Box<Api<Secret>>),
    Memory(Arc<Mutex<BTreeMap<String, Secret>>>),
}

fn api_error(code: u16, reason: &str, name: &str) -> kube::Error {
    kube::Error::Api(
        Status::failure(&format!("secrets {name:?}: {reason}"), reason)
            .with_code(code)
            .boxed(),
    )
}

/// A Secret as the apiserver stores it: `stringData` folded into `data`.
fn stored(mut secret: Secret) -> Secret {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in strings {
            data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
        }
    }
    secret
}

/// `secret` after a JSON merge patch (RFC 7386), stored.
fn merged(secret: &Secret, patch: &serde_json::Value) -> Result<Secret, kube::Error> {
    let mut document = serde_json::to_value(secret).map_err(kube::Error::SerdeError)?;
    json_patch::merge(&mut document, patch);
    let patched: Secret = serde_json::from_value(document).map_err(kube::Error::SerdeError)?;
    Ok(stored(patched))
}

impl SecretStore {
    fn memory(map: &Mutex<BTreeMap<String, Secret>>) -> MutexGuard<'_, BTreeMap<String, Secret>> {
        map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn get_opt(&self, name: &str) -> Result<Option<Secret>, kube::Error> {
        match self {
            Self::Cluster(api) => api.get_opt(name).await,
            Self::Memory(map) => Ok(Self::memory(map).get(name).cloned()),
        }
    }

    pub(super) async fn create(&self, secret: &Secret) -> Result<(), kube::Error> {
        match self {
            Self::Cluster(api) => api.create(&PostParams::default(), secret).await.map(drop),
            Self::Memory(map) => {
                let name = secret.metadata.name.clone().unwrap_or_default();
                let mut secrets = Self::memory(map);
                if secrets.contains_key(&name) {
                    return Err(api_error(409, "AlreadyExists", &name));
                }
                secrets.insert(name, stored(secret.clone()));
                Ok(())
            }
        }
    }

    pub(super) async fn merge_patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<(), kube::Error> {
        match self {
            Self::Cluster(api) => api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(drop),
            Self::Memory(map) => {
                let mut secrets = Self::memory(map);
                let secret = secrets
                    .get(name)
                    .ok_or_else(|| api_error(404, "NotFound", name))?;
                let patched = merged(secret, patch)?;
                secrets.insert(name.to_owned(), patched);
                Ok(())
            }
        }
    }

    pub(super) async fn delete(&self, name: &str) -> Result<(), kube::Error> {
        match self {
            Self::Cluster(api) => api.delete(name, &Default::default()).await.map(drop),
            Self::Memory(map) => Self::memory(map)
                .remove(name)
                .map(drop)
                .ok_or_else(|| api_error(404, "NotFound", name)),
        }
    }
}
