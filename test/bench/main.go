// Command bench drives N UpgradePlans at once through the whole change on
// envtest — VAL, UAT approval, backup, PROD MAIN, go, PROD TEST, go — and,
// for a tenth of them, an automatic rollback after a failing PROD check. The
// manager is built from main.go and runs as a process of its own; the
// driver plays the people (through impersonation, under the approvals
// admission policy) and the workload controllers (testenv.Rollouts). It
// writes a report, markdown and JSON, of what the change cost: API writes
// and reconciles per plan against the minimum, reconciles while plans wait
// for a person, approval and rollback latencies, and the manager's peak
// memory and CPU time. make bench runs it; docs/bench.md says how each
// number is measured.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// options are the benchmark's flags.
type options struct {
	plans         int
	rollbackEvery int
	out           string
	quiet         time.Duration
	rate          float64
	keep          bool
	manager       string
}

// settle is how long the driver lets the manager finish what the last
// status writes set off before a quiet period starts counting.
const settle = 3 * time.Second

func main() {
	var o options
	flag.IntVar(&o.plans, "plans", 200, "How many plans to drive at once.")
	flag.IntVar(&o.rollbackEvery, "rollback-every", 10, "Every n-th plan fails its PROD check and rolls back; 0 for none.")
	flag.StringVar(&o.out, "out", "docs/bench", "Directory the report is written to, as report-<plans>.md and report-<plans>.json.")
	flag.DurationVar(&o.quiet, "quiet", 10*time.Second, "How long reconciles are counted while every plan waits for a person.")
	flag.Float64Var(&o.rate, "approvals-per-second", 4, "How fast the people approve and decide, across all plans (docs/bench.md says why 4).")
	flag.StringVar(&o.manager, "manager", "", "Run this manager binary instead of building main.go, to compare a change.")
	flag.BoolVar(&o.keep, "keep", false, "Keep the audit log and the logs of the manager and the driver, in a directory it names.")
	flag.Parse()
	if o.plans < 1 || o.rate <= 0 || o.quiet <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -plans, -approvals-per-second and -quiet must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// progress tells the person running the benchmark where it stands.
func progress(started time.Time, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) (err error) {
	started := time.Now()
	dir, err := os.MkdirTemp("", "changegate-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep {
			progress(started, "kept the manager's log, the driver's and the audit log in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	// The helper controllers in the driver log to a file beside the
	// manager's.
	driverLog, err := os.Create(filepath.Join(dir, "driver.log"))
	if err != nil {
		return err
	}
	defer func() { _ = driverLog.Close() }()
	ctrl.SetLogger(zap.New(zap.WriteTo(driverLog)))

	binary := o.manager
	if binary == "" {
		progress(started, "building the manager from main.go")
		if binary, err = buildManager(ctx); err != nil {
			return err
		}
	}
	progress(started, "starting kube-apiserver and etcd with the audit log on")
	auditLog := filepath.Join(dir, "audit.log")
	env, err := startCluster(dir, auditLog)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil {
			progress(started, "stopping envtest: %v", stopErr)
		}
	}()
	admin := rest.CopyConfig(env.Config)
	admin.QPS, admin.Burst = 1000, 2000
	k8s, err := client.New(admin, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	if err := installEverything(ctx, k8s); err != nil {
		return err
	}

	stopHelpers, rec, err := startHelpers(ctx, admin)
	if err != nil {
		return err
	}
	defer stopHelpers()
	h, err := startHealth()
	if err != nil {
		return err
	}
	defer func() { _ = h.server.Close() }()

	names, happy, rollingBack := planNames(o)
	progress(started, "creating %d applications: %d namespaces and %d workloads", o.plans, o.plans*len(environments), o.plans*len(environments)*len(components))
	err = inParallel(ctx, o.plans, 16, func(ctx context.Context, i int) error {
		for _, obj := range appObjects(names[i]) {
			if err := k8s.Create(ctx, obj); err != nil {
				return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	progress(started, "starting the manager as %s", testenv.ManagerAccount)
	mgr, err := startManagerAs(env, binary, dir)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = mgr.stop(30 * time.Second)
		}
	}()
	if err := mgr.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	setupSeconds := time.Since(started).Seconds()

	rita, err := person(admin, requester)
	if err != nil {
		return err
	}
	alice, err := person(admin, approver)
	if err != nil {
		return err
	}
	carol, err := person(admin, decider, testenv.SafetyGroup)
	if err != nil {
		return err
	}
	r := &results{options: o, names: names, happy: happy, rollingBack: rollingBack, setupSeconds: setupSeconds}
	timeout := 2*time.Minute + time.Duration(o.plans)*300*time.Millisecond + time.Duration(float64(o.plans)/o.rate*float64(time.Second))
	runStarted := time.Now()

	progress(started, "%s files %d plans", requester, o.plans)
	stage := time.Now()
	err = inParallel(ctx, o.plans, 16, func(ctx context.Context, i int) error {
		return rita.Create(ctx, newPlan(names[i], h.url, isIn(rollingBack, names[i])))
	})
	if err != nil {
		return fmt.Errorf("creating the plans as %s: %w", requester, err)
	}
	err = rec.waitFor(ctx, "awaiting UAT approval", timeout, names, func(_ string, p *upgradesv1alpha1.UpgradePlan) bool {
		return awaiting(p, upgradesv1alpha1.StepUATApproval, "")
	})
	if err != nil {
		return err
	}
	r.stage("created, VAL upgraded and verified; all awaiting UAT approval", stage)
	if err := r.quietPeriod(ctx, mgr, "AwaitingUATApproval", o.plans); err != nil {
		return err
	}

	progress(started, "%s approves UAT of every plan, %g a second", approver, o.rate)
	stage = time.Now()
	if r.uat, err = paced(ctx, names, o.rate, func(ctx context.Context, name string) error {
		return annotate(ctx, alice, name, map[string]string{
			upgradesv1alpha1.AnnotationUATApprovedVersion: newVersion, upgradesv1alpha1.AnnotationUATApprovedBy: approver})
	}); err != nil {
		return err
	}
	if err := rec.waitFor(ctx, "rolled back", timeout, rollingBack, func(_ string, p *upgradesv1alpha1.UpgradePlan) bool { return rolledBack(p) }); err != nil {
		return err
	}
	if err := rec.waitFor(ctx, "awaiting the go/no-go for main", timeout, happy, func(_ string, p *upgradesv1alpha1.UpgradePlan) bool {
		return awaiting(p, upgradesv1alpha1.StepDecision, "main")
	}); err != nil {
		return err
	}
	r.stage("UAT approved, backed up, MAIN upgraded; awaiting go for MAIN (a tenth rolled back)", stage)
	if err := r.quietPeriod(ctx, mgr, "AwaitingDecision main", len(happy)); err != nil {
		return err
	}

	for _, target := range []string{"main", "test"} {
		progress(started, "%s says go for %s, %g a second", decider, target, o.rate)
		stage = time.Now()
		decisions, err := paced(ctx, happy, o.rate, func(ctx context.Context, name string) error {
			return annotate(ctx, carol, name, map[string]string{
				upgradesv1alpha1.DecisionAnnotation(target): upgradesv1alpha1.DecisionGo, upgradesv1alpha1.DecidedByAnnotation(target): decider})
		})
		if err != nil {
			return err
		}
		r.decisions = append(r.decisions, decisionRound{target: target, at: decisions})
		if target == "main" {
			err = rec.waitFor(ctx, "awaiting the go/no-go for test", timeout, happy, func(_ string, p *upgradesv1alpha1.UpgradePlan) bool {
				return awaiting(p, upgradesv1alpha1.StepDecision, "test")
			})
			if err != nil {
				return err
			}
			r.stage("go for MAIN; TEST upgraded; awaiting go for TEST", stage)
			if err := r.quietPeriod(ctx, mgr, "AwaitingDecision test", len(happy)); err != nil {
				return err
			}
			continue
		}
		if err := rec.waitFor(ctx, "completed", timeout, happy, func(_ string, p *upgradesv1alpha1.UpgradePlan) bool { return completed(p) }); err != nil {
			return err
		}
		r.stage("go for TEST; completed", stage)
	}

	progress(started, "waiting until the manager is idle")
	stage = time.Now()
	if err := waitIdle(ctx, mgr, 3*time.Second, 2*time.Minute); err != nil {
		return err
	}
	r.stage("the manager finishes (releases snapshots) and is idle for 3 s", stage)
	r.wallSeconds = time.Since(runStarted).Seconds()
	if r.final, err = mgr.scrape(); err != nil {
		return err
	}
	if r.usage, err = mgr.usage(); err != nil {
		return err
	}
	progress(started, "stopping the manager")
	stopped = true
	if err := mgr.stop(30 * time.Second); err != nil {
		progress(started, "the manager stopped with: %v", err)
	}
	for _, name := range names {
		p, seen := rec.plan(name)
		r.plans = append(r.plans, planResult{name: name, rollsBack: isIn(rollingBack, name), final: p, transitions: seen})
		if at, ok := h.failedAt(name); ok {
			r.plans[len(r.plans)-1].checkFailedAt = at
		}
	}
	r.sameStep = rec.statusOnly()
	progress(started, "counting the manager's requests in the audit log")
	known := map[string]bool{}
	for _, name := range names {
		known[name] = true
	}
	if r.audit, err = readAudit(auditLog, known); err != nil {
		return err
	}
	report, err := r.report()
	if err != nil {
		return err
	}
	md, js, err := report.write(o.out)
	if err != nil {
		return err
	}
	progress(started, "wrote %s and %s", md, js)
	fmt.Println(report.summary())
	return nil
}

// installEverything installs what a cluster running changegate has: the
// approvals policy as shipped (bound to every namespace), the user roles,
// the manager's role and binding, and the plans namespace with its people.
func installEverything(ctx context.Context, k8s client.Client) error {
	if err := testenv.InstallApprovalsPolicy(ctx, k8s, nil); err != nil {
		return err
	}
	if err := testenv.BindManagerRole(ctx, k8s); err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plansNamespace}}); err != nil {
		return err
	}
	return testenv.BindPeople(ctx, k8s, plansNamespace)
}

// startHelpers starts, in the driver, the controllers envtest lacks
// (workload rollouts, snapshots, Jobs) and the recorder of the plans'
// transitions.
func startHelpers(ctx context.Context, admin *rest.Config) (func(), *recorder, error) {
	helpers, err := ctrl.NewManager(admin, ctrl.Options{
		Scheme:     testenv.Scheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{MaxConcurrentReconciles: 8},
	})
	if err != nil {
		return nil, nil, err
	}
	err = errors.Join((&testenv.Rollouts{}).SetupWithManager(helpers), (&testenv.Storage{}).SetupWithManager(helpers), (&testenv.Jobs{}).SetupWithManager(helpers))
	if err != nil {
		return nil, nil, err
	}
	helperCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- helpers.Start(helperCtx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "bench: the helper controllers:", err)
		}
	}
	rec := newRecorder()
	if err := rec.watch(ctx, helpers.GetCache()); err != nil {
		stop()
		return nil, nil, err
	}
	return stop, rec, nil
}

// startManagerAs gives the manager's ServiceAccount a client certificate of
// its own, writes the kubeconfig the manager runs with, and starts it.
func startManagerAs(env *envtest.Environment, binary, dir string) (*manager, error) {
	user, err := env.AddUser(envtest.User{Name: testenv.ManagerAccount, Groups: testenv.ManagerGroups}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	return startManager(binary, path, filepath.Join(dir, "manager.log"))
}

// planNames names the plans p0001, p0002, ... and sorts them into those that
// go through and those that roll back.
func planNames(o options) (names, happy, rollingBack []string) {
	for i := range o.plans {
		name := fmt.Sprintf("p%04d", i+1)
		names = append(names, name)
		if o.rollbackEvery > 0 && (i+1)%o.rollbackEvery == 0 {
			rollingBack = append(rollingBack, name)
		} else {
			happy = append(happy, name)
		}
	}
	return names, happy, rollingBack
}

func isIn(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// signed is when a person's annotation patch was sent and when the API
// server answered it.
type signed struct {
	sent, returned time.Time
}

// paced has a person sign each plan in turn, rate a second, without waiting
// for one answer before sending the next, as many people at their desks
// would.
func paced(ctx context.Context, names []string, rate float64, sign func(context.Context, string) error) (map[string]signed, error) {
	var mu sync.Mutex
	out := map[string]signed{}
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for i, name := range names {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(due)):
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			err := sign(ctx, name)
			returned := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("signing %s: %w", name, err))
				return
			}
			out[name] = signed{sent: sent, returned: returned}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// waitIdle waits until the manager's reconcile count has not moved for
// still.
func waitIdle(ctx context.Context, mgr *manager, still, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, err := mgr.reconciles()
	if err != nil {
		return err
	}
	since := time.Now()
	for time.Since(since) < still {
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager was still reconciling %s after the last plan finished", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		now, err := mgr.reconciles()
		if err != nil {
			return err
		}
		if now != last {
			last, since = now, time.Now()
		}
	}
	return nil
}
