package controllers

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// phaseCase is a plan standing in one phase, with the status the operator
// writes there: its steps so far and how the current step's reconcile ended.
type phaseCase struct {
	phase upgradesv1alpha1.Phase
	steps []upgradesv1alpha1.StepName
	// last is the result of the last step, or "" while it runs.
	last upgradesv1alpha1.StepResult
	out  outcome
	// argo and kstatus are what Argo CD and kstatus (Flux, kubectl wait)
	// should make of it.
	argo    string
	kstatus status.Status
}

var (
	toVAL    = []upgradesv1alpha1.StepName{upgradesv1alpha1.StepResolve, upgradesv1alpha1.StepUpgradeVAL}
	toUAT    = append(append([]upgradesv1alpha1.StepName{}, toVAL...), upgradesv1alpha1.StepVerifyVAL, upgradesv1alpha1.StepUATApproval)
	toWindow = append(append([]upgradesv1alpha1.StepName{}, toUAT...), upgradesv1alpha1.StepPromotion, upgradesv1alpha1.StepWindow)
	toPROD   = append(append([]upgradesv1alpha1.StepName{}, toWindow...), upgradesv1alpha1.StepQuiesce, upgradesv1alpha1.StepBackup, upgradesv1alpha1.StepUpgradePROD)
	toEnd    = append(append([]upgradesv1alpha1.StepName{}, toPROD...), upgradesv1alpha1.StepVerifyPROD, upgradesv1alpha1.StepDecision)
	moving   = progressed(upgradesv1alpha1.ReasonProgressing, "working")
)

func steps(names []upgradesv1alpha1.StepName, extra ...upgradesv1alpha1.StepName) []upgradesv1alpha1.StepName {
	return append(append([]upgradesv1alpha1.StepName{}, names...), extra...)
}

var phaseCases = []phaseCase{
	{upgradesv1alpha1.PhasePending, []upgradesv1alpha1.StepName{upgradesv1alpha1.StepResolve}, "", moving, "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseUpgradingVAL, toVAL, "", waiting(0, upgradesv1alpha1.ReasonProgressing, "rolling out"), "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseVerifyingVAL, steps(toVAL, upgradesv1alpha1.StepVerifyVAL), "", waiting(time.Second, upgradesv1alpha1.ReasonProgressing, "checking"), "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseAwaitingUATApproval, toUAT, "", waitingForPerson(0, upgradesv1alpha1.ReasonAwaitingApproval, "0 of 1 UAT approvals"), "Suspended", status.InProgressStatus},
	{upgradesv1alpha1.PhaseAwaitingPromotion, steps(toUAT, upgradesv1alpha1.StepPromotion), "", waitingForPerson(0, upgradesv1alpha1.ReasonAwaitingPromotion, "promote"), "Suspended", status.InProgressStatus},
	{upgradesv1alpha1.PhaseAwaitingWindow, toWindow, "", waiting(time.Hour, upgradesv1alpha1.ReasonAwaitingWindow, "opens at 18:00"), "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseQuiescing, steps(toWindow, upgradesv1alpha1.StepQuiesce), "", moving, "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseBackingUp, steps(toWindow, upgradesv1alpha1.StepQuiesce, upgradesv1alpha1.StepBackup), "", moving, "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseUpgradingPROD, toPROD, "", moving, "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseVerifyingPROD, steps(toPROD, upgradesv1alpha1.StepVerifyPROD), "", moving, "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseAwaitingDecision, toEnd, "", waitingForPerson(0, upgradesv1alpha1.ReasonAwaitingDecision, "go/no-go"), "Suspended", status.InProgressStatus},
	{upgradesv1alpha1.PhaseRollingBack, steps(toEnd, upgradesv1alpha1.StepRollBack), "", waiting(0, upgradesv1alpha1.ReasonProgressing, "rolling back"), "Progressing", status.InProgressStatus},
	{upgradesv1alpha1.PhaseCompleted, steps(toEnd, upgradesv1alpha1.StepComplete), upgradesv1alpha1.StepSucceeded, finished(upgradesv1alpha1.PhaseCompleted, ""), "Healthy", status.CurrentStatus},
	{upgradesv1alpha1.PhaseRolledBack, steps(toEnd, upgradesv1alpha1.StepRollBack), upgradesv1alpha1.StepSucceeded, finished(upgradesv1alpha1.PhaseRolledBack, ""), "Degraded", status.FailedStatus},
	{upgradesv1alpha1.PhaseFailed, steps(toVAL, upgradesv1alpha1.StepRestoreVAL), upgradesv1alpha1.StepSucceeded, finished(upgradesv1alpha1.PhaseFailed, ""), "Degraded", status.FailedStatus},
}

// planIn builds the plan of a case and lets the operator's own status code
// write its status.
func planIn(t *testing.T, c phaseCase) *unstructured.Unstructured {
	t.Helper()
	now := metav1.NewTime(time.Date(2024, 11, 1, 18, 0, 0, 0, time.UTC))
	plan := &upgradesv1alpha1.UpgradePlan{
		TypeMeta:   metav1.TypeMeta{APIVersion: upgradesv1alpha1.GroupVersion.String(), Kind: "UpgradePlan"},
		ObjectMeta: metav1.ObjectMeta{Name: "clinspark-14-7", Namespace: "clinical-ops", Generation: 1},
		Spec: upgradesv1alpha1.UpgradePlanSpec{PROD: upgradesv1alpha1.PRODEnvironment{
			Version: "14.7.0", Targets: []upgradesv1alpha1.Target{{Name: "main"}},
		}},
	}
	for i, name := range c.steps {
		step := upgradesv1alpha1.Step{Name: name, StartedAt: now}
		if name == upgradesv1alpha1.StepUpgradePROD || name == upgradesv1alpha1.StepVerifyPROD || name == upgradesv1alpha1.StepDecision {
			step.Target = "main"
		}
		if i < len(c.steps)-1 || c.last != "" {
			step.CompletedAt, step.Result = &now, upgradesv1alpha1.StepSucceeded
			if i == len(c.steps)-1 {
				step.Result = c.last
			}
		}
		if name == upgradesv1alpha1.StepDecision && len(c.steps) > i+1 && c.steps[i+1] == upgradesv1alpha1.StepRollBack {
			step.Result, step.Reason = upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonNoGo
		}
		if name == upgradesv1alpha1.StepUpgradeVAL && len(c.steps) > i+1 && c.steps[i+1] == upgradesv1alpha1.StepRestoreVAL {
			step.Result, step.Reason = upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonRolloutFailed
		}
		plan.Status.Steps = append(plan.Status.Steps, step)
	}
	setStatus(plan, c.out, now.Time)
	if plan.Status.Phase != c.phase {
		t.Fatalf("the steps of case %s put the plan in %s", c.phase, plan.Status.Phase)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(plan)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: content}
}

// TestArgoCDHealth runs config/gitops/argocd/health.lua, as Argo CD does,
// on the status of a plan in every phase.
func TestArgoCDHealth(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "config", "gitops", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range phaseCases {
		t.Run(string(c.phase), func(t *testing.T) {
			state := lua.NewState(lua.Options{SkipOpenLibs: false})
			defer state.Close()
			state.SetGlobal("obj", toLua(state, planIn(t, c).Object))
			if err := state.DoString(string(script)); err != nil {
				t.Fatalf("running health.lua: %v", err)
			}
			result, ok := state.Get(-1).(*lua.LTable)
			if !ok {
				t.Fatalf("health.lua returned %s, not a table", state.Get(-1).Type())
			}
			got, message := result.RawGetString("status").String(), result.RawGetString("message").String()
			if got != c.argo || message == "" {
				t.Errorf("Argo CD health %q (%q); want %s with a message", got, message, c.argo)
			}
		})
	}
	t.Run("before the operator has seen the plan", func(t *testing.T) {
		state := lua.NewState()
		defer state.Close()
		state.SetGlobal("obj", toLua(state, map[string]any{"metadata": map[string]any{"name": "new"}}))
		if err := state.DoString(string(script)); err != nil {
			t.Fatal(err)
		}
		if got := state.Get(-1).(*lua.LTable).RawGetString("status").String(); got != "Progressing" {
			t.Errorf("a plan without status is %s; want Progressing", got)
		}
	})
}

// TestKstatus shows what Flux and kubectl wait make of a plan in every phase.
func TestKstatus(t *testing.T) {
	for _, c := range phaseCases {
		t.Run(string(c.phase), func(t *testing.T) {
			result, err := status.Compute(planIn(t, c))
			if err != nil {
				t.Fatal(err)
			}
			if result.Status != c.kstatus {
				t.Errorf("kstatus says %s (%s); want %s", result.Status, result.Message, c.kstatus)
			}
		})
	}
}

// toLua converts decoded JSON into Lua values, as Argo CD hands objects to
// health scripts.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	return lua.LString("")
}
