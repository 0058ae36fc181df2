#!/usr/bin/env bash
# toolchain.sh builds every pinned tool changegate needs, from source, through
# the Go module proxy only, into ${XDG_CACHE_HOME:-$HOME/.cache}/changegate.
#
#   hack/toolchain.sh [envtest|cluster|tools|lint|all|path NAME]
#
#   envtest  kube-apiserver and etcd (what the integration suites need)
#   cluster  envtest + kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl
#   tools    controller-gen and kustomize
#   lint     golangci-lint
#   all      everything above (the default)
#   path X   print the cache path of X (assets, bin) without building
#
# Each binary lands in a directory named after its version, so a warm cache costs
# a stat per binary. Builds write to a temporary name and are renamed into
# place; a lock on the cache serialises concurrent runs.
set -euo pipefail

KUBERNETES_VERSION=v1.36.3
STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
CONTROLLER_TOOLS_VERSION=v0.21.0
KUSTOMIZE_VERSION=v5.8.1
GOLANGCI_LINT_VERSION=v2.15.0

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/changegate"
# ASSETS holds the control-plane binaries; envtest reads it as KUBEBUILDER_ASSETS.
ASSETS="$CACHE_ROOT/k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}"
BIN="$CACHE_ROOT/bin"
WORK="$CACHE_ROOT/work"

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { printf '[toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

# build NAME DEST FUNC...: run FUNC with $OUT set to a temporary path unless
# DEST already exists, then move the result into place.
build() {
  local name=$1 dest=$2; shift 2
  if [[ -x "$dest" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  local start=$SECONDS logfile="$WORK/logs/$name.log"
  mkdir -p "$WORK/logs"
  log "building $name -> $dest (output in $logfile)"
  OUT="$dest.tmp.$$"
  if ! "$@" >"$logfile" 2>&1; then
    rm -f "$OUT"
    tail -n 30 "$logfile" >&2 || true
    die "building $name failed after $((SECONDS - start))s; the full log is $logfile"
  fi
  [[ -x "$OUT" ]] || die "building $name produced no binary at $OUT; see $logfile"
  mv -f "$OUT" "$dest"
  log "built $name in $((SECONDS - start))s"
}

# kubernetes_source prepares a writable copy of k8s.io/kubernetes whose go.mod
# points the staging modules at their published versions instead of ./staging.
kubernetes_source() {
  local src="$WORK/kubernetes-$KUBERNETES_VERSION"
  if [[ -f "$src/.ready" ]]; then
    echo "$src"; return 0
  fi
  log "downloading k8s.io/kubernetes@$KUBERNETES_VERSION from the module proxy"
  local dir
  dir=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  [[ -n "$dir" && -f "$dir/go.mod" ]] || die "module download gave no directory for k8s.io/kubernetes"
  rm -rf "$src.tmp"
  mkdir -p "$src.tmp"
  # Copy everything but vendor/, staging/ and the workspace files; staging modules
  # come from the proxy at $STAGING_VERSION.
  (cd "$dir" && tar --exclude=./vendor --exclude=./staging --exclude='./go.work*' -cf - .) | (cd "$src.tmp" && tar -xf -)
  chmod -R u+w "$src.tmp"
  sed -i -E "s#^([[:space:]]*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 $STAGING_VERSION#" "$src.tmp/go.mod"
  if grep -q '=> ./staging' "$src.tmp/go.mod"; then
    die "go.mod of k8s.io/kubernetes still points into ./staging after rewriting"
  fi
  touch "$src.tmp/.ready"
  rm -rf "$src"
  mv "$src.tmp" "$src"
  echo "$src"
}

kube_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

build_kube() { # $1: cmd name
  local src; src=$(kubernetes_source)
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off go build -trimpath -ldflags "$(kube_ldflags)" -o "$OUT" "./cmd/$1")
}

build_etcd() {
  local mod="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<MOD
module changegate.local/etcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$mod" && GOFLAGS=-mod=mod GOWORK=off go mod tidy && CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off go build -trimpath -ldflags "-s -w" -o "$OUT" go.etcd.io/etcd/server/v3)
}

# go_install BINARY PKG VERSION [LDFLAGS]: go install into a throwaway GOBIN, then rename.
go_install() {
  local binary=$1 pkg=$2 version=$3 ldflags=${4:-}
  local gobin="$OUT.gobin"
  rm -rf "$gobin" && mkdir -p "$gobin" &&
    (cd "$WORK" && CGO_ENABLED=0 GOBIN="$gobin" GOWORK=off GOFLAGS= go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version") &&
    mv "$gobin/$binary" "$OUT" &&
    rm -rf "$gobin"
}

kwok_ldflags() { echo "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"; }

want_envtest() {
  build kube-apiserver "$ASSETS/kube-apiserver" build_kube kube-apiserver
  build etcd "$ASSETS/etcd" build_etcd
}
want_cluster() {
  want_envtest
  build kube-controller-manager "$ASSETS/kube-controller-manager" build_kube kube-controller-manager
  build kube-scheduler "$ASSETS/kube-scheduler" build_kube kube-scheduler
  build kubectl "$ASSETS/kubectl" build_kube kubectl
  build kwok "$BIN/kwok-$KWOK_VERSION" go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "$(kwok_ldflags)"
  build kwokctl "$BIN/kwokctl-$KWOK_VERSION" go_install kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION" "$(kwok_ldflags)"
}
want_tools() {
  build controller-gen "$BIN/controller-gen-$CONTROLLER_TOOLS_VERSION" go_install controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "$CONTROLLER_TOOLS_VERSION"
  build kustomize "$BIN/kustomize-$KUSTOMIZE_VERSION" go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
}
want_lint() {
  build golangci-lint "$BIN/golangci-lint-$GOLANGCI_LINT_VERSION" go_install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"
}

path_of() {
  case "$1" in
    assets) echo "$ASSETS" ;;
    kube-apiserver|etcd|kube-controller-manager|kube-scheduler|kubectl) echo "$ASSETS/$1" ;;
    kwok|kwokctl) echo "$BIN/$1-$KWOK_VERSION" ;;
    # kwok's default stages, which a cluster configured with stages of its
    # own must carry too; from the Go module cache (downloaded if missing).
    kwok-stages) echo "$(cd "${TMPDIR:-/tmp}" && GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/kustomize/stage" ;;
    controller-gen) echo "$BIN/controller-gen-$CONTROLLER_TOOLS_VERSION" ;;
    kustomize) echo "$BIN/kustomize-$KUSTOMIZE_VERSION" ;;
    golangci-lint) echo "$BIN/golangci-lint-$GOLANGCI_LINT_VERSION" ;;
    *) die "unknown tool '$1'" ;;
  esac
}

main() {
  local what=${1:-all}
  if [[ "$what" == path ]]; then
    path_of "${2:?path needs a tool name}"; return 0
  fi
  command -v go >/dev/null || die "go is not on PATH; install Go 1.26 first"
  mkdir -p "$CACHE_ROOT" "$WORK" "$BIN" "$ASSETS"
  # One run at a time per cache: a second run waits, then finds the binaries built.
  exec 9>"$CACHE_ROOT/.lock"
  if ! flock -n 9; then
    log "another toolchain run holds $CACHE_ROOT/.lock; waiting for it"
    flock 9
  fi
  case "$what" in
    envtest) want_envtest ;;
    cluster) want_cluster ;;
    tools) want_tools ;;
    lint) want_lint ;;
    all) want_tools; want_cluster ;;
    *) die "unknown target '$what'; use envtest, cluster, tools, lint, all or path NAME" ;;
  esac
}

main "$@"
