package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/changegate/changegate/test/testenv"
)

// auditPolicy logs, once each when it completes, every request the manager's
// ServiceAccount makes except watches, without bodies. The manager reaches
// the API server as that account with a client certificate of its own, so
// the audit user is the account itself and nothing the driver or the
// helpers do is logged.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["` + testenv.ManagerAccount + `"]
    verbs: ["create", "update", "patch", "delete", "deletecollection", "get", "list"]
  - level: None
`

// startCluster starts envtest with the audit log of auditPolicy written to
// auditLog. The log is never rotated: a rotated part would be missed.
func startCluster(dir, auditLog string) (*envtest.Environment, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	return testenv.Start(func(env *envtest.Environment) {
		env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", auditLog).
			Set("audit-log-maxsize", "100000").
			Set("audit-log-mode", "blocking")
	})
}

// manager is the changegate manager, built from main.go and running as a
// process of its own, so that its memory and CPU time are its alone.
type manager struct {
	cmd        *exec.Cmd
	metricsURL string
	readyURL   string
	logPath    string
	exited     chan error
	clockTicks float64
}

// buildManager builds main.go into the cache, as make build would build
// bin/manager.
func buildManager(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	if dir := os.Getenv("XDG_CACHE_HOME"); dir != "" {
		cache = dir
	}
	binary := filepath.Join(cache, "changegate", "bench", "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binary, ".")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	return binary, nil
}

// freePort returns a port on 127.0.0.1 nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startManager runs the manager binary against the kubeconfig with its
// defaults, except that leader election is off (one manager) and its
// endpoints listen on free ports of 127.0.0.1. Its log goes to logPath.
func startManager(binary, kubeconfig, logPath string) (*manager, error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	probePort, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary,
		"--leader-elect=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort))
	shipped, err := deploymentEnv()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	cmd.Env = append(append(os.Environ(), shipped...), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	m := &manager{cmd: cmd, logPath: logPath, exited: make(chan error, 1), clockTicks: clockTicks(),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		readyURL:   fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)}
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		m.exited <- err
	}()
	return m, nil
}

// deploymentEnv is the environment config/manager gives the manager's
// container (GOMEMLIMIT), as NAME=value: the benchmark runs the manager as
// the Deployment does.
func deploymentEnv() ([]string, error) {
	namespace, deployment := &corev1.Namespace{}, &appsv1.Deployment{}
	if err := testenv.ReadConfig("manager/manager.yaml", namespace, deployment); err != nil {
		return nil, err
	}
	var env []string
	for _, c := range deployment.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		for _, v := range c.Env {
			env = append(env, v.Name+"="+v.Value)
		}
	}
	return env, nil
}

// waitReady waits until the manager answers its readiness probe and serves
// the reconcile counter of the UpgradePlan controller, which appears once
// the controller has started.
func (m *manager) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-m.exited:
			m.exited <- err
			return fmt.Errorf("the manager exited before it was ready (%v); its log is %s", err, m.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(m.readyURL)
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		if families, err := m.scrape(); err == nil && families.has("controller_runtime_reconcile_total", "controller", controllerName) {
			return nil
		}
	}
	return fmt.Errorf("the manager was not ready within %s; its log is %s", timeout, m.logPath)
}

// controllerName is the name the UpgradePlan controller registers under.
const controllerName = "upgradeplan"

// scrape reads the manager's metrics endpoint.
func (m *manager) scrape() (metrics, error) {
	resp, err := http.Get(m.metricsURL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", m.metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// reconciles is the UpgradePlan controller's reconcile count so far.
func (m *manager) reconciles() (float64, error) {
	families, err := m.scrape()
	if err != nil {
		return 0, err
	}
	return families.sum("controller_runtime_reconcile_total", "controller", controllerName), nil
}

// usage is what the kernel accounts to the manager process.
type usage struct {
	peakRSSBytes int64
	cpuSeconds   float64
}

// usage reads the peak resident set (VmHWM) and the user and system CPU time
// of the manager process from /proc.
func (m *manager) usage() (usage, error) {
	pid := m.cmd.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) != 2 || fields[1] != "kB" {
				return usage{}, fmt.Errorf("unexpected VmHWM line %q", line)
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return usage{}, err
			}
			u.peakRSSBytes = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	// The command name, in parentheses, may hold spaces: count fields after
	// its closing parenthesis. utime and stime are fields 14 and 15 of the
	// line, the 12th and 13th after the name.
	after := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(after) < 13 {
		return usage{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	utime, err1 := strconv.ParseFloat(after[11], 64)
	stime, err2 := strconv.ParseFloat(after[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return usage{}, err
	}
	u.cpuSeconds = (utime + stime) / m.clockTicks
	if u.peakRSSBytes == 0 {
		return usage{}, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return u, nil
}

// clockTicks is the unit of the CPU times in /proc/<pid>/stat.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if ticks, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && ticks > 0 {
			return ticks
		}
	}
	return 100 // USER_HZ on every Linux architecture Go supports
}

// stop asks the manager to shut down, as Kubernetes would, and waits for it.
func (m *manager) stop(timeout time.Duration) error {
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-m.exited:
		return err
	case <-time.After(timeout):
		_ = m.cmd.Process.Kill()
		killed := <-m.exited
		return fmt.Errorf("the manager did not stop within %s of SIGTERM; killed (%v)", timeout, killed)
	}
}
