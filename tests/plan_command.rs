//! `opal-operator plan` and `run --standalone` as a user runs them: the built binary against
//! the Opal simulator seeded with the sample org in `examples/demo`, over real HTTP.
//!
//! The table output for the sample org is pinned in `tests/golden/plan-demo.txt`; after an
//! intended change to the sample org or the renderer, regenerate it with
//! `UPDATE_GOLDEN=1 cargo test --test plan_command`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use opal_operator::sim::opal::{OrgFixture, RateLimitConfig, RunningOpalSim, SimConfig};

/// A fixed planning time, so start and termination dates in the sample org give the same
/// answer whenever the test runs.
const PLAN_AT: &str = "2026-11-30T09:00:00Z";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn demo_sim() -> RunningOpalSim {
    let fixture = OrgFixture::from_path(repo().join("examples/demo/opal-org.yaml"))
        .expect("the sample org fixture loads");
    let config = SimConfig {
        rate_limit: RateLimitConfig::disabled(),
        ..SimConfig::default()
    };
    RunningOpalSim::start(fixture, config)
        .await
        .expect("simulator starts")
}

fn write_config(dir: &Path, sim: &RunningOpalSim, hr_location: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let text = format!(
        "operatorNamespace: opal-system\nopal:\n  token: {{env: OPAL_TOKEN}}\n  client:\n    baseUrl: {}\n    retry: {{maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 50}}\nhris:\n  source: file\n  location: {hr_location}\nsync:\n  interval: 1s\n",
        sim.base_url()
    );
    std::fs::write(&path, text).expect("config written");
    path
}

fn employees_csv() -> String {
    repo()
        .join("examples/demo/employees.csv")
        .display()
        .to_string()
}

fn opal_operator(sim: &RunningOpalSim, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opal-operator"))
        .args(args)
        .env("OPAL_TOKEN", sim.token())
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The sample manifests minus the Observe-mode mapping document, whose held grants are drift
/// that applying never removes.
fn enforceable_manifests(dir: &Path) -> PathBuf {
    let target = dir.join("manifests");
    std::fs::create_dir_all(&target).expect("manifest dir");
    for entry in std::fs::read_dir(repo().join("examples/demo/manifests")).expect("manifests") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("manifest");
        let kept: Vec<&str> = text
            .split("\n---\n")
            .filter(|document| !document.contains("enforcement: Observe"))
            .collect();
        std::fs::write(
            target.join(path.file_name().expect("file name")),
            kept.join("\n---\n"),
        )
        .expect("copy");
    }
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_sample_org_drift_and_exits_2() {
    let sim = demo_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim, &employees_csv());
    let config = config.to_str().expect("utf-8 path");
    let calls_before = sim.counters().writes();

    let table = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "--config",
            config,
            "--at",
            PLAN_AT,
        ],
    );
    assert_eq!(
        table.status.code(),
        Some(2),
        "drift exits 2; stderr: {}",
        stderr(&table)
    );
    let golden = repo().join("tests/golden/plan-demo.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, stdout(&table)).expect("golden written");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file exists");
    assert_eq!(
        stdout(&table),
        expected,
        "plan output differs from {}",
        golden.display()
    );

    let json = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "-c",
            config,
            "-o",
            "json",
            "--at",
            PLAN_AT,
        ],
    );
    assert_eq!(json.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("valid JSON");
    let operations = report["operations"].as_array().expect("operations");
    let listed = expected
        .lines()
        .filter(|l| l.starts_with("  grant") || l.starts_with("  revoke"))
        .count();
    assert_eq!(
        operations.len(),
        listed,
        "JSON and table list the same changes"
    );
    assert!(operations.iter().any(|op| op["cause"] == "offboarding"));

    let markdown = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "-c",
            config,
            "-o",
            "markdown",
            "--at",
            PLAN_AT,
        ],
    );
    assert!(stdout(&markdown).starts_with("### opal-operator plan"));
    assert!(stdout(&markdown).contains(&format!("**{}** change(s) to apply", operations.len())));

    assert_eq!(
        sim.counters().writes(),
        calls_before,
        "plan never writes to Opal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_standalone_applies_and_plan_then_exits_0() {
    let sim = demo_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim, &employees_csv());
    let config = config.to_str().expect("utf-8 path");
    let manifests = enforceable_manifests(dir.path());
    let manifests = manifests.to_str().expect("utf-8 path");
    let status_dir = dir.path().join("status");

    let before = opal_operator(&sim, &["plan", manifests, "-c", config]);
    assert_eq!(before.status.code(), Some(2), "{}", stderr(&before));

    let run = opal_operator(
        &sim,
        &[
            "run",
            "--standalone",
            manifests,
            "-c",
            config,
            "--syncs",
            "1",
            "--status-dir",
            status_dir.to_str().expect("utf-8"),
        ],
    );
    assert!(run.status.success(), "run failed: {}", stderr(&run));
    assert!(stdout(&run).contains("0 failed"), "{}", stdout(&run));
    assert!(stdout(&run).contains("converged: true"), "{}", stdout(&run));
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(status_dir.join("status.json")).expect("status written"),
    )
    .expect("status is JSON");
    assert_eq!(status["operations"].as_array().map(Vec::len), Some(0));

    let after = opal_operator(&sim, &["plan", manifests, "-c", config]);
    assert_eq!(
        after.status.code(),
        Some(0),
        "converged exits 0: {}",
        stdout(&after)
    );
    assert!(stdout(&after).contains("0 change(s) to apply, 0 held back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_errors_exit_1_with_the_reason() {
    let sim = demo_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");

    let missing = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "-c",
            "/nonexistent/config.yaml",
        ],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/config.yaml"),
        "{}",
        stderr(&missing)
    );

    let broken_hr = write_config(dir.path(), &sim, "/nonexistent/employees.csv");
    let hr_down = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "-c",
            broken_hr.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(hr_down.status.code(), Some(1));
    assert!(
        stderr(&hr_down).contains("HR source failed"),
        "{}",
        stderr(&hr_down)
    );

    let bad_manifest = dir.path().join("bad");
    std::fs::create_dir_all(&bad_manifest).expect("dir");
    std::fs::write(
        bad_manifest.join("rm.yaml"),
        "apiVersion: opal-operator.io/v1alpha1\nkind: RoleMapping\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {department: Eng}}\n  grants: {group: {name: eng}}\n",
    )
    .expect("write");
    let config = write_config(dir.path(), &sim, &employees_csv());
    let invalid = opal_operator(
        &sim,
        &[
            "plan",
            bad_manifest.to_str().expect("utf-8"),
            "-c",
            config.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        stderr(&invalid).contains("spec.grants"),
        "{}",
        stderr(&invalid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_safety_defaults_hold_revocations_no_policy_would() {
    let sim = demo_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim, &employees_csv());
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("safetyDefaults:\n  maxRevocations: 1\n");
    std::fs::write(&config, text).expect("config written");

    let output = opal_operator(
        &sim,
        &[
            "plan",
            "examples/demo/manifests",
            "-c",
            config.to_str().expect("utf-8"),
            "-o",
            "json",
            "--at",
            PLAN_AT,
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(
        report["breaker"]["tripped"], true,
        "the config's limit of 1 is stricter than the policy's"
    );
    let revocations_listed = report["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter(|op| op["action"] == "revoke")
        .count();
    assert_eq!(
        revocations_listed, 0,
        "every breaker-governed revocation is held"
    );
    let held = report["withheld"].as_array().expect("withheld");
    assert!(
        held.iter()
            .any(|op| op["heldBecause"] == "revocation breaker tripped")
    );
}
