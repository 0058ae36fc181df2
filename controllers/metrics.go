package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// The metrics on the manager's metrics endpoint. Their labels are bounded:
// phase, step and reason come from fixed lists; only the waiting gauge names
// plans, by namespace and name.
var (
	transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "changegate_transitions_total",
		Help: "Phase changes of UpgradePlans, by the phase entered.",
	}, []string{"phase"})
	rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "changegate_rollbacks_total",
		Help: "Rollbacks started, by the reason (NoGo, CheckFailed, RolloutFailed, DecisionTimeout, WindowEnded, Aborted, ...).",
	}, []string{"reason"})
	stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "changegate_step_duration_seconds",
		Help:    "How long each completed step of a plan took.",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600},
	}, []string{"step"})
	plansDesc   = prometheus.NewDesc("changegate_plans", "UpgradePlans by phase.", []string{"phase"}, nil)
	waitingDesc = prometheus.NewDesc("changegate_waiting_for_person_seconds",
		"How long a plan has been waiting for a person: an approval, a promotion, a go/no-go, or the end of a pause.", []string{"namespace", "name"}, nil)

	// planState is what the gauges report, kept as reconciles see plans.
	planState = &planStates{phases: map[types.NamespacedName]upgradesv1alpha1.Phase{}, waiting: map[types.NamespacedName]time.Time{}}
)

func init() {
	metrics.Registry.MustRegister(transitions, rollbacks, stepDuration, planState)
}

// planStates is the phase of every plan the manager has seen and, for those
// waiting for a person, since when.
type planStates struct {
	mu      sync.Mutex
	phases  map[types.NamespacedName]upgradesv1alpha1.Phase
	waiting map[types.NamespacedName]time.Time
}

// observe records a plan after a reconcile wrote its status: its phase, the
// steps that just completed, and whether it now waits for a person.
func (p *planStates) observe(key types.NamespacedName, before, after *upgradesv1alpha1.UpgradePlan, t *transition, waitingForPerson bool, now time.Time) {
	if t != nil && before.Status.Phase != after.Status.Phase {
		transitions.WithLabelValues(string(t.phase)).Inc()
		if t.phase == upgradesv1alpha1.PhaseRollingBack {
			rollbacks.WithLabelValues(whyRolledBack(after)).Inc()
		}
	}
	for i, step := range after.Status.Steps {
		if step.CompletedAt != nil && (i >= len(before.Status.Steps) || before.Status.Steps[i].CompletedAt == nil) {
			stepDuration.WithLabelValues(string(step.Name)).Observe(step.CompletedAt.Sub(step.StartedAt.Time).Seconds())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phases[key] = after.Status.Phase
	if !waitingForPerson {
		delete(p.waiting, key)
	} else if _, already := p.waiting[key]; !already {
		p.waiting[key] = now
	}
}

// forget drops a plan that no longer exists.
func (p *planStates) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.phases, key)
	delete(p.waiting, key)
}

// Describe and Collect make planStates a Prometheus collector: the gauges
// are computed at scrape time.
func (p *planStates) Describe(ch chan<- *prometheus.Desc) {
	ch <- plansDesc
	ch <- waitingDesc
}

func (p *planStates) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := map[upgradesv1alpha1.Phase]int{}
	for _, phase := range p.phases {
		counts[phase]++
	}
	for _, phase := range []upgradesv1alpha1.Phase{
		upgradesv1alpha1.PhasePending, upgradesv1alpha1.PhaseUpgradingVAL, upgradesv1alpha1.PhaseVerifyingVAL,
		upgradesv1alpha1.PhaseAwaitingUATApproval, upgradesv1alpha1.PhaseAwaitingPromotion, upgradesv1alpha1.PhaseAwaitingWindow,
		upgradesv1alpha1.PhaseQuiescing, upgradesv1alpha1.PhaseBackingUp, upgradesv1alpha1.PhaseUpgradingPROD,
		upgradesv1alpha1.PhaseVerifyingPROD, upgradesv1alpha1.PhaseAwaitingDecision, upgradesv1alpha1.PhaseCompleted,
		upgradesv1alpha1.PhaseRollingBack, upgradesv1alpha1.PhaseRolledBack, upgradesv1alpha1.PhaseFailed,
	} {
		ch <- prometheus.MustNewConstMetric(plansDesc, prometheus.GaugeValue, float64(counts[phase]), string(phase))
	}
	now := time.Now()
	for key, since := range p.waiting {
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, now.Sub(since).Seconds(), key.Namespace, key.Name)
	}
}
