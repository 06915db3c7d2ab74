//! Packaging checks: the Helm chart in `charts/opal-operator` and the GitOps
//! examples in `examples/`, on their own and against the test kube-apiserver.
//!
//! * `helm lint` with the default and the full values, and the values schema refusing bad ones;
//! * `helm template` of the default values pinned in `tests/golden/chart-default.yaml`; after an
//!   intended change, regenerate it with `UPDATE_GOLDEN=1 cargo test --test e2e chart::`;
//! * the chart's `crds/` byte-for-byte the repository's `crds/`;
//! * the rendered Deployment hardened, its config accepted by the operator's own parser and
//!   every credential the config names supplied from a Secret;
//! * the RBAC: exactly the rules the operator uses, no wildcards; and, authenticated as the
//!   chart's ServiceAccount (TokenRequest token, RBAC authorization on), what the chart grants
//!   works and everything else is Forbidden;
//! * the chart rendered with default and with full values, server-side dry-run (`dryRun=All`,
//!   unknown fields rejected) and then applied; a kind whose CRD the bare API server lacks
//!   (ServiceMonitor) is reported and skipped;
//! * every GitOps example server-side dry-run against the CRDs, and the health checks they
//!   document consistent with the CRDs.
//!
//! helm is the binary named by `OPAL_OPERATOR_HELM` (scripts/test.sh exports it), else the one
//! `scripts/install-helm.sh --print-path` names. Without it the helm trials fail under `CI` and
//! are reported ignored, with the reason, otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use libtest_mimic::{Completion, Failed};
use opal_operator::config::OperatorConfig;
use opal_operator::crd::{Lockdown, RoleMapping};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{E2eTrial, TestContext};
use crate::support::crds::{apply_crds, crd_dir};

/// Registers a trial that may report itself ignored (helm missing outside CI).
macro_rules! ignorable_trial {
    ($function:ident) => {
        E2eTrial::ignorable(
            concat!(module_path!(), "::", stringify!($function)),
            $function,
        )
    };
}

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(chart_crds_are_copies_of_the_repository_crds),
        ignorable_trial!(helm_lint_passes_and_the_schema_refuses_bad_values),
        ignorable_trial!(default_values_render_the_golden_output),
        ignorable_trial!(deployment_is_hardened_and_wired_to_its_config),
        ignorable_trial!(rendered_config_is_accepted_and_its_credentials_come_from_secrets),
        ignorable_trial!(rbac_grants_exactly_the_verbs_the_operator_uses),
        ignorable_trial!(default_values_dry_run_then_apply),
        ignorable_trial!(full_values_dry_run_then_apply),
        ignorable_trial!(helm_install_succeeds_and_its_notes_name_the_secrets_to_create),
        ignorable_trial!(service_account_can_do_what_the_chart_grants_and_nothing_else),
        ignorable_trial!(watch_namespace_confines_the_service_account_to_that_namespace),
        e2e_trial!(gitops_examples_pass_server_side_dry_run),
        e2e_trial!(gitops_health_checks_cover_every_kind_and_match_the_readme),
    ]
}

const HELM_ENV: &str = "OPAL_OPERATOR_HELM";
const HELM_INSTALL_SCRIPT: &str = "scripts/install-helm.sh";
const CHART_DIR: &str = "charts/opal-operator";
const FULL_VALUES: &str = "charts/opal-operator/ci/full-values.yaml";
const GOLDEN: &str = "tests/golden/chart-default.yaml";
/// The namespace `watchNamespace` names in the full values; it must exist before install.
const FULL_VALUES_WATCH_NAMESPACE: &str = "opal-tenants";
const FIELD_MANAGER: &str = "opal-operator-chart-e2e";
/// Kinds the chart may render whose CRDs a bare API server does not have.
const OPTIONAL_KINDS: [(&str, &str); 1] = [("monitoring.coreos.com/v1", "ServiceMonitor")];
// RBAC changes reach the authorizer through informers, a little after the write returns.
const RBAC_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// helm

/// The helm binary, run with throw-away home directories and no kubeconfig: rendering must
/// never depend on (or touch) anything outside the test.
pub struct Helm {
    binary: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// `Ok(None)`: helm is missing and this is not CI, so the caller skips (the reason is
    /// printed). Under `CI`, missing helm is a failure.
    pub fn locate() -> Result<Option<Self>, Failed> {
        let binary = match std::env::var_os(HELM_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!("{HELM_ENV}={} is not a file", path.display()).into());
                }
                Some(path)
            }
            None => installed_helm(),
        };
        match binary {
            Some(binary) => Ok(Some(Self {
                binary,
                home: tempfile::tempdir()?,
            })),
            None if std::env::var_os("CI").is_some() => Err(format!(
                "helm is missing under CI: set {HELM_ENV} or run `bash {HELM_INSTALL_SCRIPT}`"
            )
            .into()),
            None => {
                eprintln!("SKIPPED: {}", helm_missing());
                Ok(None)
            }
        }
    }

    async fn output(&self, args: &[&str]) -> Result<std::process::Output, Failed> {
        let home = self.home.path();
        tokio::process::Command::new(&self.binary)
            .args(args)
            .current_dir(repo())
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("KUBECONFIG", home.join("no-kubeconfig"))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|error| format!("running {}: {error}", self.binary.display()).into())
    }

    /// Runs helm and returns its standard output; a non-zero exit fails with its stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String, Failed> {
        let output = self.output(args).await?;
        if !output.status.success() {
            return Err(format!(
                "helm {} exited with {}:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        String::from_utf8(output.stdout).map_err(|error| format!("helm output: {error}").into())
    }

    /// Runs helm expecting it to fail; returns its stderr.
    async fn run_failing(&self, args: &[&str]) -> Result<String, Failed> {
        let output = self.output(args).await?;
        if output.status.success() {
            return Err(format!("helm {} succeeded, expected a failure", args.join(" ")).into());
        }
        Ok(String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// `helm template <release> charts/opal-operator --namespace <namespace> <extra...>`.
    pub async fn template(
        &self,
        release: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Result<String, Failed> {
        let mut args = vec!["template", release, CHART_DIR, "--namespace", namespace];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// The rendered objects, parsed.
    pub async fn render(
        &self,
        release: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Result<Vec<Value>, Failed> {
        documents(&self.template(release, namespace, extra).await?)
    }
}

fn helm_missing() -> String {
    format!("helm not found: set {HELM_ENV} or run `bash {HELM_INSTALL_SCRIPT}`")
}

/// The cached binary the install script would print, if it is there.
fn installed_helm() -> Option<PathBuf> {
    let output = std::process::Command::new("bash")
        .arg(repo().join(HELM_INSTALL_SCRIPT))
        .arg("--print-path")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// Locates helm or returns from the trial: ignored (outside CI) or failed (under CI).
macro_rules! helm_or_skip {
    () => {
        match Helm::locate()? {
            Some(helm) => helm,
            None => return Ok(Completion::ignored_with(helm_missing())),
        }
    };
}

/// A release name of this trial's own, so cluster-scoped objects never collide.
fn unique_release() -> String {
    format!("opal-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

// ---------------------------------------------------------------------------------------------
// manifests

/// Every non-empty YAML document in `text`.
fn documents(text: &str) -> Result<Vec<Value>, Failed> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|error| format!("YAML: {error}"))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(object: &Value) -> &str {
    str_at(object, "/kind")
}

fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name")
}

fn describe(object: &Value) -> String {
    format!("{}/{}", kind(object), name(object))
}

fn of_kind<'a>(objects: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind(o) == wanted).collect()
}

fn only<'a>(objects: &'a [Value], wanted: &str) -> Result<&'a Value, Failed> {
    match of_kind(objects, wanted).as_slice() {
        [object] => Ok(object),
        other => Err(format!("expected one {wanted}, rendered {}", other.len()).into()),
    }
}

/// `error` with `context` in front of its message.
fn within(context: &str, error: Failed) -> Failed {
    format!("{context}: {}", error.message().unwrap_or("failed")).into()
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Failed> {
    serde_json::from_value(value).map_err(|error| format!("typed object: {error}").into())
}

// ---------------------------------------------------------------------------------------------
// server-side apply of arbitrary manifests

/// Applies manifests of any kind with server-side apply and strict field validation, resolving
/// each kind through discovery (cached).
struct Applier {
    client: Client,
    resources: HashMap<(String, String), Option<(ApiResource, Scope)>>,
}

/// What a pass over the manifests did not apply because the server does not serve the kind.
type NotServed = Vec<String>;

impl Applier {
    fn new(client: Client) -> Self {
        Self {
            client,
            resources: HashMap::new(),
        }
    }

    async fn resolve(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, Scope)>, Failed> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(resolved) = self.resources.get(&key) {
            return Ok(resolved.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resolved = match pinned_kind(&self.client, &gvk).await {
            Ok((resource, capabilities)) => Some((resource, capabilities.scope)),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(error) => return Err(format!("discovering {api_version} {kind}: {error}").into()),
        };
        self.resources.insert(key, resolved.clone());
        Ok(resolved)
    }

    /// Applies (or with `dry_run`, only validates) every object; namespaced objects without a
    /// namespace go to `namespace`. Returns the kinds the server does not serve, untouched.
    async fn apply(
        &mut self,
        objects: &[Value],
        namespace: &str,
        dry_run: bool,
    ) -> Result<NotServed, Failed> {
        let mut not_served = Vec::new();
        for object in objects {
            let api_version = str_at(object, "/apiVersion");
            let Some((resource, scope)) = self.resolve(api_version, kind(object)).await? else {
                not_served.push(format!("{api_version} {}", describe(object)));
                continue;
            };
            let api: Api<DynamicObject> = match scope {
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
                Scope::Namespaced => {
                    let target = object
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(namespace);
                    Api::namespaced_with(self.client.clone(), target, &resource)
                }
            };
            let mut params = PatchParams::apply(FIELD_MANAGER)
                .force()
                .validation_strict();
            if dry_run {
                params = params.dry_run();
            }
            let what = if dry_run { "dry run of" } else { "apply of" };
            let stored = api
                .patch(name(object), &params, &Patch::Apply(object))
                .await
                .map_err(|error| format!("{what} {}: {error}", describe(object)))?;
            if !dry_run && stored.metadata.uid.is_none() {
                return Err(format!("{} was not stored", describe(object)).into());
            }
        }
        Ok(not_served)
    }
}

/// Fails unless every kind left out is one the chart may render without its CRD present.
fn only_optional_kinds(not_served: &[String]) -> Result<(), Failed> {
    for skipped in not_served {
        let optional = OPTIONAL_KINDS
            .iter()
            .any(|(api_version, kind)| skipped.starts_with(&format!("{api_version} {kind}/")));
        if !optional {
            return Err(format!("the API server does not serve {skipped}").into());
        }
        eprintln!("chart: not applied, CRD not installed on the test API server: {skipped}");
    }
    Ok(())
}

pub(crate) async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), Failed> {
    let manifest: Namespace = typed(json!({"metadata": {"name": namespace}}))?;
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &manifest)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(format!("creating namespace {namespace}: {error}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// the chart's ServiceAccount

/// A client authenticated as the chart's ServiceAccount.
pub struct ChartIdentity {
    pub client: Client,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub username: String,
    /// The chart's rendered RBAC objects and ServiceAccount.
    pub objects: Vec<Value>,
}

/// Renders the chart's ServiceAccount and RBAC (release namespace: the trial's, plus `values`),
/// applies them, and returns a client with a TokenRequest token for that ServiceAccount — once
/// the server allows every rule the chart grants (RBAC reaches the authorizer asynchronously).
/// The CRDs are not applied here.
pub async fn chart_service_account_client(
    ctx: &TestContext,
    helm: &Helm,
    values: &[&str],
) -> Result<ChartIdentity, Failed> {
    let mut extra = vec![
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ];
    extra.extend_from_slice(values);
    let objects = helm
        .render(&unique_release(), &ctx.namespace, &extra)
        .await?;
    Applier::new(ctx.client.clone())
        .apply(&objects, &ctx.namespace, false)
        .await?;

    let account = name(only(&objects, "ServiceAccount")?).to_owned();
    let token_request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ctx.namespace)
        .create_token_request(&account, &PostParams::default(), &token_request)
        .await?
        .status
        .and_then(|status| status.token)
        .ok_or("TokenRequest returned no token")?;
    let client = ctx.cluster.client_with_token(&token).await?;
    for (namespace, attributes) in granted_attributes(&objects, &ctx.namespace) {
        await_allowed(&client, namespace, attributes).await?;
    }
    Ok(ChartIdentity {
        client,
        username: format!("system:serviceaccount:{}:{account}", ctx.namespace),
        objects,
    })
}

/// One access check per (group, resource, verb) each rendered Role/ClusterRole grants, in the
/// Role's namespace (or `cluster_namespace` for ClusterRoles).
fn granted_attributes(
    objects: &[Value],
    cluster_namespace: &str,
) -> Vec<(String, ResourceAttributes)> {
    let mut checks = Vec::new();
    for role in objects
        .iter()
        .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
    {
        let namespace = role
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(cluster_namespace);
        for rule in rules(role) {
            let name = rule.resource_names.first().cloned();
            for (group, resource, verb) in rule.triples() {
                let (resource, subresource) = match resource.split_once('/') {
                    Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
                    None => (resource, None),
                };
                checks.push((
                    namespace.to_owned(),
                    ResourceAttributes {
                        group: Some(group),
                        resource: Some(resource),
                        subresource,
                        verb: Some(verb),
                        name: name.clone(),
                        namespace: Some(namespace.to_owned()),
                        ..ResourceAttributes::default()
                    },
                ));
            }
        }
    }
    checks
}

/// Polls a SelfSubjectAccessReview until the server allows it (bounded).
async fn await_allowed(
    client: &Client,
    namespace: String,
    attributes: ResourceAttributes,
) -> Result<(), Failed> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes.clone()),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let answer = reviews.create(&PostParams::default(), &review).await?;
        if answer.status.is_some_and(|status| status.allowed) {
            return Ok(());
        }
        if started.elapsed() > RBAC_PROPAGATION_TIMEOUT {
            return Err(format!(
                "the chart grants {:?} {:?}/{:?} {:?} in {namespace}, but the server still \
                 denies it after {RBAC_PROPAGATION_TIMEOUT:?}",
                attributes.verb, attributes.group, attributes.resource, attributes.subresource
            )
            .into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn expect_forbidden<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
    what: &str,
    username: &str,
) -> Result<(), Failed> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            if status.message.contains(username) {
                Ok(())
            } else {
                Err(format!("{what}: 403 does not name {username}: {}", status.message).into())
            }
        }
        other => {
            Err(format!("{what}: expected 403 Forbidden for {username}, got {other:?}").into())
        }
    }
}

fn allowed<T>(result: Result<T, kube::Error>, what: &str) -> Result<T, Failed> {
    result.map_err(|error| format!("{what} should be allowed: {error}").into())
}

// ---------------------------------------------------------------------------------------------
// RBAC rules

struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

impl Rule {
    fn triples(&self) -> Vec<(String, String, String)> {
        let mut triples = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    triples.push((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
        triples
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn rules(role: &Value) -> Vec<Rule> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|rule| Rule {
                    api_groups: strings(rule.get("apiGroups")),
                    resources: strings(rule.get("resources")),
                    verbs: strings(rule.get("verbs")),
                    resource_names: strings(rule.get("resourceNames")),
                })
                .collect()
        })
        .unwrap_or_default()
}

type Triples = BTreeSet<(String, String, String)>;

fn triples_of(role: &Value) -> Triples {
    rules(role).iter().flat_map(Rule::triples).collect()
}

fn triples(spec: &[(&str, &[&str], &[&str])]) -> Triples {
    let mut set = BTreeSet::new();
    for (group, resources, verbs) in spec {
        for resource in *resources {
            for verb in *verbs {
                set.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
    set
}

/// What the operator does with the API in the namespaces it watches (see templates/rbac.yaml).
fn expected_watch_rules() -> Triples {
    triples(&[
        (
            "opal-operator.io",
            &["rolemappings", "accesspolicies", "reviewschedules"],
            &["get", "list", "watch", "patch"],
        ),
        (
            "opal-operator.io",
            &["lockdowns"],
            &["get", "list", "watch", "patch", "create"],
        ),
        (
            "opal-operator.io",
            &[
                "rolemappings/status",
                "accesspolicies/status",
                "reviewschedules/status",
                "lockdowns/status",
            ],
            &["get", "patch"],
        ),
        ("events.k8s.io", &["events"], &["create", "patch"]),
    ])
}

/// The operator namespace's Lockdown records: the only Secrets it may write.
fn expected_record_rules() -> Triples {
    triples(&[("", &["secrets"], &["get", "create", "patch", "delete"])])
}

fn expected_lease_rules() -> Triples {
    triples(&[(
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "patch"],
    )])
}

// ---------------------------------------------------------------------------------------------
// trials that need no helm

async fn chart_crds_are_copies_of_the_repository_crds(_ctx: TestContext) -> Result<(), Failed> {
    let listing = |dir: &Path| -> Result<BTreeMap<String, Vec<u8>>, Failed> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry?.path();
            if path.is_file() {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.insert(name, std::fs::read(&path)?);
            }
        }
        Ok(files)
    };
    let repository = listing(&crd_dir())?;
    let chart = listing(&repo().join(CHART_DIR).join("crds"))?;
    let fix = "copy them: cp crds/*.yaml charts/opal-operator/crds/";
    let repository_names: Vec<_> = repository.keys().collect();
    let chart_names: Vec<_> = chart.keys().collect();
    if repository_names != chart_names {
        return Err(format!(
            "chart crds/ holds {chart_names:?}, the repository's crds/ {repository_names:?}; {fix}"
        )
        .into());
    }
    for (file, contents) in &repository {
        if chart.get(file) != Some(contents) {
            return Err(format!(
                "charts/opal-operator/crds/{file} differs from crds/{file}; {fix}"
            )
            .into());
        }
    }
    Ok(())
}

/// The GitOps manifests: every YAML file under `examples/` except the demo's, the simulator
/// fixture, kustomize files and the gitops/ folder (other tools' kinds and a ConfigMap patch).
fn example_manifests() -> Result<Vec<(PathBuf, Vec<Value>)>, Failed> {
    let root = repo().join("examples");
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(&root)?.to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(relative.as_str(), "demo" | "gitops") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "kustomization.yaml")
                && relative != "opal-sim-fixture.yaml"
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let objects = documents(&text).map_err(|e| within(&path.display().to_string(), e))?;
            Ok((path, objects))
        })
        .collect()
}

/// Every `resources:` entry of every kustomization.yaml under examples/ exists.
fn check_kustomizations() -> Result<(), Failed> {
    let root = repo().join("examples");
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        let kustomization = dir.join("kustomization.yaml");
        if kustomization.is_file() {
            let text = std::fs::read_to_string(&kustomization)?;
            let value: Value = serde_yaml::from_str(&text)?;
            for resource in strings(value.get("resources")) {
                if !dir.join(&resource).exists() {
                    return Err(format!(
                        "{} lists {resource}, which does not exist",
                        kustomization.display()
                    )
                    .into());
                }
            }
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "demo") {
                pending.push(path);
            }
        }
    }
    Ok(())
}

async fn gitops_examples_pass_server_side_dry_run(ctx: TestContext) -> Result<(), Failed> {
    check_kustomizations()?;
    apply_crds(&ctx.client).await?;
    let mut applier = Applier::new(ctx.client.clone());
    let mut kinds = BTreeSet::new();
    let manifests = example_manifests()?;
    for (path, objects) in manifests {
        if objects.is_empty() {
            return Err(format!("{} holds no manifests", path.display()).into());
        }
        // The examples name their namespaces (opal-system, data-team); the dry run puts every
        // namespaced object into the trial's namespace, which exists.
        let objects: Vec<Value> = objects
            .into_iter()
            .map(|mut object| {
                if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("namespace");
                }
                object
            })
            .collect();
        let not_served = applier
            .apply(&objects, &ctx.namespace, true)
            .await
            .map_err(|e| within(&path.display().to_string(), e))?;
        if !not_served.is_empty() {
            return Err(format!("{}: not served: {not_served:?}", path.display()).into());
        }
        kinds.extend(objects.iter().map(|o| kind(o).to_owned()));
    }
    for wanted in ["RoleMapping", "AccessPolicy", "ReviewSchedule", "Lockdown"] {
        if !kinds.contains(wanted) {
            return Err(format!("no example of {wanted} (examples hold {kinds:?})").into());
        }
    }
    Ok(())
}

/// The README's Lua block, from its ```lua fence to the closing fence.
fn readme_lua(readme: &str) -> Option<String> {
    let start = readme.find("```lua\n")? + "```lua\n".len();
    let end = readme[start..].find("```")? + start;
    Some(readme[start..end].to_owned())
}

async fn gitops_health_checks_cover_every_kind_and_match_the_readme(
    _ctx: TestContext,
) -> Result<(), Failed> {
    let gitops = repo().join("examples/gitops");
    let crd_kinds: BTreeSet<String> = crate::support::crds::load_crds(&crd_dir())?
        .into_iter()
        .map(|crd| crd.spec.names.kind)
        .collect();

    // Flux: one healthCheckExprs entry per kind, each with current and failed expressions.
    let flux = documents(&std::fs::read_to_string(gitops.join("flux.yaml"))?)?;
    let kustomization = only(&flux, "Kustomization")?;
    assert_eq!(
        kustomization.pointer("/spec/wait"),
        Some(&json!(true)),
        "the Flux Kustomization must wait for health"
    );
    let exprs = kustomization
        .pointer("/spec/healthCheckExprs")
        .and_then(Value::as_array)
        .ok_or("flux.yaml: no healthCheckExprs")?;
    let mut flux_kinds = BTreeSet::new();
    for expr in exprs {
        assert_eq!(str_at(expr, "/apiVersion"), "opal-operator.io/v1alpha1");
        for field in ["current", "failed", "inProgress"] {
            if str_at(expr, &format!("/{field}")).is_empty() {
                return Err(format!("flux.yaml: {} lacks {field}", kind(expr)).into());
            }
        }
        flux_kinds.insert(kind(expr).to_owned());
    }
    assert_eq!(
        flux_kinds, crd_kinds,
        "Flux health checks vs the CRDs' kinds"
    );

    // Argo CD: the same script for every kind, identical to the one the README shows.
    let patch: Value = serde_yaml::from_str(&std::fs::read_to_string(
        gitops.join("argocd-cm-health.yaml"),
    )?)?;
    let data = patch
        .get("data")
        .and_then(Value::as_object)
        .ok_or("argocd-cm-health.yaml: no data")?;
    let prefix = "resource.customizations.health.opal-operator.io_";
    let argo_kinds: BTreeSet<String> = data
        .keys()
        .filter_map(|key| key.strip_prefix(prefix).map(str::to_owned))
        .collect();
    assert_eq!(
        argo_kinds, crd_kinds,
        "Argo CD health checks vs the CRDs' kinds"
    );
    let scripts: BTreeSet<&str> = data.values().filter_map(Value::as_str).collect();
    assert_eq!(scripts.len(), 1, "the kinds' Lua scripts differ");
    let readme = std::fs::read_to_string(repo().join("examples/README.md"))?;
    let documented = readme_lua(&readme).ok_or("examples/README.md has no ```lua block")?;
    assert_eq!(
        scripts.first().copied(),
        Some(documented.as_str()),
        "the README's Lua differs from argocd-cm-health.yaml"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// trials that need helm

async fn helm_lint_passes_and_the_schema_refuses_bad_values(
    _ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    helm.run(&["lint", "--strict", CHART_DIR]).await?;
    helm.run(&["lint", "--strict", CHART_DIR, "--values", FULL_VALUES])
        .await?;

    // Each bad value is refused by values.schema.json, naming the offending field.
    let refused = [
        ("logFormat=xml", "/logFormat"),
        ("hris.source=gusto", "/hris/source"),
        // An inline credential where a reference belongs.
        ("config.opal.token.value=hunter2", "/config/opal/token"),
        ("replicaCount=-1", "/replicaCount"),
        ("rbac.create=maybe", "/rbac/create"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
    ];
    for (setting, field) in refused {
        let stderr = helm
            .run_failing(&["template", "x", CHART_DIR, "--set", setting])
            .await?;
        if !stderr.contains(field) {
            return Err(
                format!("--set {setting}: the error does not name {field}:\n{stderr}").into(),
            );
        }
    }
    Ok(Completion::Completed)
}

async fn default_values_render_the_golden_output(_ctx: TestContext) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    let rendered = helm.template("opal-operator", "opal-system", &[]).await?;
    let golden = repo().join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered)?;
    }
    let expected = std::fs::read_to_string(&golden)
        .map_err(|error| format!("{}: {error} (UPDATE_GOLDEN=1 writes it)", golden.display()))?;
    if rendered != expected {
        let first_difference = rendered
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one output is a prefix of the other".to_owned(),
                |line| format!("first difference at line {}", line + 1),
            );
        return Err(format!(
            "helm template output differs from {GOLDEN} ({first_difference}); after an \
             intended change run UPDATE_GOLDEN=1 cargo test --test e2e chart::"
        )
        .into());
    }
    Ok(Completion::Completed)
}

fn container(deployment: &Value) -> Result<&Value, Failed> {
    deployment
        .pointer("/spec/template/spec/containers/0")
        .ok_or_else(|| "the Deployment has no container".into())
}

/// Names of the container's environment variables filled from Secret keys.
fn secret_env(container: &Value) -> BTreeSet<String> {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|env| env.pointer("/valueFrom/secretKeyRef/key").is_some())
        .map(|env| str_at(env, "/name").to_owned())
        .collect()
}

async fn deployment_is_hardened_and_wired_to_its_config(
    _ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    let objects = helm.render("opal-operator", "opal-system", &[]).await?;
    let deployment = only(&objects, "Deployment")?;
    let pod = deployment
        .pointer("/spec/template/spec")
        .ok_or("no pod spec")?;
    let operator = container(deployment)?;
    let pod_labels = deployment
        .pointer("/spec/template/metadata/labels")
        .ok_or("no pod labels")?;

    assert_eq!(deployment.pointer("/spec/replicas"), Some(&json!(2)));
    // Non-root, read-only root filesystem, no privilege escalation, no capabilities, seccomp.
    assert_eq!(
        pod.pointer("/securityContext/runAsNonRoot"),
        Some(&json!(true))
    );
    assert_eq!(
        str_at(pod, "/securityContext/seccompProfile/type"),
        "RuntimeDefault"
    );
    let security = operator
        .get("securityContext")
        .ok_or("no securityContext")?;
    assert_eq!(security.get("runAsNonRoot"), Some(&json!(true)));
    assert_eq!(security.get("readOnlyRootFilesystem"), Some(&json!(true)));
    assert_eq!(
        security.get("allowPrivilegeEscalation"),
        Some(&json!(false))
    );
    assert_eq!(
        security.pointer("/capabilities/drop"),
        Some(&json!(["ALL"]))
    );
    assert!(security.pointer("/capabilities/add").is_none());
    assert_eq!(str_at(security, "/seccompProfile/type"), "RuntimeDefault");
    // Probes on the operator's endpoints, over the named port the Service targets.
    assert_eq!(str_at(operator, "/livenessProbe/httpGet/path"), "/healthz");
    assert_eq!(str_at(operator, "/readinessProbe/httpGet/path"), "/readyz");
    assert_eq!(str_at(operator, "/livenessProbe/httpGet/port"), "http");
    assert_eq!(str_at(operator, "/readinessProbe/httpGet/port"), "http");
    assert_eq!(operator.pointer("/ports/0/name"), Some(&json!("http")));
    assert_eq!(
        operator.pointer("/ports/0/containerPort"),
        Some(&json!(8080))
    );
    for (bound, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        if operator
            .pointer(&format!("/resources/{bound}/{resource}"))
            .is_none()
        {
            return Err(format!("no resources.{bound}.{resource}").into());
        }
    }
    // The leader-election identity comes from the downward API.
    let env = operator
        .get("env")
        .and_then(Value::as_array)
        .ok_or("no env")?;
    let pod_name = env
        .iter()
        .find(|e| str_at(e, "/name") == "POD_NAME")
        .ok_or("no POD_NAME")?;
    assert_eq!(
        str_at(pod_name, "/valueFrom/fieldRef/fieldPath"),
        "metadata.name"
    );
    // Without watchNamespace the operator watches every namespace.
    assert!(env.iter().all(|e| str_at(e, "/name") != "WATCH_NAMESPACE"));
    // Credentials only through secretKeyRef, never as literal values.
    for variable in env {
        if variable.get("value").is_some() {
            return Err(
                format!("env {} carries a literal value", str_at(variable, "/name")).into(),
            );
        }
    }
    assert!(secret_env(operator).contains("OPAL_API_TOKEN"));
    let args = strings(operator.get("args"));
    assert_eq!(
        args,
        [
            "run",
            "--config",
            "/etc/opal-operator/config.yaml",
            "--lease-name",
            "opal-operator",
            "--log-format",
            "json"
        ]
    );
    // The config file comes from the chart's ConfigMap, mounted where --config points.
    let config_map = only(&objects, "ConfigMap")?;
    let config_volume = pod
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| volumes.iter().find(|v| v.get("configMap").is_some()))
        .ok_or("no ConfigMap volume")?;
    assert_eq!(
        str_at(config_volume, "/configMap/name"),
        name(config_map),
        "the volume mounts another ConfigMap"
    );
    let mount = operator
        .get("volumeMounts")
        .and_then(Value::as_array)
        .and_then(|mounts| {
            mounts
                .iter()
                .find(|m| str_at(m, "/name") == str_at(config_volume, "/name"))
        })
        .ok_or("the ConfigMap volume is not mounted")?;
    assert_eq!(str_at(mount, "/mountPath"), "/etc/opal-operator");
    assert!(
        config_map.pointer("/data/config.yaml").is_some(),
        "the ConfigMap has no config.yaml"
    );
    // The Service, PodDisruptionBudget and NetworkPolicy select exactly the operator's pods.
    let selects_pods = |selector: Option<&Value>, what: &str| -> Result<(), Failed> {
        let selector = selector
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{what} has no selector"))?;
        for (key, value) in selector {
            if pod_labels.get(key) != Some(value) {
                return Err(format!("{what} selects {key}={value}, which the pods lack").into());
            }
        }
        Ok(())
    };
    let service = only(&objects, "Service")?;
    selects_pods(service.pointer("/spec/selector"), "the Service")?;
    assert_eq!(service.pointer("/spec/ports/0/name"), Some(&json!("http")));
    assert_eq!(
        service.pointer("/spec/ports/0/targetPort"),
        Some(&json!("http"))
    );
    selects_pods(
        only(&objects, "PodDisruptionBudget")?.pointer("/spec/selector/matchLabels"),
        "the PodDisruptionBudget",
    )?;
    selects_pods(
        only(&objects, "NetworkPolicy")?.pointer("/spec/podSelector/matchLabels"),
        "the NetworkPolicy",
    )?;
    assert!(
        of_kind(&objects, "ServiceMonitor").is_empty(),
        "ServiceMonitor is off by default"
    );

    // With full values: the watch namespace reaches the operator, the image is pinned by digest
    // and the optional ServiceMonitor scrapes /metrics on the http port.
    let full = helm
        .render("opal", "opal-system", &["--values", FULL_VALUES])
        .await?;
    let full_operator = container(only(&full, "Deployment")?)?;
    let watch = full_operator
        .get("env")
        .and_then(Value::as_array)
        .and_then(|env| env.iter().find(|e| str_at(e, "/name") == "WATCH_NAMESPACE"))
        .ok_or("full values: no WATCH_NAMESPACE")?;
    assert_eq!(str_at(watch, "/value"), FULL_VALUES_WATCH_NAMESPACE);
    assert!(str_at(full_operator, "/image").contains("@sha256:"));
    let monitor = only(&full, "ServiceMonitor")?;
    assert_eq!(str_at(monitor, "/spec/endpoints/0/port"), "http");
    assert_eq!(str_at(monitor, "/spec/endpoints/0/path"), "/metrics");
    Ok(Completion::Completed)
}

/// Every `{env: NAME}`, `{file: PATH}` and `{secretKeyRef: {name}}` reference in the config.
#[derive(Default)]
struct CredentialRefs {
    env: BTreeSet<String>,
    files: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

fn collect_refs(value: &Value, refs: &mut CredentialRefs) {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some(Value::String(variable)) = map.get("env") {
                    refs.env.insert(variable.clone());
                }
                if let Some(Value::String(path)) = map.get("file") {
                    refs.files.insert(path.clone());
                }
                if let Some(secret) = map.get("secretKeyRef") {
                    refs.secrets.insert(str_at(secret, "/name").to_owned());
                }
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

async fn rendered_config_is_accepted_and_its_credentials_come_from_secrets(
    _ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    for values in [&[][..], &["--values", FULL_VALUES][..]] {
        let label = if values.is_empty() { "default" } else { "full" };
        let objects = helm.render("opal", "security", values).await?;
        let text = str_at(only(&objects, "ConfigMap")?, "/data/config.yaml");
        // The operator's own parser and validation: unknown fields, inline secrets and bad
        // values are rejected there, naming the field.
        OperatorConfig::from_yaml_str(text)
            .map_err(|error| format!("{label} values: the operator rejects its config: {error}"))?;
        let config: Value = serde_yaml::from_str(text)?;
        assert_eq!(str_at(&config, "/operatorNamespace"), "security", "{label}");
        assert_eq!(str_at(&config, "/server/listen"), "0.0.0.0:8080", "{label}");

        let mut refs = CredentialRefs::default();
        collect_refs(&config, &mut refs);
        let operator = container(only(&objects, "Deployment")?)?;
        let from_secrets = secret_env(operator);
        let missing: Vec<_> = refs.env.difference(&from_secrets).collect();
        if !missing.is_empty() {
            return Err(format!(
                "{label} values: the config reads {missing:?}, which no secretKeyRef supplies"
            )
            .into());
        }
        let mounted: Vec<String> = operator
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|m| str_at(m, "/name").starts_with("secret-file-"))
            .map(|m| format!("{}/", str_at(m, "/mountPath").trim_end_matches('/')))
            .collect();
        for path in &refs.files {
            if !mounted.iter().any(|dir| path.starts_with(dir.as_str())) {
                return Err(format!(
                    "{label} values: the config reads {path}, outside every Secret mount {mounted:?}"
                )
                .into());
            }
        }
        // Secrets read through the API: exactly those, and only with get.
        let readers: Vec<_> = of_kind(&objects, "Role")
            .into_iter()
            .flat_map(rules)
            .filter(|rule| rule.resources == ["secrets"] && !rule.resource_names.is_empty())
            .collect();
        let readable: BTreeSet<String> = readers
            .iter()
            .flat_map(|rule| rule.resource_names.iter().cloned())
            .collect();
        assert_eq!(readable, refs.secrets, "{label}: Secrets readable by name");
        assert!(readers.iter().all(|rule| rule.verbs == ["get"]), "{label}");
        if label == "full" {
            assert!(
                !refs.secrets.is_empty(),
                "the full values name no secretKeyRef"
            );
            assert!(!refs.files.is_empty(), "the full values name no file");
        }
    }
    Ok(Completion::Completed)
}

async fn rbac_grants_exactly_the_verbs_the_operator_uses(
    _ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    let no_wildcards = |objects: &[Value]| -> Result<(), Failed> {
        for role in objects
            .iter()
            .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
        {
            for rule in rules(role) {
                let all = [&rule.api_groups, &rule.resources, &rule.verbs];
                if all
                    .iter()
                    .any(|list| list.iter().any(|item| item.contains('*')))
                {
                    return Err(format!("{} has a wildcard", describe(role)).into());
                }
            }
        }
        Ok(())
    };

    // Default: cluster-wide for the custom resources, the Lease in the operator namespace.
    let cluster = helm.render("opal-operator", "opal-system", &[]).await?;
    no_wildcards(&cluster)?;
    let cluster_role = only(&cluster, "ClusterRole")?;
    assert_eq!(triples_of(cluster_role), expected_watch_rules());
    let binding = only(&cluster, "ClusterRoleBinding")?;
    assert_eq!(str_at(binding, "/roleRef/name"), name(cluster_role));
    let account = name(only(&cluster, "ServiceAccount")?);
    assert_eq!(str_at(binding, "/subjects/0/name"), account);
    assert_eq!(str_at(binding, "/subjects/0/namespace"), "opal-system");
    let operator_roles: BTreeSet<(&str, Triples)> = of_kind(&cluster, "Role")
        .into_iter()
        .map(|role| (str_at(role, "/metadata/namespace"), triples_of(role)))
        .collect();
    assert_eq!(
        operator_roles,
        [
            ("opal-system", expected_lease_rules()),
            ("opal-system", expected_record_rules()),
        ]
        .into()
    );

    // watchNamespace: nothing cluster-wide; the same rules as a Role in the watched namespace.
    let namespaced = helm
        .render(
            "opal-operator",
            "opal-system",
            &["--set", "watchNamespace=team-a"],
        )
        .await?;
    no_wildcards(&namespaced)?;
    for cluster_kind in ["ClusterRole", "ClusterRoleBinding"] {
        assert!(
            of_kind(&namespaced, cluster_kind).is_empty(),
            "{cluster_kind} rendered with watchNamespace"
        );
    }
    let by_namespace: BTreeSet<(&str, Triples)> = of_kind(&namespaced, "Role")
        .into_iter()
        .map(|role| (str_at(role, "/metadata/namespace"), triples_of(role)))
        .collect();
    let expected: BTreeSet<(&str, Triples)> = [
        ("team-a", expected_watch_rules()),
        ("opal-system", expected_lease_rules()),
        ("opal-system", expected_record_rules()),
    ]
    .into();
    assert_eq!(by_namespace, expected);
    for binding in of_kind(&namespaced, "RoleBinding") {
        assert_eq!(str_at(binding, "/subjects/0/namespace"), "opal-system");
    }

    let none = helm
        .render(
            "opal-operator",
            "opal-system",
            &["--set", "rbac.create=false"],
        )
        .await?;
    assert!(none.iter().all(|o| !kind(o).contains("Role")));
    Ok(Completion::Completed)
}

/// Renders the chart (with its CRDs), dry-runs every object, then applies them all.
/// Returns the rendered objects and the kinds left out because their CRD is absent.
async fn dry_run_then_apply(
    ctx: &TestContext,
    helm: &Helm,
    values: &[&str],
) -> Result<(Vec<Value>, NotServed), Failed> {
    let mut extra = vec!["--include-crds"];
    extra.extend_from_slice(values);
    let objects = helm
        .render(&unique_release(), &ctx.namespace, &extra)
        .await?;
    let mut applier = Applier::new(ctx.client.clone());
    // Everything is validated before anything is stored.
    let not_served = applier.apply(&objects, &ctx.namespace, true).await?;
    only_optional_kinds(&not_served)?;
    applier.apply(&objects, &ctx.namespace, false).await?;
    Ok((objects, not_served))
}

async fn default_values_dry_run_then_apply(ctx: TestContext) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    let (objects, not_served) = dry_run_then_apply(&ctx, &helm, &[]).await?;
    assert!(not_served.is_empty(), "default values: {not_served:?}");
    // The stored config is the rendered one.
    let rendered = only(&objects, "ConfigMap")?;
    let stored = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace)
        .get(name(rendered))
        .await?;
    assert_eq!(
        stored
            .data
            .as_ref()
            .and_then(|data| data.get("config.yaml"))
            .map(String::as_str),
        Some(str_at(rendered, "/data/config.yaml"))
    );
    Ok(Completion::Completed)
}

async fn full_values_dry_run_then_apply(ctx: TestContext) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    ensure_namespace(&ctx.client, FULL_VALUES_WATCH_NAMESPACE).await?;
    let (objects, _) = dry_run_then_apply(&ctx, &helm, &["--values", FULL_VALUES]).await?;
    // Every optional object is rendered (the ServiceMonitor is applied where its CRD exists).
    for wanted in [
        "ServiceMonitor",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
    ] {
        if of_kind(&objects, wanted).is_empty() {
            return Err(format!("full values render no {wanted}").into());
        }
    }
    Ok(Completion::Completed)
}

async fn helm_install_succeeds_and_its_notes_name_the_secrets_to_create(
    ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    // Helm leaves CRDs that already exist alone, as on any cluster after the first install.
    apply_crds(&ctx.client).await?;
    let kubeconfig = ctx.kubeconfig_path().display().to_string();
    let release = unique_release();
    let output = helm
        .run(&[
            "install",
            &release,
            CHART_DIR,
            "--namespace",
            &ctx.namespace,
            "--kubeconfig",
            &kubeconfig,
        ])
        .await?;
    for expected in [
        "STATUS: deployed",
        "OPAL_API_TOKEN <- Secret opal-operator-credentials, key opal-api-token",
        "BAMBOOHR_API_KEY <- Secret opal-operator-credentials, key bamboohr-api-key (optional)",
        "WARNING: hris.bambooHr.companyDomain is still the placeholder \"example\"",
        "It governs custom resources in every namespace.",
    ] {
        if !output.contains(expected) {
            return Err(format!("helm install output lacks {expected:?}:\n{output}").into());
        }
    }
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ctx.namespace,
        &ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
    );
    let installed = deployments.list(&ListParams::default()).await?;
    assert_eq!(
        installed.items.len(),
        1,
        "helm install created one Deployment"
    );
    Ok(Completion::Completed)
}

fn object_json(api_version: &str, kind: &str, name: &str, body: Value) -> Value {
    let mut object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let (Some(target), Value::Object(fields)) = (object.as_object_mut(), body) {
        target.extend(fields);
    }
    object
}

fn event_json(namespace: &str, name: &str, regarding: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    object_json(
        "events.k8s.io/v1",
        "Event",
        name,
        json!({
            "eventTime": now,
            "reportingController": "opal-operator.io/opal-operator",
            "reportingInstance": "opal-operator-0",
            "action": "Reconcile",
            "reason": "Granted",
            "type": "Normal",
            "note": "granted 1",
            "regarding": {
                "apiVersion": "opal-operator.io/v1alpha1",
                "kind": "RoleMapping",
                "name": regarding,
                "namespace": namespace,
            },
        }),
    )
}

async fn service_account_can_do_what_the_chart_grants_and_nothing_else(
    ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    apply_crds(&ctx.client).await?;
    let identity = chart_service_account_client(&ctx, &helm, &[]).await?;
    let user = identity.username.as_str();
    let ns = ctx.namespace.as_str();
    let mapping = "granted";
    let admin_mappings: Api<RoleMapping> = Api::namespaced(ctx.client.clone(), ns);
    admin_mappings
        .create(
            &PostParams::default(),
            &typed(object_json(
                "opal-operator.io/v1alpha1",
                "RoleMapping",
                mapping,
                json!({"spec": {
                    "selector": {"matchLabels": {"department": "Engineering"}},
                    "grants": [{"group": {"name": "Engineering"}}],
                }}),
            ))?,
        )
        .await?;

    // What the operator does, as the chart's ServiceAccount.
    let mappings: Api<RoleMapping> = Api::namespaced(identity.client.clone(), ns);
    let everywhere: Api<RoleMapping> = Api::all(identity.client.clone());
    let listed = allowed(
        everywhere.list(&ListParams::default()).await,
        "list rolemappings cluster-wide",
    )?;
    assert!(
        listed
            .items
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some(mapping))
    );
    allowed(
        mappings
            .patch_status(
                mapping,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"matchedEmployees": 3}})),
            )
            .await,
        "patch rolemappings/status",
    )?;
    allowed(
        mappings
            .patch(
                mapping,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["opal-operator.io/e2e"]}})),
            )
            .await,
        "patch rolemappings (finalizers)",
    )?;
    let lockdowns: Api<Lockdown> = Api::namespaced(identity.client.clone(), ns);
    allowed(
        lockdowns
            .create(
                &PostParams::default(),
                &typed(object_json(
                    "opal-operator.io/v1alpha1",
                    "Lockdown",
                    "from-alert",
                    json!({"spec": {
                        "subjects": [{"email": "jordan@acme.example"}],
                        "reason": "Splunk alert",
                        "duration": "4h",
                    }}),
                ))?,
            )
            .await,
        "create lockdowns",
    )?;
    let events: Api<Event> = Api::namespaced(identity.client.clone(), ns);
    allowed(
        events
            .create(
                &PostParams::default(),
                &typed(event_json(ns, "granted.e2e", mapping))?,
            )
            .await,
        "create events",
    )?;
    let series_time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    allowed(
        events
            .patch(
                "granted.e2e",
                &PatchParams::default(),
                &Patch::Merge(json!({"series": {"count": 2, "lastObservedTime": series_time}})),
            )
            .await,
        "patch events",
    )?;
    let secrets: Api<Secret> = Api::namespaced(identity.client.clone(), ns);
    let record = object_json(
        "v1",
        "Secret",
        "lockdown-record",
        json!({"stringData": {"record.json": "[]"}}),
    );
    allowed(
        secrets
            .create(&PostParams::default(), &typed(record.clone())?)
            .await,
        "create secrets",
    )?;
    allowed(secrets.get("lockdown-record").await, "get secrets")?;
    allowed(
        secrets
            .patch(
                "lockdown-record",
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&record),
            )
            .await,
        "patch secrets",
    )?;
    let leases: Api<Lease> = Api::namespaced(identity.client.clone(), ns);
    let lease = object_json(
        "coordination.k8s.io/v1",
        "Lease",
        "opal-operator",
        json!({"spec": {"holderIdentity": "opal-operator-0", "leaseDurationSeconds": 15}}),
    );
    allowed(
        leases.create(&PostParams::default(), &typed(lease)?).await,
        "create leases",
    )?;
    allowed(leases.get("opal-operator").await, "get leases")?;
    allowed(
        leases
            .patch(
                "opal-operator",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holderIdentity": "opal-operator-1"}})),
            )
            .await,
        "patch leases",
    )?;

    // What the chart does not grant.
    expect_forbidden(
        mappings.delete(mapping, &DeleteParams::default()).await,
        "delete rolemappings",
        user,
    )?;
    let mut current = mappings.get(mapping).await?;
    current.spec.exceptions = vec!["someone@acme.example".to_owned()];
    expect_forbidden(
        mappings
            .replace(mapping, &PostParams::default(), &current)
            .await,
        "update rolemappings",
        user,
    )?;
    let other: RoleMapping = typed(object_json(
        "opal-operator.io/v1alpha1",
        "RoleMapping",
        "self-granted",
        json!({"spec": {
            "selector": {"matchLabels": {"department": "Engineering"}},
            "grants": [{"group": {"name": "Admins"}}],
        }}),
    ))?;
    expect_forbidden(
        mappings.create(&PostParams::default(), &other).await,
        "create rolemappings",
        user,
    )?;
    expect_forbidden(
        lockdowns
            .delete("from-alert", &DeleteParams::default())
            .await,
        "delete lockdowns",
        user,
    )?;
    expect_forbidden(
        secrets.list(&ListParams::default()).await,
        "list secrets",
        user,
    )?;
    allowed(
        secrets
            .delete("lockdown-record", &DeleteParams::default())
            .await,
        "delete secrets (a released lockdown's record)",
    )?;
    // Lockdown records live in the operator namespace only: no Secret anywhere else.
    let elsewhere = format!("e2e-chart-tenant-{:06x}", rand::random::<u32>() & 0xff_ffff);
    ensure_namespace(&ctx.client, &elsewhere).await?;
    let tenant_secrets: Api<Secret> = Api::namespaced(identity.client.clone(), &elsewhere);
    expect_forbidden(
        tenant_secrets
            .create(&PostParams::default(), &typed(record.clone())?)
            .await,
        "create secrets outside the operator namespace",
        user,
    )?;
    expect_forbidden(
        tenant_secrets.get("lockdown-record").await,
        "get secrets outside the operator namespace",
        user,
    )?;
    expect_forbidden(
        leases.list(&ListParams::default()).await,
        "list leases",
        user,
    )?;
    expect_forbidden(
        leases
            .delete("opal-operator", &DeleteParams::default())
            .await,
        "delete leases",
        user,
    )?;
    expect_forbidden(
        Api::<ConfigMap>::namespaced(identity.client.clone(), ns)
            .list(&ListParams::default())
            .await,
        "list configmaps",
        user,
    )?;
    expect_forbidden(
        Api::<Namespace>::all(identity.client.clone())
            .list(&ListParams::default())
            .await,
        "list namespaces",
        user,
    )?;
    Ok(Completion::Completed)
}

async fn watch_namespace_confines_the_service_account_to_that_namespace(
    ctx: TestContext,
) -> Result<Completion, Failed> {
    let helm = helm_or_skip!();
    apply_crds(&ctx.client).await?;
    let watched = format!(
        "e2e-chart-watched-{:06x}",
        rand::random::<u32>() & 0xff_ffff
    );
    ensure_namespace(&ctx.client, &watched).await?;
    let setting = format!("watchNamespace={watched}");
    let identity = chart_service_account_client(&ctx, &helm, &["--set", &setting]).await?;
    let user = identity.username.as_str();
    assert!(
        identity
            .objects
            .iter()
            .all(|o| !kind(o).starts_with("Cluster")),
        "cluster-scoped RBAC rendered with watchNamespace"
    );

    let in_watched: Api<RoleMapping> = Api::namespaced(identity.client.clone(), &watched);
    allowed(
        in_watched.list(&ListParams::default()).await,
        "list rolemappings in the watched namespace",
    )?;
    let record = object_json(
        "v1",
        "Secret",
        "lockdown-record",
        json!({"stringData": {"record.json": "[]"}}),
    );
    // Lockdown records: in the operator namespace (the release's), never the watched one.
    allowed(
        Api::<Secret>::namespaced(identity.client.clone(), &ctx.namespace)
            .create(&PostParams::default(), &typed(record.clone())?)
            .await,
        "create secrets in the operator namespace",
    )?;
    // The Lease stays in the operator namespace (the release's).
    allowed(
        Api::<Lease>::namespaced(identity.client.clone(), &ctx.namespace)
            .create(
                &PostParams::default(),
                &typed(object_json(
                    "coordination.k8s.io/v1",
                    "Lease",
                    "opal-operator",
                    json!({"spec": {"holderIdentity": "opal-operator-0"}}),
                ))?,
            )
            .await,
        "create leases in the operator namespace",
    )?;

    expect_forbidden(
        Api::<RoleMapping>::all(identity.client.clone())
            .list(&ListParams::default())
            .await,
        "list rolemappings cluster-wide",
        user,
    )?;
    expect_forbidden(
        Api::<RoleMapping>::namespaced(identity.client.clone(), &ctx.namespace)
            .list(&ListParams::default())
            .await,
        "list rolemappings outside the watched namespace",
        user,
    )?;
    expect_forbidden(
        Api::<Secret>::namespaced(identity.client.clone(), &watched)
            .create(&PostParams::default(), &typed(record)?)
            .await,
        "create secrets in the watched namespace",
        user,
    )?;
    expect_forbidden(
        Api::<Lease>::namespaced(identity.client.clone(), &watched)
            .get("opal-operator")
            .await,
        "get leases outside the operator namespace",
        user,
    )?;
    Ok(Completion::Completed)
}
