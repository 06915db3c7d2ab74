//! The project's CustomResourceDefinitions as checked in under `crds/`, read at run time so the
//! tests always exercise the files users apply.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;

const FIELD_MANAGER: &str = "opal-operator-e2e";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing YAML in {}: {source}", path.display())]
    Yaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("a document in {} is not a CustomResourceDefinition: {source}", path.display())]
    NotACrd {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} holds no CustomResourceDefinition manifests (*.yaml or *.yml)", dir.display())]
    NoManifests { dir: PathBuf },
    #[error("server-side apply of CRD {name}: {source}")]
    Apply { name: String, source: kube::Error },
    #[error("watching CRD {name}: {source}")]
    Watch {
        name: String,
        source: kube::runtime::wait::Error,
    },
    #[error("CRD {name} not Established=True within {waited:?}")]
    NotEstablished { name: String, waited: Duration },
}

impl CrdError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Yaml { .. } => "yaml",
            Self::NotACrd { .. } => "not_a_crd",
            Self::NoManifests { .. } => "no_manifests",
            Self::Apply { .. } => "apply",
            Self::Watch { .. } => "watch",
            Self::NotEstablished { .. } => "not_established",
        }
    }
}

/// The checked-in CRD directory of this repository.
pub fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

/// Every CRD in `dir` (files sorted by name, multi-document YAML allowed, empty documents
/// skipped). An empty directory is an error: a missing CRD must never pass unnoticed.
pub fn load_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let read_error = |source| CrdError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let is_yaml = path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();

    let mut crds = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| CrdError::Read {
            path: path.clone(),
            source,
        })?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value =
                serde_json::Value::deserialize(document).map_err(|source| CrdError::Yaml {
                    path: path.clone(),
                    source,
                })?;
            if value.is_null() {
                continue;
            }
            let crd = serde_json::from_value(value).map_err(|source| CrdError::NotACrd {
                path: path.clone(),
                source,
            })?;
            crds.push(crd);
        }
    }
    if crds.is_empty() {
        return Err(CrdError::NoManifests {
            dir: dir.to_owned(),
        });
    }
    Ok(crds)
}

/// Applies every CRD from `crds/` with server-side apply and waits (bounded) until each is
/// `Established=True`. Safe to call from several tests at once: the apply is idempotent.
/// Returns the CRDs as the server reports them once established.
pub async fn apply_crds(client: &Client) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let manifests = load_crds(&crd_dir())?;
    for crd in &manifests {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|source| CrdError::Apply { name, source })?;
    }

    let mut established = Vec::with_capacity(manifests.len());
    for crd in &manifests {
        let name = crd.name_any();
        let wait = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISH_TIMEOUT, wait).await {
            Ok(Ok(Some(crd))) => established.push(crd),
            Ok(Ok(None)) | Err(_) => {
                return Err(CrdError::NotEstablished {
                    name,
                    waited: ESTABLISH_TIMEOUT,
                });
            }
            Ok(Err(source)) => return Err(CrdError::Watch { name, source }),
        }
    }
    Ok(established)
}
