//! The end-to-end trials and the small framework that runs them against the shared cluster.
//!
//! Adding a trial: write `async fn some_behaviour(ctx: TestContext) -> Result<(), Failed>` in a
//! module of this folder and list it with `e2e_trial!(some_behaviour)` in that module's
//! `trials()`; a new module also goes into [`all`]. Each trial gets an admin client and a fresh
//! namespace of its own, so trials run in parallel against the one cluster.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use libtest_mimic::{Completion, Failed, Trial};

use crate::support::kube_cluster::ClusterAccess;

/// Registers a trial function under its module path, e.g. `cluster::server_version_is_recent`.
macro_rules! e2e_trial {
    ($function:ident) => {
        $crate::trials::E2eTrial::new(
            concat!(module_path!(), "::", stringify!($function)),
            $function,
        )
    };
}

mod chart;
mod cluster;
mod crds;
mod kinds;
mod operator;

/// Every registered trial, in the order they are listed.
pub fn all() -> Vec<E2eTrial> {
    [
        cluster::trials(),
        crds::trials(),
        kinds::trials(),
        chart::trials(),
        operator::trials(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Label put on every trial's namespace, valued with the trial's name.
pub const TRIAL_LABEL: &str = "opal-operator.io/e2e-trial";
// Generous: a trial may apply CRDs and wait on RBAC caches on two busy cores.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(180);

/// What each trial receives.
pub struct TestContext {
    /// Authenticated as `admin` in group `system:masters`.
    pub client: Client,
    /// Created for this trial only. Never deleted: without a controller-manager a deleted
    /// namespace would stay Terminating, and the whole cluster is thrown away afterwards anyway.
    pub namespace: String,
    pub cluster: ClusterAccess,
}

type TrialFuture = Pin<Box<dyn Future<Output = Result<Completion, Failed>> + Send>>;
type TrialBody = Box<dyn FnOnce(TestContext) -> TrialFuture + Send>;

pub struct E2eTrial {
    name: String,
    body: TrialBody,
}

impl E2eTrial {
    /// A trial that passes by returning `Ok(())`. `name` may carry this module's path as a
    /// prefix (as [`e2e_trial!`] does); it is stripped for shorter test names.
    pub fn new<F, Fut>(name: &str, body: F) -> Self
    where
        F: FnOnce(TestContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Failed>> + Send + 'static,
    {
        Self::ignorable(name, move |ctx| async move {
            body(ctx).await.map(|()| Completion::Completed)
        })
    }

    /// A trial that may decide at run time that it does not apply yet (reported as ignored,
    /// with the reason, rather than as a pass).
    pub fn ignorable<F, Fut>(name: &str, body: F) -> Self
    where
        F: FnOnce(TestContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Completion, Failed>> + Send + 'static,
    {
        let name = name
            .strip_prefix(concat!(module_path!(), "::"))
            .unwrap_or(name)
            .to_owned();
        Self {
            name,
            body: Box::new(move |ctx| Box::pin(body(ctx))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The libtest trial that runs this one on `runtime` against `cluster`.
    pub fn into_trial(self, runtime: tokio::runtime::Handle, cluster: ClusterAccess) -> Trial {
        let Self { name, body } = self;
        let trial_name = name.clone();
        Trial::ignorable_test(trial_name, move || {
            runtime.block_on(async move {
                let ctx = TestContext::create(cluster, &name).await?;
                match tokio::time::timeout(TRIAL_TIMEOUT, body(ctx)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("timed out after {TRIAL_TIMEOUT:?}").into()),
                }
            })
        })
    }

    /// A libtest trial that fails at once with `reason` (used when there is no cluster).
    pub fn into_failing_trial(self, reason: String) -> Trial {
        Trial::test(self.name, move || Err(reason.into()))
    }
}

impl TestContext {
    async fn create(cluster: ClusterAccess, trial_name: &str) -> Result<Self, Failed> {
        let client = cluster.admin_client().await?;
        let slug = dns_label_slug(trial_name, 50);
        let namespace = format!("e2e-{slug}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let manifest = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([(TRIAL_LABEL.to_owned(), slug)].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &manifest)
            .await
            .map_err(|error| format!("creating namespace {namespace}: {error}"))?;
        Ok(Self {
            client,
            namespace,
            cluster,
        })
    }

    pub fn kubeconfig_path(&self) -> &Path {
        self.cluster.kubeconfig_path()
    }
}

/// Lower-case alphanumerics and single dashes, at most `max_len` long, starting and ending with
/// an alphanumeric: valid both in a DNS label and as a label value.
fn dns_label_slug(text: &str, max_len: usize) -> String {
    let mut slug = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(max_len);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "trial".to_owned()
    } else {
        slug.to_owned()
    }
}
