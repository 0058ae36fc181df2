// Package integration runs the changegate manager on a real kube-apiserver
// and etcd (envtest) and checks what a user of the API would see.
package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/changegate/changegate/controllers"
	"github.com/changegate/changegate/test/testenv"
)

var (
	// k8s is a client with cluster-admin rights, playing the user.
	k8s client.Client
	// rollouts, storage and jobs play the controllers envtest lacks, in a
	// manager of their own that keeps running while the changegate manager
	// is restarted.
	rollouts = &testenv.Rollouts{}
	storage  = &testenv.Storage{}
	jobs     = &testenv.Jobs{}
	// controlPlane is the test API server and its etcd.
	controlPlane *envtest.Environment
	// restConfig reaches the test API server.
	restConfig *rest.Config
	// stopChangegate stops the running changegate manager.
	stopChangegate func()
	// stopControllers stops the manager of rollouts, storage and jobs.
	stopControllers func()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	// The control plane keeps its data and certificates here, so that the
	// fault tests can restart it.
	dir, err := os.MkdirTemp("", "changegate-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	env, err := testenv.Start(testenv.Restartable(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	controlPlane = env
	restConfig = env.Config

	if k8s, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The suites bind the approvals policy to the namespaces labelled
	// policyNamespaceLabel: every app's plans namespace, not the schema
	// tests', which create plans as the admin.
	policyNamespaces := &metav1.LabelSelector{MatchLabels: map[string]string{policyNamespaceLabel: "true"}}
	if err := testenv.InstallApprovalsPolicy(context.Background(), k8s, policyNamespaces); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := testenv.BindManagerRole(context.Background(), k8s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if stopControllers, err = startControllers(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { stopControllers() }()
	if stopChangegate, err = startChangegate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { stopChangegate() }()
	return m.Run()
}

// startControllers starts the manager of rollouts, storage and jobs: the
// test's kube-controller-manager.
func startControllers() (func(), error) {
	return startManager(func(mgr ctrl.Manager) error {
		return errors.Join(rollouts.SetupWithManager(mgr), storage.SetupWithManager(mgr), jobs.SetupWithManager(mgr))
	}, nil)
}

// startChangegate starts a changegate manager as main.go does, with a
// client that records its effects.
func startChangegate() (func(), error) { return startChangegateWith(nil) }

// startChangegateWith starts a changegate manager whose client dies when
// the kill switch says so.
func startChangegateWith(k *killSwitch) (func(), error) {
	return startManagerAs(managerConfig(), setupChangegate, countingClient(k))
}

// setupChangegate registers changegate's controllers as main.go does.
func setupChangegate(mgr ctrl.Manager) error {
	return controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 4, SkipNameValidation: true})
}

// managerConfig reaches the API server as the manager's ServiceAccount of
// config/rbac, bound only to the generated changegate-manager ClusterRole.
// The suites passing with it proves that role is enough.
func managerConfig() *rest.Config { return testenv.AsManager(restConfig) }

// startManager starts a manager on the test API server, as the test's
// admin, with what setup registers, and returns a function that stops it and
// waits until it has.
func startManager(setup func(ctrl.Manager) error, newClient client.NewClientFunc) (func(), error) {
	return startManagerAs(restConfig, setup, newClient)
}

func startManagerAs(config *rest.Config, setup func(ctrl.Manager) error, newClient client.NewClientFunc) (func(), error) {
	return testenv.StartManager(config, ctrl.Options{
		Scheme:    testenv.Scheme(),
		Cache:     controllers.CacheOptions(),
		Metrics:   metricsserver.Options{BindAddress: "0"},
		NewClient: newClient,
	}, setup)
}

// createNamespace makes a namespace for one test and removes it afterwards.
func createNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return name
}
