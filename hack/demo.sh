#!/usr/bin/env bash
# demo.sh: the whole change on a local cluster, narrated. It builds what it
# needs (first run only), starts a kwok cluster, installs changegate's CRDs,
# admission policy and roles, runs the operator, deploys a clinical-style
# application in VAL, PROD MAIN and PROD TEST, and plays the people:
# rita requests the change, alice signs UAT, carol takes the go/no-go.
# Then a second release breaks its PROD health check and rolls back on its
# own. KEEP=1 leaves the cluster running and says how to reach it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
name=changegate-demo
work=$(mktemp -d)
manager_pid=""

say() { printf '\n\033[1m[%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
note() { printf '           %s\n' "$*"; }

cleanup() {
  [ -n "$manager_pid" ] && kill "$manager_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then
    say "KEEP=1: the cluster stays up. Reach it with:"
    note "export KUBECONFIG=$("$here/cluster.sh" kubeconfig "$name")"
    note "kubectl get uplan -A"
    note "run the operator again with: make run    remove the cluster with: hack/cluster.sh down $name"
  else
    "$here/cluster.sh" down "$name" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "Building the toolchain if needed (the first run builds Kubernetes from source: several minutes)"
"$here/toolchain.sh" cluster
"$here/toolchain.sh" tools >/dev/null
say "Building the operator"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/manager" .)

say "Starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok playing the nodes"
"$here/cluster.sh" down "$name" >/dev/null 2>&1 || true
export KUBECONFIG
KUBECONFIG=$("$here/cluster.sh" up "$name" | sed -n 's/^export KUBECONFIG=//p')
kubectl_bin=$("$here/toolchain.sh" path kubectl)
kubectl() { "$kubectl_bin" "$@"; }

say "Installing changegate: CRDs, the admission policy that authenticates approvals, and the roles for people"
kubectl apply --server-side -f "$root/config/crd/bases" >/dev/null
kubectl apply -f "$root/config/policy/approvals.yaml" -f "$root/config/rbac/user_roles.yaml" >/dev/null
kubectl wait --for=condition=Established crd/upgradeplans.upgrades.changegate.dev >/dev/null

say "Running the operator (its log: $work/manager.log)"
"$work/manager" --leader-elect=false --metrics-bind-address=0 --health-probe-bind-address=0 >"$work/manager.log" 2>&1 &
manager_pid=$!

say "Deploying clinspark 14.6.2 in clinspark-val, clinspark-prod-main and clinspark-prod-test"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: { name: clinical-ops }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: requesters, namespace: clinical-ops }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: changegate-editor }
subjects:
  - { kind: User, apiGroup: rbac.authorization.k8s.io, name: rita }
  - { kind: User, apiGroup: rbac.authorization.k8s.io, name: eve }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: approvers, namespace: clinical-ops }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: changegate-approver }
subjects:
  - { kind: User, apiGroup: rbac.authorization.k8s.io, name: alice }
  - { kind: Group, apiGroup: rbac.authorization.k8s.io, name: clinical-safety }
EOF
for env in val prod-main prod-test; do
  ns=clinspark-$env
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels: { upgrades.changegate.dev/plans-from: clinical-ops }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: clinspark-web, namespace: $ns }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [ { name: web, image: "registry.example.org/clinspark/web:14.6.2" } ] }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: clinspark-db, namespace: $ns }
spec:
  replicas: 1
  serviceName: clinspark-db
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec: { containers: [ { name: db, image: "registry.example.org/clinspark/db:14.6.2" } ] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: lab-transfer, namespace: $ns }
spec:
  replicas: 1
  selector: { matchLabels: { app: lab-transfer } }
  template:
    metadata: { labels: { app: lab-transfer } }
    spec: { containers: [ { name: lab, image: "registry.example.org/clinspark/lab:2.0" } ] }
EOF
done
kubectl wait --for=condition=Available deployment/clinspark-web -n clinspark-prod-main --timeout=120s >/dev/null
kubectl get deploy,statefulset -n clinspark-prod-main

plan() { # name, val version, prod version, extra prod yaml
  cat <<EOF
apiVersion: upgrades.changegate.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: $1
  namespace: clinical-ops
  annotations: { upgrades.changegate.dev/requested-by: rita }
spec:
  application: clinspark
  change: { id: CHG-$1, summary: "clinspark $2" }
  components:
    - { name: web, kind: Deployment, workloadName: clinspark-web, container: web, image: registry.example.org/clinspark/web }
    - { name: db, kind: StatefulSet, workloadName: clinspark-db, container: db, image: registry.example.org/clinspark/db }
  val: { namespace: clinspark-val, version: "$2" }
  uat: { approvers: { users: [alice] } }
  prod:
    version: "$3"
    targets:
      - { name: main, namespace: clinspark-prod-main }
      - { name: test, namespace: clinspark-prod-test }
    quiesce: { scaleDown: [ { kind: Deployment, name: lab-transfer } ] }
    decision: { approvers: { groups: [clinical-safety] } }
$4
EOF
}

# watch_until prints the plan whenever its phase changes, until it shows one
# of the wanted phases.
watch_until() {
  local plan=$1 wanted=$2 last="" phase
  for _ in $(seq 1 600); do
    phase=$(kubectl get uplan "$plan" -n clinical-ops -o jsonpath='{.status.phase}' 2>/dev/null || true)
    if [ "$phase" != "$last" ] && [ -n "$phase" ]; then
      note "$(date +%H:%M:%S)  $(kubectl get uplan "$plan" -n clinical-ops --no-headers)"
      last=$phase
    fi
    if [[ " $wanted " == *" $phase "* ]]; then return 0; fi
    sleep 0.5
  done
  echo "the plan did not reach $wanted; the operator's log is in $work/manager.log" >&2
  tail -20 "$work/manager.log" >&2
  return 1
}

show_images() {
  for ns in clinspark-val clinspark-prod-main clinspark-prod-test; do
    note "$(printf '%-20s web %-45s db %s' "$ns" \
      "$(kubectl get deploy clinspark-web -n "$ns" -o jsonpath='{.spec.template.spec.containers[0].image}')" \
      "$(kubectl get statefulset clinspark-db -n "$ns" -o jsonpath='{.spec.template.spec.containers[0].image}')")"
  done
}

waiting_for() { kubectl get uplan "$1" -n clinical-ops -o jsonpath='{.status.conditions[?(@.type=="Reconciling")].message}'; }

say "rita files the change: UpgradePlan clinspark-14-7, 14.6.2 → 14.7.0"
plan clinspark-14-7 14.7.0 14.7.0 "" | kubectl --as rita create -f - >/dev/null
kubectl get uplan -n clinical-ops
watch_until clinspark-14-7 AwaitingUATApproval
note "waiting for: $(waiting_for clinspark-14-7)"

say "eve, who may edit plans but is no approver, tries to approve in alice's name: the API server refuses"
kubectl --as eve annotate uplan clinspark-14-7 -n clinical-ops \
  upgrades.changegate.dev/uat-approved-version=14.7.0 upgrades.changegate.dev/uat-approved-by=alice 2>&1 | sed 's/^/           /' || true

say "alice signs UAT for 14.7.0 as herself"
kubectl --as alice annotate uplan clinspark-14-7 -n clinical-ops \
  upgrades.changegate.dev/uat-approved-version=14.7.0 upgrades.changegate.dev/uat-approved-by=alice >/dev/null
watch_until clinspark-14-7 AwaitingDecision
note "lab-transfer in PROD MAIN is stopped while PROD changes: $(kubectl get deploy lab-transfer -n clinspark-prod-main -o jsonpath='{.spec.replicas}') replicas"
kubectl get upgradesnapshots -n clinical-ops
note "waiting for: $(waiting_for clinspark-14-7)"

say "carol (clinical-safety) tests MAIN and says go"
kubectl --as carol --as-group clinical-safety annotate uplan clinspark-14-7 -n clinical-ops \
  upgrades.changegate.dev/decision.main=go upgrades.changegate.dev/decided-by.main=carol >/dev/null
watch_until clinspark-14-7 "AwaitingDecision Completed"
sleep 1
say "carol says go for TEST"
kubectl --as carol --as-group clinical-safety annotate uplan clinspark-14-7 -n clinical-ops \
  upgrades.changegate.dev/decision.test=go upgrades.changegate.dev/decided-by.test=carol >/dev/null
watch_until clinspark-14-7 Completed
kubectl wait --for=condition=Ready uplan/clinspark-14-7 -n clinical-ops --timeout=60s >/dev/null
kubectl get uplan -n clinical-ops
note "images now:"
show_images
note "lab-transfer in PROD MAIN runs again: $(kubectl get deploy lab-transfer -n clinspark-prod-main -o jsonpath='{.spec.replicas}') replica"

say "The audit trail: who approved and decided, and when"
kubectl get uplan clinspark-14-7 -n clinical-ops -o jsonpath='{range .status.approvals[*]}{"           "}{.at}  {.kind}  {.version}{.target}  {.decision}  by {.user}{"\n"}{end}'

say "A broken release: 14.8.0 passes VAL, but its PROD health check fails (nothing answers)"
plan clinspark-14-8 14.8.0 14.8.0 '    checks:
      - { name: orders, http: { url: "http://127.0.0.1:9/healthz" }, interval: 1s, timeout: 1s, failureThreshold: 2 }' |
  kubectl --as rita create -f - >/dev/null
watch_until clinspark-14-8 AwaitingUATApproval
kubectl --as alice annotate uplan clinspark-14-8 -n clinical-ops \
  upgrades.changegate.dev/uat-approved-version=14.8.0 upgrades.changegate.dev/uat-approved-by=alice >/dev/null
watch_until clinspark-14-8 "RolledBack Failed"
note "why: $(kubectl get uplan clinspark-14-8 -n clinical-ops -o jsonpath='{.status.conditions[?(@.type=="ChecksPassed")].message}')"
note "RolledBack: $(kubectl get uplan clinspark-14-8 -n clinical-ops -o jsonpath='{.status.conditions[?(@.type=="RolledBack")].reason}: {.status.conditions[?(@.type=="RolledBack")].message}')"
note "images now (VAL keeps the validated 14.8.0; PROD is back on 14.7.0):"
show_images

say "Done: 14.7.0 went to PROD with every control; 14.8.0 was stopped and PROD MAIN restored from its snapshot"
