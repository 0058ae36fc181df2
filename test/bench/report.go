package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// The targets of issue #9.
const (
	writeRatioTarget      = 1.2
	approvalP99TargetMs   = 250
	rollbackTargetMs      = 1000
	rssTargetMiB          = 200
	rssTargetPlans        = 1000
	minimumSnapshotWrites = 2 // per PROD target: the UpgradeSnapshot's create and its verified status
)

// results are what the driver collected during the run.
type results struct {
	options                   options
	names, happy, rollingBack []string
	setupSeconds, wallSeconds float64
	stages                    []Stage
	waits                     []Waiting
	uat                       map[string]signed
	decisions                 []decisionRound
	final                     metrics
	usage                     usage
	plans                     []planResult
	audit                     *auditCounts
	sameStep                  map[string]int
}

// decisionRound is the go for one target on every plan that reached it.
type decisionRound struct {
	target string
	at     map[string]signed
}

// planResult is one plan at the end: its last object and every transition
// the watch saw, and, for a plan that rolled back, when its PROD check
// first failed.
type planResult struct {
	name          string
	rollsBack     bool
	final         *upgradesv1alpha1.UpgradePlan
	transitions   []transition
	checkFailedAt time.Time
}

func (r *results) stage(name string, since time.Time) {
	r.stages = append(r.stages, Stage{Name: name, Seconds: round(time.Since(since).Seconds(), 2)})
}

// quietPeriod counts the manager's reconciles and CPU time while every plan
// that is not finished waits for a person, after letting it settle.
func (r *results) quietPeriod(ctx context.Context, mgr *manager, phase string, waiting int) error {
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := sleep(settle); err != nil {
		return err
	}
	before, err := mgr.reconciles()
	if err != nil {
		return err
	}
	usedBefore, err := mgr.usage()
	if err != nil {
		return err
	}
	if err := sleep(r.options.quiet); err != nil {
		return err
	}
	after, err := mgr.reconciles()
	if err != nil {
		return err
	}
	usedAfter, err := mgr.usage()
	if err != nil {
		return err
	}
	r.waits = append(r.waits, Waiting{Phase: phase, PlansWaiting: waiting, Seconds: r.options.quiet.Seconds(),
		Reconciles: after - before, CPUSeconds: round(usedAfter.cpuSeconds-usedBefore.cpuSeconds, 2)})
	return nil
}

// Report is what report-<plans>.json holds; report-<plans>.md says the same
// for people.
type Report struct {
	Date         string  `json:"date"`
	Commit       string  `json:"commit"`
	Machine      Machine `json:"machine"`
	Setup        Setup   `json:"setup"`
	SetupSeconds float64 `json:"setupSeconds"`
	// WallSeconds runs from the first plan's creation until the manager is
	// idle after the last plan finished, quiet periods and the people's
	// pace included.
	WallSeconds float64    `json:"wallSeconds"`
	Stages      []Stage    `json:"stages"`
	Reconciles  Reconciles `json:"reconciles"`
	Writes      Writes     `json:"writes"`
	Events      Requests   `json:"events"`
	Reads       Requests   `json:"reads"`
	Waiting     []Waiting  `json:"waitingForPeople"`
	// ApprovalLatency runs from sending the approval or go to the watch
	// seeing the plan leave the waiting phase; FromAnswer from the API
	// server's answer to the patch.
	ApprovalLatency           Latency            `json:"approvalLatency"`
	ApprovalLatencyFromAnswer Latency            `json:"approvalLatencyFromAnswer"`
	ApprovalLatencyBySign     map[string]Latency `json:"approvalLatencyBySignature"`
	// RollbackLatency runs from the health endpoint's failing answer to the
	// watch seeing RollingBack.
	RollbackLatency Latency      `json:"rollbackLatency"`
	Manager         ManagerUsage `json:"manager"`
	CrossChecks     CrossChecks  `json:"crossChecks"`
	Targets         []Target     `json:"targets"`
}

type Machine struct {
	CPUs          int    `json:"cpus"`
	CPUModel      string `json:"cpuModel"`
	MemoryMiB     int    `json:"memoryMiB"`
	Kernel        string `json:"kernel"`
	OS            string `json:"os"`
	GoVersion     string `json:"goVersion"`
	KubeAPIServer string `json:"kubeAPIServer"`
}

type Setup struct {
	Plans              int      `json:"plans"`
	RollbackPlans      int      `json:"rollbackPlans"`
	Components         []string `json:"components"`
	Environments       []string `json:"environments"`
	ApprovalsPerSecond float64  `json:"approvalsPerSecond"`
	QuietSeconds       float64  `json:"quietSeconds"`
	ManagerFlags       []string `json:"managerFlags"`
	// ManagerEnv is the environment config/manager gives the manager's
	// container, which the run gave it too.
	ManagerEnv []string `json:"managerEnv"`
	// ManagerBinary is "main.go" when the run built the manager, else the
	// binary it was given.
	ManagerBinary string `json:"managerBinary"`
}

type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

type Reconciles struct {
	Total    float64            `json:"total"`
	PerPlan  float64            `json:"perPlan"`
	ByResult map[string]float64 `json:"byResult"`
	// PerTransition is reconciles per phase transition seen: the least a
	// reconcile can do is move the plan one phase.
	PerTransition float64 `json:"perTransition"`
}

type Writes struct {
	Total          int         `json:"total"`
	PerPlan        float64     `json:"perPlan"`
	Minimum        int         `json:"minimum"`
	MinimumPerPlan float64     `json:"minimumPerPlan"`
	Ratio          float64     `json:"ratio"`
	MinimumParts   Minimum     `json:"minimumParts"`
	ByKind         []KindCount `json:"byKind"`
	Refused        map[int]int `json:"refusedByCode"`
	Unattributed   int         `json:"unattributed"`
	Happy          Group       `json:"happyPath"`
	Rollback       Group       `json:"rollback"`
	// WithoutTransition are the plan status writes the watch saw that moved
	// no phase, by the step the plan stood at and what the write recorded.
	WithoutTransition []KindCount `json:"statusWritesWithoutTransition"`
}

// Minimum is the least the plans could have written: one status write per
// phase transition, one patch per workload changed or restored, and the
// UpgradeSnapshot's create and verified status per PROD target.
type Minimum struct {
	Transitions     int `json:"phaseTransitions"`
	WorkloadPatches int `json:"workloadPatches"`
	SnapshotWrites  int `json:"snapshotWrites"`
}

type Group struct {
	Plans          int     `json:"plans"`
	WritesPerPlan  float64 `json:"writesPerPlan"`
	MinimumPerPlan float64 `json:"minimumPerPlan"`
	Ratio          float64 `json:"ratio"`
}

type KindCount struct {
	Kind    string  `json:"kind"`
	Count   int     `json:"count"`
	PerPlan float64 `json:"perPlan"`
}

type Requests struct {
	Total   int         `json:"total"`
	PerPlan float64     `json:"perPlan"`
	ByKind  []KindCount `json:"byKind"`
}

type Waiting struct {
	Phase        string  `json:"phase"`
	PlansWaiting int     `json:"plansWaiting"`
	Seconds      float64 `json:"seconds"`
	Reconciles   float64 `json:"reconciles"`
	CPUSeconds   float64 `json:"managerCPUSeconds"`
}

type Latency struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	MaxMs   float64 `json:"maxMs"`
}

type ManagerUsage struct {
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	CPUSeconds float64 `json:"cpuSeconds"`
	// HeapAllocMiB and HeapInuseMiB are the Go heap at the end of the run,
	// from the manager's go_memstats metrics: live objects, and the spans
	// holding them.
	HeapAllocMiB float64 `json:"heapAllocMiB"`
	HeapInuseMiB float64 `json:"heapInuseMiB"`
}

// CrossChecks compare the benchmark's counts with the manager's own.
type CrossChecks struct {
	// TransitionsSeen by the driver's watch, ManagerTransitions counted by
	// changegate_transitions_total, HistoryEntries in the plans' status.
	TransitionsSeen    int     `json:"transitionsSeen"`
	ManagerTransitions float64 `json:"managerTransitions"`
	HistoryEntries     int     `json:"historyEntries"`
	// AuditWrites (Events included) against the manager's
	// rest_client_requests_total for POST, PUT, PATCH and DELETE.
	AuditWrites       int      `json:"auditWrites"`
	ClientWrites      float64  `json:"clientWrites"`
	ReconcileErrors   float64  `json:"reconcileErrors"`
	PlansNotAsPlanned []string `json:"plansNotAsPlanned"`
}

type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Result is PASS, FAIL, or n/a where the target is stated for another
	// number of plans.
	Result string `json:"result"`
}

// report turns the results into the report.
func (r *results) report() (*Report, error) {
	env, err := deploymentEnv()
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Commit:  commit(),
		Machine: machine(),
		Setup: Setup{Plans: len(r.names), RollbackPlans: len(r.rollingBack), Environments: environments,
			ApprovalsPerSecond: r.options.rate, QuietSeconds: r.options.quiet.Seconds(),
			ManagerFlags:  []string{"--leader-elect=false", "--metrics-bind-address=127.0.0.1:<free>", "--health-probe-bind-address=127.0.0.1:<free>"},
			ManagerEnv:    env,
			ManagerBinary: "main.go"},
		SetupSeconds: round(r.setupSeconds, 1),
		WallSeconds:  round(r.wallSeconds, 1),
		Stages:       r.stages,
		Waiting:      r.waits,
	}
	if r.options.manager != "" {
		rep.Setup.ManagerBinary = r.options.manager
	}
	for _, c := range components {
		rep.Setup.Components = append(rep.Setup.Components, c.kind+" "+c.workload)
	}
	plans := float64(len(r.names))

	// Reconciles.
	rep.Reconciles.Total = r.final.sum("controller_runtime_reconcile_total", "controller", controllerName)
	rep.Reconciles.ByResult = r.final.by("controller_runtime_reconcile_total", "result", "controller", controllerName)
	rep.Reconciles.PerPlan = round(rep.Reconciles.Total/plans, 2)

	// The minimum, plan by plan, and what the watch saw.
	minimumOf := map[string]int{}
	var notAsPlanned []string
	for _, p := range r.plans {
		if p.final == nil {
			return nil, fmt.Errorf("the watch never saw plan %s", p.name)
		}
		if (p.rollsBack && !rolledBack(p.final)) || (!p.rollsBack && !completed(p.final)) {
			notAsPlanned = append(notAsPlanned, p.name)
		}
		upgraded := 0
		for _, t := range p.final.Spec.PROD.Targets {
			if findStep(p.final, upgradesv1alpha1.StepUpgradePROD, string(t.Name)) {
				upgraded++
			}
		}
		restored := 0
		if findStep(p.final, upgradesv1alpha1.StepRollBack, "") {
			restored = upgraded
		}
		m := Minimum{Transitions: len(p.transitions), WorkloadPatches: len(components) * (1 + upgraded + restored),
			SnapshotWrites: minimumSnapshotWrites * len(p.final.Status.Snapshots)}
		minimumOf[p.name] = m.Transitions + m.WorkloadPatches + m.SnapshotWrites
		rep.Writes.MinimumParts.Transitions += m.Transitions
		rep.Writes.MinimumParts.WorkloadPatches += m.WorkloadPatches
		rep.Writes.MinimumParts.SnapshotWrites += m.SnapshotWrites
		rep.CrossChecks.TransitionsSeen += len(p.transitions)
		rep.CrossChecks.HistoryEntries += len(p.final.Status.History)
	}
	rep.CrossChecks.PlansNotAsPlanned = notAsPlanned
	rep.Reconciles.PerTransition = round(rep.Reconciles.Total/float64(rep.CrossChecks.TransitionsSeen), 2)

	// Writes.
	w := r.audit.writes
	rep.Writes.Total = w.total
	rep.Writes.PerPlan = round(float64(w.total)/plans, 2)
	rep.Writes.Minimum = rep.Writes.MinimumParts.Transitions + rep.Writes.MinimumParts.WorkloadPatches + rep.Writes.MinimumParts.SnapshotWrites
	rep.Writes.MinimumPerPlan = round(float64(rep.Writes.Minimum)/plans, 2)
	rep.Writes.Ratio = round(float64(w.total)/float64(rep.Writes.Minimum), 3)
	rep.Writes.ByKind = kinds(w, plans)
	rep.Writes.Refused = w.failed
	rep.Writes.Unattributed = r.audit.unattributed
	group := func(names []string) Group {
		g := Group{Plans: len(names)}
		if len(names) == 0 {
			return g
		}
		var writes, minimum int
		for _, name := range names {
			writes += w.byPlan[name]
			minimum += minimumOf[name]
		}
		g.WritesPerPlan = round(float64(writes)/float64(len(names)), 2)
		g.MinimumPerPlan = round(float64(minimum)/float64(len(names)), 2)
		g.Ratio = round(float64(writes)/float64(minimum), 3)
		return g
	}
	rep.Writes.Happy, rep.Writes.Rollback = group(r.happy), group(r.rollingBack)
	without := newRequestCounts()
	for kind, n := range r.sameStep {
		without.byKind[kind] = n
	}
	rep.Writes.WithoutTransition = kinds(without, plans)
	rep.Events = Requests{Total: r.audit.events.total, PerPlan: round(float64(r.audit.events.total)/plans, 2), ByKind: kinds(r.audit.events, plans)}
	rep.Reads = Requests{Total: r.audit.reads.total, PerPlan: round(float64(r.audit.reads.total)/plans, 2), ByKind: kinds(r.audit.reads, plans)}

	// Latencies.
	var fromSent, fromAnswer []float64
	rep.ApprovalLatencyBySign = map[string]Latency{}
	measure := func(label string, signatures map[string]signed, phase upgradesv1alpha1.Phase, target string) {
		var sample []float64
		for _, p := range r.plans {
			at, ok := signatures[p.name]
			if !ok {
				continue
			}
			for _, t := range p.transitions {
				if t.at.After(at.sent) && (t.phase != phase || t.target != target) {
					sample = append(sample, ms(t.at.Sub(at.sent)))
					fromAnswer = append(fromAnswer, ms(t.at.Sub(at.returned)))
					break
				}
			}
		}
		fromSent = append(fromSent, sample...)
		rep.ApprovalLatencyBySign[label] = latency(sample)
	}
	measure("UAT approval", r.uat, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	for _, round := range r.decisions {
		measure("go for "+round.target, round.at, upgradesv1alpha1.PhaseAwaitingDecision, round.target)
	}
	rep.ApprovalLatency, rep.ApprovalLatencyFromAnswer = latency(fromSent), latency(fromAnswer)
	var rollback []float64
	for _, p := range r.plans {
		if !p.rollsBack || p.checkFailedAt.IsZero() {
			continue
		}
		for _, t := range p.transitions {
			if t.phase == upgradesv1alpha1.PhaseRollingBack {
				rollback = append(rollback, ms(t.at.Sub(p.checkFailedAt)))
				break
			}
		}
	}
	rep.RollbackLatency = latency(rollback)

	// The manager.
	rep.Manager = ManagerUsage{PeakRSSMiB: round(float64(r.usage.peakRSSBytes)/(1<<20), 1), CPUSeconds: round(r.usage.cpuSeconds, 1),
		HeapAllocMiB: round(r.final.sum("go_memstats_heap_alloc_bytes", "", "")/(1<<20), 1),
		HeapInuseMiB: round(r.final.sum("go_memstats_heap_inuse_bytes", "", "")/(1<<20), 1)}
	rep.CrossChecks.ManagerTransitions = r.final.sum("changegate_transitions_total", "", "")
	rep.CrossChecks.AuditWrites = r.audit.writes.total + r.audit.events.total
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		rep.CrossChecks.ClientWrites += r.final.sum("rest_client_requests_total", "method", method)
	}
	rep.CrossChecks.ReconcileErrors = r.final.sum("controller_runtime_reconcile_errors_total", "controller", controllerName)

	rep.Targets = r.targets(rep)
	if len(rollback) != len(r.rollingBack) {
		return nil, fmt.Errorf("measured %d rollbacks of %d plans that should roll back", len(rollback), len(r.rollingBack))
	}
	return rep, nil
}

func (r *results) targets(rep *Report) []Target {
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	var waitingReconciles float64
	var parts []string
	for _, w := range rep.Waiting {
		waitingReconciles += w.Reconciles
		parts = append(parts, fmt.Sprintf("%g in %s", w.Reconciles, w.Phase))
	}
	// The p99 must hold for UAT approvals and for each round of gos alike,
	// not only over all of them together.
	worst, worstP99 := "", 0.0
	for sign, l := range rep.ApprovalLatencyBySign {
		if l.P99Ms >= worstP99 {
			worst, worstP99 = sign, l.P99Ms
		}
	}
	rss := Target{Name: "manager peak RSS", Goal: fmt.Sprintf("< %d MiB at %d plans", rssTargetMiB, rssTargetPlans),
		Measured: fmt.Sprintf("%.1f MiB at %d plans", rep.Manager.PeakRSSMiB, rep.Setup.Plans)}
	if rep.Setup.Plans >= rssTargetPlans {
		rss.Result = verdict(rep.Manager.PeakRSSMiB < rssTargetMiB)
	} else {
		rss.Result = "n/a"
	}
	return []Target{
		{Name: "API writes", Goal: fmt.Sprintf("≤ %.1f × minimum", writeRatioTarget),
			Measured: fmt.Sprintf("%.3f × (%.2f per plan, minimum %.2f)", rep.Writes.Ratio, rep.Writes.PerPlan, rep.Writes.MinimumPerPlan),
			Result:   verdict(rep.Writes.Ratio <= writeRatioTarget)},
		{Name: "reconciles while plans wait for a person", Goal: "0",
			Measured: fmt.Sprintf("%g (%s)", waitingReconciles, strings.Join(parts, ", ")), Result: verdict(waitingReconciles == 0)},
		{Name: "approval → next phase, p99 of all and of each kind of signature", Goal: fmt.Sprintf("< %d ms", approvalP99TargetMs),
			Measured: fmt.Sprintf("%.1f ms from sending, all; worst kind: %s %.1f ms (%.1f ms from the API server's answer, all)",
				rep.ApprovalLatency.P99Ms, worst, worstP99, rep.ApprovalLatencyFromAnswer.P99Ms),
			Result: verdict(rep.ApprovalLatency.Samples > 0 && rep.ApprovalLatency.P99Ms < approvalP99TargetMs && worstP99 < approvalP99TargetMs)},
		{Name: "failed check → rollback started, every rollback", Goal: fmt.Sprintf("< %d ms", rollbackTargetMs),
			Measured: fmt.Sprintf("max %.1f ms (p99 %.1f ms)", rep.RollbackLatency.MaxMs, rep.RollbackLatency.P99Ms),
			Result:   verdict(rep.RollbackLatency.Samples == rep.Setup.RollbackPlans && rep.RollbackLatency.MaxMs < rollbackTargetMs)},
		rss,
	}
}

func findStep(p *upgradesv1alpha1.UpgradePlan, name upgradesv1alpha1.StepName, target string) bool {
	return slices.ContainsFunc(p.Status.Steps, func(s upgradesv1alpha1.Step) bool { return s.Name == name && s.Target == target })
}

func kinds(c *requestCounts, plans float64) []KindCount {
	var out []KindCount
	for kind, n := range c.byKind {
		out = append(out, KindCount{Kind: kind, Count: n, PerPlan: round(float64(n)/plans, 2)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// latency summarises a sample in milliseconds; p50 and p99 by nearest rank.
func latency(sample []float64) Latency {
	if len(sample) == 0 {
		return Latency{}
	}
	sorted := slices.Clone(sample)
	slices.Sort(sorted)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return round(sorted[max(0, i)], 1)
	}
	return Latency{Samples: len(sorted), P50Ms: rank(0.50), P99Ms: rank(0.99), MaxMs: round(sorted[len(sorted)-1], 1)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	scale := math.Pow(10, float64(digits))
	return math.Round(v*scale) / scale
}

// commit is the checked-out commit, marked dirty when the tree differs.
func commit() string {
	out, err := exec.Command("git", "-C", testenv.RepoRoot(), "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	id := strings.TrimSpace(string(out))
	if status, err := exec.Command("git", "-C", testenv.RepoRoot(), "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 {
		id += "-dirty"
	}
	return id
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if key, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(key) == "model name" {
				m.CPUModel = strings.TrimSpace(value)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if fields := strings.Fields(rest); len(fields) > 0 {
					kb, _ := strconv.Atoi(fields[0])
					m.MemoryMiB = kb / 1024
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if assets, err := testenv.Assets(); err == nil {
		if out, err := exec.Command(filepath.Join(assets, "kube-apiserver"), "--version").Output(); err == nil {
			m.KubeAPIServer = strings.TrimSpace(string(out))
		}
	}
	return m
}

// write writes report-<plans>.md and report-<plans>.json into dir.
func (rep *Report) write(dir string) (string, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	base := filepath.Join(dir, fmt.Sprintf("report-%d", rep.Setup.Plans))
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".md", []byte(rep.markdown()), 0o644); err != nil {
		return "", "", err
	}
	return base + ".md", base + ".json", nil
}

// summary is the targets, for the terminal.
func (rep *Report) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "changegate benchmark, %d plans, %.1f s\n", rep.Setup.Plans, rep.WallSeconds)
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, "  %-4s %s: %s (goal %s)\n", t.Result, t.Name, t.Measured, t.Goal)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (rep *Report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# changegate benchmark: %d plans", rep.Setup.Plans)
	p("")
	p("Generated by `go run ./test/bench -plans %d` (`make bench`; docs/bench.md says how each number is measured). Do not edit: run it again.",
		rep.Setup.Plans)
	p("")
	p("- date: %s, commit %s", rep.Date, rep.Commit)
	p("- machine: %d CPUs (%s), %d MiB, Linux %s, %s, %s; %s with etcd, envtest", rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.MemoryMiB,
		rep.Machine.Kernel, rep.Machine.OS, rep.Machine.GoVersion, rep.Machine.KubeAPIServer)
	p("- plans: %d at once, each with %s in VAL and PROD targets main and test; %d roll back after a failing PROD check",
		rep.Setup.Plans, strings.Join(rep.Setup.Components, ", "), rep.Setup.RollbackPlans)
	p("- people approve and decide at %g a second across all plans; quiet periods of %g s", rep.Setup.ApprovalsPerSecond, rep.Setup.QuietSeconds)
	built := "built from main.go"
	if rep.Setup.ManagerBinary != "main.go" {
		built = "the binary " + rep.Setup.ManagerBinary + " (-manager), not main.go"
	}
	p("- manager: %s, its own process, default flags except %s; environment from config/manager: %s",
		built, strings.Join(rep.Setup.ManagerFlags, " "), strings.Join(rep.Setup.ManagerEnv, " "))
	p("")
	p("## Targets")
	p("")
	p("| target | goal | measured | result |")
	p("|---|---|---|---|")
	for _, t := range rep.Targets {
		p("| %s | %s | %s | **%s** |", t.Name, t.Goal, t.Measured, t.Result)
	}
	p("")
	p("## Time")
	p("")
	p("Setup (build, envtest, %d namespaces and %d workloads, manager start): %.1f s. Wall time of the run: **%.1f s**, from the first plan's creation until the manager is idle after the last finished, including the people's pace and the quiet periods:",
		rep.Setup.Plans*len(environments), rep.Setup.Plans*len(environments)*len(components), rep.SetupSeconds, rep.WallSeconds)
	p("")
	p("| stage | seconds |")
	p("|---|---|")
	for _, s := range rep.Stages {
		p("| %s | %.2f |", s.Name, s.Seconds)
	}
	for _, w := range rep.Waiting {
		p("| quiet period, %s (after %g s to settle) | %.2f |", w.Phase, settle.Seconds(), w.Seconds)
	}
	p("")
	p("## Reconciles")
	p("")
	p("%g reconciles of the UpgradePlan controller: **%.2f per plan**, %.2f per phase transition seen. By result: %s.",
		rep.Reconciles.Total, rep.Reconciles.PerPlan, rep.Reconciles.PerTransition, formatResults(rep.Reconciles.ByResult))
	p("")
	p("While every unfinished plan waited for a person:")
	p("")
	p("| waiting in | plans waiting | seconds | reconciles | manager CPU seconds |")
	p("|---|---|---|---|---|")
	for _, w := range rep.Waiting {
		p("| %s | %d | %g | **%g** | %.2f |", w.Phase, w.PlansWaiting, w.Seconds, w.Reconciles, w.CPUSeconds)
	}
	p("")
	p("## API writes")
	p("")
	p("The manager's writes, counted in the API server's audit log, Events apart: **%d, %.2f per plan**; the minimum is %d, %.2f per plan; ratio **%.3f**.",
		rep.Writes.Total, rep.Writes.PerPlan, rep.Writes.Minimum, rep.Writes.MinimumPerPlan, rep.Writes.Ratio)
	p("")
	p("Minimum = %d phase transitions seen (one status write each) + %d workload patches (3 components × each environment upgraded, and again for each target restored) + %d snapshot writes (the UpgradeSnapshot of each PROD target: its create and its verified status).",
		rep.Writes.MinimumParts.Transitions, rep.Writes.MinimumParts.WorkloadPatches, rep.Writes.MinimumParts.SnapshotWrites)
	p("")
	p("| plans | count | writes per plan | minimum per plan | ratio |")
	p("|---|---|---|---|---|")
	p("| through both targets | %d | %.2f | %.2f | %.3f |", rep.Writes.Happy.Plans, rep.Writes.Happy.WritesPerPlan, rep.Writes.Happy.MinimumPerPlan, rep.Writes.Happy.Ratio)
	p("| rolled back | %d | %.2f | %.2f | %.3f |", rep.Writes.Rollback.Plans, rep.Writes.Rollback.WritesPerPlan, rep.Writes.Rollback.MinimumPerPlan, rep.Writes.Rollback.Ratio)
	p("")
	kindTable(p, "write", rep.Writes.ByKind)
	p("")
	p("Status writes of the plans that moved no phase or target, as the driver's watch saw them:")
	p("")
	kindTable(p, "step the plan stood at: what the write recorded", rep.Writes.WithoutTransition)
	p("")
	p("Refused writes by HTTP code: %s. Writes on no plan's objects: %d.", formatCodes(rep.Writes.Refused), rep.Writes.Unattributed)
	p("")
	p("Events (events.k8s.io), not counted above: %d, %.2f per plan.", rep.Events.Total, rep.Events.PerPlan)
	p("")
	kindTable(p, "Event write", rep.Events.ByKind)
	p("")
	p("Reads (get and list; watches not counted), for comparison: %d, %.2f per plan.", rep.Reads.Total, rep.Reads.PerPlan)
	p("")
	kindTable(p, "read", rep.Reads.ByKind)
	p("")
	p("## Latency")
	p("")
	p("| from → to | samples | p50 ms | p99 ms | max ms |")
	p("|---|---|---|---|---|")
	latencyRow(p, "approval or go sent → plan leaves the waiting phase (all)", rep.ApprovalLatency)
	latencyRow(p, "approval or go answered by the API server → plan leaves the waiting phase (all)", rep.ApprovalLatencyFromAnswer)
	var signs []string
	for sign := range rep.ApprovalLatencyBySign {
		signs = append(signs, sign)
	}
	sort.Strings(signs)
	for _, sign := range signs {
		latencyRow(p, sign+" sent → next phase", rep.ApprovalLatencyBySign[sign])
	}
	latencyRow(p, "failing PROD check answered → RollingBack", rep.RollbackLatency)
	p("")
	p("## Manager process")
	p("")
	p("Peak RSS (VmHWM): **%.1f MiB**. CPU time (user + system): **%.1f s** over the whole run, setup and quiet periods included. Go heap at the end: %.1f MiB allocated, %.1f MiB in use.",
		rep.Manager.PeakRSSMiB, rep.Manager.CPUSeconds, rep.Manager.HeapAllocMiB, rep.Manager.HeapInuseMiB)
	p("")
	p("## Cross-checks")
	p("")
	p("- phase transitions: %d seen by the driver's watch, %g counted by the manager (changegate_transitions_total), %d entries in the plans' status.history",
		rep.CrossChecks.TransitionsSeen, rep.CrossChecks.ManagerTransitions, rep.CrossChecks.HistoryEntries)
	p("- writes: %d in the audit log (Events included), %g POST/PUT/PATCH/DELETE in the manager's rest_client_requests_total",
		rep.CrossChecks.AuditWrites, rep.CrossChecks.ClientWrites)
	p("- reconcile errors: %g", rep.CrossChecks.ReconcileErrors)
	if len(rep.CrossChecks.PlansNotAsPlanned) > 0 {
		p("- plans that did not end as planned: %s", strings.Join(rep.CrossChecks.PlansNotAsPlanned, ", "))
	} else {
		p("- every plan ended as planned: Completed and Ready, or RolledBack")
	}
	return b.String()
}

func kindTable(p func(string, ...any), what string, counts []KindCount) {
	p("| %s | count | per plan |", what)
	p("|---|---|---|")
	for _, k := range counts {
		p("| %s | %d | %.2f |", k.Kind, k.Count, k.PerPlan)
	}
}

func latencyRow(p func(string, ...any), name string, l Latency) {
	p("| %s | %d | %.1f | %.1f | %.1f |", name, l.Samples, l.P50Ms, l.P99Ms, l.MaxMs)
}

func formatResults(by map[string]float64) string {
	var parts []string
	for result, n := range by {
		parts = append(parts, fmt.Sprintf("%s %g", result, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func formatCodes(by map[int]int) string {
	if len(by) == 0 {
		return "none"
	}
	var parts []string
	for code, n := range by {
		parts = append(parts, fmt.Sprintf("%d × %d", n, code))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
