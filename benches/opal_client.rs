//! Sustained throughput of the Opal client against the Opal simulator at SaaS-like latency.
//!
//! Setup: simulator latency 20 ms and its limiter at Opal's documented 100 req/s (50 req/s for
//! group/resource writes); client limit 100 req/s (50 for those writes), burst 5, concurrency 16.
//! Workload: 16 workers, each running units of three reads (get group, first page of a group's
//! members, get resource) then a grant and a revoke of one direct resource grant. Prints the
//! achieved request rate, its share of the configured limit and every 429 the simulator sent.
//!
//! Run: `cargo bench --bench opal_client`

use std::sync::Arc;
use std::time::{Duration, Instant};

use opal_operator::http::RetryConfig;
use opal_operator::opal::model::GrantSpec;
use opal_operator::opal::{
    ApiToken, Client, ClientConfig, GrantOutcome, RateLimitConfig, RevokeOutcome,
};
use opal_operator::sim::opal::{OrgFixture, RunningOpalSim, SimConfig};

const WORKERS: usize = 16;
const UNITS_PER_WORKER: usize = 6;
const CALLS_PER_UNIT: usize = 5;
const CLIENT_LIMIT: u32 = 100;

struct Targets {
    group_ids: Vec<String>,
    resource_ids: Vec<String>,
    user_ids: Vec<String>,
}

async fn run_unit(client: &Client, targets: &Targets, worker: usize, unit: usize) -> usize {
    let index = worker * UNITS_PER_WORKER + unit;
    let group_id = &targets.group_ids[index % targets.group_ids.len()];
    let resource_id = &targets.resource_ids[index % targets.resource_ids.len()];
    // Each unit grants to its own user, so grants never collide with fixture memberships.
    let user_id = &targets.user_ids[index % targets.user_ids.len()];
    let mut failures = 0;
    failures += usize::from(client.group(group_id).await.is_err());
    failures += usize::from(client.group_users(group_id).next_page().await.is_err());
    failures += usize::from(client.resource(resource_id).await.is_err());
    let granted = client
        .grant_resource_user(resource_id, user_id, &GrantSpec::indefinite())
        .await;
    failures += usize::from(!matches!(granted, Ok(GrantOutcome::Granted(_))));
    let revoked = client
        .revoke_resource_user(resource_id, user_id, None)
        .await;
    failures += usize::from(!matches!(revoked, Ok(RevokeOutcome::Revoked)));
    failures
}

async fn bench() {
    let units = WORKERS * UNITS_PER_WORKER;
    let fixture = OrgFixture::synthetic(units, 20, 10, 1, 42);
    let sim = RunningOpalSim::start(
        fixture,
        SimConfig {
            latency: Duration::from_millis(20),
            ..SimConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    let state = sim.state();
    let targets = Arc::new(Targets {
        group_ids: (0..20)
            .filter_map(|i| state.group_id(&format!("group-{i:05}")))
            .collect(),
        // Even-numbered roles declare no access levels, so the default level is always valid.
        resource_ids: (0..10)
            .step_by(2)
            .filter_map(|i| state.resource_id(&format!("role-{i:05}")))
            .collect(),
        user_ids: state.users().into_iter().map(|u| u.user_id).collect(),
    });
    let client = Client::new(
        ClientConfig {
            base_url: sim.base_url(),
            max_concurrency: 16,
            rate_limit: RateLimitConfig {
                requests_per_second: CLIENT_LIMIT,
                writes_per_second: 50,
                burst: 5,
            },
            retry: RetryConfig::default(),
            ..ClientConfig::default()
        },
        ApiToken::new(sim.token()).expect("token"),
    )
    .expect("client");

    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let client = client.clone();
        let targets = targets.clone();
        workers.spawn(async move {
            let mut failures = 0;
            for unit in 0..UNITS_PER_WORKER {
                failures += run_unit(&client, &targets, worker, unit).await;
            }
            failures
        });
    }
    let mut failures = 0;
    while let Some(result) = workers.join_next().await {
        failures += result.expect("worker finished");
    }
    let elapsed = started.elapsed();
    let counters = sim.counters();
    sim.shutdown().await;

    let planned = units * CALLS_PER_UNIT;
    let rate = counters.total as f64 / elapsed.as_secs_f64();
    println!(
        "opal_client throughput (simulator latency 20 ms, concurrency 16, limit {CLIENT_LIMIT} req/s)"
    );
    println!("  calls planned          {planned}");
    println!("  HTTP requests served   {}", counters.total);
    println!("  of which writes        {}", counters.writes());
    println!("  elapsed                {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput             {rate:.1} req/s ({:.1}% of the client limit)",
        100.0 * rate / f64::from(CLIENT_LIMIT)
    );
    println!("  429 answers (all)      {}", counters.too_many_requests);
    println!("  429 from sim limiter   {}", counters.rate_limited);
    println!("  failed calls           {failures}");
    assert_eq!(failures, 0, "every call should succeed");
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; only measure when benching.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}
