package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

func TestSuccessor(t *testing.T) {
	plan := &upgradesv1alpha1.UpgradePlan{Spec: upgradesv1alpha1.UpgradePlanSpec{PROD: upgradesv1alpha1.PRODEnvironment{
		Targets: []upgradesv1alpha1.Target{{Name: "main"}, {Name: "test"}},
	}}}
	manual := plan.DeepCopy()
	manual.Spec.PROD.Rollback = &upgradesv1alpha1.RollbackPolicy{Automatic: ptr.To(false)}
	ok, failed, skipped := upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.StepFailed, upgradesv1alpha1.StepSkipped
	const (
		resolve  = upgradesv1alpha1.StepResolve
		upVAL    = upgradesv1alpha1.StepUpgradeVAL
		verVAL   = upgradesv1alpha1.StepVerifyVAL
		restore  = upgradesv1alpha1.StepRestoreVAL
		uat      = upgradesv1alpha1.StepUATApproval
		promote  = upgradesv1alpha1.StepPromotion
		window   = upgradesv1alpha1.StepWindow
		quiesce  = upgradesv1alpha1.StepQuiesce
		backup   = upgradesv1alpha1.StepBackup
		upPROD   = upgradesv1alpha1.StepUpgradePROD
		verPROD  = upgradesv1alpha1.StepVerifyPROD
		decision = upgradesv1alpha1.StepDecision
		complete = upgradesv1alpha1.StepComplete
		rollback = upgradesv1alpha1.StepRollBack
	)
	cases := []struct {
		name     string
		plan     *upgradesv1alpha1.UpgradePlan
		done     upgradesv1alpha1.Step
		next     stepRef
		terminal upgradesv1alpha1.Phase
	}{
		{"resolved", plan, upgradesv1alpha1.Step{Name: resolve, Result: ok}, stepRef{name: upVAL}, ""},
		{"VAL upgraded", plan, upgradesv1alpha1.Step{Name: upVAL, Result: ok}, stepRef{name: verVAL}, ""},
		{"VAL rollout failed", plan, upgradesv1alpha1.Step{Name: upVAL, Result: failed}, stepRef{name: restore}, ""},
		{"VAL checks failed", plan, upgradesv1alpha1.Step{Name: verVAL, Result: failed}, stepRef{name: restore}, ""},
		{"VAL restored", plan, upgradesv1alpha1.Step{Name: restore, Result: ok}, stepRef{}, upgradesv1alpha1.PhaseFailed},
		{"VAL verified", plan, upgradesv1alpha1.Step{Name: verVAL, Result: ok}, stepRef{name: uat}, ""},
		{"approved", plan, upgradesv1alpha1.Step{Name: uat, Result: ok}, stepRef{name: promote}, ""},
		{"promoted", plan, upgradesv1alpha1.Step{Name: promote, Result: ok}, stepRef{name: window}, ""},
		{"window open: quiesce", plan, upgradesv1alpha1.Step{Name: window, Result: ok}, stepRef{name: quiesce}, ""},
		{"quiesced: back up", plan, upgradesv1alpha1.Step{Name: quiesce, Result: ok}, stepRef{name: backup}, ""},
		{"quiesce failed: un-quiesce", plan, upgradesv1alpha1.Step{Name: quiesce, Result: failed}, stepRef{name: rollback}, ""},
		{"backed up: first target", plan, upgradesv1alpha1.Step{Name: backup, Result: ok}, stepRef{name: upPROD, target: "main"}, ""},
		{"backup failed: un-quiesce", plan, upgradesv1alpha1.Step{Name: backup, Result: failed}, stepRef{name: rollback}, ""},
		{"MAIN upgraded", plan, upgradesv1alpha1.Step{Name: upPROD, Target: "main", Result: ok}, stepRef{name: verPROD, target: "main"}, ""},
		{"MAIN rollout failed", plan, upgradesv1alpha1.Step{Name: upPROD, Target: "main", Result: failed}, stepRef{name: rollback}, ""},
		{"MAIN checks failed", plan, upgradesv1alpha1.Step{Name: verPROD, Target: "main", Result: failed}, stepRef{name: rollback}, ""},
		{"MAIN checks failed, manual rollback", manual, upgradesv1alpha1.Step{Name: verPROD, Target: "main", Result: failed}, stepRef{name: decision, target: "main"}, ""},
		{"MAIN verified", plan, upgradesv1alpha1.Step{Name: verPROD, Target: "main", Result: ok}, stepRef{name: decision, target: "main"}, ""},
		{"go on MAIN: next target", plan, upgradesv1alpha1.Step{Name: decision, Target: "main", Result: ok}, stepRef{name: upPROD, target: "test"}, ""},
		{"go on TEST: complete", plan, upgradesv1alpha1.Step{Name: decision, Target: "test", Result: ok}, stepRef{name: complete}, ""},
		{"no-go", plan, upgradesv1alpha1.Step{Name: decision, Target: "test", Result: failed}, stepRef{name: rollback}, ""},
		{"completed", plan, upgradesv1alpha1.Step{Name: complete, Result: ok}, stepRef{}, upgradesv1alpha1.PhaseCompleted},
		{"rolled back", plan, upgradesv1alpha1.Step{Name: rollback, Result: ok}, stepRef{}, upgradesv1alpha1.PhaseRolledBack},
		{"stopped before PROD", plan, upgradesv1alpha1.Step{Name: rollback, Result: skipped}, stepRef{}, upgradesv1alpha1.PhaseFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, terminal := successor(tc.plan, tc.done)
			if next != tc.next || terminal != tc.terminal {
				t.Errorf("after %s/%s (%s): got %+v %q; want %+v %q", tc.done.Name, tc.done.Target, tc.done.Result, next, terminal, tc.next, tc.terminal)
			}
		})
	}
}

func TestLocateAndPhase(t *testing.T) {
	now := metav1.NewTime(time.Date(2024, 11, 1, 16, 0, 0, 0, time.UTC))
	plan := &upgradesv1alpha1.UpgradePlan{}
	if pos := locate(plan); pos.current.name != upgradesv1alpha1.StepResolve || pos.started != nil {
		t.Fatalf("a new plan stands at %+v; want Resolve, not started", pos)
	}
	plan.Status.Steps = []upgradesv1alpha1.Step{
		{Name: upgradesv1alpha1.StepResolve, StartedAt: now, CompletedAt: &now, Result: upgradesv1alpha1.StepSucceeded},
		{Name: upgradesv1alpha1.StepUpgradeVAL, StartedAt: now},
	}
	pos := locate(plan)
	if pos.started != &plan.Status.Steps[1] || phaseOf(pos.current.name) != upgradesv1alpha1.PhaseUpgradingVAL {
		t.Errorf("an unfinished UpgradeVAL step reads as %+v (%s)", pos, phaseOf(pos.current.name))
	}
}
