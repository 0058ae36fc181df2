package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// The recorded steps are the facts a plan moves on. The last step is the
// current one while it has no completedAt; once it completes, successor says
// which step follows from its name and result. Nothing reads status.phase.

// stepRef names a step and, for per-target steps, its target.
type stepRef struct {
	name   upgradesv1alpha1.StepName
	target string
}

// successor returns the step that follows a completed step, or the terminal
// phase the plan has reached.
func successor(plan *upgradesv1alpha1.UpgradePlan, done upgradesv1alpha1.Step) (stepRef, upgradesv1alpha1.Phase) {
	ok := done.Result == upgradesv1alpha1.StepSucceeded
	switch done.Name {
	case upgradesv1alpha1.StepResolve:
		return stepRef{name: upgradesv1alpha1.StepUpgradeVAL}, ""
	case upgradesv1alpha1.StepUpgradeVAL:
		if ok {
			return stepRef{name: upgradesv1alpha1.StepVerifyVAL}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepRestoreVAL}, ""
	case upgradesv1alpha1.StepVerifyVAL:
		if ok {
			return stepRef{name: upgradesv1alpha1.StepUATApproval}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepRestoreVAL}, ""
	case upgradesv1alpha1.StepRestoreVAL:
		return stepRef{}, upgradesv1alpha1.PhaseFailed
	case upgradesv1alpha1.StepUATApproval:
		return stepRef{name: upgradesv1alpha1.StepPromotion}, ""
	case upgradesv1alpha1.StepPromotion:
		return stepRef{name: upgradesv1alpha1.StepWindow}, ""
	case upgradesv1alpha1.StepWindow:
		return stepRef{name: upgradesv1alpha1.StepQuiesce}, ""
	case upgradesv1alpha1.StepQuiesce:
		if ok {
			return stepRef{name: upgradesv1alpha1.StepBackup}, ""
		}
		// The rollback of a plan that never touched a target only
		// un-quiesces; the plan then ends Failed.
		return stepRef{name: upgradesv1alpha1.StepRollBack}, ""
	case upgradesv1alpha1.StepBackup:
		if ok {
			return stepRef{name: upgradesv1alpha1.StepUpgradePROD, target: string(plan.Spec.PROD.Targets[0].Name)}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepRollBack}, ""
	case upgradesv1alpha1.StepUpgradePROD:
		if ok {
			return stepRef{name: upgradesv1alpha1.StepVerifyPROD, target: done.Target}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepRollBack}, ""
	case upgradesv1alpha1.StepVerifyPROD:
		if ok || !automaticRollback(plan) {
			// Without automatic rollback a person takes the go/no-go knowing
			// the checks failed.
			return stepRef{name: upgradesv1alpha1.StepDecision, target: done.Target}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepRollBack}, ""
	case upgradesv1alpha1.StepDecision:
		if !ok {
			return stepRef{name: upgradesv1alpha1.StepRollBack}, ""
		}
		if next := targetAfter(plan, done.Target); next != "" {
			return stepRef{name: upgradesv1alpha1.StepUpgradePROD, target: next}, ""
		}
		return stepRef{name: upgradesv1alpha1.StepComplete}, ""
	case upgradesv1alpha1.StepComplete:
		return stepRef{}, upgradesv1alpha1.PhaseCompleted
	case upgradesv1alpha1.StepRollBack:
		if done.Result == upgradesv1alpha1.StepSkipped {
			// Nothing in PROD had changed: the plan stopped before PROD.
			return stepRef{}, upgradesv1alpha1.PhaseFailed
		}
		return stepRef{}, upgradesv1alpha1.PhaseRolledBack
	}
	return stepRef{}, upgradesv1alpha1.PhaseFailed
}

// position is where a plan stands: the step in progress (current, with
// started telling whether it was recorded yet) or a terminal phase.
type position struct {
	current  stepRef
	started  *upgradesv1alpha1.Step
	terminal upgradesv1alpha1.Phase
}

// locate finds where the plan stands from its recorded steps.
func locate(plan *upgradesv1alpha1.UpgradePlan) position {
	steps := plan.Status.Steps
	if len(steps) == 0 {
		return position{current: stepRef{name: upgradesv1alpha1.StepResolve}}
	}
	last := &steps[len(steps)-1]
	if last.CompletedAt == nil {
		return position{current: stepRef{name: last.Name, target: last.Target}, started: last}
	}
	next, terminal := successor(plan, *last)
	return position{current: next, terminal: terminal}
}

// startStep records that a step started. It is called once per step: the
// start time is never written twice. A rollback that follows a failed step
// carries that step's reason and message: they say why it rolls back.
func startStep(plan *upgradesv1alpha1.UpgradePlan, ref stepRef, now time.Time) *upgradesv1alpha1.Step {
	step := upgradesv1alpha1.Step{Name: ref.name, Target: ref.target, StartedAt: metav1.NewTime(now)}
	if steps := plan.Status.Steps; ref.name == upgradesv1alpha1.StepRollBack && len(steps) > 0 && steps[len(steps)-1].Result == upgradesv1alpha1.StepFailed {
		step.Reason, step.Message = steps[len(steps)-1].Reason, steps[len(steps)-1].Message
	}
	plan.Status.Steps = append(plan.Status.Steps, step)
	return &plan.Status.Steps[len(plan.Status.Steps)-1]
}

// completeStep records how a step ended.
func completeStep(step *upgradesv1alpha1.Step, result upgradesv1alpha1.StepResult, reason, message string, now time.Time) {
	completed := metav1.NewTime(now)
	step.CompletedAt = &completed
	step.Result = result
	step.Reason = reason
	step.Message = truncate(message, 1024)
}

// findStep returns the last recorded step of that name and target.
func findStep(plan *upgradesv1alpha1.UpgradePlan, name upgradesv1alpha1.StepName, target string) *upgradesv1alpha1.Step {
	for i := len(plan.Status.Steps) - 1; i >= 0; i-- {
		if s := &plan.Status.Steps[i]; s.Name == name && s.Target == target {
			return s
		}
	}
	return nil
}

// touchedTargets lists, in order, the PROD targets whose upgrade started:
// those a rollback must restore.
func touchedTargets(plan *upgradesv1alpha1.UpgradePlan) []upgradesv1alpha1.Target {
	var touched []upgradesv1alpha1.Target
	for _, target := range plan.Spec.PROD.Targets {
		if findStep(plan, upgradesv1alpha1.StepUpgradePROD, string(target.Name)) != nil {
			touched = append(touched, target)
		}
	}
	return touched
}

// prodChanged reports whether the plan has started changing PROD: from
// Quiescing on, ending the plan means putting PROD back first.
func prodChanged(plan *upgradesv1alpha1.UpgradePlan) bool {
	return findStep(plan, upgradesv1alpha1.StepQuiesce, "") != nil
}

// rollingBack reports whether a rollback (of PROD or of VAL) was started.
func rollingBack(plan *upgradesv1alpha1.UpgradePlan) bool {
	return findStep(plan, upgradesv1alpha1.StepRollBack, "") != nil || findStep(plan, upgradesv1alpha1.StepRestoreVAL, "") != nil
}

func targetAfter(plan *upgradesv1alpha1.UpgradePlan, target string) string {
	targets := plan.Spec.PROD.Targets
	for i := range targets {
		if string(targets[i].Name) == target && i+1 < len(targets) {
			return string(targets[i+1].Name)
		}
	}
	return ""
}

func automaticRollback(plan *upgradesv1alpha1.UpgradePlan) bool {
	rollback := plan.Spec.PROD.Rollback
	return rollback == nil || rollback.Automatic == nil || *rollback.Automatic
}

// phaseOf is the phase people see while a step is current.
func phaseOf(step upgradesv1alpha1.StepName) upgradesv1alpha1.Phase {
	switch step {
	case upgradesv1alpha1.StepResolve:
		return upgradesv1alpha1.PhasePending
	case upgradesv1alpha1.StepUpgradeVAL:
		return upgradesv1alpha1.PhaseUpgradingVAL
	case upgradesv1alpha1.StepVerifyVAL:
		return upgradesv1alpha1.PhaseVerifyingVAL
	case upgradesv1alpha1.StepUATApproval:
		return upgradesv1alpha1.PhaseAwaitingUATApproval
	case upgradesv1alpha1.StepPromotion:
		return upgradesv1alpha1.PhaseAwaitingPromotion
	case upgradesv1alpha1.StepWindow:
		return upgradesv1alpha1.PhaseAwaitingWindow
	case upgradesv1alpha1.StepQuiesce:
		return upgradesv1alpha1.PhaseQuiescing
	case upgradesv1alpha1.StepBackup:
		return upgradesv1alpha1.PhaseBackingUp
	case upgradesv1alpha1.StepUpgradePROD:
		return upgradesv1alpha1.PhaseUpgradingPROD
	case upgradesv1alpha1.StepVerifyPROD:
		return upgradesv1alpha1.PhaseVerifyingPROD
	case upgradesv1alpha1.StepDecision:
		return upgradesv1alpha1.PhaseAwaitingDecision
	case upgradesv1alpha1.StepComplete:
		return upgradesv1alpha1.PhaseCompleted
	}
	// RestoreVAL and RollBack undo changes.
	return upgradesv1alpha1.PhaseRollingBack
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
