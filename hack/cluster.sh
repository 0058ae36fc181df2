#!/usr/bin/env bash
# cluster.sh starts or deletes a local kwok cluster made of the Kubernetes
# binaries hack/toolchain.sh built: real etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler, with kwok playing the nodes and
# the kubelets. Nothing is downloaded.
#
#   hack/cluster.sh up [NAME] [KWOKCTL CREATE FLAGS...]   start NAME (default changegate), print its kubeconfig
#   hack/cluster.sh down [NAME]                           delete NAME
#   hack/cluster.sh restart [NAME] [SECONDS]              stop every component, keep them down SECONDS (default 5), start them again
#   hack/cluster.sh kubeconfig [NAME]                     print the kubeconfig path of NAME
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
toolchain="$here/toolchain.sh"
export KWOK_WORKDIR="${XDG_CACHE_HOME:-$HOME/.cache}/changegate/kwok"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

kwokctl() { "$("$toolchain" path kwokctl)" "$@"; }
kubectl() { "$("$toolchain" path kubectl)" --kubeconfig "$(kubeconfig_of "$name")" "$@"; }
kubeconfig_of() { echo "$KWOK_WORKDIR/clusters/$1/kubeconfig.yaml"; }

up() {
  "$toolchain" cluster
  if kwokctl get clusters 2>/dev/null | grep -qx "$name"; then
    log "cluster $name exists already"
  else
    log "creating cluster $name (kwokctl --runtime binary)"
    kwokctl create cluster --name "$name" --runtime binary \
      --kube-apiserver-binary "$("$toolchain" path kube-apiserver)" \
      --kube-controller-manager-binary "$("$toolchain" path kube-controller-manager)" \
      --kube-scheduler-binary "$("$toolchain" path kube-scheduler)" \
      --etcd-binary "$("$toolchain" path etcd)" \
      --kwok-controller-binary "$("$toolchain" path kwok)" \
      --wait 2m "$@" >&2 || die "kwokctl could not create cluster $name; see kwokctl logs under $KWOK_WORKDIR/clusters/$name/logs"
  fi
  # A kwok node is a plain Node with the annotation kwok.x-k8s.io/node: fake;
  # kwok keeps it Ready and runs the pods scheduled to it.
  kubectl apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    type: kwok
status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
NODE
  kubectl wait --for=condition=Ready node/kwok-node-0 --timeout=60s >/dev/null ||
    die "node kwok-node-0 did not turn Ready"
  log "cluster $name is up; use it with:"
  echo "export KUBECONFIG=$(kubeconfig_of "$name")"
}

down() {
  if kwokctl get clusters 2>/dev/null | grep -qx "$name"; then
    kwokctl delete cluster --name "$name" >&2
    log "cluster $name deleted"
  else
    log "no cluster $name"
  fi
}

# stop_component kills one process of the cluster, as a crash would, and
# keeps its command line; start_component starts it again from it.
stop_component() {
  local dir="$KWOK_WORKDIR/clusters/$name" pid
  pid=$(cat "$dir/pids/$1.pid")
  cp "/proc/$pid/cmdline" "$dir/pids/$1.cmdline"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
start_component() {
  local dir="$KWOK_WORKDIR/clusters/$name" args=()
  mapfile -d '' args < "$dir/pids/$1.cmdline"
  setsid "${args[@]}" >>"$dir/logs/$1.log" 2>&1 </dev/null &
  echo $! > "$dir/pids/$1.pid"
}

# restart_control_plane kills every component of the cluster, as an outage
# would, keeps it down SECONDS, and starts each again with the same command
# line, certificates and data, in order: etcd, kube-apiserver, and once it
# answers, kube-controller-manager, kube-scheduler and kwok. (The first two
# exit anyway when they cannot renew their leases, and are restarted as
# static pods on a real cluster; kwok must not start before the API server
# answers, which kwokctl start cluster does not ensure.) Whatever else runs
# against the cluster, changegate's manager say, keeps running.
restart_control_plane() {
  local down=${1:-5} component began=$SECONDS
  for component in kwok-controller kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_component "$component"
  done
  log "the control plane of $name stopped in $((SECONDS - began))s; starting it again in ${down}s"
  sleep "$down"
  start_component etcd
  start_component kube-apiserver
  until kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.25; done
  for component in kube-controller-manager kube-scheduler kwok-controller; do
    start_component "$component"
  done
  log "the control plane of $name is back, $((SECONDS - began))s after it went down"
}

cmd=${1:-up}; shift || true
name=${1:-changegate}; shift || true
case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  restart) restart_control_plane "$@" ;;
  kubeconfig) kubeconfig_of "$name" ;;
  *) die "unknown command '$cmd'; use up, down, restart or kubeconfig" ;;
esac
