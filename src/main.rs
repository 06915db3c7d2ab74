use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use opal_operator::config::OperatorConfig;
use opal_operator::manifests::Manifests;
use opal_operator::report::{ReportFormat, render};
use opal_operator::sim::opal::{
    FaultConfig, OrgFixture, RateLimitConfig, RunningOpalSim, SimConfig,
};
use opal_operator::telemetry::LogFormat;

/// Keeps Opal access in line with the HR system, declared as Kubernetes custom resources.
#[derive(Parser)]
#[command(name = "opal-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD with --out-dir).
    Crds {
        /// Write `<crd name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Serve the Opal API simulator on loopback until interrupted.
    Sim(SimArgs),
    /// Compare what the manifests in DIR call for with Opal and print the difference.
    /// Exit code: 0 no drift, 2 drift, 1 error. Needs only a read-only Opal token.
    Plan(PlanArgs),
    /// Run the reconcile loop.
    Run(RunArgs),
    /// Tell the story of the sample org: in-process Opal and HR simulators, the full loop,
    /// onboarding, a role change, a termination, drift repair, a lockdown and an HR outage.
    Demo {
        /// Directory holding the sample org (employees.csv, opal-org.yaml, manifests/).
        #[arg(long, default_value = opal_operator::demo::DEFAULT_SAMPLE_ORG_DIR)]
        sample_org: PathBuf,
        /// Print nothing; the exit status says whether every step ran.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Args)]
struct PlanArgs {
    /// Directory of manifests (RoleMapping, AccessPolicy, ReviewSchedule, Lockdown).
    dir: PathBuf,
    /// Operator configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    output: ReportFormat,
    /// Plan as of this time (RFC 3339) instead of now: start dates, termination dates and
    /// lockdown expiry are judged against it.
    #[arg(long)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Args)]
struct RunArgs {
    /// Run without a cluster: read the custom resources from manifests in this directory.
    #[arg(long, value_name = "DIR")]
    standalone: Option<PathBuf>,
    /// Operator configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Write each sync's plan (JSON) to this directory as `status.json`.
    #[arg(long)]
    status_dir: Option<PathBuf>,
    /// Stop after this many syncs (default: run until interrupted).
    #[arg(long)]
    syncs: Option<u64>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Name of the leader-election Lease (in the config's operatorNamespace).
    #[arg(long, default_value = "opal-operator")]
    lease_name: String,
    /// Seconds a leader's lease lasts without renewal (how long a takeover may take).
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Run as the only replica, without a Lease.
    #[arg(long)]
    no_leader_election: bool,
    /// This replica's identity in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Milliseconds to wait for more changes before planning, so a burst is one plan.
    #[arg(long, default_value_t = 250)]
    debounce_ms: u64,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Org fixture (YAML or JSON) to seed the simulator with.
    #[arg(long, default_value = "examples/opal-sim-fixture.yaml")]
    fixture: PathBuf,
    /// Bearer token clients must send.
    #[arg(long, env = "OPAL_SIM_TOKEN", default_value = "opal-sim-token")]
    token: String,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Largest page the simulator returns, whatever the client asks for.
    #[arg(long)]
    page_cap: Option<usize>,
    /// Share of requests answered 429 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    /// Share of requests answered with a 5xx (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    rate_5xx: f64,
    /// Share of writes acted on whose answer is then lost: the connection is dropped instead
    /// (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    lost_answer_rate: f64,
    /// Seed for the injected faults, so a run can be repeated exactly.
    #[arg(long, default_value_t = opal_operator::sim::opal::DEFAULT_SEED)]
    seed: u64,
    /// Turn off the simulator's own rate limiter (100 req/s, 50 req/s for writes).
    #[arg(long)]
    no_rate_limit: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir } => print_crds(out_dir),
        Command::Sim(args) => runtime()?.block_on(serve_simulator(args)),
        Command::Plan(args) => {
            let drift = runtime()?.block_on(plan_command(args))?;
            std::process::exit(if drift { 2 } else { 0 })
        }
        Command::Run(args) => runtime()?.block_on(run_command(args)),
        Command::Demo { sample_org, quiet } => {
            let options = opal_operator::demo::DemoOptions {
                sample_org_dir: sample_org,
                quiet,
            };
            runtime()?.block_on(opal_operator::demo::run(options))?;
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

fn load_inputs(
    config: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<(OperatorConfig, Manifests)> {
    let config = OperatorConfig::from_path(config)?;
    let manifests = Manifests::load_dir(dir)?;
    Ok((config, manifests))
}

/// Returns whether Opal differs from what the manifests call for.
async fn plan_command(args: PlanArgs) -> anyhow::Result<bool> {
    let (config, manifests) = load_inputs(&args.config, &args.dir)?;
    let sources = opal_operator::standalone::Sources::from_config(&config)?;
    let world = opal_operator::standalone::observe_world(&sources, &manifests, None).await?;
    if let opal_operator::engine::HrState::Failed(reason) = &world.hr {
        anyhow::bail!("the HR source failed, so no plan can be trusted: {reason}");
    }
    let plan = opal_operator::engine::plan(&world, args.at.unwrap_or_else(chrono::Utc::now));
    print!("{}", render(&plan, args.output));
    Ok(!plan.is_converged())
}

async fn run_command(args: RunArgs) -> anyhow::Result<()> {
    opal_operator::telemetry::init(args.log_format);
    let Some(dir) = args.standalone.clone() else {
        return run_in_cluster(args).await;
    };
    let (config, mut manifests) = load_inputs(&args.config, &dir)?;
    let sources = opal_operator::standalone::Sources::from_config(&config)?;
    let interval = config.sync.interval()?;
    let mut last_good = None;
    let mut sync = 0u64;
    loop {
        sync += 1;
        let started = std::time::Instant::now();
        let now = chrono::Utc::now();
        match opal_operator::standalone::sync_once(&sources, &manifests, last_good, now).await {
            Ok(outcome) => {
                last_good = outcome.good_employee_count;
                manifests.record_lockdown_activations(&outcome.plan, now);
                let failures: Vec<_> = outcome.execution.failures().collect();
                println!(
                    "sync {sync}: {} change(s) planned, {} applied, {} already done, {} failed, {} held; converged: {} ({:.1}s)",
                    outcome.plan.operations.len(),
                    outcome.execution.applied(),
                    outcome.execution.already_done(),
                    failures.len(),
                    outcome.plan.withheld.len(),
                    outcome.confirmation.operations.is_empty(),
                    started.elapsed().as_secs_f64()
                );
                for (operation, message) in failures.iter().take(10) {
                    println!(
                        "  failed: {:?} {} {}: {message}",
                        operation.action,
                        operation.target_label(),
                        operation.user_email
                    );
                }
                if let Some(dir) = &args.status_dir {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    let path = dir.join("status.json");
                    std::fs::write(&path, render(&outcome.confirmation, ReportFormat::Json))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Err(error) => println!("sync {sync}: failed ({}): {error}", error.label()),
        }
        if args.syncs.is_some_and(|limit| sync >= limit) {
            return Ok(());
        }
        let jitter = f64::from(config.sync.jitter_percent) / 100.0;
        let factor = 1.0 + jitter * (rand::random::<f64>() * 2.0 - 1.0);
        tokio::select! {
            _ = tokio::time::sleep(interval.mul_f64(factor)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn run_in_cluster(args: RunArgs) -> anyhow::Result<()> {
    let config = OperatorConfig::from_path(&args.config)?;
    let listen = config.server.listen_address()?;
    let sync = &config.sync;
    let timing = opal_operator::controller::LoopTiming {
        interval: sync.interval()?,
        jitter_percent: u32::from(sync.jitter_percent),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
    };
    let identity = match args.identity {
        Some(identity) => identity,
        None => format!("opal-operator-{}", uuid::Uuid::new_v4().simple()),
    };
    let lease_duration = std::time::Duration::from_secs(args.lease_duration_seconds.max(2));
    let lease = (!args.no_leader_election).then(|| opal_operator::controller::LeaseSettings {
        namespace: config.operator_namespace.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: lease_duration,
        grace: lease_duration / 3,
    });
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?;
    let options = opal_operator::controller::RunOptions {
        config,
        watch_namespace: args.watch_namespace,
        lease,
        listen,
        timing,
        identity,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
    };
    opal_operator::controller::run(client, options, shutdown).await?;
    Ok(())
}

async fn serve_simulator(args: SimArgs) -> anyhow::Result<()> {
    let fixture = OrgFixture::from_path(&args.fixture)
        .with_context(|| format!("loading the fixture {}", args.fixture.display()))?;
    let config = SimConfig {
        token: args.token.clone(),
        latency: Duration::from_millis(args.latency_ms),
        page_cap: args.page_cap,
        faults: FaultConfig {
            too_many_requests_rate: args.rate_429,
            server_error_rate: args.rate_5xx,
            lost_answer_rate: args.lost_answer_rate,
            ..FaultConfig::default()
        },
        rate_limit: if args.no_rate_limit {
            RateLimitConfig::disabled()
        } else {
            RateLimitConfig::default()
        },
        seed: args.seed,
        ..SimConfig::default()
    };
    let sim = RunningOpalSim::start_on(args.listen, fixture, config)
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    println!("Opal simulator listening");
    println!("  BASE_URL={}", sim.base_url());
    println!("  TOKEN={}", args.token);
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

fn print_crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match out_dir {
        None => print!("{}", opal_operator::crd::render_crds_stream()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in opal_operator::crd::render_crds()? {
                let path = dir.join(&crd.file_name);
                std::fs::write(&path, crd.yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
