//! End-to-end tests on a real Kubernetes API server (tier 3 in ARCHITECTURE.md).
//!
//! One etcd + kube-apiserver is started for the whole run and shared by all trials (each trial
//! gets its own namespace), then torn down, also when trials fail or panic. Run with
//! `cargo test --test e2e`; the binaries come from `scripts/install-e2e-deps.sh`. Without them
//! every trial fails with a message naming that script: this tier never passes vacuously.

mod support;
#[path = "e2e/mod.rs"]
mod trials;

use std::process::ExitCode;
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};

use support::kube_cluster::KubeCluster;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let registered = trials::all();

    // Listing or a filter that selects nothing needs no cluster.
    let selected = registered
        .iter()
        .filter(|trial| !args.is_filtered_out(&Trial::test(trial.name(), || Ok(()))))
        .count();
    if args.list || selected == 0 {
        let placeholders = registered
            .into_iter()
            .map(|trial| Trial::test(trial.name(), || Ok(())))
            .collect();
        return libtest_mimic::run(&args, placeholders).exit_code();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("e2e: cannot build the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    let cluster = match runtime.block_on(KubeCluster::start()) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!(
                "e2e: the test cluster did not start ({}):\n{error}",
                error.label()
            );
            let reason = format!("no test cluster: {error}");
            let failing = registered
                .into_iter()
                .map(|trial| trial.into_failing_trial(reason.clone()))
                .collect();
            return libtest_mimic::run(&args, failing).exit_code();
        }
    };
    eprintln!(
        "e2e: kube-apiserver ready at {} (data in {})",
        cluster.access().server_url(),
        cluster.data_dir().display()
    );

    let runnable = registered
        .into_iter()
        .map(|trial| trial.into_trial(runtime.handle().clone(), cluster.access().clone()))
        .collect();
    let conclusion = libtest_mimic::run(&args, runnable);
    if conclusion.has_failed() {
        eprintln!(
            "e2e: last log lines of the test cluster:\n{}",
            cluster.log_tails()
        );
    }

    // Stop client tasks before their server disappears, then kill etcd and kube-apiserver and
    // delete the data directory (KubeCluster's Drop).
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(cluster);
    conclusion.exit_code()
}
