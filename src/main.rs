use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use opal_operator::sim::opal::{
    FaultConfig, OrgFixture, RateLimitConfig, RunningOpalSim, SimConfig,
};

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
    /// Turn off the simulator's own rate limiter (100 req/s, 50 req/s for writes).
    #[arg(long)]
    no_rate_limit: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir } => print_crds(out_dir),
        Command::Sim(args) => tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(serve_simulator(args)),
    }
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
            ..FaultConfig::default()
        },
        rate_limit: if args.no_rate_limit {
            RateLimitConfig::disabled()
        } else {
            RateLimitConfig::default()
        },
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
