package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/controllers"
	"github.com/changegate/changegate/test/testenv"
)

// ending is how a faulted plan ends: go on both targets, or no-go on TEST
// after go on MAIN, which rolls back both.
type ending struct {
	name     string
	decision string // on TEST
	phase    upgradesv1alpha1.Phase
}

var endings = []ending{
	{"completes", upgradesv1alpha1.DecisionGo, upgradesv1alpha1.PhaseCompleted},
	{"rollsback", upgradesv1alpha1.DecisionNoGo, upgradesv1alpha1.PhaseRolledBack},
}

// TestFaults runs the plan with quiesce, volume snapshots, backup and
// restore Jobs under faults, and compares what changegate did to a run
// without: the same workload changes, the same snapshots, Jobs and
// VolumeSnapshots, nothing twice. Every run also holds the invariants: no
// PROD change before both snapshots are verified, none outside the window,
// and the audit trail holds exactly the approvals people gave.
func TestFaults(t *testing.T) {
	reference := map[string]map[string]int{}
	for _, end := range endings {
		reference[end.name] = runUnderFaults(t, "ref-"+end.name, end, nil)
	}

	for _, end := range endings {
		t.Run("killed at every phase boundary and mid-step, "+end.name, func(t *testing.T) {
			restarts := killOnEveryFirstWrite(t)
			got := runUnderFaults(t, "kill-"+end.name, end, nil)
			expectSameEffects(t, reference[end.name], got)
			// The plan passes 14 phases and writes a dozen kinds of object in
			// four namespaces: fewer deaths mean the kill switch missed them.
			if n := restarts.Load(); n < 20 {
				t.Errorf("the manager was killed only %d times", n)
			}
			t.Logf("the manager was killed %d times", restarts.Load())
		})
	}

	// Each outage in a run delays the plan more than the one before (see
	// restartAPIServerAt), so a run has no more than three.
	for _, run := range []struct {
		end ending
		at  []moment
	}{
		{endings[0], []moment{midBackingUp, midUpgradingPROD}},
		{endings[1], []moment{midBackingUp, midUpgradingPROD, midRollingBack}},
	} {
		var at []string
		for _, m := range run.at {
			at = append(at, m.name)
		}
		t.Run("the API server restarts "+strings.Join(at, " and ")+", "+run.end.name, func(t *testing.T) {
			name := "outage-" + run.end.name
			restarts := restartAPIServerAt(t, name, run.at...)
			got := runUnderFaults(t, name, run.end, nil)
			expectSameEffects(t, reference[run.end.name], got)
			if n := restarts.Load(); n != int32(len(run.at)) {
				t.Errorf("the API server was restarted %d times; want %d", n, len(run.at))
			}
		})
	}

	t.Run("the leader dies mid-PROD", func(t *testing.T) {
		leader := leaderDiesMidPROD(t)
		got := runUnderFaults(t, "leader", endings[0], nil)
		expectSameEffects(t, reference[endings[0].name], got)
		killedAt, took := leader.died()
		if took <= 0 {
			t.Fatal("the second manager never wrote anything after the leader died")
		}
		// The dead leader's lease runs out leaseDuration after the other
		// manager saw its last renewal, which it may see a retryPeriod
		// late; it looks every retryPeriod, jittered by up to a fifth.
		limit := leaseDuration + 4*retryPeriod
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "changegate-system", Name: leader.id}, lease); err != nil {
			t.Fatal(err)
		}
		acquired := lease.Spec.AcquireTime
		if ptr.Deref(lease.Spec.LeaseTransitions, 0) != 1 || acquired == nil || acquired.Time.Before(killedAt) || acquired.Sub(killedAt) > limit {
			t.Errorf("the lease changed hands %d times, last at %v; want once, within %s of the leader's death at %s",
				ptr.Deref(lease.Spec.LeaseTransitions, 0), acquired, limit, killedAt)
		} else {
			t.Logf("the second manager took the lease %s after the leader died, and wrote %s after", acquired.Sub(killedAt), took)
		}
	})

	t.Run("other actors write meanwhile", func(t *testing.T) {
		conflicts := effects.conflictCount()
		var actor *otherActor
		got := runUnderFaults(t, "actors", endings[0], func(a *app, plan *upgradesv1alpha1.UpgradePlan) func() {
			actor = startOtherActor(a, plan)
			return actor.stop
		})
		expectSameEffects(t, reference[endings[0].name], got)
		actor.expectNothingReverted(t)
		if effects.conflictCount() == conflicts {
			t.Error("changegate met no conflict: the other actor did not write in its way")
		}
		t.Logf("changegate met %d conflicts; the other actor wrote %d times", effects.conflictCount()-conflicts, actor.writes.Load())
	})
}

// runUnderFaults runs the plan of a new app named name to its ending and
// returns what changegate did to the app. during, when given, starts
// something that runs while the plan does and returns how to stop it.
func runUnderFaults(t *testing.T, name string, end ending, during func(*app, *upgradesv1alpha1.UpgradePlan) func()) map[string]int {
	t.Helper()
	a := newApp(t, name)
	a.addData(t)
	before := a.prodState(t)
	observer := observePROD(t, a)
	mark := effects.mark()

	plan := a.backedUpPlan()
	// The window opens a few seconds from now: PROD must wait for it.
	start := metav1.NewTime(time.Now().Add(4 * time.Second).Truncate(time.Second))
	windowEnd := metav1.NewTime(start.Add(time.Hour))
	plan.Spec.PROD.Window = &upgradesv1alpha1.Window{Start: &start, End: &windowEnd}
	if during != nil {
		defer during(a, plan)()
	}

	// Informers come back from an outage up to twice its length late
	// (client-go's backoff), more after several in a row.
	const timeout = 2 * time.Minute
	create(t, plan)
	waitForPhaseWithin(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "", timeout)
	approveUAT(t, plan, newVersion, "alice")
	waitForPhaseWithin(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main", timeout)
	// Nothing half done: MAIN runs the new release whole, TEST the old.
	a.expectImages(t, "main", newVersion)
	a.expectImages(t, "test", oldVersion)
	decide(t, plan, "main", upgradesv1alpha1.DecisionGo, "carol")
	waitForPhaseWithin(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test", timeout)
	a.expectImages(t, "test", newVersion)
	decide(t, plan, "test", end.decision, "carol")
	got := waitForPhaseWithin(t, plan, end.phase, "", timeout)
	a.waitUntilSnapshotsReleased(t)

	if end.phase == upgradesv1alpha1.PhaseCompleted {
		a.expectImages(t, "main", newVersion)
		a.expectImages(t, "test", newVersion)
	} else {
		a.expectRestored(t, before)
	}
	a.expectResumed(t)
	observer.expectNoChangeBeforeVerification(t)
	observer.expectWithin(t, start.Time, windowEnd.Time)
	expectApprovals(t, got,
		upgradesv1alpha1.Approval{Kind: upgradesv1alpha1.ApprovalUAT, Version: newVersion, User: "alice"},
		upgradesv1alpha1.Approval{Kind: upgradesv1alpha1.ApprovalDecision, Target: "main", Decision: upgradesv1alpha1.DecisionGo, User: "carol"},
		upgradesv1alpha1.Approval{Kind: upgradesv1alpha1.ApprovalDecision, Target: "test", Decision: end.decision, User: "carol"})
	return effects.since(mark).of(a)
}

// waitUntilSnapshotsReleased waits until the ended plan has let go of its
// UpgradeSnapshots and VolumeSnapshots: the last thing it writes.
func (a *app) waitUntilSnapshotsReleased(t *testing.T) {
	t.Helper()
	held := func(ctx context.Context) ([]string, error) {
		var names []string
		snapshots := &upgradesv1alpha1.UpgradeSnapshotList{}
		if err := k8s.List(ctx, snapshots, client.InNamespace(a.plansNS)); err != nil {
			return nil, err
		}
		for _, s := range snapshots.Items {
			if controllerutil.ContainsFinalizer(&s, upgradesv1alpha1.FinalizerSnapshotInUse) {
				names = append(names, s.Name)
			}
		}
		for _, env := range []string{"main", "test"} {
			list := &snapshotv1.VolumeSnapshotList{}
			if err := k8s.List(ctx, list, client.InNamespace(a.namespace[env])); err != nil {
				return nil, err
			}
			for _, vs := range list.Items {
				if controllerutil.ContainsFinalizer(&vs, upgradesv1alpha1.FinalizerSnapshotInUse) {
					names = append(names, vs.Name)
				}
			}
		}
		return names, nil
	}
	var names []string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		names, err = held(ctx)
		return len(names) == 0, err
	})
	if err != nil {
		t.Fatalf("the ended plan still holds snapshots %v: %v", names, err)
	}
}

// expectSameEffects compares what changegate did in a faulted run with a run
// without faults.
func expectSameEffects(t *testing.T, want, got map[string]int) {
	t.Helper()
	if maps.Equal(want, got) {
		return
	}
	keys := slices.Collect(maps.Keys(want))
	for key := range got {
		if _, ok := want[key]; !ok {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		if want[key] != got[key] {
			t.Errorf("%s: %d times; without faults %d", key, got[key], want[key])
		}
	}
}

// expectApprovals asserts the audit trail holds exactly the approvals
// given: none lost, none invented.
func expectApprovals(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, want ...upgradesv1alpha1.Approval) {
	t.Helper()
	describe := func(list []upgradesv1alpha1.Approval) []string {
		var out []string
		for _, a := range list {
			out = append(out, fmt.Sprintf("%s %s%s %s by %s", a.Kind, a.Version, a.Target, a.Decision, a.User))
		}
		slices.Sort(out)
		return out
	}
	if got, wanted := describe(plan.Status.Approvals), describe(want); !slices.Equal(got, wanted) {
		t.Errorf("the audit trail holds %q; want exactly %q", got, wanted)
	}
}

// killOnEveryFirstWrite replaces the suite's manager, until the test ends,
// with managers that die right after the first write of each kind in each
// namespace (the first Job, the first VolumeSnapshot, the first change to a
// workload of MAIN...) and right after each new phase is recorded, and
// starts a new one after each death, as a Deployment would. It returns the
// number of deaths so far.
func killOnEveryFirstWrite(t *testing.T) *atomic.Int32 {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	k := &killSwitch{died: make(chan struct{}, 1), after: func(e effect) bool {
		mu.Lock()
		defer mu.Unlock()
		key := e.verb + " " + e.kind + " " + e.namespace
		if e.verb == "status" {
			key += " " + e.name
		}
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	}}
	deaths := &atomic.Int32{}
	replaceChangegate(t, func(done <-chan struct{}) {
		stop, err := startChangegateWith(k)
		for err == nil {
			select {
			case <-k.died:
				stop()
				deaths.Add(1)
				stop, err = startChangegateWith(k)
			case <-done:
				stop()
				return
			}
		}
		t.Errorf("starting a new manager: %v", err)
	})
	return deaths
}

// replaceChangegate stops the suite's manager and runs managers in its
// place until the test ends, when the suite's comes back.
func replaceChangegate(t *testing.T, run func(done <-chan struct{})) {
	t.Helper()
	stopChangegate()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		run(done)
	}()
	t.Cleanup(func() {
		close(done)
		<-finished
		var err error
		if stopChangegate, err = startChangegate(); err != nil {
			t.Fatal(err)
		}
	})
}

// outagePause is how long etcd and kube-apiserver stay down when the
// fault tests restart them.
const outagePause = time.Second

// moment is a point in a plan's run, known by changegate's first write
// there to the app named app.
type moment struct {
	name string
	is   func(app string, e effect) bool
}

var (
	midBackingUp = moment{"mid-BackingUp", func(app string, e effect) bool {
		return e.verb == "create" && e.kind == fmt.Sprintf("%T", &snapshotv1.VolumeSnapshot{})
	}}
	midUpgradingPROD = moment{"mid-UpgradingPROD", func(app string, e effect) bool {
		return e.verb == "change" && e.kind == fmt.Sprintf("%T", &appsv1.Deployment{}) && e.namespace == app+"-main" && strings.HasPrefix(e.name, "clinspark-")
	}}
	midRollingBack = moment{"mid-RollingBack", func(app string, e effect) bool {
		return e.verb == "create" && e.kind == fmt.Sprintf("%T", &batchv1.Job{}) && strings.Contains(e.name, "-restore-")
	}}
)

// restartAPIServerAt replaces the suite's manager, until the test ends,
// with one under which kube-apiserver and etcd stop right after changegate's
// first write to the app named app at each moment given. Both start again
// outagePause later, with their data, on the same ports. The manager runs
// on throughout, as a Deployment's would while the control plane restarts
// (an outage shorter than its leader election's renew deadline). It
// returns the number of restarts so far.
//
// The manager's informers watch again after an outage with client-go's
// backoff, which doubles with each failure and resets only after two
// quiet minutes: each outage in a run delays the plan more than the one
// before.
func restartAPIServerAt(t *testing.T, app string, moments ...moment) *atomic.Int32 {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	first := func(e effect) bool {
		if !strings.HasPrefix(e.namespace, app+"-") {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range moments {
			if !seen[m.name] && m.is(app, e) {
				seen[m.name] = true
				return true
			}
		}
		return false
	}
	restarts := &atomic.Int32{}
	var outages sync.WaitGroup
	k := &killSwitch{after: func(e effect) bool {
		if !first(e) {
			return false
		}
		// Stopping here, before the write returns, leaves the manager
		// halfway through its reconcile with no API server to go on with.
		if err := testenv.Stop(controlPlane); err != nil {
			t.Errorf("stopping the control plane: %v", err)
			return false
		}
		restarts.Add(1)
		outages.Add(1)
		go func() {
			defer outages.Done()
			time.Sleep(outagePause)
			if err := testenv.Resume(controlPlane); err != nil {
				t.Errorf("starting the control plane again: %v", err)
				return
			}
			// The stand-ins for kube-controller-manager run for the
			// whole suite: their informers' backoff, which grows with
			// each outage and resets only after two quiet minutes, would
			// hold workloads and Jobs back for a minute and more. They
			// start afresh; changegate's manager gets no such help.
			stopControllers()
			var err error
			if stopControllers, err = startControllers(); err != nil {
				t.Errorf("starting the test's controllers again: %v", err)
			}
		}()
		return false // the manager lives on
	}}
	replaceChangegate(t, func(done <-chan struct{}) {
		stop, err := startChangegateWith(k)
		if err != nil {
			t.Errorf("starting the manager: %v", err)
			return
		}
		<-done
		stop()
	})
	// Cleanups run last first: the control plane is back before the
	// suite's manager starts again.
	t.Cleanup(outages.Wait)
	return restarts
}

// How the managers of the leader test elect their leader.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// leaderTest is two managers electing a leader, and what became of them.
type leaderTest struct {
	id       string // the Lease's name
	mu       sync.Mutex
	dead     string
	killedAt time.Time
	took     time.Duration // from the leader's death to the other's first write
}

func (l *leaderTest) died() (time.Time, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.killedAt, l.took
}

// candidate is the kill switch of one of the two managers: the leader dies
// right after it changes the first workload of MAIN.
func (l *leaderTest) candidate(name string) *killSwitch {
	return &killSwitch{died: make(chan struct{}, 1), after: func(e effect) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch {
		case l.dead == "" && e.verb == "change" && e.kind == fmt.Sprintf("%T", &appsv1.Deployment{}) && e.namespace == "leader-main":
			l.dead, l.killedAt = name, time.Now()
			return true
		case l.dead != "" && l.dead != name && l.took == 0:
			l.took = time.Since(l.killedAt)
		}
		return false
	}}
}

// leaderDiesMidPROD replaces the suite's manager, until the test ends, with
// two managers electing a leader through a Lease, as two replicas of the
// Deployment would. The leader dies mid-PROD without releasing its lease.
func leaderDiesMidPROD(t *testing.T) *leaderTest {
	t.Helper()
	installLeaderElectionRole(t)
	l := &leaderTest{id: "changegate-leader-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	first, second := l.candidate("first"), l.candidate("second")
	replaceChangegate(t, func(done <-chan struct{}) {
		stopFirst, err := startCandidate(first, l.id)
		if err != nil {
			t.Errorf("starting the first manager: %v", err)
			return
		}
		stopSecond, err := startCandidate(second, l.id)
		if err != nil {
			stopFirst()
			t.Errorf("starting the second manager: %v", err)
			return
		}
		for {
			select {
			case <-first.died:
				stopFirst()
				stopFirst = func() {}
			case <-second.died:
				stopSecond()
				stopSecond = func() {}
			case <-done:
				stopFirst()
				stopSecond()
				return
			}
		}
	})
	return l
}

// startCandidate starts a changegate manager that elects a leader through
// the Lease id in changegate-system, and does not release it when it stops:
// a manager that dies releases nothing.
func startCandidate(k *killSwitch, id string) (func(), error) {
	lease, renew, retry := leaseDuration, renewDeadline, retryPeriod
	return testenv.StartManager(managerConfig(), ctrl.Options{
		Scheme:                  testenv.Scheme(),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		NewClient:               countingClient(k),
		LeaderElection:          true,
		LeaderElectionID:        id,
		LeaderElectionNamespace: "changegate-system",
		LeaseDuration:           &lease,
		RenewDeadline:           &renew,
		RetryPeriod:             &retry,
	}, setupChangegate)
}

// installLeaderElectionRole installs the manager's namespace and its
// leader-election Role and RoleBinding from config/rbac.
func installLeaderElectionRole(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	role, binding := &rbacv1.Role{}, &rbacv1.RoleBinding{}
	if err := readObjects("rbac/leader_election_role.yaml", role, binding); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: role.Namespace}}, role, binding} {
		if err := k8s.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// otherActor is someone else writing to the plan and its workloads while
// changegate works: a GitOps controller annotating the plan, another
// labelling the workloads. It updates with resourceVersions, so
// each of its writes and changegate's can conflict.
type otherActor struct {
	plan   *upgradesv1alpha1.UpgradePlan
	cancel context.CancelFunc
	done   chan struct{}
	writes atomic.Int64
	mu     sync.Mutex
	last   map[client.ObjectKey]touched
}

// touched is an object the actor wrote and the value it wrote last.
type touched struct {
	obj   client.Object
	value string
}

// touchedKey is what the actor writes: an annotation of the plan, a label
// of a workload. Not an annotation there: a Deployment's generation moves
// with its annotations, and the observers take a generation change for a
// change to the spec.
const touchedKey = "ops.example.org/touched"

// touchedMap is the map of obj the actor writes touchedKey in.
func touchedMap(obj client.Object) map[string]string {
	if _, ok := obj.(*upgradesv1alpha1.UpgradePlan); ok {
		return obj.GetAnnotations()
	}
	return obj.GetLabels()
}

func startOtherActor(a *app, plan *upgradesv1alpha1.UpgradePlan) *otherActor {
	ctx, cancel := context.WithCancel(context.Background())
	o := &otherActor{plan: plan, cancel: cancel, done: make(chan struct{}), last: map[client.ObjectKey]touched{}}
	go func() {
		defer close(o.done)
		for n := 0; ctx.Err() == nil; n++ {
			targets := []client.Object{&upgradesv1alpha1.UpgradePlan{ObjectMeta: metav1.ObjectMeta{Namespace: plan.Namespace, Name: plan.Name}}}
			for _, env := range []string{"val", "main", "test"} {
				targets = append(targets, a.workloads(a.namespace[env])...)
			}
			// Not ctx: a write the stop cancels may land unrecorded.
			o.touch(context.Background(), targets[n%len(targets)], strconv.Itoa(n))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return o
}

// touch reads obj and writes it back with the label set to value.
func (o *otherActor) touch(ctx context.Context, obj client.Object, value string) {
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return
	}
	if _, ok := obj.(*upgradesv1alpha1.UpgradePlan); ok {
		obj.SetAnnotations(with(obj.GetAnnotations(), touchedKey, value))
	} else {
		obj.SetLabels(with(obj.GetLabels(), touchedKey, value))
	}
	if err := k8s.Update(ctx, obj); err != nil {
		return
	}
	o.writes.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last[client.ObjectKeyFromObject(obj)] = touched{obj, value}
}

// with returns m, made if nil, with key set to value.
func with(m map[string]string, key, value string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}

func (o *otherActor) stop() {
	o.cancel()
	<-o.done
}

// expectNothingReverted asserts every object still carries what the actor
// wrote last: changegate overwrote none of it.
func (o *otherActor) expectNothingReverted(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.last) < 10 {
		t.Fatalf("the other actor wrote to only %d objects; want the plan and the nine workloads", len(o.last))
	}
	for _, touched := range o.last {
		obj := touched.obj.DeepCopyObject().(client.Object)
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		if got := touchedMap(obj)[touchedKey]; got != touched.value {
			t.Errorf("%T %s carries %s=%q; the other actor last wrote %q", obj, client.ObjectKeyFromObject(obj), touchedKey, got, touched.value)
		}
	}
}
