package controllers

import (
	"context"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,verbs=get;list;watch

// ApprovalPolicyName is the name of the ValidatingAdmissionPolicy, and of its
// binding, that authenticate approvals (config/policy).
const ApprovalPolicyName = "changegate-approvals"

// approvalPolicyMissing says why approvals on the plan cannot be trusted now,
// or returns "" when the admission policy and its binding are installed,
// denying, and bound to the plan's namespace. Fail closed: without them any
// user who may patch the plan could forge an approval.
func (r *UpgradePlanReconciler) approvalPolicyMissing(ctx context.Context, plan *upgradesv1alpha1.UpgradePlan) (string, error) {
	policy := &admissionv1.ValidatingAdmissionPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Name: ApprovalPolicyName}, policy); apierrors.IsNotFound(err) {
		return fmt.Sprintf("the ValidatingAdmissionPolicy %s is not installed: approvals cannot be authenticated; install config/policy", ApprovalPolicyName), nil
	} else if err != nil {
		return "", err
	}
	if policy.Spec.FailurePolicy != nil && *policy.Spec.FailurePolicy != admissionv1.Fail {
		return fmt.Sprintf("the ValidatingAdmissionPolicy %s has failurePolicy %s: it must be Fail", ApprovalPolicyName, *policy.Spec.FailurePolicy), nil
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{}
	if err := r.Get(ctx, client.ObjectKey{Name: ApprovalPolicyName}, binding); apierrors.IsNotFound(err) {
		return fmt.Sprintf("the ValidatingAdmissionPolicyBinding %s is not installed: approvals cannot be authenticated; install config/policy", ApprovalPolicyName), nil
	} else if err != nil {
		return "", err
	}
	if binding.Spec.PolicyName != ApprovalPolicyName || !slices.Contains(binding.Spec.ValidationActions, admissionv1.Deny) {
		return fmt.Sprintf("the ValidatingAdmissionPolicyBinding %s must bind the policy %s with validationActions [Deny]", ApprovalPolicyName, ApprovalPolicyName), nil
	}
	if match := binding.Spec.MatchResources; match != nil && (len(match.ExcludeResourceRules) > 0 || (match.ObjectSelector != nil && !isEmpty(match.ObjectSelector))) {
		return fmt.Sprintf("the ValidatingAdmissionPolicyBinding %s excludes objects (objectSelector or excludeResourceRules): it must apply to every UpgradePlan", ApprovalPolicyName), nil
	}
	if plan.Annotations[upgradesv1alpha1.AnnotationRequestedBy] == "" {
		return fmt.Sprintf("the plan has no %s annotation, so it was created while the policy was not enforced: create the plan again", upgradesv1alpha1.AnnotationRequestedBy), nil
	}
	if match := binding.Spec.MatchResources; match != nil && match.NamespaceSelector != nil {
		selector, err := metav1.LabelSelectorAsSelector(match.NamespaceSelector)
		if err != nil {
			return fmt.Sprintf("the namespaceSelector of the ValidatingAdmissionPolicyBinding %s is invalid: %v", ApprovalPolicyName, err), nil
		}
		ns := &corev1.Namespace{}
		if err := r.Get(ctx, client.ObjectKey{Name: plan.Namespace}, ns); err != nil {
			return "", err
		}
		if !selector.Matches(labels.Set(ns.Labels)) {
			return fmt.Sprintf("the ValidatingAdmissionPolicyBinding %s does not cover namespace %s: approvals there cannot be authenticated", ApprovalPolicyName, plan.Namespace), nil
		}
	}
	return "", nil
}

// gateApprovals records ApprovalPolicyReady and says, when approvals cannot
// be trusted, the outcome to wait with.
func (r *UpgradePlanReconciler) gateApprovals(ctx context.Context, s *scope) (outcome, bool) {
	missing, err := r.approvalPolicyMissing(ctx, s.plan)
	if err != nil {
		return failedTransiently(err), false
	}
	if missing != "" {
		setCondition(s.plan, upgradesv1alpha1.ConditionApprovalPolicyReady, false, upgradesv1alpha1.ReasonApprovalPolicyMissing, missing, s.now)
		return stalled(upgradesv1alpha1.ReasonApprovalPolicyMissing, missing+"; approvals and decisions are not honoured until it is"), false
	}
	setCondition(s.plan, upgradesv1alpha1.ConditionApprovalPolicyReady, true, upgradesv1alpha1.ReasonSucceeded,
		"the admission policy "+ApprovalPolicyName+" authenticates approvals", s.now)
	return outcome{}, true
}

// plansAwaitingPeople maps a change to the approvals policy to every plan,
// so that plans waiting for approvals learn whether they can trust them.
func (r *UpgradePlanReconciler) plansAwaitingPeople(ctx context.Context, _ client.Object) []reconcile.Request {
	var plans upgradesv1alpha1.UpgradePlanList
	if err := r.List(ctx, &plans); err != nil {
		ctrlLog(ctx).Error(err, "listing plans after a change to the approvals policy")
		return nil
	}
	var requests []reconcile.Request
	for _, plan := range plans.Items {
		if pos := locate(&plan); pos.current.name == upgradesv1alpha1.StepUATApproval || pos.current.name == upgradesv1alpha1.StepDecision {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&plan)})
		}
	}
	return requests
}

func isEmpty(selector *metav1.LabelSelector) bool {
	return len(selector.MatchLabels) == 0 && len(selector.MatchExpressions) == 0
}
