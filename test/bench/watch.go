package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// transition is a change of a plan's phase or current target, as the
// driver's watch saw it.
type transition struct {
	at     time.Time
	phase  upgradesv1alpha1.Phase
	target string
}

// recorder watches the plans and keeps, for each, every phase/target
// transition with the time the watch delivered it, and the newest object.
type recorder struct {
	mu          sync.Mutex
	transitions map[string][]transition
	latest      map[string]*upgradesv1alpha1.UpgradePlan
	// sameStep counts the status changes that moved no phase or target, by
	// the step the plan stood at and whether that step started or ended
	// in the write.
	sameStep map[string]int
}

func newRecorder() *recorder {
	return &recorder{transitions: map[string][]transition{}, latest: map[string]*upgradesv1alpha1.UpgradePlan{}, sameStep: map[string]int{}}
}

// watch registers the recorder with the informer of UpgradePlans.
func (r *recorder) watch(ctx context.Context, c cache.Cache) error {
	informer, err := c.GetInformer(ctx, &upgradesv1alpha1.UpgradePlan{})
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.see(nil, obj) },
		UpdateFunc: func(old, obj any) { r.see(old, obj) },
	})
	return err
}

func (r *recorder) see(old, obj any) {
	now := time.Now()
	plan, ok := obj.(*upgradesv1alpha1.UpgradePlan)
	if !ok || plan.Namespace != plansNamespace {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest[plan.Name] = plan
	seen := r.transitions[plan.Name]
	if plan.Status.Phase == "" {
		return
	}
	if n := len(seen); n > 0 && seen[n-1].phase == plan.Status.Phase && seen[n-1].target == plan.Status.CurrentTarget {
		if before, ok := old.(*upgradesv1alpha1.UpgradePlan); ok && !equality.Semantic.DeepEqual(before.Status, plan.Status) {
			r.sameStep[stepChange(before, plan)]++
		}
		return
	}
	r.transitions[plan.Name] = append(seen, transition{at: now, phase: plan.Status.Phase, target: plan.Status.CurrentTarget})
}

// plan returns the newest object of the plan and its transitions so far.
func (r *recorder) plan(name string) (*upgradesv1alpha1.UpgradePlan, []transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest[name], append([]transition(nil), r.transitions[name]...)
}

// statusOnly returns the counts of status writes that moved no phase.
func (r *recorder) statusOnly() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.sameStep {
		out[k] = v
	}
	return out
}

// waitFor waits until every plan named satisfies its condition, and says
// which do not when the time runs out.
func (r *recorder) waitFor(ctx context.Context, what string, timeout time.Duration, plans []string, done func(name string, p *upgradesv1alpha1.UpgradePlan) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		r.mu.Lock()
		for _, name := range plans {
			if p := r.latest[name]; p == nil || !done(name, p) {
				missing = append(missing, name)
			}
		}
		r.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d plans are not %s after %s: %s", len(missing), len(plans), what, timeout, r.describe(missing))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describe counts plans by phase and shows the first few.
func (r *recorder) describe(names []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	phases := map[string]int{}
	for _, name := range names {
		p := r.latest[name]
		state := "unseen"
		if p != nil {
			state = string(p.Status.Phase) + "/" + p.Status.CurrentTarget
			if c := meta.FindStatusCondition(p.Status.Conditions, upgradesv1alpha1.ConditionReconciling); c != nil {
				state += " (" + c.Reason + ": " + c.Message + ")"
			}
		}
		phases[state]++
	}
	var parts []string
	for state, n := range phases {
		parts = append(parts, fmt.Sprintf("%d %s", n, state))
	}
	sort.Strings(parts)
	if len(parts) > 5 {
		parts = append(parts[:5], "...")
	}
	return strings.Join(parts, "; ")
}

// stepChange describes a status write that moved no phase: the step the
// plan stands at after it, and what the write recorded of that step.
func stepChange(before, after *upgradesv1alpha1.UpgradePlan) string {
	steps := after.Status.Steps
	if len(steps) == 0 {
		return "no step"
	}
	last := steps[len(steps)-1]
	name := string(last.Name)
	if last.Target != "" {
		name += " " + last.Target
	}
	switch {
	case len(before.Status.Steps) < len(steps) && last.CompletedAt != nil:
		return name + ": step started and completed"
	case len(before.Status.Steps) < len(steps):
		return name + ": step started"
	case last.CompletedAt != nil && before.Status.Steps[len(steps)-1].CompletedAt == nil:
		return name + ": step completed"
	case last.CompletedAt != nil:
		return name + " (completed): conditions or checks changed"
	}
	return name + ": conditions or checks changed"
}

// awaiting reports whether the plan's current step is recorded as started
// and not completed: the plan waits in it.
func awaiting(p *upgradesv1alpha1.UpgradePlan, step upgradesv1alpha1.StepName, target string) bool {
	steps := p.Status.Steps
	if len(steps) == 0 {
		return false
	}
	last := steps[len(steps)-1]
	return last.Name == step && last.Target == target && last.CompletedAt == nil
}

// completed reports whether the plan completed and is Ready.
func completed(p *upgradesv1alpha1.UpgradePlan) bool {
	return p.Status.Phase == upgradesv1alpha1.PhaseCompleted && meta.IsStatusConditionTrue(p.Status.Conditions, upgradesv1alpha1.ConditionReady)
}

// rolledBack reports whether the plan finished its rollback.
func rolledBack(p *upgradesv1alpha1.UpgradePlan) bool {
	return p.Status.Phase == upgradesv1alpha1.PhaseRolledBack
}
