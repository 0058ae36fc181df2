package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// setStatus derives what a person reads — phase and the kstatus conditions —
// from the recorded facts and the outcome of this reconcile.
func setStatus(plan *upgradesv1alpha1.UpgradePlan, out outcome, now time.Time) {
	status := &plan.Status
	if out.kind != outcomeError {
		status.ObservedGeneration = plan.Generation
	}
	if status.Phase == "" {
		status.Phase = upgradesv1alpha1.PhasePending
	}

	reconciling := out.kind == outcomeProgressed || out.kind == outcomeWaiting || out.kind == outcomeError
	setCondition(plan, upgradesv1alpha1.ConditionReconciling, reconciling, out.reason, out.message, now)
	setCondition(plan, upgradesv1alpha1.ConditionStalled, out.kind == outcomeStalled, out.reason, out.message, now)
	ready := status.Phase == upgradesv1alpha1.PhaseCompleted
	setCondition(plan, upgradesv1alpha1.ConditionReady, ready, out.reason, out.message, now)
}

// setCondition writes a condition with the plan's generation. The transition
// time changes only when the status does.
func setCondition(plan *upgradesv1alpha1.UpgradePlan, conditionType string, value bool, reason, message string, now time.Time) {
	status := metav1.ConditionFalse
	if value {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&plan.Status.Conditions, metav1.Condition{
		Type:               conditionType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: plan.Generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// statusEqual reports whether reconciling changed nothing a patch would write.
func statusEqual(before, after *upgradesv1alpha1.UpgradePlan) bool {
	return equality.Semantic.DeepEqual(before.Status, after.Status)
}
