package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// create creates the plan as its requester, rita.
func create(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) {
	t.Helper()
	if err := as(t, plan.Annotations[upgradesv1alpha1.AnnotationRequestedBy]).Create(context.Background(), plan); err != nil {
		t.Fatalf("creating plan %s: %v", plan.Name, err)
	}
}

// createAndApprove creates the plan, waits until VAL is verified and has
// alice sign UAT.
func createAndApprove(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) {
	t.Helper()
	create(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	approveUAT(t, plan, newVersion, "alice")
}

// driveToDecision creates and approves the plan and waits until MAIN awaits
// its go/no-go.
func driveToDecision(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) {
	t.Helper()
	createAndApprove(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
}

func TestHappyPathThroughBothTargets(t *testing.T) {
	a := newApp(t, "happy")
	plan := a.plan("clinspark-14-7")
	plan.Spec.UAT = &upgradesv1alpha1.UAT{RequiredApprovals: 1}
	create(t, plan)

	// The phase shows as soon as VAL is verified; the wait for approvals is
	// recorded by the next reconcile.
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseAwaitingUATApproval && condition(p, upgradesv1alpha1.ConditionUATApproved).Status != "absent"
	})
	a.expectImages(t, "val", newVersion)
	a.expectImages(t, "main", oldVersion)
	if got.Status.Versions["val"] != oldVersion || got.Status.Versions["main"] != oldVersion || got.Status.Versions["test"] != oldVersion {
		t.Errorf("status.versions = %v; want %s everywhere", got.Status.Versions, oldVersion)
	}
	if got.Status.ValidatedVersion != newVersion {
		t.Errorf("validatedVersion = %q; want %s", got.Status.ValidatedVersion, newVersion)
	}
	expectCondition(t, got, upgradesv1alpha1.ConditionUATApproved, metav1.ConditionFalse, upgradesv1alpha1.ReasonAwaitingApproval)
	expectCondition(t, got, upgradesv1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradesv1alpha1.ReasonAwaitingApproval)

	approveUAT(t, plan, newVersion, "alice")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	a.expectImages(t, "main", newVersion)
	a.expectImages(t, "test", oldVersion)

	decide(t, plan, "main", "go", "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	a.expectImages(t, "test", newVersion)

	decide(t, plan, "test", "go", "carol")
	got = waitForCompleted(t, plan)
	expectOnlyImageChanged(t, a, "main")
	for _, env := range []string{"val", "main", "test"} {
		a.expectImages(t, env, newVersion)
	}
	expectCondition(t, got, upgradesv1alpha1.ConditionReady, metav1.ConditionTrue, upgradesv1alpha1.ReasonSucceeded)
	expectCondition(t, got, upgradesv1alpha1.ConditionReconciling, metav1.ConditionFalse, "")
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionFalse, "")
	expectCondition(t, got, upgradesv1alpha1.ConditionUATApproved, metav1.ConditionTrue, "")

	var trail []string
	for _, ap := range got.Status.Approvals {
		trail = append(trail, string(ap.Kind)+":"+ap.Version+ap.Target+":"+ap.Decision+":"+ap.User)
	}
	wantTrail := []string{"UAT:14.7.0::alice", "Decision:main:go:carol", "Decision:test:go:carol"}
	if !slices.Equal(trail, wantTrail) {
		t.Errorf("audit trail %v; want %v", trail, wantTrail)
	}

	var phases []upgradesv1alpha1.Phase
	for _, h := range got.Status.History {
		phases = append(phases, h.Phase)
	}
	for _, want := range []upgradesv1alpha1.Phase{upgradesv1alpha1.PhaseUpgradingVAL, upgradesv1alpha1.PhaseAwaitingUATApproval,
		upgradesv1alpha1.PhaseUpgradingPROD, upgradesv1alpha1.PhaseAwaitingDecision, upgradesv1alpha1.PhaseCompleted} {
		if !slices.Contains(phases, want) {
			t.Errorf("history %v lacks %s", phases, want)
		}
	}

	// Every transition is told as an Event on the plan.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		var events eventsv1.EventList
		if err := k8s.List(ctx, &events, client.InNamespace(a.plansNS)); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == plan.Name && e.Action == string(upgradesv1alpha1.PhaseCompleted) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Error("no Event tells that the plan completed")
	}
}

// expectOnlyImageChanged compares each workload's spec in env with the one
// the app was created with: only the component container's image may differ.
func expectOnlyImageChanged(t *testing.T, a *app, env string) {
	t.Helper()
	for _, original := range a.workloads(a.namespace[env]) {
		live := original.DeepCopyObject().(client.Object)
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(original), live); err != nil {
			t.Fatal(err)
		}
		var want, got any
		switch w := live.(type) {
		case *appsv1.Deployment:
			o := original.(*appsv1.Deployment)
			o.Spec.Template.Spec.Containers[0].Image = image("web", newVersion)
			want, got = o.Spec.Template.Spec.Containers, w.Spec.Template.Spec.Containers
			if *w.Spec.Replicas != *o.Spec.Replicas || !equality.Semantic.DeepEqual(w.Spec.Template.Labels, o.Spec.Template.Labels) {
				t.Errorf("%s: replicas or pod labels changed", w.Name)
			}
		case *appsv1.StatefulSet:
			o := original.(*appsv1.StatefulSet)
			o.Spec.Template.Spec.Containers[0].Image = image("db", newVersion)
			want, got = o.Spec.Template.Spec.Containers, w.Spec.Template.Spec.Containers
		case *appsv1.DaemonSet:
			o := original.(*appsv1.DaemonSet)
			o.Spec.Template.Spec.Containers[0].Image = image("agent", newVersion)
			want, got = o.Spec.Template.Spec.Containers, w.Spec.Template.Spec.Containers
		}
		// The API server fills defaults (pull policy, termination paths);
		// compare the fields the app set.
		for i, c := range got.([]corev1.Container) {
			w := want.([]corev1.Container)[i]
			if c.Name != w.Name || c.Image != w.Image || !equality.Semantic.DeepEqual(c.Env, w.Env) {
				t.Errorf("%s/%s container %d is %s %s %v; want %s %s %v", env, live.GetName(), i, c.Name, c.Image, c.Env, w.Name, w.Image, w.Env)
			}
		}
	}
}

func TestMissingWorkloadStallsThenResumes(t *testing.T) {
	a := newApp(t, "missing")
	if err := k8s.Delete(context.Background(), a.workloads(a.namespace["test"])[1]); err != nil {
		t.Fatal(err)
	}
	plan := a.plan("missing-db")
	create(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Status == metav1.ConditionTrue
	})
	stalledCondition := condition(got, upgradesv1alpha1.ConditionStalled)
	if stalledCondition.Reason != upgradesv1alpha1.ReasonWorkloadNotFound || !strings.Contains(stalledCondition.Message, "StatefulSet "+a.namespace["test"]+"/clinspark-db") {
		t.Errorf("Stalled says %s: %q; want WorkloadNotFound naming the StatefulSet", stalledCondition.Reason, stalledCondition.Message)
	}
	if got.Status.Phase != upgradesv1alpha1.PhasePending {
		t.Errorf("phase %s; want Pending", got.Status.Phase)
	}
	a.expectImages(t, "val", oldVersion)

	// Creating the workload is an event the plan watches: it resumes.
	if err := k8s.Create(context.Background(), a.workloads(a.namespace["test"])[1]); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
}

func TestNamespaceNotOptedInIsNotTouched(t *testing.T) {
	a := newApp(t, "optin")
	labelNamespace(t, a.namespace["main"], "someone-else")
	plan := a.plan("not-permitted")
	create(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Reason == upgradesv1alpha1.ReasonNamespaceNotPermitted
	})
	if msg := condition(got, upgradesv1alpha1.ConditionStalled).Message; !strings.Contains(msg, a.namespace["main"]) || !strings.Contains(msg, upgradesv1alpha1.LabelPlansFrom) {
		t.Errorf("the message %q does not say which namespace and which label", msg)
	}
	a.expectImages(t, "val", oldVersion)
	labelNamespace(t, a.namespace["main"], a.plansNS)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
}

// A window on the 30th of February never opens: the plan says so before it
// touches anything, and goes on once the schedule is fixed.
func TestWindowThatNeverOpensStallsThePlan(t *testing.T) {
	a := newApp(t, "never")
	plan := a.plan("never-opens")
	plan.Spec.PROD.Window = &upgradesv1alpha1.Window{Schedule: "0 18 30 2 *", Duration: "6h"}
	create(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Status == metav1.ConditionTrue
	})
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionTrue, upgradesv1alpha1.ReasonInvalidSpec)
	if msg := condition(got, upgradesv1alpha1.ConditionStalled).Message; !strings.Contains(msg, "never opens") {
		t.Errorf("the message %q does not say the window never opens", msg)
	}
	if got.Status.Phase != upgradesv1alpha1.PhasePending {
		t.Errorf("phase %s; want Pending", got.Status.Phase)
	}
	a.expectImages(t, "val", oldVersion)

	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"prod":{"window":{"schedule":"0 18 * * 5"}}}}`))
	if err := k8s.Patch(context.Background(), plan, patch); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
}

func TestUATApprovalsCountDistinctUsersForTheRightVersion(t *testing.T) {
	a := newApp(t, "uat")
	plan := a.plan("two-approvers")
	plan.Spec.UAT = &upgradesv1alpha1.UAT{RequiredApprovals: 2}
	create(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")

	// Approvals of another version do not count; neither does the
	// requester, whom the admission policy refuses.
	approveUAT(t, plan, "14.6.9", "alice,bob")
	if err := approve("rita", "rita").apply(t, plan); err == nil {
		t.Fatal("the requester approved her own plan")
	}
	approveUAT(t, plan, newVersion, "alice")
	waitForPlan(t, client.ObjectKeyFromObject(plan), 10*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return len(p.Status.Approvals) > 0
	})
	time.Sleep(500 * time.Millisecond) // give a wrong count the chance to show
	got := getPlan(t, plan)
	if got.Status.Phase != upgradesv1alpha1.PhaseAwaitingUATApproval || len(got.Status.Approvals) != 1 || got.Status.Approvals[0].User != "alice" {
		t.Fatalf("after approvals for the wrong version and alice's: phase %s, approvals %+v; want one approval by alice, still waiting", got.Status.Phase, got.Status.Approvals)
	}
	if msg := condition(got, upgradesv1alpha1.ConditionReconciling).Message; !strings.Contains(msg, "1 of 2") {
		t.Errorf("the plan says %q; want it to count 1 of 2 approvals", msg)
	}
	firstAt := got.Status.Approvals[0].At

	approveUAT(t, plan, newVersion, "bob")
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	var users []string
	for _, ap := range got.Status.Approvals {
		users = append(users, ap.User)
	}
	if !slices.Equal(users, []string{"alice", "bob"}) {
		t.Errorf("approvals recorded for %v; want alice then bob", users)
	}
	if !got.Status.Approvals[0].At.Equal(&firstAt) {
		t.Error("alice's approval was rewritten")
	}
}

func TestPromotionGuard(t *testing.T) {
	a := newApp(t, "promote")
	plan := a.plan("promotion")
	plan.Spec.PROD.Version = ""
	createAndApprove(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingPromotion, "")
	expectCondition(t, got, upgradesv1alpha1.ConditionReconciling, metav1.ConditionFalse, upgradesv1alpha1.ReasonAwaitingPromotion)

	got.Spec.PROD.Version = "14.7.1"
	if err := k8s.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	got = waitForPlan(t, client.ObjectKeyFromObject(plan), 10*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Status == metav1.ConditionTrue
	})
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionTrue, upgradesv1alpha1.ReasonPromotionBlocked)
	a.expectImages(t, "main", oldVersion)
}

func TestFailedVALUpgradeRestoresVAL(t *testing.T) {
	a := newApp(t, "badval")
	rollouts.Break(image("web", "14.7.0-broken"))
	plan := a.plan("broken-release")
	plan.Spec.VAL.Version = "14.7.0-broken"
	plan.Spec.PROD.Version = ""
	create(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseFailed, "")
	a.expectImages(t, "val", oldVersion)
	a.expectImages(t, "main", oldVersion)
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionTrue, upgradesv1alpha1.ReasonRolloutFailed)
	expectCondition(t, got, upgradesv1alpha1.ConditionReady, metav1.ConditionFalse, "")
	if !strings.Contains(condition(got, upgradesv1alpha1.ConditionStalled).Message, "progress deadline") {
		t.Errorf("the plan does not say why: %q", condition(got, upgradesv1alpha1.ConditionStalled).Message)
	}
}

func TestNoGoOnSecondTargetRestoresBoth(t *testing.T) {
	a := newApp(t, "nogo")
	plan := a.plan("no-go-test")
	driveToDecision(t, plan)
	decide(t, plan, "main", "go", "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	decide(t, plan, "test", "no-go", "carol")
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectImages(t, "main", oldVersion)
	a.expectImages(t, "test", oldVersion)
	a.expectImages(t, "val", newVersion)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonNoGo)
	expectCondition(t, got, upgradesv1alpha1.ConditionReady, metav1.ConditionFalse, "")
}

func TestNoGoOnMainLeavesTestUntouched(t *testing.T) {
	a := newApp(t, "nogomain")
	plan := a.plan("no-go-main")
	driveToDecision(t, plan)
	decide(t, plan, "main", "no-go", "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectImages(t, "main", oldVersion)
	a.expectImages(t, "test", oldVersion)
	got := &upgradesv1alpha1.UpgradePlan{}
	_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(plan), got)
	for _, step := range got.Status.Steps {
		if step.Target == "test" {
			t.Errorf("TEST was worked on after a no-go on MAIN: %+v", step)
		}
	}
}

func TestDecisionTimeoutRollsBack(t *testing.T) {
	a := newApp(t, "timeout")
	plan := a.plan("decision-timeout")
	plan.Spec.PROD.Decision = &upgradesv1alpha1.Decision{Timeout: "2s"}
	driveToDecision(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectImages(t, "main", oldVersion)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonDecisionTimeout)
}

func TestAbortRollsBackPROD(t *testing.T) {
	a := newApp(t, "abort")
	plan := a.plan("aborted")
	driveToDecision(t, plan)
	annotate(t, "dave", plan, upgradesv1alpha1.AnnotationAbort, "lab interface errors", upgradesv1alpha1.AnnotationAbortedBy, "dave")
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectImages(t, "main", oldVersion)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonAborted)
	last := got.Status.Approvals[len(got.Status.Approvals)-1]
	if last.Kind != upgradesv1alpha1.ApprovalAbort || last.User != "dave" || last.Reason != "lab interface errors" {
		t.Errorf("the abort is not in the audit trail: %+v", last)
	}
}

func TestWindowOpensOnTime(t *testing.T) {
	a := newApp(t, "window")
	plan := a.plan("window")
	start := metav1.NewTime(time.Now().Add(6 * time.Second).Truncate(time.Second))
	end := metav1.NewTime(start.Add(time.Hour))
	plan.Spec.PROD.Window = &upgradesv1alpha1.Window{Start: &start, End: &end}
	createAndApprove(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingWindow, "")
	a.expectImages(t, "main", oldVersion)

	// Until the window opens the plan costs nothing: no reconcile at all.
	time.Sleep(500 * time.Millisecond)
	before := reconcileCount(t)
	time.Sleep(time.Until(start.Add(-time.Second)))
	if after := reconcileCount(t); after != before {
		t.Errorf("%v reconciles while the plan waited for its window; want none", after-before)
	}

	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	quiesced := findStep(got, upgradesv1alpha1.StepQuiesce, "").StartedAt
	if quiesced.Before(&start) || quiesced.Sub(start.Time) > 2*time.Second {
		t.Errorf("PROD started at %s; want right when the window opened at %s", quiesced, start)
	}
	expectCondition(t, got, upgradesv1alpha1.ConditionWindowOpen, metav1.ConditionTrue, "")
}

// windowEndingSoon is a window that opened a minute ago and ends in a few
// seconds: long enough to reach MAIN's decision.
func windowEndingSoon() *upgradesv1alpha1.Window {
	start := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	end := metav1.NewTime(time.Now().Add(5 * time.Second).Truncate(time.Second))
	return &upgradesv1alpha1.Window{Start: &start, End: &end}
}

func TestWindowEndRollsBack(t *testing.T) {
	a := newApp(t, "windowend")
	plan := a.plan("windowend")
	plan.Spec.PROD.Window = windowEndingSoon()
	driveToDecision(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonWindowEnded)
	rollback := findStep(got, upgradesv1alpha1.StepRollBack, "")
	if rollback.StartedAt.Before(plan.Spec.PROD.Window.End) {
		t.Errorf("the rollback started at %s, before the window ended at %s", rollback.StartedAt, plan.Spec.PROD.Window.End)
	}
	a.expectImages(t, "main", oldVersion)
}

func TestWindowEndWithContinueCarriesOn(t *testing.T) {
	a := newApp(t, "overrun")
	plan := a.plan("overrun")
	plan.Spec.PROD.Window = windowEndingSoon()
	plan.Spec.PROD.OnWindowEnd = upgradesv1alpha1.WindowEndContinue
	driveToDecision(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionWindowOpen).Reason == upgradesv1alpha1.ReasonWindowEnded
	})
	if got.Status.Phase != upgradesv1alpha1.PhaseAwaitingDecision {
		t.Errorf("phase %s after the window ended; want the plan to carry on", got.Status.Phase)
	}
	if message := condition(got, upgradesv1alpha1.ConditionWindowOpen).Message; !strings.Contains(message, "carries on") {
		t.Errorf("WindowOpen says %q; want it to record the overrun", message)
	}
	expectEvent(t, a.plansNS, plan.Name, upgradesv1alpha1.ReasonWindowEnded)
	decide(t, plan, "main", "go", "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	decide(t, plan, "test", "go", "carol")
	waitForCompleted(t, plan)
}

func TestMissedWindowStalls(t *testing.T) {
	a := newApp(t, "missed")
	plan := a.plan("missed-window")
	start, end := metav1.NewTime(time.Now().Add(-2*time.Hour)), metav1.NewTime(time.Now().Add(-time.Hour))
	plan.Spec.PROD.Window = &upgradesv1alpha1.Window{Start: &start, End: &end}
	createAndApprove(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 10*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Reason == upgradesv1alpha1.ReasonWindowMissed
	})
	if got.Status.Phase != upgradesv1alpha1.PhaseAwaitingWindow {
		t.Errorf("phase %s; want AwaitingWindow", got.Status.Phase)
	}
	a.expectImages(t, "main", oldVersion)
}

func TestPausedPlanStartsNothingNew(t *testing.T) {
	a := newApp(t, "paused")
	plan := a.plan("paused")
	create(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	err := updatePlanTyped(plan, func(p *upgradesv1alpha1.UpgradePlan) { p.Spec.Paused = true })
	if err != nil {
		t.Fatal(err)
	}
	approveUAT(t, plan, newVersion, "alice")
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 10*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionReconciling).Reason == upgradesv1alpha1.ReasonPaused
	})
	a.expectImages(t, "main", oldVersion)
	if findStep(got, upgradesv1alpha1.StepPromotion, "") != nil {
		t.Error("a paused plan started a new step")
	}
	if err := updatePlanTyped(plan, func(p *upgradesv1alpha1.UpgradePlan) { p.Spec.Paused = false }); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
}

func TestDeletingAPlanRollsBackPRODFirst(t *testing.T) {
	a := newApp(t, "delete")
	plan := a.plan("deleted")
	driveToDecision(t, plan)
	a.expectImages(t, "main", newVersion)
	if err := k8s.Delete(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(plan), &upgradesv1alpha1.UpgradePlan{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("the plan was not deleted after its rollback")
	}
	a.expectImages(t, "main", oldVersion)
	a.expectImages(t, "val", newVersion)
}

func TestWaitingForAPersonCostsNoReconciles(t *testing.T) {
	a := newApp(t, "idle")
	plan := a.plan("idle")
	create(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	// Let the last status write's own event be handled.
	time.Sleep(time.Second)
	before := reconcileCount(t)
	time.Sleep(3 * time.Second)
	if after := reconcileCount(t); after != before {
		// Other tests run in parallel only if marked so; none are.
		t.Errorf("%v reconciles while the only plan moving waited for an approval; want none", after-before)
	}
}

// reconcileCount reads controller-runtime's reconcile counter for the
// UpgradePlan controller.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, family := range families {
		if family.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, label := range m.GetLabel() {
				if label.GetName() == "controller" && label.GetValue() == "upgradeplan" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

func updatePlanTyped(plan *upgradesv1alpha1.UpgradePlan, mutate func(*upgradesv1alpha1.UpgradePlan)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &upgradesv1alpha1.UpgradePlan{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(plan), fresh); err != nil {
			return err
		}
		mutate(fresh)
		return k8s.Update(context.Background(), fresh)
	})
}

func findStep(plan *upgradesv1alpha1.UpgradePlan, name upgradesv1alpha1.StepName, target string) *upgradesv1alpha1.Step {
	for i := range plan.Status.Steps {
		if plan.Status.Steps[i].Name == name && plan.Status.Steps[i].Target == target {
			return &plan.Status.Steps[i]
		}
	}
	return nil
}
