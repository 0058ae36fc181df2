package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/approval"
	"github.com/changegate/changegate/internal/window"
	"github.com/changegate/changegate/internal/workload"
)

// runStep runs the function of the current step. Each function reads what it
// needs, performs at most one kind of side effect, records facts in the
// plan's status, and returns an outcome.
func (r *UpgradePlanReconciler) runStep(ctx context.Context, s *scope) outcome {
	switch s.step.Name {
	case upgradesv1alpha1.StepResolve:
		return r.resolve(ctx, s)
	case upgradesv1alpha1.StepUpgradeVAL:
		return r.upgradeEnvironment(ctx, s, s.val())
	case upgradesv1alpha1.StepVerifyVAL:
		return r.verifyEnvironment(ctx, s, s.val())
	case upgradesv1alpha1.StepRestoreVAL:
		return r.restoreEnvironments(ctx, s, []environment{s.val()})
	case upgradesv1alpha1.StepUATApproval:
		return r.awaitUATApproval(ctx, s)
	case upgradesv1alpha1.StepPromotion:
		return r.awaitPromotion(s)
	case upgradesv1alpha1.StepWindow:
		return r.awaitWindow(s)
	case upgradesv1alpha1.StepQuiesce:
		return r.quiesce(ctx, s)
	case upgradesv1alpha1.StepBackup:
		return r.backup(ctx, s)
	case upgradesv1alpha1.StepUpgradePROD:
		return r.upgradeEnvironment(ctx, s, s.target(s.step.Target))
	case upgradesv1alpha1.StepVerifyPROD:
		return r.verifyEnvironment(ctx, s, s.target(s.step.Target))
	case upgradesv1alpha1.StepDecision:
		return r.awaitDecision(ctx, s)
	case upgradesv1alpha1.StepComplete:
		if err := r.unquiesce(ctx, s); err != nil {
			return failedTransiently(err)
		}
		s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonSucceeded,
			fmt.Sprintf("every PROD target runs %s", s.plan.Spec.PROD.Version))
		return progressed(upgradesv1alpha1.ReasonSucceeded, "the plan completed")
	case upgradesv1alpha1.StepRollBack:
		return r.rollBack(ctx, s)
	}
	return stalled(upgradesv1alpha1.ReasonInvalidSpec, fmt.Sprintf("unknown step %q", s.step.Name))
}

// resolve (Pending) reads every namespace and every component's workload in
// VAL and each PROD target. It changes nothing. It records the image each
// component runs (status.previousImages) and each environment's version
// (status.versions). A namespace that has not opted in, or a missing
// workload, container or object that quiesce names, stalls the plan with a
// reason naming it.
func (r *UpgradePlanReconciler) resolve(ctx context.Context, s *scope) outcome {
	if err := window.Validate(s.plan.Spec.PROD.Window); err != nil {
		return stalled(upgradesv1alpha1.ReasonInvalidSpec, err.Error())
	}
	var images []upgradesv1alpha1.RecordedImage
	versions := map[string]string{}
	for _, env := range s.environments() {
		if out, ok := r.namespacePermitted(ctx, s, env.namespace); !ok {
			return out
		}
		var tags []string
		for _, component := range s.plan.Spec.Components {
			obj, err := r.getWorkload(ctx, r.Client, env.namespace, component)
			if apierrors.IsNotFound(err) {
				return stalled(upgradesv1alpha1.ReasonWorkloadNotFound,
					fmt.Sprintf("%s %s/%s of component %s not found in %s", component.Kind, env.namespace, component.WorkloadName, component.Name, env.name))
			}
			if err != nil {
				return failedTransiently(err)
			}
			image, err := workload.ContainerImage(obj, string(component.Container))
			if err != nil {
				return stalled(upgradesv1alpha1.ReasonWorkloadNotFound,
					fmt.Sprintf("%s %s/%s has no container %q (component %s)", component.Kind, env.namespace, component.WorkloadName, component.Container, component.Name))
			}
			images = append(images, upgradesv1alpha1.RecordedImage{Environment: env.name, Component: string(component.Name), Image: image})
			if tag := workload.Tag(image); !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
		versions[env.name] = strings.Join(tags, ",")
		if env.name == upgradesv1alpha1.EnvironmentVAL {
			continue
		}
		if missing, err := r.missingQuiesceObject(ctx, s, env.namespace); err != nil || missing != "" {
			if err != nil {
				return failedTransiently(err)
			}
			return stalled(upgradesv1alpha1.ReasonWorkloadNotFound, fmt.Sprintf("%s, named in prod.quiesce, not found in %s", missing, env.name))
		}
	}
	s.plan.Status.PreviousImages = images
	s.plan.Status.Versions = versions
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonProgressing, "every component was found in VAL and PROD")
	return progressed(upgradesv1alpha1.ReasonProgressing, "resolved every component")
}

// namespacePermitted checks the namespace's opt-in label; without it nothing
// in that namespace is read further or changed.
func (r *UpgradePlanReconciler) namespacePermitted(ctx context.Context, s *scope, namespace string) (outcome, bool) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return stalled(upgradesv1alpha1.ReasonNamespaceNotPermitted, fmt.Sprintf("namespace %s does not exist", namespace)), false
		}
		return failedTransiently(err), false
	}
	if ns.Labels[upgradesv1alpha1.LabelPlansFrom] != s.plan.Namespace {
		return stalled(upgradesv1alpha1.ReasonNamespaceNotPermitted, fmt.Sprintf(
			"namespace %s has not opted in to plans from %s: label it %s=%s",
			namespace, s.plan.Namespace, upgradesv1alpha1.LabelPlansFrom, s.plan.Namespace)), false
	}
	return outcome{}, true
}

// upgradeEnvironment (UpgradingVAL, UpgradingPROD) sets each component's
// container image to <image>:<version> in the environment, then waits for
// the rollouts through the workload watches. It changes only that container's
// image. It records the step's result: Succeeded once every rollout is
// complete, Failed (RolloutFailed) when one fails.
func (r *UpgradePlanReconciler) upgradeEnvironment(ctx context.Context, s *scope, env environment) outcome {
	if env.name != upgradesv1alpha1.EnvironmentVAL && !snapshotVerified(s.plan, env.name) {
		// Backup comes before every PROD upgrade; this guards the rule itself.
		return stalled(upgradesv1alpha1.ReasonBackupFailed, fmt.Sprintf("refusing to change %s: it has no verified snapshot", env.name))
	}
	wanted := map[string]string{}
	for _, component := range s.plan.Spec.Components {
		wanted[string(component.Name)] = workload.ImageRef(component.Image, env.version)
	}
	rollouts, err := r.applyImages(ctx, s, env, wanted)
	switch {
	case err != nil:
		return failedTransiently(err)
	case len(rollouts.failed) > 0:
		message := strings.Join(rollouts.failed, "; ")
		s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonRolloutFailed, message)
		return progressed(upgradesv1alpha1.ReasonRolloutFailed, message)
	case len(rollouts.pending) > 0:
		// One message for the whole rollout, not one per workload still
		// pending: each rollout finishing would otherwise cost a status
		// write that tells a person little (kubectl rollout status does).
		return waiting(r.rolloutTimer(s), upgradesv1alpha1.ReasonProgressing, rollingOut(env))
	}
	message := fmt.Sprintf("%s rolled out %s on every component", env.name, env.version)
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonProgressing, message)
	return progressed(upgradesv1alpha1.ReasonProgressing, message)
}

// rollingOut is what a plan says while an environment rolls out, from the
// moment its upgrade is recorded as started, so that the rollouts' progress
// costs no status write.
func rollingOut(env environment) string {
	return fmt.Sprintf("rolling out %s in %s", env.version, env.name)
}

// verifyEnvironment (VerifyingVAL, VerifyingPROD) runs the environment's
// checks. The built-in check, always present, is that every component still
// runs the new version, fully rolled out; then each check in the plan runs
// until it passes (its successThreshold and soak) or fails (its
// failureThreshold). It changes nothing but the check Jobs it starts; it
// records the checks in status.checks, the step's result, and for VAL the
// validated version.
func (r *UpgradePlanReconciler) verifyEnvironment(ctx context.Context, s *scope, env environment) outcome {
	for _, component := range s.plan.Spec.Components {
		state, message, err := r.rollout(ctx, s, env.namespace, component, workload.ImageRef(component.Image, env.version))
		if err != nil {
			return failedTransiently(err)
		}
		switch state {
		case workload.RolloutFailed:
			s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonCheckFailed, message)
			return progressed(upgradesv1alpha1.ReasonCheckFailed, message)
		case workload.RolloutProgressing:
			return waiting(0, upgradesv1alpha1.ReasonProgressing, message)
		}
	}
	result, err := r.runChecks(ctx, s, env, s.step.StartedAt.Time)
	switch {
	case err != nil:
		return failedTransiently(err)
	case result.failed != "":
		s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonCheckFailed, result.failed)
		return progressed(upgradesv1alpha1.ReasonCheckFailed, result.failed)
	case !result.passed:
		return waiting(result.next, upgradesv1alpha1.ReasonProgressing, "checking "+env.name+": "+strings.Join(result.waiting, "; "))
	}
	if env.name == upgradesv1alpha1.EnvironmentVAL {
		s.plan.Status.ValidatedVersion = string(env.version)
	}
	message := fmt.Sprintf("%s runs %s on every component and passes its checks", env.name, env.version)
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonChecksPassing, message)
	return progressed(upgradesv1alpha1.ReasonChecksPassing, message)
}

// restoreEnvironments (RollingBack) sets every component of the environments
// back to the image it ran before the plan, recorded in
// status.previousImages, and waits for the rollouts. A restore that does not
// roll out keeps waiting: there is nothing safer to go back to. It records
// Succeeded once every environment is back.
func (r *UpgradePlanReconciler) restoreEnvironments(ctx context.Context, s *scope, envs []environment) outcome {
	var pending, names []string
	for _, env := range envs {
		names = append(names, env.name)
		rollouts, err := r.applyImages(ctx, s, env, previousImages(s.plan, env.name))
		if err != nil {
			return failedTransiently(err)
		}
		pending = append(append(pending, rollouts.failed...), rollouts.pending...)
	}
	if len(pending) > 0 {
		return waiting(r.rolloutTimer(s), upgradesv1alpha1.ReasonProgressing, "restoring: "+strings.Join(pending, "; "))
	}
	message := fmt.Sprintf("restored %s to the images recorded before the plan", strings.Join(names, ", "))
	s.complete(upgradesv1alpha1.StepSucceeded, s.step.Reason, message)
	return progressed(upgradesv1alpha1.ReasonProgressing, message)
}

// rollouts sorts the components of one environment by how their rollout
// stands, with a sentence for each that is not complete.
type rollouts struct {
	failed, pending []string
}

// applyImages patches, where it differs, each component's container to the
// wanted image (component name → image) and reports the rollouts.
func (r *UpgradePlanReconciler) applyImages(ctx context.Context, s *scope, env environment, wanted map[string]string) (rollouts, error) {
	var result rollouts
	for _, component := range s.plan.Spec.Components {
		image, ok := wanted[string(component.Name)]
		if !ok {
			continue
		}
		if err := r.setImage(ctx, env.namespace, component, image); err != nil {
			return result, err
		}
		state, message, err := r.rollout(ctx, s, env.namespace, component, image)
		if err != nil {
			return result, err
		}
		switch state {
		case workload.RolloutFailed:
			result.failed = append(result.failed, message)
		case workload.RolloutProgressing:
			result.pending = append(result.pending, message)
		}
	}
	return result, nil
}

// rolloutTimer is when to look again at a rollout that sends no event when
// it runs out of time: StatefulSets and DaemonSets have no progress deadline
// of their own.
func (r *UpgradePlanReconciler) rolloutTimer(s *scope) time.Duration {
	for _, component := range s.plan.Spec.Components {
		if component.Kind != upgradesv1alpha1.KindDeployment {
			return max(time.Second, s.step.StartedAt.Add(workload.DefaultRolloutDeadline+time.Second).Sub(s.now))
		}
	}
	return 0
}

// awaitUATApproval (AwaitingUATApproval) reads the UAT annotations, only
// while the admission policy authenticates them. It changes nothing. It appends each approval it has not seen to
// status.approvals, and completes once requiredApprovals distinct users
// approved spec.val.version.
func (r *UpgradePlanReconciler) awaitUATApproval(ctx context.Context, s *scope) outcome {
	if out, trusted := r.gateApprovals(ctx, s); !trusted {
		return out
	}
	plan := s.plan
	required, approvers := int32(1), (*upgradesv1alpha1.Approvers)(nil)
	if plan.Spec.UAT != nil {
		required, approvers = max(1, plan.Spec.UAT.RequiredApprovals), plan.Spec.UAT.Approvers
	}
	version := string(plan.Spec.VAL.Version)
	users := approval.UATApprovers(plan.Annotations, version, s.requester(), approvers)
	for _, user := range users {
		plan.Status.Approvals, _ = approval.Record(plan.Status.Approvals, upgradesv1alpha1.Approval{
			Kind: upgradesv1alpha1.ApprovalUAT, Version: version, User: user, At: metav1.NewTime(s.now),
		})
	}
	if int32(len(users)) < required {
		return waitingForPerson(0, upgradesv1alpha1.ReasonAwaitingApproval, fmt.Sprintf(
			"%d of %d UAT approvals for version %s; an approver runs: kubectl changegate approve %s -n %s",
			len(users), required, version, plan.Name, plan.Namespace))
	}
	message := fmt.Sprintf("version %s approved by %s", version, strings.Join(users, ", "))
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonSucceeded, message)
	return progressed(upgradesv1alpha1.ReasonProgressing, message)
}

// awaitPromotion (AwaitingPromotion) reads spec.prod.version. It changes
// nothing. It completes when the version equals the one validated in VAL;
// an empty version waits for a pipeline, a different one stalls the plan.
func (r *UpgradePlanReconciler) awaitPromotion(s *scope) outcome {
	plan := s.plan
	switch version := string(plan.Spec.PROD.Version); version {
	case "":
		return waitingForPerson(0, upgradesv1alpha1.ReasonAwaitingPromotion,
			fmt.Sprintf("spec.prod.version is empty: promote %s by setting it", plan.Status.ValidatedVersion))
	case plan.Status.ValidatedVersion:
		s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonProgressing, fmt.Sprintf("%s promoted to PROD", version))
		return progressed(upgradesv1alpha1.ReasonProgressing, "promoted")
	default:
		return stalled(upgradesv1alpha1.ReasonPromotionBlocked, fmt.Sprintf(
			"spec.prod.version %s is not the version validated in VAL (%s); only a validated version goes to PROD: create a new plan for %s",
			version, plan.Status.ValidatedVersion, version))
	}
}

// awaitWindow (AwaitingWindow) evaluates the window and freezes at the
// current time. It changes nothing. It completes inside the window; before
// it, it asks to be woken exactly when the window opens or a freeze ends; a
// missed one-off window stalls the plan.
func (r *UpgradePlanReconciler) awaitWindow(s *scope) outcome {
	state := window.Evaluate(s.plan.Spec.PROD.Window, s.plan.Spec.PROD.Freezes, s.now)
	switch {
	case state.Open:
		s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonProgressing, state.Message)
		return progressed(upgradesv1alpha1.ReasonProgressing, state.Message)
	case state.Missed:
		return stalled(upgradesv1alpha1.ReasonWindowMissed, state.Message+"; set a new window in spec.prod.window")
	}
	return waiting(state.Next.Sub(s.now), upgradesv1alpha1.ReasonAwaitingWindow, state.Message)
}

// sooner is the earlier of two waits, where 0 means no timer.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// awaitDecision (AwaitingDecision) reads the decision.<target> annotations.
// It changes nothing. It records the decision in status.approvals and
// completes: Succeeded on go, Failed on no-go or when prod.decision.timeout
// passes without one.
func (r *UpgradePlanReconciler) awaitDecision(ctx context.Context, s *scope) outcome {
	plan, target := s.plan, s.step.Target
	// The target's checks keep running while people decide; one failing
	// rolls the target back whatever they would have said, unless rollback
	// is not automatic: then they decide knowing it failed.
	verification := findStep(plan, upgradesv1alpha1.StepVerifyPROD, target)
	checked, err := r.runChecks(ctx, s, s.target(target), verification.StartedAt.Time)
	if err != nil {
		return failedTransiently(err)
	}
	if checked.failed != "" && automaticRollback(plan) {
		s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonCheckFailed, checked.failed+" while awaiting the go/no-go")
		return progressed(upgradesv1alpha1.ReasonCheckFailed, checked.failed)
	}
	var approvers *upgradesv1alpha1.Approvers
	var timeout time.Duration
	if d := plan.Spec.PROD.Decision; d != nil {
		approvers, timeout = d.Approvers, d.Timeout.GetOr(0)
	}
	untrusted, trusted := r.gateApprovals(ctx, s)
	if untrusted.kind == outcomeError {
		return untrusted
	}
	if decision, ok := approval.TargetDecision(plan.Annotations, target, s.requester(), approvers); ok && trusted {
		value := upgradesv1alpha1.DecisionNoGo
		if decision.Go {
			value = upgradesv1alpha1.DecisionGo
		}
		plan.Status.Approvals, _ = approval.Record(plan.Status.Approvals, upgradesv1alpha1.Approval{
			Kind: upgradesv1alpha1.ApprovalDecision, Target: target, Decision: value, User: decision.User, At: metav1.NewTime(s.now),
		})
		message := fmt.Sprintf("%s decided %s for %s", decision.User, value, target)
		if decision.Go {
			s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonSucceeded, message)
		} else {
			s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonNoGo, message)
		}
		return progressed(upgradesv1alpha1.ReasonProgressing, message)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = s.step.StartedAt.Add(timeout)
		if !s.now.Before(deadline) {
			message := fmt.Sprintf("no go/no-go for %s within %s", target, timeout)
			s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonDecisionTimeout, message)
			return progressed(upgradesv1alpha1.ReasonDecisionTimeout, message)
		}
	}
	wake := checked.next
	if !deadline.IsZero() {
		wake = sooner(deadline.Sub(s.now), checked.next)
	}
	if !trusted {
		untrusted.after = wake
		return untrusted
	}
	if !deadline.IsZero() {
		return waitingForPerson(wake, upgradesv1alpha1.ReasonAwaitingDecision, fmt.Sprintf(
			"%s awaits its go/no-go until %s: kubectl changegate go|no-go %s --target %s -n %s",
			target, deadline.UTC().Format(time.RFC3339), plan.Name, target, plan.Namespace))
	}
	return waitingForPerson(wake, upgradesv1alpha1.ReasonAwaitingDecision, fmt.Sprintf(
		"%s awaits its go/no-go: kubectl changegate go|no-go %s --target %s -n %s", target, plan.Name, target, plan.Namespace))
}
