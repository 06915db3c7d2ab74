#!/usr/bin/env bash
# Installs the pinned helm v3 the chart checks (tests/e2e/chart.rs) run, idempotently: built
# once with the machine's Go from the helm.sh/helm/v3 Go module (through the configured module
# proxy) and cached outside the repository, next to the kube-apiserver build.
# Prints the path of the helm binary on stdout (its only output once cached).
#
#   scripts/install-helm.sh               install if missing, print the binary's path
#   scripts/install-helm.sh --print-path  only print the path (installs nothing)
#
# Environment: OPAL_HELM_VERSION (default v3.22.0), OPAL_E2E_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/opal-operator).
set -euo pipefail

HELM_VERSION="${OPAL_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${OPAL_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opal-operator}"
BUILD_ROOT="$CACHE_ROOT/helm-$HELM_VERSION"
BIN_DIR="$BUILD_ROOT/bin"
HELM="$BIN_DIR/helm"
MODULE=helm.sh/helm/v3

case "${1:-}" in
  "") ;;
  --print-path) echo "$HELM"; exit 0 ;;
  *) echo "usage: $0 [--print-path]" >&2; exit 2 ;;
esac

log() { echo "[install-helm] $*" >&2; }
fail() { log "$*"; exit 1; }

mkdir -p "$BIN_DIR"
# One installer at a time: parallel test runs must not build twice.
exec 9>"$BUILD_ROOT/.install.lock"
flock 9

# Changing how the binary is built (below) must change this line, which invalidates the cache.
RECIPE="$MODULE/cmd/helm@$HELM_VERSION CGO_ENABLED=0 -trimpath; ldflags: version, Kubernetes 1.<client-go minor>"
RECIPE_FILE="$BIN_DIR/helm.recipe"
helm_cached() {
  [ -x "$HELM" ] &&
    [ "$(cat "$RECIPE_FILE" 2>/dev/null)" = "$RECIPE" ] &&
    [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]
}

if helm_cached; then
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "Go is required to build helm (go not on PATH)"
# Never let go fetch another toolchain; helm's go.mod states the minimum it needs.
export GOTOOLCHAIN=local
# Only the binary goes to the cache; the module and build caches are Go's usual ones (outside
# the repository), shared with the kube-apiserver build. Known flags, whatever the caller set.
export GOBIN="$BIN_DIR"
export GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

WORK="$BUILD_ROOT/build"
BUILD_LOG="$WORK/build.log"
rm -rf "$WORK"
mkdir -p "$WORK"
# Outside any module, so `go install module@version` sees nothing but the module's own go.mod.
cd "$WORK"
log "building helm $HELM_VERSION with $(go env GOVERSION) (first run only; log: $BUILD_LOG)"
started=$SECONDS
step() {
  "$@" >>"$BUILD_LOG" 2>&1 && return 0
  log "failed: $*"
  log "last lines of $BUILD_LOG:"
  tail -n 40 "$BUILD_LOG" >&2
  exit 1
}

# helm's Makefile stamps its version and the Kubernetes version its client libraries speak
# (client-go v0.N.x is Kubernetes 1.N): `helm template` reports the latter as
# .Capabilities.KubeVersion and `helm lint` checks deprecations against it.
GOMOD_FILE="$(go mod download -json "$MODULE@$HELM_VERSION" 2>>"$BUILD_LOG" |
  sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$GOMOD_FILE" ] || fail "no go.mod for $MODULE@$HELM_VERSION (see $BUILD_LOG)"
K8S_MINOR="$(sed -n 's/^\s*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$GOMOD_FILE")"
[ -n "$K8S_MINOR" ] || fail "no k8s.io/client-go requirement in $GOMOD_FILE"
LDFLAGS="-s -w -X $MODULE/internal/version.version=$HELM_VERSION"
for package in pkg/chartutil pkg/lint/rules; do
  LDFLAGS+=" -X $MODULE/$package.k8sVersionMajor=1 -X $MODULE/$package.k8sVersionMinor=$K8S_MINOR"
done

step go install -trimpath -ldflags "$LDFLAGS" "$MODULE/cmd/helm@$HELM_VERSION"
echo "$RECIPE" >"$RECIPE_FILE"
helm_cached || fail "the freshly built helm does not report $HELM_VERSION"
log "built $("$HELM" version --short) in $((SECONDS - started))s"
echo "$HELM"
