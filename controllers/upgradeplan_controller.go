// Package controllers holds the UpgradePlan reconciler: setup and watches
// here, one function per phase in upgradeplan_phases.go, and the status a
// person reads, derived from recorded facts, in upgradeplan_status.go.
package controllers

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// UpgradePlanReconciler carries UpgradePlans from VAL to PROD.
type UpgradePlanReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// Clock is injected so that tests control time; the manager uses the
	// real clock.
	Clock clock.Clock
}

// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one plan by at most one step. It reads the plan, runs the
// function of the step the plan stands at, and patches the status once, on
// the way out, from what that step recorded.
func (r *UpgradePlanReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	plan := &upgradesv1alpha1.UpgradePlan{}
	if err := r.Get(ctx, req.NamespacedName, plan); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := plan.DeepCopy()

	var out outcome
	defer func() {
		if err := r.patchStatus(ctx, before, plan, out); err != nil {
			if apierrors.IsConflict(err) {
				// The plan changed since we read it; that change queues a new
				// reconcile, which starts from the fresh object.
				ctrl.LoggerFrom(ctx).V(1).Info("status patch conflicted; waiting for the newer plan")
				return
			}
			retErr = errors.Join(retErr, err)
		}
	}()

	out = r.reconcilePhase(ctx, plan)
	return out.result(), out.err
}

// patchStatus sets the derived status and writes it with one merge patch,
// guarded by the resourceVersion read at the start of the reconcile.
func (r *UpgradePlanReconciler) patchStatus(ctx context.Context, before, plan *upgradesv1alpha1.UpgradePlan, out outcome) error {
	now := r.Clock.Now()
	setStatus(plan, out, now)
	if statusEqual(before, plan) {
		return nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	return r.Status().Patch(ctx, plan, patch)
}

// SetupWithManager registers the reconciler and its watches.
func (r *UpgradePlanReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&upgradesv1alpha1.UpgradePlan{}).
		Named("upgradeplan").
		WithOptions(opts).
		Complete(r)
}
