// Package integration runs the changegate manager on a real kube-apiserver
// and etcd (envtest) and checks what a user of the API would see.
package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

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
	// workloadPatches counts the patches changegate sent to workloads.
	workloadPatches atomic.Int64
	// created counts the objects changegate created, by kind.
	created = &creations{counts: map[string]int{}}
	// restConfig reaches the test API server.
	restConfig *rest.Config
	// stopChangegate stops the running changegate manager.
	stopChangegate func()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	restConfig = env.Config

	if k8s, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installApprovalsPolicy(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := bindManagerRole(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stopRollouts, err := startManager(func(mgr ctrl.Manager) error {
		return errors.Join(rollouts.SetupWithManager(mgr), storage.SetupWithManager(mgr), jobs.SetupWithManager(mgr))
	}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopRollouts()
	if stopChangegate, err = startChangegate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { stopChangegate() }()
	return m.Run()
}

// creations counts what changegate created, by kind.
type creations struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *creations) add(obj client.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[fmt.Sprintf("%T", obj)]++
}

// of returns how many objects of obj's type changegate created.
func (c *creations) of(obj client.Object) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[fmt.Sprintf("%T", obj)]
}

// startChangegate starts a changegate manager as main.go does, with a client
// that counts its patches to workloads and what it creates.
func startChangegate() (func(), error) {
	count := func(_ context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		switch obj.(type) {
		case *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet:
			workloadPatches.Add(1)
		}
		return c.Patch(context.Background(), obj, patch, opts...)
	}
	newClient := func(config *rest.Config, options client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(config, options)
		if err != nil {
			return nil, err
		}
		create := func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			err := c.Create(ctx, obj, opts...)
			if err == nil {
				created.add(obj)
			}
			return err
		}
		return interceptor.NewClient(c, interceptor.Funcs{Patch: count, Create: create}), nil
	}
	return startManagerAs(managerConfig(), func(mgr ctrl.Manager) error {
		return controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 4, SkipNameValidation: true})
	}, newClient)
}

// managerConfig reaches the API server as the manager's ServiceAccount of
// config/rbac, bound only to the generated changegate-manager ClusterRole.
// The suites passing with it proves that role is enough.
func managerConfig() *rest.Config { return testenv.AsManager(restConfig) }

// bindManagerRole installs the generated ClusterRole and its binding from
// config/rbac, as make build-installer ships them.
func bindManagerRole() error {
	for _, file := range []string{"role.yaml", "role_binding.yaml"} {
		data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("reading config/rbac/%s: %w", file, err)
		}
		if err := k8s.Create(context.Background(), obj); err != nil {
			return fmt.Errorf("installing config/rbac/%s: %w", file, err)
		}
	}
	return nil
}

// startManager starts a manager on the test API server, as the test's
// admin, with what setup registers, and returns a function that stops it and
// waits until it has.
func startManager(setup func(ctrl.Manager) error, newClient client.NewClientFunc) (func(), error) {
	return startManagerAs(restConfig, setup, newClient)
}

func startManagerAs(config *rest.Config, setup func(ctrl.Manager) error, newClient client.NewClientFunc) (func(), error) {
	return testenv.StartManager(config, ctrl.Options{
		Scheme:    testenv.Scheme(),
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
