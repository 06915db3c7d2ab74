#!/usr/bin/env bash
# Installs what the end-to-end tier needs, idempotently:
#   * etcd from Debian's etcd-server package;
#   * kube-apiserver built from the k8s.io/kubernetes Go module with the machine's Go,
#     cached outside the repository so later runs take seconds.
# Prints the directory holding both binaries on its last line.
set -euo pipefail

K8S_VERSION="${OPAL_E2E_K8S_VERSION:-v1.36.3}"
CACHE_ROOT="${OPAL_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opal-operator}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION/bin"

log() { echo "[e2e-deps] $*" >&2; }

if ! command -v etcd >/dev/null 2>&1; then
  log "installing etcd-server from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq etcd-server >&2
  # The package starts a system etcd on the default ports; tests run their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
  pkill -x etcd >/dev/null 2>&1 || true
fi
mkdir -p "$BIN_DIR"
ln -sf "$(command -v etcd)" "$BIN_DIR/etcd"

if [ -x "$BIN_DIR/kube-apiserver" ] && "$BIN_DIR/kube-apiserver" --version >/dev/null 2>&1; then
  log "kube-apiserver $K8S_VERSION cached in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is required to build kube-apiserver"; exit 1; }
log "building kube-apiserver $K8S_VERSION with $(go version) (first run only)"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
WORK="$CACHE_ROOT/k8s-$K8S_VERSION/build"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
go mod init opal-operator.io/apiserver-build >/dev/null 2>&1
GOMOD_FILE=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$GOMOD_FILE" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
# kubernetes requires its staging modules at v0.0.0 and replaces them with local paths;
# a consumer must point them at the matching published releases instead.
grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$GOMOD_FILE" \
  | awk '{print $1}' | sort -u | while read -r module; do
    go mod edit -replace "$module=$module@$STAGING_VERSION"
  done
go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
  -o "$BIN_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$BIN_DIR/kube-apiserver.tmp" "$BIN_DIR/kube-apiserver"
log "built $("$BIN_DIR/kube-apiserver" --version)"
echo "$BIN_DIR"
