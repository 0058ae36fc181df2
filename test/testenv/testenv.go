// Package testenv starts the real control plane the integration suites run
// on: kube-apiserver and etcd built by hack/toolchain.sh, with the changegate
// CRDs from config/crd installed.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
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
