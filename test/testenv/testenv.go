// Package testenv starts the real control plane the integration suites run
// on: kube-apiserver and etcd built by hack/toolchain.sh, with the changegate
// CRDs from config/crd installed.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/changegate/changegate/controllers"
)

// RepoRoot is the root of the changegate checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme knows every type the manager knows.
func Scheme() *k8sruntime.Scheme { return controllers.NewScheme() }

// Assets returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set (make test sets it), else the toolchain cache.
func Assets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		out, err := exec.Command(filepath.Join(RepoRoot(), "hack", "toolchain.sh"), "path", "assets").Output()
		if err != nil {
			return "", fmt.Errorf("finding the toolchain cache: %w", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, binary := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, binary)); err != nil {
			return "", fmt.Errorf("%s is not in %s: run `make test`, or `hack/toolchain.sh envtest` to build it", binary, dir)
		}
	}
	return dir, nil
}

// SnapshotterModule is the Go module that carries the CSI VolumeSnapshot
// types and CRDs; go.mod pins its version.
const SnapshotterModule = "github.com/kubernetes-csi/external-snapshotter/client/v8"

// VolumeSnapshotCRDs returns the CRD files of snapshot.storage.k8s.io/v1
// (VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent) from the
// module cache, at the version go.mod pins.
func VolumeSnapshotCRDs() ([]string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", SnapshotterModule)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("finding %s in the module cache (go mod download fetches it): %w", SnapshotterModule, err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd")
	var files []string
	for _, kind := range []string{"volumesnapshots", "volumesnapshotclasses", "volumesnapshotcontents"} {
		files = append(files, filepath.Join(dir, "snapshot.storage.k8s.io_"+kind+".yaml"))
	}
	return files, nil
}

// Start starts kube-apiserver and etcd with the changegate and VolumeSnapshot
// CRDs installed. Each configure function may change the environment before
// it starts (the benchmark turns on the API server's audit log). Stop the
// returned environment when done.
func Start(configure ...func(*envtest.Environment)) (*envtest.Environment, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	snapshotCRDs, err := VolumeSnapshotCRDs()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, snapshotCRDs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	for _, change := range configure {
		change(env)
	}
	if _, err := env.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err), env.Stop())
	}
	return env, nil
}

// Restartable keeps etcd's data and kube-apiserver's certificates in dir,
// an existing directory the caller removes when done, so that Stop and
// Resume can stop and start them again as the same cluster.
func Restartable(dir string) func(*envtest.Environment) {
	return func(env *envtest.Environment) {
		etcdPort, apiPort := stablePort(), stablePort()
		for apiPort == etcdPort {
			apiPort = stablePort()
		}
		env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dir, "etcd"),
			URL: &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdPort))}}
		apiServer := env.ControlPlane.GetAPIServer()
		apiServer.CertDir = dir
		apiServer.Address, apiServer.Port = "127.0.0.1", strconv.Itoa(apiPort) // its secure serving address
		// Without a grace period for watches, kube-apiserver waits for
		// every open watch to end before it stops, longer than envtest
		// waits; with one, it ends them.
		apiServer.Configure().Set("shutdown-watch-termination-grace-period", "1s")
		// Watches are served from etcd, which replays every event since
		// any resourceVersion it still holds: a watch that ends with an
		// outage can start again where it stopped. The API server's watch
		// cache starts afresh with it and would answer 410 Gone.
		apiServer.Configure().Set("watch-cache", "false")
		// What they print goes to files in dir, for when one does not
		// come back.
		for name, out := range map[string]*io.Writer{"etcd": &env.ControlPlane.Etcd.Out, "kube-apiserver": &apiServer.Out} {
			if f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
				*out = f
			}
		}
		env.ControlPlane.Etcd.Err, apiServer.Err = env.ControlPlane.Etcd.Out, apiServer.Out
	}
}

// stablePort returns a free port of 127.0.0.1 below Linux's range of
// ephemeral ports (32768 and up). While etcd or kube-apiserver is down, any
// connection the machine opens may take a free ephemeral port as its own,
// and the server could not listen on it again.
func stablePort() int {
	for {
		port := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			_ = l.Close()
			return port
		}
	}
}

// logTail is the end of what component printed, for an error message.
func logTail(env *envtest.Environment, component string) string {
	data, err := os.ReadFile(filepath.Join(env.ControlPlane.APIServer.CertDir, component+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return "; the end of its log:\n" + strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// Stop stops kube-apiserver, then etcd, of an environment started
// Restartable, as an outage would; Resume starts them again.
func Stop(env *envtest.Environment) error {
	if env.ControlPlane.Etcd.DataDir == "" {
		return errors.New("the environment keeps no data across a restart: start it Restartable")
	}
	if err := env.ControlPlane.APIServer.Stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	if err := env.ControlPlane.Etcd.Stop(); err != nil {
		return fmt.Errorf("stopping etcd: %w", err)
	}
	return nil
}

// Resume starts etcd and kube-apiserver stopped by Stop, and returns once
// kube-apiserver is ready: until then it may refuse every request (its
// authorizer has not loaded the RBAC rules yet), and a cluster's load
// balancer would not send it any.
func Resume(env *envtest.Environment) error {
	if err := env.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("starting etcd again: %w%s", err, logTail(env, "etcd"))
	}
	if err := env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w%s", err, logTail(env, "kube-apiserver"))
	}
	clients, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	var lastErr error
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lastErr = clients.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		return lastErr == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver is not ready 30s after it started again: %w", lastErr)
	}
	return nil
}
