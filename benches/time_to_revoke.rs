//! Time to revoke (DESIGN §9): a user with 200 grants, Opal answering after 100 ms with its
//! documented limits (50 writes/s under /groups), measured end to end through the operator on
//! a real kube-apiserver:
//!
//! * termination webhook → last revoke call, and
//! * Lockdown created → status `Active`,
//!
//! beside a naive sequential per-grant workflow (list the user's groups, remove them one by one,
//! as a polling integration script does) in the same process against the same simulator.
//!
//! Run with `cargo bench --bench time_to_revoke` (needs the e2e binaries from
//! `scripts/install-e2e-deps.sh`). Prints each run, the medians, the rate-limit floor and ratios.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::api::{Api, PostParams};
use opal_operator::config::OperatorConfig;
use opal_operator::controller::{LoopTiming, RunOptions};
use opal_operator::crd::{AccessPolicy, Lockdown, LockdownPhase};
use opal_operator::hris::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use opal_operator::hris::{Employee, EmploymentStatus};
use opal_operator::opal::{ApiToken, Client, ClientConfig};
use opal_operator::sim::hris::bamboohr::{BambooHrSim, BambooHrSimConfig};
use opal_operator::sim::opal::{
    FixtureGroup, FixtureMembership, FixtureUser, OrgFixture, RunningOpalSim, SimConfig,
};
use serde_json::json;

const GRANTS: usize = 200;
const LATENCY: Duration = Duration::from_millis(100);
/// Opal's documented limit for writes under /groups and /resources.
const WRITE_RATE: f64 = 50.0;
const RUNS: usize = 3;
const WEBHOOK_KEY: &str = "bench-webhook-key";
const NAMESPACE: &str = "bench";

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn email(role: &str, run: usize) -> String {
    format!("{role}-{run}@bench.example")
}

/// Users who each hold the same 200 groups: one per measured run and workflow.
fn fixture() -> OrgFixture {
    let roles = ["leaver", "locked", "naive"];
    let mut users = vec![FixtureUser {
        email: "it-automation@bench.example".into(),
        ..FixtureUser::default()
    }];
    let mut memberships = Vec::new();
    for run in 0..RUNS {
        for role in roles {
            users.push(FixtureUser {
                email: email(role, run),
                first_name: role.into(),
                last_name: run.to_string(),
                ..FixtureUser::default()
            });
            for group in 0..GRANTS {
                memberships.push(FixtureMembership {
                    group: format!("group-{group:03}"),
                    user: email(role, run),
                    ..FixtureMembership::default()
                });
            }
        }
    }
    OrgFixture {
        api_user: Some("it-automation@bench.example".into()),
        users,
        groups: (0..GRANTS)
            .map(|group| FixtureGroup {
                name: format!("group-{group:03}"),
                group_type: "OPAL_GROUP".into(),
                ..FixtureGroup::default()
            })
            .collect(),
        memberships,
        ..OrgFixture::default()
    }
}

fn employees() -> Vec<Employee> {
    let mut employees = Vec::new();
    for run in 0..RUNS {
        for role in ["leaver", "locked", "naive"] {
            employees.push(Employee {
                id: format!("{role}{run}"),
                email: email(role, run),
                first_name: role.into(),
                last_name: run.to_string(),
                department: Some("Engineering".into()),
                title: None,
                location: None,
                cost_center: None,
                employment_type: None,
                manager_id: None,
                manager_email: None,
                status: EmploymentStatus::Active,
                start_date: None,
                termination_date: None,
                custom: BTreeMap::new(),
            });
        }
    }
    employees
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn user_group_count(opal: &RunningOpalSim, email: &str) -> usize {
    let state = opal.state();
    state
        .user_by_email(email)
        .map(|user| state.user_grants(&user.user_id).len())
        .unwrap_or_default()
}

/// Waits (20 ms polls of the simulator's memory, no HTTP) until the user holds nothing.
async fn until_revoked(
    opal: &RunningOpalSim,
    email: &str,
    limit: Duration,
) -> BenchResult<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if user_group_count(opal, email).await == 0 {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{email} still holds grants after {limit:?}").into())
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> BenchResult<()> {
    let cluster = support::kube_cluster::KubeCluster::start().await?;
    let client = cluster.access().admin_client().await?;
    support::crds::apply_crds(&client).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;

    let opal = RunningOpalSim::start(
        fixture(),
        SimConfig {
            latency: LATENCY,
            ..SimConfig::default()
        },
    )
    .await?;
    let hr = BambooHrSim::start(employees(), BambooHrSimConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, text: &str| -> BenchResult<std::path::PathBuf> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let mut bamboo = serde_json::to_value(hr.client_config())?;
    bamboo["source"] = json!("bambooHr");
    bamboo["apiKey"] = json!({ "file": write("bamboo-key", hr.api_key())? });
    bamboo["webhook"] = json!({ "privateKey": { "file": write("webhook-key", WEBHOOK_KEY)? } });
    let config = json!({
        "operatorNamespace": NAMESPACE,
        "opal": {
            "token": { "file": write("opal-token", &opal.token())? },
            "client": { "baseUrl": opal.base_url() },
        },
        "hris": bamboo,
        "sync": { "interval": "10m", "jitterPercent": 0, "concurrency": 16, "eventsPollInterval": "0s" },
    });
    let config = OperatorConfig::from_yaml_str(&serde_yaml::to_string(&config)?)?;

    let policies: Api<AccessPolicy> = Api::namespaced(client.clone(), NAMESPACE);
    policies
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "opal-operator.io/v1alpha1",
                "kind": "AccessPolicy",
                "metadata": {"name": "offboarding", "namespace": NAMESPACE},
                "spec": {"offboarding": {"revoke": "All", "when": "Immediately"}},
            }))?,
        )
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let options = RunOptions {
        config,
        watch_namespace: Some(NAMESPACE.into()),
        lease: None,
        listen: addr,
        timing: LoopTiming {
            interval: Duration::from_secs(600),
            jitter_percent: 0,
            debounce: Duration::from_millis(20),
        },
        identity: "bench".into(),
    };
    let operator = tokio::spawn(opal_operator::controller::run_on(
        client.clone(),
        options,
        listener,
        std::future::pending(),
    ));
    // The first full sync fills the operator's caches.
    let ready_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = reqwest::get(format!("http://{addr}/readyz"))
            .await?
            .status()
            .is_success();
        let synced = policies
            .get("offboarding")
            .await?
            .status
            .is_some_and(|s| !s.conditions.is_empty());
        if ready && synced {
            break;
        }
        if Instant::now() > ready_deadline {
            return Err("the operator did not finish its first sync".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let http = reqwest::Client::new();
    let mut webhook = Vec::new();
    let mut lockdown = Vec::new();
    let mut naive = Vec::new();
    let lockdowns: Api<Lockdown> = Api::namespaced(client.clone(), NAMESPACE);
    let admin = Client::new(
        ClientConfig {
            base_url: opal.base_url(),
            ..ClientConfig::default()
        },
        ApiToken::new(opal.token())?,
    )?;
    for run in 0..RUNS {
        // Termination webhook → last revoke.
        let leaver = email("leaver", run);
        hr.roster()
            .terminate(&format!("leaver{run}"), Utc::now().date_naive());
        let body = format!(
            r#"{{"employees":[{{"id":"leaver{run}","action":"Updated","timestamp":"{}","changedFields":["status"]}}]}}"#,
            Utc::now().to_rfc3339()
        );
        let timestamp = Utc::now().timestamp().to_string();
        let started = Instant::now();
        let response = http
            .post(format!("http://{addr}/webhooks/bamboohr"))
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(
                SIGNATURE_HEADER,
                sign(WEBHOOK_KEY.as_bytes(), body.as_bytes(), &timestamp),
            )
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("webhook refused: {}", response.status()).into());
        }
        let done = until_revoked(&opal, &leaver, Duration::from_secs(120)).await?;
        webhook.push(done - started);

        // Lockdown created → Active.
        let locked = email("locked", run);
        let name = format!("incident-{run}");
        let started = Instant::now();
        lockdowns
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "opal-operator.io/v1alpha1",
                    "kind": "Lockdown",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"subjects": [{"email": locked}], "reason": "bench", "duration": "1h", "restoreOnRelease": false},
                }))?,
            )
            .await?;
        let active_deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let phase = lockdowns.get(&name).await?.status.and_then(|s| s.phase);
            if phase == Some(LockdownPhase::Active) {
                lockdown.push(started.elapsed());
                break;
            }
            if Instant::now() > active_deadline {
                return Err(format!("{name} not Active after 120 s").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if user_group_count(&opal, &locked).await != 0 {
            return Err(format!("{name} is Active but {locked} still holds grants").into());
        }

        // The naive workflow: list, then remove one membership at a time.
        let naive_user = email("naive", run);
        let started = Instant::now();
        let user = admin
            .user_by_email(&naive_user)
            .await?
            .ok_or("naive user missing")?;
        for membership in admin.list_user_groups(&user.user_id).await? {
            let level = Some(membership.access_level.access_level_remote_id.as_str())
                .filter(|l| !l.is_empty());
            admin
                .revoke_group_user(&membership.group_id, &user.user_id, level)
                .await?;
        }
        naive.push(started.elapsed());
        if user_group_count(&opal, &naive_user).await != 0 {
            return Err("the naive workflow left grants behind".into());
        }
        println!(
            "run {run}: webhook→last revoke {:.2} s, Lockdown→Active {:.2} s, naive sequential {:.2} s",
            webhook[run].as_secs_f64(),
            lockdown[run].as_secs_f64(),
            naive[run].as_secs_f64()
        );
    }
    let floor = GRANTS as f64 / WRITE_RATE + LATENCY.as_secs_f64();
    let (webhook, lockdown, naive) = (median(webhook), median(lockdown), median(naive));
    println!(
        "grants per user: {GRANTS}, simulated latency: {LATENCY:?}, write limit: {WRITE_RATE} req/s"
    );
    println!("rate-limit floor (grants / write limit + one round trip): {floor:.2} s");
    for (label, measured) in [
        ("termination webhook → last revoke", webhook),
        ("Lockdown created → Active", lockdown),
    ] {
        println!(
            "{label}: median {:.2} s = {:.1}% above the floor; naive sequential / operator = {:.1}×",
            measured.as_secs_f64(),
            (measured.as_secs_f64() / floor - 1.0) * 100.0,
            naive.as_secs_f64() / measured.as_secs_f64()
        );
    }
    println!(
        "naive sequential workflow: median {:.2} s",
        naive.as_secs_f64()
    );
    operator.abort();
    opal.shutdown().await;
    drop(cluster);
    Ok(())
}
