#!/usr/bin/env bash
# Installs what the end-to-end tier needs, idempotently:
#   * etcd from Debian's etcd-server package;
#   * kube-apiserver built from the k8s.io/kubernetes Go module with the machine's Go 1.26,
#     cached outside the repository so later runs take well under a second.
# Prints the directory holding both binaries on stdout (its only output once cached).
#
#   scripts/install-e2e-deps.sh                  install what is missing, print the directory
#   scripts/install-e2e-deps.sh --print-bin-dir  only print the directory (installs nothing)
#
# Environment: OPAL_E2E_K8S_VERSION (default v1.36.3), OPAL_E2E_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/opal-operator).
set -euo pipefail

K8S_VERSION="${OPAL_E2E_K8S_VERSION:-v1.36.3}"
CACHE_ROOT="${OPAL_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opal-operator}"
BUILD_ROOT="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN_DIR="$BUILD_ROOT/bin"

case "${1:-}" in
  "") ;;
  --print-bin-dir) echo "$BIN_DIR"; exit 0 ;;
  *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac

log() { echo "[e2e-deps] $*" >&2; }
fail() { log "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    fail "root (or passwordless sudo) is needed to run: $*"
  fi
}

# Kubernetes reports major/minor separately from gitVersion (Helm and kubectl read those), and
# the module build sets none of them by itself.
K8S_MINOR="${K8S_VERSION#v1.}"
K8S_MINOR="${K8S_MINOR%%.*}"
VERSION_PKG=k8s.io/component-base/version
LDFLAGS="-s -w -X $VERSION_PKG.gitVersion=$K8S_VERSION -X $VERSION_PKG.gitMajor=1"
LDFLAGS+=" -X $VERSION_PKG.gitMinor=$K8S_MINOR -X $VERSION_PKG.gitTreeState=clean"
# Changing how the binary is built invalidates the cached one.
RECIPE="k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION ldflags=$LDFLAGS"
RECIPE_FILE="$BIN_DIR/kube-apiserver.recipe"

mkdir -p "$BIN_DIR"
# One installer at a time: parallel test runs must not build (or apt-get) twice.
exec 9>"$BUILD_ROOT/.install.lock"
flock 9

install_etcd() {
  log "installing etcd-server from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's switch that stops maintainer scripts from starting services: the package would
  # otherwise start a system etcd on the default ports. Tests run their own.
  local policy=/usr/sbin/policy-rc.d
  local own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    own_policy=1
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  if [ -n "$own_policy" ]; then
    as_root rm -f "$policy"
    trap - EXIT
  fi
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  command -v etcd >/dev/null 2>&1 || fail "etcd-server installed but no etcd on PATH"
}

command -v etcd >/dev/null 2>&1 || install_etcd
ETCD_PATH="$(command -v etcd)"
[ "$(readlink "$BIN_DIR/etcd" 2>/dev/null)" = "$ETCD_PATH" ] || ln -sfn "$ETCD_PATH" "$BIN_DIR/etcd"

apiserver_cached() {
  [ -x "$BIN_DIR/kube-apiserver" ] &&
    [ "$(cat "$RECIPE_FILE" 2>/dev/null)" = "$RECIPE" ] &&
    [ "$("$BIN_DIR/kube-apiserver" --version 2>/dev/null)" = "Kubernetes $K8S_VERSION" ]
}

if apiserver_cached; then
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "Go 1.26 is required to build kube-apiserver (go not on PATH)"
# A newer Go has built an apiserver with broken OpenAPI output; never let go fetch another one.
export GOTOOLCHAIN=local
GO_VERSION="$(go env GOVERSION)"
case "$GO_VERSION" in
  go1.26 | go1.26.*) ;;
  *) fail "kube-apiserver must be built with Go 1.26, found $GO_VERSION" ;;
esac

WORK="$BUILD_ROOT/build"
BUILD_LOG="$WORK/build.log"
log "building kube-apiserver $K8S_VERSION with $GO_VERSION (first run only; log: $BUILD_LOG)"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
started=$SECONDS
# Each step's output goes to the build log; a failing step prints the log's tail.
step() {
  "$@" >>"$BUILD_LOG" 2>&1 && return 0
  log "failed: $*"
  log "last lines of $BUILD_LOG:"
  tail -n 40 "$BUILD_LOG" >&2
  exit 1
}
step go mod init opal-operator.io/apiserver-build
step go mod download "k8s.io/kubernetes@$K8S_VERSION"
GOMOD_FILE="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>>"$BUILD_LOG" |
  sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$GOMOD_FILE" ] || fail "no go.mod for k8s.io/kubernetes@$K8S_VERSION (see $BUILD_LOG)"
# kubernetes requires its staging modules at v0.0.0 and replaces them with local paths;
# a consumer must point them at the matching published releases instead.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
STAGING_MODULES="$(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$GOMOD_FILE" |
  awk '{print $1}' | sort -u)"
[ -n "$STAGING_MODULES" ] || fail "found no staging modules in $GOMOD_FILE"
for module in $STAGING_MODULES; do
  step go mod edit -replace "$module=$module@$STAGING_VERSION"
done
step go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
step go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/kube-apiserver.tmp" \
  k8s.io/kubernetes/cmd/kube-apiserver
mv "$BIN_DIR/kube-apiserver.tmp" "$BIN_DIR/kube-apiserver"
echo "$RECIPE" >"$RECIPE_FILE"
apiserver_cached || fail "the freshly built kube-apiserver does not report $K8S_VERSION"
log "built $("$BIN_DIR/kube-apiserver" --version) in $((SECONDS - started))s"
echo "$BIN_DIR"
