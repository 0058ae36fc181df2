# changegate — make help lists the targets.
#
# Every tool is pinned in hack/toolchain.sh and built from source through the
# Go module proxy into $(CACHE) on first use.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/changegate
TOOLCHAIN := hack/toolchain.sh
CONTROLLER_GEN = $(shell $(TOOLCHAIN) path controller-gen)
KUSTOMIZE = $(shell $(TOOLCHAIN) path kustomize)
GOLANGCI_LINT = $(shell $(TOOLCHAIN) path golangci-lint)
ASSETS = $(shell $(TOOLCHAIN) path assets)
KUBECTL = $(shell $(TOOLCHAIN) path kubectl)

IMG ?= changegate:dev
CLUSTER ?= changegate
GO_TEST_FLAGS ?= -count=1 -timeout=30m

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: demo
demo: ## The whole change on a local kwok cluster, narrated; KEEP=1 leaves the cluster up.
	hack/demo.sh

.PHONY: manifests
manifests: tools ## Generate the CRDs and the manager's ClusterRole from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=changegate-manager crd:allowDangerousTypes=true paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: tools ## Generate the deepcopy functions of the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: docs
docs: ## Generate docs/reference.md, the API reference, from the Go types.
	go run ./hack/apidocs api/v1alpha1 docs/reference.md

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet every package.
	go vet ./...

.PHONY: verify
verify: manifests generate docs ## Regenerate, check formatting, and fail on any drift from what is committed.
	@go mod tidy
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "The tree differs from what is committed after regenerating; run make manifests generate and commit:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; fi
	@echo "verify: generated files, go.mod and formatting are up to date"

.PHONY: test
test: envtest-assets vet ## Run every test on a real API server and a real Prometheus (built or installed on first use).
	prometheus=$$(hack/prometheus.sh) && \
	KUBEBUILDER_ASSETS="$(ASSETS)" PROMETHEUS="$$prometheus" go test $(GO_TEST_FLAGS) ./...

.PHONY: test-e2e
test-e2e: ## Run the end-to-end scenarios on a local kwok cluster (builds the cluster binaries on first use).
	$(TOOLCHAIN) cluster
	go test -tags e2e -count=1 -timeout=20m ./test/e2e/

BENCH_PLANS ?= 200

.PHONY: bench
bench: envtest-assets ## Benchmark BENCH_PLANS plans (default 200) on envtest, the manager in its own process; writes docs/bench/report-<N>.md and .json.
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/bench -plans $(BENCH_PLANS) -out docs/bench

.PHONY: test-restarts
test-restarts: ## Kill and restart the kwok cluster's control plane twice under a running manager (not in CI: kwok is flaky after it).
	$(TOOLCHAIN) cluster
	E2E_RESTARTS=1 go test -tags e2e -count=1 -timeout=20m -run TestControlPlaneRestarts ./test/e2e/

FUZZTIME ?= 50000x
FUZZ_TARGETS = internal/approval:FuzzUATApprovers internal/approval:FuzzTargetDecision internal/workload:FuzzTag internal/window:FuzzEvaluate

.PHONY: fuzz
fuzz: ## Fuzz annotation parsing, image tags and window arithmetic, FUZZTIME each (default 50000x, a count: a duration can fail on a Go fuzzing race, go.dev/issue/75804); seeds run in make test.
	@for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; fn=$${target##*:}; \
		echo "fuzzing $$fn in $$pkg, $(FUZZTIME)"; \
		go test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

.PHONY: lint
lint: ## Run golangci-lint (pinned; built on first use).
	$(TOOLCHAIN) lint
	$(GOLANGCI_LINT) run ./...

##@ Build

.PHONY: build
build: ## Build the manager and the kubectl plugin into bin/.
	CGO_ENABLED=0 go build -trimpath -o bin/manager .
	CGO_ENABLED=0 go build -trimpath -o bin/kubectl-changegate ./cmd/kubectl-changegate

.PHONY: build-installer
build-installer: tools ## Render config/default into one installable manifest, dist/install.yaml.
	mkdir -p dist
	$(KUSTOMIZE) build config/default > dist/install.yaml
	@echo "wrote dist/install.yaml"

.PHONY: run
run: ## Run the manager against the current kubeconfig.
	go run . --leader-elect=false

##@ Toolchain and local cluster

.PHONY: tools
tools: ## Build controller-gen and kustomize.
	$(TOOLCHAIN) tools

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd for the integration tests.
	$(TOOLCHAIN) envtest

.PHONY: toolchain
toolchain: ## Build every pinned tool and Kubernetes binary.
	$(TOOLCHAIN) all

.PHONY: cluster
cluster: ## Start a local kwok cluster from the built binaries and print its kubeconfig.
	$(TOOLCHAIN) cluster
	hack/cluster.sh up $(CLUSTER)

.PHONY: cluster-down
cluster-down: ## Delete the local kwok cluster.
	hack/cluster.sh down $(CLUSTER)
