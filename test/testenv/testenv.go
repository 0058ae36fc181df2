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
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// RepoRoot is the root of the changegate checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme knows the Kubernetes built-in types and the changegate API.
func Scheme() *k8sruntime.Scheme {
	scheme := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(upgradesv1alpha1.AddToScheme(scheme))
	return scheme
}

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

// Start starts kube-apiserver and etcd with the changegate CRDs and any extra
// CRD directories installed. Stop the returned environment when done.
func Start(extraCRDDirs ...string) (*envtest.Environment, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, extraCRDDirs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	if _, err := env.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err), env.Stop())
	}
	return env, nil
}
