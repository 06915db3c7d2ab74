//! Trials for the checked-in CRDs as a whole; per-kind behaviour belongs in per-kind modules.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, ResourceExt};
use libtest_mimic::{Completion, Failed};

use super::{E2eTrial, TestContext};
use crate::support::crds::{apply_crds, crd_dir};

pub fn trials() -> Vec<E2eTrial> {
    vec![E2eTrial::ignorable(
        concat!(module_path!(), "::every_crd_is_established_and_served"),
        every_crd_is_established_and_served,
    )]
}

/// The resource a CRD serves at its storage version.
fn storage_resource(crd: &CustomResourceDefinition) -> Result<ApiResource, Failed> {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|version| version.storage)
        .ok_or_else(|| format!("CRD {} has no storage version", crd.name_any()))?;
    let group = &crd.spec.group;
    Ok(ApiResource {
        group: group.clone(),
        version: version.name.clone(),
        api_version: format!("{group}/{}", version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    })
}

/// Until the CRDs are checked in, `crds/` does not exist and the trial reports itself ignored;
/// once the directory exists, having no manifests in it is a failure.
async fn every_crd_is_established_and_served(ctx: TestContext) -> Result<Completion, Failed> {
    let dir = crd_dir();
    if !dir.exists() {
        return Ok(Completion::ignored_with(format!(
            "{} does not exist yet",
            dir.display()
        )));
    }
    let established = apply_crds(&ctx.client)
        .await
        .map_err(|error| format!("apply_crds ({}): {error}", error.label()))?;
    for crd in &established {
        let resource = storage_resource(crd)?;
        let objects: Api<DynamicObject> = if crd.spec.scope == "Namespaced" {
            Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &resource)
        } else {
            Api::all_with(ctx.client.clone(), &resource)
        };
        let listed = objects
            .list(&ListParams::default())
            .await
            .map_err(|error| format!("listing {}: {error}", resource.plural))?;
        if crd.spec.scope == "Namespaced" {
            assert!(
                listed.items.is_empty(),
                "fresh namespace already holds {}",
                resource.plural
            );
        }
    }
    Ok(Completion::Completed)
}
