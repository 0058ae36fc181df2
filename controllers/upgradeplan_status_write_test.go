package controllers

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// TestWriteStatusAfterSomeoneElseWrote checks which writes by others a
// status built from an older read survives: a label or an annotation, yes;
// a new spec or a status written meanwhile, no.
func TestWriteStatusAfterSomeoneElseWrote(t *testing.T) {
	cases := []struct {
		name        string
		meanwhile   func(*upgradesv1alpha1.UpgradePlan)
		status      bool // whether meanwhile writes the status
		wantWritten bool
	}{
		{"nobody", func(*upgradesv1alpha1.UpgradePlan) {}, false, true},
		{"a label", func(p *upgradesv1alpha1.UpgradePlan) { p.Labels = map[string]string{"gitops": "synced"} }, false, true},
		{"an approval", func(p *upgradesv1alpha1.UpgradePlan) {
			p.Annotations = map[string]string{upgradesv1alpha1.AnnotationUATApprovedBy: "alice"}
		}, false, true},
		// The fake client keeps no generation; the API server moves it with the spec.
		{"the spec", func(p *upgradesv1alpha1.UpgradePlan) { p.Spec.Paused, p.Generation = true, 2 }, false, false},
		{"the status", func(p *upgradesv1alpha1.UpgradePlan) { p.Status.Phase = upgradesv1alpha1.PhaseRollingBack }, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			stored := &upgradesv1alpha1.UpgradePlan{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "plan", Generation: 1},
				Status: upgradesv1alpha1.UpgradePlanStatus{Phase: upgradesv1alpha1.PhaseUpgradingVAL}}
			c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(stored).WithStatusSubresource(stored).Build()
			r := &UpgradePlanReconciler{Client: c, APIReader: c}

			before := &upgradesv1alpha1.UpgradePlan{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(stored), before); err != nil {
				t.Fatal(err)
			}
			// Someone else writes while the reconcile works.
			other := before.DeepCopy()
			tc.meanwhile(other)
			write := func() error { return c.Update(ctx, other) }
			if tc.status {
				write = func() error { return c.Status().Update(ctx, other) }
			}
			if err := write(); err != nil {
				t.Fatal(err)
			}
			plan := before.DeepCopy()
			plan.Status.Phase = upgradesv1alpha1.PhaseVerifyingVAL

			err := r.writeStatus(ctx, before, plan)
			got := &upgradesv1alpha1.UpgradePlan{}
			if getErr := c.Get(ctx, client.ObjectKeyFromObject(stored), got); getErr != nil {
				t.Fatal(getErr)
			}
			written := got.Status.Phase == upgradesv1alpha1.PhaseVerifyingVAL
			if written != tc.wantWritten || (err == nil) != tc.wantWritten {
				t.Errorf("written %t, error %v; want written %t", written, err, tc.wantWritten)
			}
			if !tc.wantWritten && !apierrors.IsConflict(err) {
				t.Errorf("error %v; want a conflict, so that the newer plan is reconciled", err)
			}
		})
	}
}
