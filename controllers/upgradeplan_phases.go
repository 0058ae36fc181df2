package controllers

import (
	"context"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// reconcilePhase runs the function of the step the plan stands at.
//
// The phase engine that resolves workloads and walks VAL, approval, window
// and PROD fills this in; until then every plan is accepted and reported as
// Pending and Reconciling.
func (r *UpgradePlanReconciler) reconcilePhase(_ context.Context, _ *upgradesv1alpha1.UpgradePlan) outcome {
	return progressed(upgradesv1alpha1.ReasonProgressing, "Resolving components and PROD targets")
}
