package integration

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// waitForPlan polls the API server until done says the plan is as wanted.
// It polls on through errors, as a person would while the API server
// restarts, and names the last one if the plan never gets there.
func waitForPlan(t *testing.T, key client.ObjectKey, timeout time.Duration, done func(*upgradesv1alpha1.UpgradePlan) bool) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	plan := &upgradesv1alpha1.UpgradePlan{}
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if lastErr = k8s.Get(ctx, key, plan); lastErr != nil {
			return false, nil
		}
		return done(plan), nil
	})
	if err != nil {
		t.Fatalf("plan %s did not reach the wanted state within %s (last error: %v); status: %+v", key, timeout, lastErr, plan.Status)
	}
	return plan
}

func TestManagerReconcilesPlans(t *testing.T) {
	ns := createNamespace(t, "manager")
	ctx := context.Background()
	plan := planFromYAML(t, minimalPlan, ns, "observed")
	if err := k8s.Create(ctx, plan); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(plan)

	// The plan's namespaces do not exist, so it stalls in Pending; what
	// matters here is that the manager observed each generation.
	observed := func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.ObservedGeneration == p.Generation &&
			meta.IsStatusConditionTrue(p.Status.Conditions, upgradesv1alpha1.ConditionStalled)
	}
	got := waitForPlan(t, key, 30*time.Second, observed)
	if got.Status.Phase != upgradesv1alpha1.PhasePending {
		t.Errorf("a new plan shows phase %q; want Pending", got.Status.Phase)
	}
	stalledCondition := meta.FindStatusCondition(got.Status.Conditions, upgradesv1alpha1.ConditionStalled)
	if stalledCondition.ObservedGeneration != got.Generation || stalledCondition.Reason != upgradesv1alpha1.ReasonNamespaceNotPermitted {
		t.Errorf("Stalled is %s for generation %d; want NamespaceNotPermitted for generation %d", stalledCondition.Reason, stalledCondition.ObservedGeneration, got.Generation)
	}
	if meta.IsStatusConditionTrue(got.Status.Conditions, upgradesv1alpha1.ConditionReconciling) {
		t.Error("a stalled plan reports Reconciling=True")
	}
	if meta.IsStatusConditionTrue(got.Status.Conditions, upgradesv1alpha1.ConditionReady) {
		t.Error("a plan that has not completed reports Ready=True")
	}

	// A spec change raises the generation; the manager must observe it too.
	got.Spec.Paused = true
	if err := k8s.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	after := waitForPlan(t, key, 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Generation > got.Status.ObservedGeneration && observed(p)
	})
	if after.Status.ObservedGeneration < 2 {
		t.Errorf("observedGeneration is %d after a spec change; want at least 2", after.Status.ObservedGeneration)
	}
}
