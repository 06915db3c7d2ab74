//! The operator's custom resources (group `opal-operator.io`, version `v1alpha1`) and the
//! CustomResourceDefinitions generated from them.

mod access_policy;
mod common;
mod description;
mod lockdown;
mod review_schedule;
mod role_mapping;
mod rules;

pub use access_policy::*;
pub use common::*;
pub use lockdown::*;
pub use review_schedule::*;
pub use role_mapping::*;

/// Engine values the status of several kinds records as they are.
pub use crate::engine::{ChangeAction, PendingChange, RevokedGrant, Sensitivity, TargetKind};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every kind.
pub const API_GROUP: &str = "opal-operator.io";

/// Errors rendering the CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
}

impl CrdError {
    /// Stable low-cardinality name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CrdError::Render { .. } => "render",
        }
    }
}

/// Every CRD the operator owns, in a stable order, with descriptions reflowed into paragraphs.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        RoleMapping::crd(),
        AccessPolicy::crd(),
        ReviewSchedule::crd(),
        Lockdown::crd(),
    ];
    for version in crds.iter_mut().flat_map(|crd| crd.spec.versions.iter_mut()) {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|validation| validation.open_api_v3_schema.as_mut())
        {
            description::reflow_schema(schema);
        }
    }
    crds
}

/// One rendered CRD: the file name it is kept under in `crds/` and its YAML.
pub struct RenderedCrd {
    pub file_name: String,
    pub yaml: String,
}

/// Renders each CRD as the YAML document kept in `crds/<name>.yaml`.
pub fn render_crds() -> Result<Vec<RenderedCrd>, CrdError> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml::to_string(&crd).map_err(|source| CrdError::Render {
                name: name.clone(),
                source,
            })?;
            Ok(RenderedCrd {
                file_name: format!("{name}.yaml"),
                yaml,
            })
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream, as `opal-operator crds` prints it.
pub fn render_crds_stream() -> Result<String, CrdError> {
    Ok(render_crds()?
        .into_iter()
        .map(|crd| format!("---\n{}", crd.yaml))
        .collect())
}

#[cfg(test)]
mod tests;
