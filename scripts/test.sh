#!/usr/bin/env bash
# The project's one test command: installs whatever the test tiers need (idempotently; the first
# run builds kube-apiserver, later runs reuse the cache) and then runs every tier, stopping at
# the first failure:
#   format · clippy · unit, property, integration and end-to-end tests · doctests · benches compile
# Works unattended (CI=true, no stdin) on a fresh clone.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

if [ "${CI:-}" = "true" ]; then
  # Clean CI builds gain nothing from incremental compilation and it costs time and disk.
  export CARGO_INCREMENTAL=0
fi

section_started=$SECONDS
section_name=""
section() {
  if [ -n "$section_name" ]; then
    echo "---- $section_name: ok ($((SECONDS - section_started))s)"
  fi
  section_name="$*"
  section_started=$SECONDS
  printf '\n==== %s ====\n' "$section_name"
}
run() {
  echo "+ $*"
  "$@"
}
on_failure() {
  local status=$?
  echo "---- FAILED: $section_name (exit status $status after $((SECONDS - section_started))s)" >&2
  exit "$status"
}
trap on_failure ERR

section "Install test dependencies"
cargo fmt --version >/dev/null 2>&1 || run rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || run rustup component add clippy
# Prints the directory holding etcd and kube-apiserver, where tests/e2e.rs finds them too.
run bash scripts/install-e2e-deps.sh
# helm for the chart checks (tests/e2e/chart.rs): built once from the Go module proxy at a
# pinned version and cached next to kube-apiserver; the tests find it through this variable.
echo "+ bash scripts/install-helm.sh"
OPAL_OPERATOR_HELM="$(bash scripts/install-helm.sh)"
export OPAL_OPERATOR_HELM
# A real SMTP server (Debian's python3-aiosmtpd) for the email tests.
run bash scripts/notify-test-deps.sh

section "Format (cargo fmt --check)"
run cargo fmt --all -- --check

section "Lint (cargo clippy -D warnings)"
run cargo clippy --workspace --all-targets -- -D warnings

# One run covers every crate's unit and property tests, the integration tests and tests/e2e.rs, which starts its own
# etcd + kube-apiserver for the duration of that binary. Benchmarks are compiled below and
# measured separately (BENCHMARKS.md): run as tests in a debug build they only cost time.
section "Tests: unit, property, integration, end-to-end"
run cargo test --workspace --lib --bins --tests

# The operator's end-to-end trials once more, the operator authenticated as the Helm chart's
# ServiceAccount (its Role/ClusterRole, a TokenRequest token, RBAC on): a verb the chart lacks
# fails a trial here.
section "End-to-end as the chart's ServiceAccount"
run env OPAL_OPERATOR_E2E_IDENTITY=chart cargo test --workspace --test e2e -- operator::

section "Doctests"
run cargo test --workspace --doc

# The bench targets are built with the test profile, reusing the test build above: this proves
# they compile and link without a release build of everything (about ten minutes on 2 cores).
# Figures come from `cargo bench` proper (BENCHMARKS.md).
section "Benchmarks compile"
run cargo test --workspace --benches --no-run

section "All tiers passed"
echo "total: ${SECONDS}s"
