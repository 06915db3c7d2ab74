//! The operator under test: the sample org in the Opal and BambooHR simulators, the sample
//! manifests applied to the trial's namespace, and `controller::run_on` in this process (or
//! the built binary, for trials that kill it).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource};
use libtest_mimic::Failed;
use opal_operator::config::OperatorConfig;
use opal_operator::controller::{LeaseSettings, LoopTiming, RunOptions};
use opal_operator::crd::{
    AccessPolicy, Condition, ConditionStatus, Lockdown, ReviewSchedule, RoleMapping,
};
use opal_operator::engine::{Plan, plan};
use opal_operator::hris::{Employee, FileConfig, FileSource};
use opal_operator::manifests::Manifests;
use opal_operator::sim::hris::bamboohr::{BambooHrSim, BambooHrSimConfig};
use opal_operator::sim::opal::{OrgFixture, RunningOpalSim, SimConfig};
use opal_operator::standalone::{Sources, observe_world};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::crds::apply_crds;
use crate::trials::TestContext;

/// The sample org shipped in `examples/demo`.
pub fn sample_org_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// Key BambooHR signs webhooks with, as the operator is configured.
pub const BAMBOOHR_WEBHOOK_KEY: &str = "e2e-bamboohr-webhook-key";
/// Token the Splunk alert hook accepts.
pub const SPLUNK_TOKEN: &str = "e2e-splunk-token";

/// The systems the operator talks to, and its configuration.
pub struct Org {
    pub opal: RunningOpalSim,
    pub hr: BambooHrSim,
    pub namespace: String,
    /// Secrets and the config file live here.
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub manifests: Manifests,
}

fn to_failed(context: &str) -> impl FnOnce(String) -> Failed + '_ {
    move |message| format!("{context}: {message}").into()
}

impl Org {
    /// Starts the simulators seeded with the sample org and writes a config for `namespace`
    /// with the given sync interval (a Go duration).
    pub async fn start(namespace: &str, interval: &str) -> Result<Self, Failed> {
        Self::start_with(namespace, interval, None).await
    }

    /// Like [`Org::start`], with a `notify` section in the config.
    pub async fn start_with(
        namespace: &str,
        interval: &str,
        notify: Option<Value>,
    ) -> Result<Self, Failed> {
        let sample = sample_org_dir();
        let fixture = OrgFixture::from_path(sample.join("opal-org.yaml"))
            .map_err(|e| to_failed("Opal fixture")(e.to_string()))?;
        let opal = RunningOpalSim::start(fixture, SimConfig::default())
            .await
            .map_err(|e| to_failed("Opal simulator")(e.to_string()))?;
        let employees = read_sample_employees(&sample).await?;
        let hr = BambooHrSim::start(employees, BambooHrSimConfig::default())
            .await
            .map_err(|e| to_failed("BambooHR simulator")(e.to_string()))?;
        let dir = tempfile::tempdir().map_err(|e| to_failed("temp dir")(e.to_string()))?;
        let write = |name: &str, text: &str| -> Result<PathBuf, Failed> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .map_err(|e| to_failed("writing a secret")(e.to_string()))?;
            Ok(path)
        };
        let opal_token = write("opal-token", &opal.token())?;
        let bamboo_key = write("bamboohr-key", hr.api_key())?;
        let webhook_key = write("bamboohr-webhook-key", BAMBOOHR_WEBHOOK_KEY)?;
        let splunk_token = write("splunk-token", SPLUNK_TOKEN)?;
        let mut bamboo = serde_json::to_value(hr.client_config())
            .map_err(|e| to_failed("BambooHR config")(e.to_string()))?;
        bamboo["source"] = json!("bambooHr");
        bamboo["apiKey"] = json!({ "file": bamboo_key });
        bamboo["webhook"] = json!({ "privateKey": { "file": webhook_key } });
        let config = json!({
            "operatorNamespace": namespace,
            "opal": {
                "token": { "file": opal_token },
                "client": { "baseUrl": opal.base_url() },
            },
            "hris": bamboo,
            "sync": {
                "interval": interval,
                "jitterPercent": 0,
                "concurrency": 8,
                "eventsPollInterval": "1s",
            },
            "server": { "listen": "127.0.0.1:0", "maxBodyBytes": 65536 },
            "webhooks": { "splunk": { "token": { "file": splunk_token } } },
            "requests": { "pollInterval": "1s", "expiryGrace": "2s" },
        });
        let mut config = config;
        if let Some(notify) = notify {
            config["notify"] = notify;
        }
        let config_text =
            serde_yaml::to_string(&config).map_err(|e| to_failed("config YAML")(e.to_string()))?;
        let config_path = write("config.yaml", &config_text)?;
        let mut manifests = Manifests::load_dir(&sample.join("manifests"))
            .map_err(|e| to_failed("sample manifests")(e.to_string()))?;
        set_namespace(&mut manifests, namespace);
        Ok(Self {
            opal,
            hr,
            namespace: namespace.to_owned(),
            dir,
            config_path,
            manifests,
        })
    }

    pub fn config(&self) -> Result<OperatorConfig, Failed> {
        OperatorConfig::from_path(&self.config_path).map_err(|e| to_failed("config")(e.to_string()))
    }

    /// Changes the operator's config file; an operator started afterwards reads the change.
    pub fn patch_config(&self, patch: impl FnOnce(&mut Value)) -> Result<(), Failed> {
        let text = std::fs::read_to_string(&self.config_path)
            .map_err(|e| to_failed("reading the config")(e.to_string()))?;
        let mut config: Value =
            serde_yaml::from_str(&text).map_err(|e| to_failed("config YAML")(e.to_string()))?;
        patch(&mut config);
        let text =
            serde_yaml::to_string(&config).map_err(|e| to_failed("config YAML")(e.to_string()))?;
        std::fs::write(&self.config_path, text)
            .map_err(|e| to_failed("writing the config")(e.to_string()))
    }

    /// Creates the sample manifests (and the CRDs) in the trial namespace.
    pub async fn apply_manifests(&self, client: &Client) -> Result<(), Failed> {
        apply_crds(client).await?;
        let post = PostParams::default();
        for object in &self.manifests.role_mappings {
            api::<RoleMapping>(client, &self.namespace)
                .create(&post, object)
                .await?;
        }
        for object in &self.manifests.access_policies {
            api::<AccessPolicy>(client, &self.namespace)
                .create(&post, object)
                .await?;
        }
        for object in &self.manifests.review_schedules {
            api::<ReviewSchedule>(client, &self.namespace)
                .create(&post, object)
                .await?;
        }
        for object in &self.manifests.lockdowns {
            api::<Lockdown>(client, &self.namespace)
                .create(&post, object)
                .await?;
        }
        Ok(())
    }

    /// An independent plan over what the simulators and the cluster hold now.
    pub async fn independent_plan(&self, client: &Client) -> Result<Plan, Failed> {
        let manifests = self.cluster_manifests(client).await?;
        let config = self.config()?;
        let sources =
            Sources::from_config(&config).map_err(|e| to_failed("sources")(e.to_string()))?;
        let world = observe_world(&sources, &manifests, None)
            .await
            .map_err(|e| to_failed("observing")(e.to_string()))?;
        Ok(plan(&world, Utc::now()))
    }

    /// The objects in the trial namespace, as `plan` would read them from files.
    pub async fn cluster_manifests(&self, client: &Client) -> Result<Manifests, Failed> {
        let list = ListParams::default();
        let ns = &self.namespace;
        Ok(Manifests {
            role_mappings: api::<RoleMapping>(client, ns).list(&list).await?.items,
            access_policies: api::<AccessPolicy>(client, ns).list(&list).await?.items,
            review_schedules: Vec::new(),
            lockdowns: api::<Lockdown>(client, ns).list(&list).await?.items,
            skipped: Vec::new(),
        })
    }
}

async fn read_sample_employees(sample: &Path) -> Result<Vec<Employee>, Failed> {
    let config = FileConfig {
        location: sample.join("employees.csv").display().to_string(),
        format: None,
        records: None,
        delimiter: None,
        columns: Default::default(),
        bearer_token: None,
        invalid_rows: Default::default(),
        http: Default::default(),
    };
    let source =
        FileSource::from_config(&config).map_err(|e| to_failed("employees.csv")(e.to_string()))?;
    Ok(source
        .snapshot()
        .await
        .map_err(|e| to_failed("employees.csv")(e.to_string()))?
        .employees)
}

fn set_namespace(manifests: &mut Manifests, namespace: &str) {
    for object in &mut manifests.role_mappings {
        object.metadata.namespace = Some(namespace.to_owned());
    }
    for object in &mut manifests.access_policies {
        object.metadata.namespace = Some(namespace.to_owned());
        // The sample grants tenancy to `opal-system`, the operator namespace it assumes.
        for rule in &mut object.spec.tenancy {
            for allowed in &mut rule.namespaces {
                if allowed == "opal-system" {
                    *allowed = namespace.to_owned();
                }
            }
        }
    }
    for object in &mut manifests.review_schedules {
        object.metadata.namespace = Some(namespace.to_owned());
    }
    for object in &mut manifests.lockdowns {
        object.metadata.namespace = Some(namespace.to_owned());
    }
}

pub fn api<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), namespace)
}

/// The operator running in this process.
pub struct InProcessOperator {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

/// Options the trials vary.
pub struct OperatorOptions {
    pub interval: Duration,
    pub lease: bool,
    pub identity: String,
}

/// Set to `chart` to run the operator as the Helm chart's ServiceAccount (its RBAC, a
/// TokenRequest token) instead of as cluster admin, so a verb the chart lacks fails a trial.
pub const IDENTITY_ENV: &str = "OPAL_OPERATOR_E2E_IDENTITY";

/// The client the operator runs with: admin, or the chart's ServiceAccount (watching only
/// `watch_namespace`, or every namespace) when [`IDENTITY_ENV`] says `chart`. `chart_values`
/// are extra `helm` arguments, e.g. config that names a Secret the chart must let the operator
/// read.
async fn operator_client(
    ctx: &TestContext,
    chart_values: &[String],
    watch_namespace: Option<&str>,
) -> Result<Client, Failed> {
    if std::env::var(IDENTITY_ENV).as_deref() != Ok("chart") {
        return Ok(ctx.client.clone());
    }
    let helm = crate::trials::chart::Helm::locate()?
        .ok_or("the chart identity needs helm (OPAL_OPERATOR_HELM)")?;
    let mut values: Vec<String> = watch_namespace
        .map(|namespace| vec!["--set".to_owned(), format!("watchNamespace={namespace}")])
        .unwrap_or_default();
    values.extend(chart_values.iter().cloned());
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let identity = crate::trials::chart::chart_service_account_client(ctx, &helm, &values).await?;
    Ok(identity.client)
}

impl InProcessOperator {
    /// Starts the operator for the trial `ctx` (admin, or the chart's identity; see
    /// [`IDENTITY_ENV`]).
    pub async fn start(
        ctx: &TestContext,
        org: &Org,
        options: OperatorOptions,
    ) -> Result<Self, Failed> {
        Self::start_with_chart_values(ctx, org, options, &[]).await
    }

    pub async fn start_with_chart_values(
        ctx: &TestContext,
        org: &Org,
        options: OperatorOptions,
        chart_values: &[String],
    ) -> Result<Self, Failed> {
        Self::launch(ctx, org, options, chart_values, Some(org.namespace.clone())).await
    }

    /// Starts the operator watching every namespace (the chart's ClusterRole under the chart
    /// identity). Only for a cluster of the trial's own: it acts on every namespace's objects.
    pub async fn start_cluster_wide(
        ctx: &TestContext,
        org: &Org,
        options: OperatorOptions,
    ) -> Result<Self, Failed> {
        Self::launch(ctx, org, options, &[], None).await
    }

    async fn launch(
        ctx: &TestContext,
        org: &Org,
        options: OperatorOptions,
        chart_values: &[String],
        watch_namespace: Option<String>,
    ) -> Result<Self, Failed> {
        let client = &operator_client(ctx, chart_values, watch_namespace.as_deref()).await?;
        let config = org.config()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let lease = options.lease.then(|| LeaseSettings {
            namespace: org.namespace.clone(),
            name: "opal-operator".into(),
            identity: options.identity.clone(),
            duration: Duration::from_secs(4),
            grace: Duration::from_secs(1),
        });
        let run_options = RunOptions {
            config,
            watch_namespace,
            lease,
            listen: addr,
            timing: LoopTiming {
                interval: options.interval,
                jitter_percent: 0,
                debounce: Duration::from_millis(100),
            },
            identity: options.identity,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let client = client.clone();
        let task = tokio::spawn(async move {
            opal_operator::controller::run_on(client, run_options, listener, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Fails when the operator stopped on its own (with its error).
    pub fn check_running(&self) -> Result<(), Failed> {
        if self.task.is_finished() {
            return Err("the operator stopped on its own".into());
        }
        Ok(())
    }

    pub async fn stop(mut self) -> Result<(), Failed> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(format!("operator failed: {error}").into()),
            Ok(Err(error)) => Err(format!("operator panicked: {error}").into()),
            Err(_) => Err("operator did not stop within 10 s".into()),
        }
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String), Failed> {
        let response = reqwest::get(format!("http://{}{path}", self.addr)).await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}

impl Drop for InProcessOperator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the built operator binary on the org's config, watching the trial namespace, with
/// its log in the org's directory as `<identity>.log`. Killed when dropped.
pub fn spawn_operator_binary(
    ctx: &TestContext,
    org: &Org,
    identity: &str,
    lease_seconds: u64,
) -> Result<tokio::process::Child, Failed> {
    let log = std::fs::File::create(org.dir.path().join(format!("{identity}.log")))?;
    tokio::process::Command::new(env!("CARGO_BIN_EXE_opal-operator"))
        .args(["run", "--config"])
        .arg(&org.config_path)
        .args(["--watch-namespace", &ctx.namespace])
        .args(["--lease-duration-seconds", &lease_seconds.to_string()])
        .args(["--identity", identity, "--debounce-ms", "100"])
        .env("KUBECONFIG", ctx.cluster.kubeconfig_path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("starting the operator binary: {error}").into())
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, Failed>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Failed>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= deadline {
            let detail = last_error
                .map(|e| format!(" (last error: {e:?})"))
                .unwrap_or_default();
            return Err(format!("{what}: not within {limit:?}{detail}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Events recorded for one object, as `(reason, note)`.
pub async fn events_for<K: Resource<DynamicType = ()>>(
    client: &Client,
    object: &K,
) -> Result<Vec<(String, String)>, Failed> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(
        client.clone(),
        &object.meta().namespace.clone().unwrap_or_default(),
    );
    let name = object.meta().name.clone().unwrap_or_default();
    let list = events.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}

/// A JSON merge patch body.
pub fn merge(value: Value) -> kube::api::Patch<Value> {
    kube::api::Patch::Merge(value)
}

// HR hooks, alert hooks, metrics and convergence (used by hr_changes.rs and webhooks.rs).

/// One direct grant as `(kind, target id, access level remote id)`.
pub type HeldGrant = (opal_operator::crd::TargetKind, String, String);

/// The direct grants `user_id` holds in the Opal simulator.
pub fn held_grants(org: &Org, user_id: &str) -> BTreeSet<HeldGrant> {
    use opal_operator::crd::TargetKind;
    use opal_operator::sim::opal::GrantTarget;
    org.opal
        .state()
        .user_grants(user_id)
        .into_iter()
        .map(|grant| {
            let (kind, id) = match grant.target {
                GrantTarget::Group(id) => (TargetKind::Group, id),
                GrantTarget::Resource(id) => (TargetKind::Resource, id),
            };
            (kind, id, grant.access_level.remote_id)
        })
        .collect()
}

/// The grant an operation adds or removes, comparable with [`held_grants`].
pub fn operation_grant(op: &opal_operator::engine::Operation) -> HeldGrant {
    (
        op.kind,
        op.target_id.clone(),
        op.access_level_remote_id.clone(),
    )
}

/// The Opal user ID of the person with this email, in the simulator.
pub fn opal_user_id(org: &Org, email: &str) -> Result<String, Failed> {
    org.opal
        .state()
        .user_by_email(email)
        .map(|user| user.user_id)
        .ok_or_else(|| format!("no Opal user {email} in the simulator").into())
}

/// A BambooHR `employee.updated` notification about one employee (the current payload shape).
pub fn bamboohr_update_body(employee_id: &str, changed_fields: &[&str]) -> String {
    json!({
        "type": "employee.updated",
        "timestamp": Utc::now().to_rfc3339(),
        "data": {"companyId": "1", "employeeId": employee_id, "changedFields": changed_fields},
    })
    .to_string()
}

/// The headers BambooHR signs `body` with, keyed by `key`, as of `timestamp` (Unix seconds).
pub fn bamboohr_signature(body: &[u8], key: &str, timestamp: i64) -> Vec<(&'static str, String)> {
    use opal_operator::hris::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
    let timestamp = timestamp.to_string();
    vec![
        (SIGNATURE_HEADER, sign(key.as_bytes(), body, &timestamp)),
        (TIMESTAMP_HEADER, timestamp),
    ]
}

/// POSTs `body` with `headers` to `path` on the operator's server: `(status, answer body)`.
pub async fn post_to_operator(
    operator: &InProcessOperator,
    path: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, String)],
) -> Result<(u16, String), Failed> {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", operator.addr))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// Tells the operator, with a correctly signed BambooHR webhook, that `employee_id` changed;
/// fails unless it answers 202 naming one employee.
pub async fn notify_bamboohr_change(
    operator: &InProcessOperator,
    employee_id: &str,
    changed_fields: &[&str],
) -> Result<(), Failed> {
    let body = bamboohr_update_body(employee_id, changed_fields);
    let headers = bamboohr_signature(
        body.as_bytes(),
        BAMBOOHR_WEBHOOK_KEY,
        Utc::now().timestamp(),
    );
    let (status, answer) = post_to_operator(operator, "/webhooks/bamboohr", body, &headers).await?;
    let answer_json: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    if status != 202 || answer_json["employees"] != json!(1) {
        return Err(format!("signed BambooHR webhook: {status} {answer}").into());
    }
    Ok(())
}

/// `GET /metrics`: `(content type, text)`, failing unless 200.
pub async fn scrape_metrics(operator: &InProcessOperator) -> Result<(String, String), Failed> {
    let response = reqwest::get(format!("http://{}/metrics", operator.addr)).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    if status != 200 {
        return Err(format!("GET /metrics: {status} {text}").into());
    }
    Ok((content_type, text))
}

/// The value of the sample `name` whose labels are exactly `labels` (in any order).
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeSet<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let found: BTreeSet<(String, String)> = label_text
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
}

/// Every sample of `name`, as `(labels, value)`.
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (series_name == name).then(|| Some((labels.to_owned(), value.parse().ok()?)))?
        })
        .collect()
}

/// POSTs a Splunk alert; `bearer` goes into `Authorization: Bearer …` when given.
pub async fn post_splunk_alert(
    operator: &InProcessOperator,
    alert: &Value,
    bearer: Option<&str>,
) -> Result<(u16, String), Failed> {
    let headers: Vec<(&str, String)> = bearer
        .map(|token| vec![("authorization", format!("Bearer {token}"))])
        .unwrap_or_default();
    post_to_operator(
        operator,
        "/webhooks/alerts/splunk",
        alert.to_string(),
        &headers,
    )
    .await
}

/// Calls Opal received to add and to remove group memberships and direct resource grants.
pub fn membership_writes(counters: &opal_operator::sim::opal::CounterSnapshot) -> (u64, u64) {
    let grants = counters.calls("POST /groups/{group_id}/users/{user_id}")
        + counters.calls("POST /resources/{resource_id}/users/{user_id}");
    let revokes = counters.calls("DELETE /groups/{group_id}/users/{user_id}")
        + counters.calls("DELETE /resources/{resource_id}/users/{user_id}");
    (grants, revokes)
}

/// Membership writes Opal acted on or refused for good — every answer but a 429 or a 5xx,
/// which the client retries — as (grants, revokes). A write made twice shows up here, a
/// retried throttled one does not.
pub fn accepted_membership_writes(
    counters: &opal_operator::sim::opal::CounterSnapshot,
) -> (u64, u64) {
    let accepted = |route: &str| {
        counters
            .by_route_status
            .iter()
            .filter(|((r, status), _)| r == route && *status != 429 && *status < 500)
            .map(|(_, count)| *count)
            .sum::<u64>()
    };
    (
        accepted("POST /groups/{group_id}/users/{user_id}")
            + accepted("POST /resources/{resource_id}/users/{user_id}"),
        accepted("DELETE /groups/{group_id}/users/{user_id}")
            + accepted("DELETE /resources/{resource_id}/users/{user_id}"),
    )
}

/// Waits until every RoleMapping in the namespace shows a status computed from its current
/// generation (a sync has been reported on all of them) and returns them.
pub async fn mappings_reported(
    client: &Client,
    namespace: &str,
    operator: &InProcessOperator,
    limit: Duration,
) -> Result<Vec<RoleMapping>, Failed> {
    let mappings = api::<RoleMapping>(client, namespace);
    eventually(
        "every RoleMapping reports its current generation",
        limit,
        || {
            let mappings = mappings.clone();
            async move {
                operator.check_running()?;
                let list = mappings.list(&ListParams::default()).await?.items;
                let reported = !list.is_empty()
                    && list.iter().all(|m| {
                        m.status.as_ref().is_some_and(|s| {
                            s.observed_generation == m.metadata.generation
                                && condition(&s.conditions, "Ready").is_some()
                        })
                    });
                Ok(reported.then_some(list))
            }
        },
    )
    .await
}

/// Waits until the sample manifests are reported on and Opal holds exactly what an
/// independent plan calls for.
pub async fn converged(
    client: &Client,
    org: &Org,
    operator: &InProcessOperator,
    limit: Duration,
) -> Result<(), Failed> {
    mappings_reported(client, &org.namespace, operator, limit).await?;
    eventually("Opal converges on the plan", limit, || async {
        operator.check_running()?;
        Ok(org
            .independent_plan(client)
            .await?
            .operations
            .is_empty()
            .then_some(()))
    })
    .await
}

/// Waits for `rounds` further syncs, seen as the RoleMapping `witness`'s `status.lastSyncTime`
/// advancing that many times, and runs `check` at every poll in between.
pub async fn sync_rounds(
    client: &Client,
    namespace: &str,
    witness: &str,
    rounds: usize,
    limit: Duration,
    mut check: impl FnMut() -> Result<(), Failed>,
) -> Result<(), Failed> {
    let mappings = api::<RoleMapping>(client, namespace);
    let last_sync = |mapping: RoleMapping| mapping.status.and_then(|s| s.last_sync_time);
    let mut seen = last_sync(mappings.get(witness).await?);
    let deadline = tokio::time::Instant::now() + limit;
    let mut advanced = 0;
    while advanced < rounds {
        check()?;
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{witness}: lastSyncTime advanced {advanced} of {rounds} times within {limit:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = last_sync(mappings.get(witness).await?);
        if now.is_some() && now != seen {
            advanced += 1;
            seen = now;
        }
    }
    check()
}
