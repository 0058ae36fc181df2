package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// transition is a phase change, told to people as an Event.
type transition struct {
	phase   upgradesv1alpha1.Phase
	reason  string
	message string
	warning bool
}

// setStatus derives what a person reads — phase, current target, conditions
// and history — from the recorded steps and the outcome of this reconcile.
// It returns the phase change, if any.
func setStatus(plan *upgradesv1alpha1.UpgradePlan, out outcome, now time.Time) *transition {
	status := &plan.Status
	if out.kind != outcomeError {
		status.ObservedGeneration = plan.Generation
	}
	pos := locate(plan)
	phase := pos.terminal
	if phase == "" {
		phase = phaseOf(pos.current.name)
		status.CurrentTarget = pos.current.target
	}
	reason, message := out.reason, out.message
	if pos.terminal != "" {
		reason, message = terminalReason(plan, pos.terminal)
	}
	if reason == "" {
		reason = upgradesv1alpha1.ReasonProgressing
	}

	stalledNow := out.kind == outcomeStalled || phase == upgradesv1alpha1.PhaseFailed || phase == upgradesv1alpha1.PhaseRolledBack
	reconciling := !stalledNow && pos.terminal == "" && out.kind != outcomeWaitingForPerson
	wasStalled := meta.IsStatusConditionTrue(status.Conditions, upgradesv1alpha1.ConditionStalled)
	// Completed shows while the Complete step un-quiesces; Ready waits
	// until it has.
	setCondition(plan, upgradesv1alpha1.ConditionReady, pos.terminal == upgradesv1alpha1.PhaseCompleted, reason, message, now)
	setCondition(plan, upgradesv1alpha1.ConditionReconciling, reconciling, reason, message, now)
	setCondition(plan, upgradesv1alpha1.ConditionStalled, stalledNow, reason, message, now)
	setDomainConditions(plan, now)

	if phase == status.Phase {
		if stalledNow && !wasStalled {
			// Stalled within a phase (a missing workload, a rollback over
			// its deadline): people must hear of it as they do of a phase.
			return &transition{phase: phase, reason: reason, message: fmt.Sprintf("%s: %s", phase, message), warning: true}
		}
		return nil
	}
	status.Phase = phase
	if out.arrival != "" && pos.terminal == "" {
		message = out.arrival
	}
	status.History = append(status.History, upgradesv1alpha1.HistoryEntry{At: metav1.NewTime(now), Phase: phase, Message: truncate(message, 1024)})
	if over := len(status.History) - upgradesv1alpha1.MaxHistory; over > 0 {
		status.History = status.History[over:]
	}
	warning := stalledNow || phase == upgradesv1alpha1.PhaseRollingBack
	return &transition{phase: phase, reason: reason, message: fmt.Sprintf("%s: %s", phase, message), warning: warning}
}

// terminalReason explains a terminal phase from the steps that led to it.
func terminalReason(plan *upgradesv1alpha1.UpgradePlan, phase upgradesv1alpha1.Phase) (string, string) {
	steps := plan.Status.Steps
	switch phase {
	case upgradesv1alpha1.PhaseCompleted:
		return upgradesv1alpha1.ReasonSucceeded, fmt.Sprintf("every PROD target runs %s", plan.Spec.PROD.Version)
	case upgradesv1alpha1.PhaseRolledBack:
		rollback := findStep(plan, upgradesv1alpha1.StepRollBack, "")
		return whyRolledBack(plan), "rolled back: " + rollback.Message
	}
	// Failed: the first failed step says why.
	for _, step := range steps {
		if step.Result == upgradesv1alpha1.StepFailed {
			return step.Reason, fmt.Sprintf("%s failed: %s", step.Name, step.Message)
		}
	}
	return upgradesv1alpha1.ReasonFailed, "the plan failed"
}

// whyRolledBack is the reason of the failed step that started the rollback.
func whyRolledBack(plan *upgradesv1alpha1.UpgradePlan) string {
	rollback := findStep(plan, upgradesv1alpha1.StepRollBack, "")
	if rollback != nil && rollback.Reason != "" && rollback.Reason != upgradesv1alpha1.ReasonProgressing {
		return rollback.Reason
	}
	for i := len(plan.Status.Steps) - 1; i >= 0; i-- {
		if step := plan.Status.Steps[i]; step.Result == upgradesv1alpha1.StepFailed {
			return step.Reason
		}
	}
	return upgradesv1alpha1.ReasonFailed
}

// setDomainConditions writes the conditions that say how far the change has
// come: WindowOpen, Quiesced, BackupReady, UATApproved, ChecksPassed and
// RolledBack, each once it applies.
func setDomainConditions(plan *upgradesv1alpha1.UpgradePlan, now time.Time) {
	setQuiescedCondition(plan, now)
	if closes := windowCloses(plan); !closes.IsZero() && locate(plan).terminal == "" {
		if now.Before(closes) {
			setCondition(plan, upgradesv1alpha1.ConditionWindowOpen, true, upgradesv1alpha1.ReasonProgressing,
				"the window is open until "+closes.UTC().Format(time.RFC3339), now)
		} else {
			action := "the plan rolls back (onWindowEnd: Rollback)"
			if plan.Spec.PROD.OnWindowEnd == upgradesv1alpha1.WindowEndContinue {
				action = "the plan carries on past it (onWindowEnd: Continue)"
			}
			setCondition(plan, upgradesv1alpha1.ConditionWindowOpen, false, upgradesv1alpha1.ReasonWindowEnded,
				fmt.Sprintf("the window ended at %s; %s", closes.UTC().Format(time.RFC3339), action), now)
		}
	}
	if step := findStep(plan, upgradesv1alpha1.StepBackup, ""); step != nil {
		switch {
		case step.CompletedAt == nil:
			setCondition(plan, upgradesv1alpha1.ConditionBackupReady, false, upgradesv1alpha1.ReasonProgressing,
				fmt.Sprintf("%d of %d PROD targets backed up and verified", len(plan.Status.Snapshots), len(plan.Spec.PROD.Targets)), now)
		case step.Result == upgradesv1alpha1.StepSucceeded:
			setCondition(plan, upgradesv1alpha1.ConditionBackupReady, true, upgradesv1alpha1.ReasonSucceeded, step.Message, now)
		default:
			setCondition(plan, upgradesv1alpha1.ConditionBackupReady, false, step.Reason, step.Message, now)
		}
	}
	if step := findStep(plan, upgradesv1alpha1.StepUATApproval, ""); step != nil {
		if step.CompletedAt != nil {
			setCondition(plan, upgradesv1alpha1.ConditionUATApproved, true, upgradesv1alpha1.ReasonSucceeded, step.Message, now)
		} else {
			setCondition(plan, upgradesv1alpha1.ConditionUATApproved, false, upgradesv1alpha1.ReasonAwaitingApproval,
				fmt.Sprintf("waiting for approval of version %s", plan.Spec.VAL.Version), now)
		}
	}
	if step := lastVerification(plan); step != nil {
		where := upgradesv1alpha1.EnvironmentVAL
		if step.Target != "" {
			where = step.Target
		}
		switch failed := failedCheck(plan, where); {
		case failed != nil:
			setCondition(plan, upgradesv1alpha1.ConditionChecksPassed, false, upgradesv1alpha1.ReasonCheckFailed,
				fmt.Sprintf("check %s failed in %s: %s", failed.Name, where, failed.Message), now)
		case step.Result == upgradesv1alpha1.StepSucceeded:
			setCondition(plan, upgradesv1alpha1.ConditionChecksPassed, true, upgradesv1alpha1.ReasonChecksPassing, step.Message, now)
		case step.Result == upgradesv1alpha1.StepFailed:
			setCondition(plan, upgradesv1alpha1.ConditionChecksPassed, false, step.Reason, step.Message, now)
		default:
			setCondition(plan, upgradesv1alpha1.ConditionChecksPassed, false, upgradesv1alpha1.ReasonProgressing, "checks running in "+where, now)
		}
	}
	if step := findStep(plan, upgradesv1alpha1.StepRollBack, ""); step != nil {
		done := step.CompletedAt != nil && step.Result == upgradesv1alpha1.StepSucceeded
		message := step.Message
		switch {
		case step.Result == upgradesv1alpha1.StepSkipped:
			message = "PROD was not changed: nothing to roll back"
		case !done:
			message = "rolling back: " + strings.TrimPrefix(step.Message, "rolling back: ")
		}
		setCondition(plan, upgradesv1alpha1.ConditionRolledBack, done, whyRolledBack(plan), message, now)
	}
}

// setQuiescedCondition says whether what quiesce names is stopped: True
// from the end of Quiescing until the plan ends, when it runs again.
func setQuiescedCondition(plan *upgradesv1alpha1.UpgradePlan, now time.Time) {
	step := findStep(plan, upgradesv1alpha1.StepQuiesce, "")
	if step == nil || len(plan.Status.Quiesced) == 0 {
		return
	}
	pos := locate(plan)
	switch {
	case pos.terminal != "":
		setCondition(plan, upgradesv1alpha1.ConditionQuiesced, false, upgradesv1alpha1.ReasonResumed,
			quiescedNames(plan)+" run again as before the plan", now)
	case step.CompletedAt == nil:
		setCondition(plan, upgradesv1alpha1.ConditionQuiesced, false, upgradesv1alpha1.ReasonProgressing, "stopping "+quiescedNames(plan), now)
	case step.Result == upgradesv1alpha1.StepSucceeded:
		setCondition(plan, upgradesv1alpha1.ConditionQuiesced, true, upgradesv1alpha1.ReasonQuiesced, step.Message, now)
	default:
		setCondition(plan, upgradesv1alpha1.ConditionQuiesced, false, step.Reason, step.Message, now)
	}
}

// failedCheck is a check of the environment that failed, if one did.
func failedCheck(plan *upgradesv1alpha1.UpgradePlan, environment string) *upgradesv1alpha1.CheckStatus {
	for i := range plan.Status.Checks {
		if c := &plan.Status.Checks[i]; c.Environment == environment && c.State == upgradesv1alpha1.CheckFailed {
			return c
		}
	}
	return nil
}

func lastVerification(plan *upgradesv1alpha1.UpgradePlan) *upgradesv1alpha1.Step {
	for i := len(plan.Status.Steps) - 1; i >= 0; i-- {
		if s := &plan.Status.Steps[i]; s.Name == upgradesv1alpha1.StepVerifyVAL || s.Name == upgradesv1alpha1.StepVerifyPROD {
			return s
		}
	}
	return nil
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
		Message:            truncate(message, 1024),
		ObservedGeneration: plan.Generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// statusEqual reports whether reconciling changed nothing a patch would write.
func statusEqual(before, after *upgradesv1alpha1.UpgradePlan) bool {
	return equality.Semantic.DeepEqual(before.Status, after.Status)
}
