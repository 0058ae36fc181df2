//go:build e2e

// Package e2e runs changegate on a local kwok cluster: real etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, with kwok
// playing nodes and kubelets, so Deployments and StatefulSets really roll
// out, Jobs really complete and claims are bound by the real PV controller.
// Run it with make test-e2e.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/changegate/changegate/controllers"
	"github.com/changegate/changegate/test/testenv"
)

const cluster = "changegate-e2e"

var (
	// admin is the cluster's admin, playing the platform team.
	admin client.Client
	// config reaches the cluster as its admin.
	config *rest.Config
	// kubeconfig is the cluster's kubeconfig file.
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	if err := startCluster(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if os.Getenv("KEEP") == "" {
			_ = sh("hack/cluster.sh", "down", cluster)
		}
	}()
	if err := install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stop, err := startManager()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	return m.Run()
}

// sh runs a command from the repository root, its output to stderr.
func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// startCluster starts the kwok cluster with kwok's default stages and one of
// the suite's own: pods of a release marked broken never become Ready.
func startCluster() error {
	stages, err := output("hack/toolchain.sh", "path", "kwok-stages")
	if err != nil {
		return err
	}
	var configFile bytes.Buffer
	for _, stage := range []string{"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
		data, err := os.ReadFile(filepath.Join(stages, stage))
		if err != nil {
			return fmt.Errorf("reading kwok's default stage %s: %w", stage, err)
		}
		configFile.Write(data)
		configFile.WriteString("\n---\n")
	}
	configFile.WriteString(brokenStage)
	dir, err := os.MkdirTemp("", "changegate-e2e")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "kwok.yaml")
	if err := os.WriteFile(path, configFile.Bytes(), 0o600); err != nil {
		return err
	}
	_ = sh("hack/cluster.sh", "down", cluster)
	if err := sh("hack/cluster.sh", "up", cluster, "--config", path); err != nil {
		return err
	}
	if kubeconfig, err = output("hack/cluster.sh", "kubeconfig", cluster); err != nil {
		return err
	}
	if config, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return err
	}
	config.QPS, config.Burst = 50, 100
	admin, err = client.New(config, client.Options{Scheme: testenv.Scheme()})
	return err
}

// brokenImage is the release whose pods never become Ready in
// brokenNamespace: it passed VAL and fails in PROD MAIN.
const (
	brokenImage     = "registry.example.org/clinspark/web:14.9.9"
	brokenNamespace = "broken-prod-main"
)

// brokenStage keeps pods of brokenImage in brokenNamespace Running but not
// Ready; its weight puts it before kwok's pod-ready stage.
const brokenStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-broken-release
spec:
  resourceRef: { apiGroup: v1, kind: Pod }
  weight: 10
  selector:
    matchExpressions:
    - { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' }
    - { key: '.status.phase', operator: 'In', values: ['Pending'] }
    - { key: '.metadata.namespace', operator: 'In', values: ['` + brokenNamespace + `'] }
    - { key: '.spec.containers.[].image', operator: 'In', values: ['` + brokenImage + `'] }
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - { lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: ContainersNotReady }
      - { lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady }
      containerStatuses:
      {{ range .spec.containers }}
      - { image: {{ .image | Quote }}, name: {{ .name | Quote }}, ready: false, restartCount: 0, state: { running: { startedAt: {{ $now | Quote }} } } }
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
`

// install applies the one manifest users install, dist/install.yaml from
// make build-installer, and checks the cluster accepts it. Its manager
// Deployment is scaled to zero: the suite runs the manager itself, as the
// same ServiceAccount, to watch it work.
func install() error {
	if err := sh("make", "build-installer"); err != nil {
		return err
	}
	kubectl, err := output("hack/toolchain.sh", "path", "kubectl")
	if err != nil {
		return err
	}
	if err := sh(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "dist/install.yaml"); err != nil {
		return fmt.Errorf("the cluster refused dist/install.yaml: %w", err)
	}
	if err := sh(kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established", "crd/upgradeplans.upgrades.changegate.dev"); err != nil {
		return err
	}
	return sh(kubectl, "--kubeconfig", kubeconfig, "scale", "deployment/changegate-manager", "-n", "changegate-system", "--replicas=0")
}

// startManager runs the manager as main.go does, as the ServiceAccount
// dist/install.yaml gives it.
func startManager() (func(), error) {
	opts := ctrl.Options{Scheme: controllers.NewScheme(), Cache: controllers.CacheOptions(), Metrics: metricsserver.Options{BindAddress: "0"}}
	return testenv.StartManager(testenv.AsManager(config), opts, func(mgr ctrl.Manager) error {
		return controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 4})
	})
}
