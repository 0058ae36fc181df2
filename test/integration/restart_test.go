package integration

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// TestRestartBetweenEverySteps stops the manager after each step the plan
// is seen to complete and starts a new one, as a crash or a new leader would. The plan
// must still complete, and each workload be patched exactly once.
func TestRestartBetweenEverySteps(t *testing.T) {
	a := newApp(t, "restart")
	plan := a.plan("restarted")
	key := client.ObjectKeyFromObject(plan)
	mark := effects.mark()
	create(t, plan)

	completedSteps := func(p *upgradesv1alpha1.UpgradePlan) int {
		n := 0
		for _, s := range p.Status.Steps {
			if s.CompletedAt != nil {
				n++
			}
		}
		return n
	}
	current := &upgradesv1alpha1.UpgradePlan{}
	restarts := 0
	for current.Status.Phase != upgradesv1alpha1.PhaseCompleted {
		if restarts > 40 {
			t.Fatalf("the plan did not complete after %d restarts; status: %+v", restarts, current.Status)
		}
		if err := k8s.Get(context.Background(), key, current); err != nil {
			t.Fatal(err)
		}
		done := completedSteps(current)
		// A person acts while the manager is down, as they might.
		switch current.Status.Phase {
		case upgradesv1alpha1.PhaseAwaitingUATApproval:
			approveUAT(t, plan, newVersion, "alice")
		case upgradesv1alpha1.PhaseAwaitingDecision:
			decide(t, plan, current.Status.CurrentTarget, "go", "carol")
		}
		stopChangegate()
		restarts++
		var err error
		if stopChangegate, err = startChangegate(); err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			if err := k8s.Get(ctx, key, current); err != nil {
				return false, err
			}
			return completedSteps(current) > done || current.Status.Phase == upgradesv1alpha1.PhaseCompleted, nil
		})
		if err != nil {
			t.Fatalf("no step completed after restart %d in phase %s: %+v", restarts, current.Status.Phase, current.Status.Conditions)
		}
	}
	for _, env := range []string{"val", "main", "test"} {
		a.expectImages(t, env, newVersion)
	}
	// Three components in three environments: nine image changes, no more.
	patches := workloadChanges(effects.since(mark))
	if patches != 9 {
		t.Errorf("%d workload patches across %d restarts; want exactly 9", patches, restarts)
	}
	// A restart follows every observed step completion; when the manager
	// completes two steps before the stop lands, they share one. The three
	// waits for a person (UAT, MAIN, TEST) each hold the plan until the test
	// acts, so at least four restarts are certain.
	if restarts < 4 {
		t.Errorf("only %d restarts: the test did not stop the manager at each wait for a person", restarts)
	}
	t.Logf("%d restarts, %d workload patches", restarts, patches)
}
