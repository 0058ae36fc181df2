// Package controllers holds the UpgradePlan reconciler: setup, Reconcile and
// watches here; one function per phase in upgradeplan_phases.go; the recorded
// steps in upgradeplan_steps.go; and the status a person reads, derived from
// those facts, in upgradeplan_status.go.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/approval"
	"github.com/changegate/changegate/internal/window"
)

// UpgradePlanReconciler carries UpgradePlans from VAL to PROD.
type UpgradePlanReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache, where acting
	// on a stale object could repeat a side effect.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Clock is injected so that tests control time.
	Clock clock.PassiveClock
	// VolumeSnapshotsServed is whether the cluster serves the CSI
	// VolumeSnapshot API; without it, backups that need volume snapshots fail.
	VolumeSnapshotsServed bool
}

// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans/status,verbs=get;patch
// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradeplans/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// scope is what one reconcile of one plan works with.
type scope struct {
	plan *upgradesv1alpha1.UpgradePlan
	// step is the current step, recorded in plan.Status.Steps.
	step *upgradesv1alpha1.Step
	now  time.Time
}

// environment is VAL or one PROD target: where components live and which
// version they go to.
type environment struct {
	name      string
	namespace string
	version   upgradesv1alpha1.Version
}

func (s *scope) val() environment {
	return environment{name: upgradesv1alpha1.EnvironmentVAL, namespace: string(s.plan.Spec.VAL.Namespace), version: s.plan.Spec.VAL.Version}
}

func (s *scope) target(name string) environment {
	for _, t := range s.plan.Spec.PROD.Targets {
		if string(t.Name) == name {
			return environment{name: name, namespace: string(t.Namespace), version: s.plan.Spec.PROD.Version}
		}
	}
	return environment{name: name}
}

func (s *scope) environments() []environment {
	envs := []environment{s.val()}
	for _, t := range s.plan.Spec.PROD.Targets {
		envs = append(envs, s.target(string(t.Name)))
	}
	return envs
}

func (s *scope) requester() string { return s.plan.Annotations[upgradesv1alpha1.AnnotationRequestedBy] }

// complete records how the current step ended.
func (s *scope) complete(result upgradesv1alpha1.StepResult, reason, message string) {
	completeStep(s.step, result, reason, message, s.now)
}

// Reconcile moves one plan by at most one step. It reads the plan from the
// API server, runs the function of the step the plan stands at, and patches
// the status once, on the way out, from what that step recorded.
func (r *UpgradePlanReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	plan := &upgradesv1alpha1.UpgradePlan{}
	// Read live: a step must never act on a status older than the one the
	// previous reconcile wrote.
	if err := r.APIReader.Get(ctx, req.NamespacedName, plan); err != nil {
		if apierrors.IsNotFound(err) {
			planState.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &scope{plan: plan, now: r.Clock.Now()}
	before := plan.DeepCopy()

	var out outcome
	defer func() {
		err := r.patchStatus(ctx, before, plan, out)
		switch {
		case err == nil || apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// The plan changed since we read it; look again at the new one.
			ctrlLog(ctx).V(1).Info("status patch conflicted; reconciling the newer plan")
			result, retErr = ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		default:
			retErr = errors.Join(retErr, err)
		}
	}()

	out, before = r.reconcilePlan(ctx, s, before)
	if closes := windowCloses(plan); closes.After(s.now) && prodChanged(plan) && !rollingBack(plan) && locate(plan).terminal == "" {
		// Wake when the window ends, whatever the step waits for.
		out.after = sooner(out.after, closes.Sub(s.now))
	}
	return out.result(), out.err
}

// reconcilePlan handles what comes before any step — the finalizer,
// deletion, abort and pause — then runs the current step. It returns the
// copy of the plan to diff the status against, renewed when it wrote the
// plan's metadata.
func (r *UpgradePlanReconciler) reconcilePlan(ctx context.Context, s *scope, before *upgradesv1alpha1.UpgradePlan) (outcome, *upgradesv1alpha1.UpgradePlan) {
	plan := s.plan
	deleting := !plan.DeletionTimestamp.IsZero()
	if !deleting && !controllerutil.ContainsFinalizer(plan, upgradesv1alpha1.FinalizerRollback) {
		if err := r.updateFinalizer(ctx, plan, controllerutil.AddFinalizer); err != nil {
			return failedTransiently(err), before
		}
		before = plan.DeepCopy()
	}

	pos := locate(plan)
	if deleting {
		if pos.terminal != "" || !prodChanged(plan) {
			// Nothing in PROD is left changed: delete what the plan created
			// outside its namespace and let the plan go.
			if err := r.deleteChildren(ctx, s); err != nil {
				return failedTransiently(err), before
			}
			if err := r.updateFinalizer(ctx, plan, controllerutil.RemoveFinalizer); err != nil {
				return failedTransiently(err), before
			}
			return finished(pos.terminal, "the plan was deleted"), plan.DeepCopy()
		}
		if !rollingBack(plan) {
			r.startRollback(s, pos, upgradesv1alpha1.ReasonAborted, "the plan was deleted while PROD was changed")
			pos = locate(plan)
		}
	}
	if pos.terminal != "" {
		// The plan can no longer roll back: its snapshots now live as long
		// as it does.
		if err := r.releaseSnapshots(ctx, s); err != nil {
			return failedTransiently(err), before
		}
		return finished(pos.terminal, ""), before
	}

	if reason, user, ok := approval.Abort(plan.Annotations); ok && !rollingBack(plan) {
		plan.Status.Approvals, _ = approval.Record(plan.Status.Approvals, upgradesv1alpha1.Approval{
			Kind: upgradesv1alpha1.ApprovalAbort, Reason: reason, User: user, At: metav1.NewTime(s.now),
		})
		r.startRollback(s, pos, upgradesv1alpha1.ReasonAborted, fmt.Sprintf("aborted by %s: %s", orSomeone(user), reason))
		pos = locate(plan)
	}

	closes := windowCloses(plan)
	// Once every target got its go, only un-quiescing is left: the change
	// stands, whenever the window ends.
	if !closes.IsZero() && !s.now.Before(closes) && prodChanged(plan) && !rollingBack(plan) && pos.current.name != upgradesv1alpha1.StepComplete {
		message := fmt.Sprintf("the window ended at %s before the plan completed", closes.UTC().Format(time.RFC3339))
		if plan.Spec.PROD.OnWindowEnd == upgradesv1alpha1.WindowEndContinue {
			if c := meta.FindStatusCondition(plan.Status.Conditions, upgradesv1alpha1.ConditionWindowOpen); c == nil || c.Reason != upgradesv1alpha1.ReasonWindowEnded {
				r.Recorder.Eventf(plan, nil, corev1.EventTypeWarning, upgradesv1alpha1.ReasonWindowEnded, string(plan.Status.Phase), "%s; carrying on (onWindowEnd: Continue)", message)
			}
		} else {
			r.startRollback(s, pos, upgradesv1alpha1.ReasonWindowEnded, message+" (onWindowEnd: Rollback)")
			pos = locate(plan)
		}
	}

	s.step = pos.started
	if s.step == nil {
		if plan.Spec.Paused && !rollingBack(plan) {
			return waitingForPerson(0, upgradesv1alpha1.ReasonPaused,
				fmt.Sprintf("spec.paused holds the plan before %s; set it to false to go on", pos.current.name)), before
		}
		s.step = startStep(plan, pos.current, s.now)
		if s.step.Name == upgradesv1alpha1.StepUpgradePROD {
			// A target's upgrade is recorded as started before its first
			// image is set: a rollback must know every target that may
			// have changed, even if this reconcile's status write is lost.
			return progressed(upgradesv1alpha1.ReasonProgressing, rollingOut(s.target(s.step.Target))), before
		}
	}
	out := r.runStep(ctx, s)
	// A step that needs no record of its start before it acts starts in the
	// reconcile that completed the step before it: the plan shows its phase
	// from that write on, and one write says both.
	if next := locate(plan); out.kind == outcomeProgressed && next.started == nil && next.terminal == "" &&
		startsWithPrevious(next.current.name) && !plan.Spec.Paused {
		s.step = startStep(plan, next.current, s.now)
		arrival := out.message
		out = r.runStep(ctx, s)
		out.arrival = arrival
	}
	return out, before
}

// startsWithPrevious says whether a step may start in the reconcile that
// completed the one before it: the steps that wait for people (an approval,
// a decision), and those whose changes are undone from what status recorded
// before they began: UpgradeVAL (VAL is restored from the images Resolve
// recorded) and Complete (un-quiescing restores what Quiesce recorded).
// Every other step's start is written before it acts, UpgradePROD's above
// all, so that a crash always finds what may have changed.
func startsWithPrevious(step upgradesv1alpha1.StepName) bool {
	switch step {
	case upgradesv1alpha1.StepUpgradeVAL, upgradesv1alpha1.StepUATApproval, upgradesv1alpha1.StepDecision, upgradesv1alpha1.StepComplete:
		return true
	}
	return false
}

// windowCloses is when the window the plan entered PROD in ends: zero before
// the Window step completed, or without a window.
func windowCloses(plan *upgradesv1alpha1.UpgradePlan) time.Time {
	step := findStep(plan, upgradesv1alpha1.StepWindow, "")
	if step == nil || step.CompletedAt == nil || step.Result != upgradesv1alpha1.StepSucceeded {
		return time.Time{}
	}
	return window.Evaluate(plan.Spec.PROD.Window, nil, step.CompletedAt.Time).ClosesAt
}

// startRollback ends the current step as failed and starts a rollback. It is
// the one way into RollingBack for aborts and deletion; the steps' own
// failures reach it through successor.
func (r *UpgradePlanReconciler) startRollback(s *scope, pos position, reason, message string) {
	if pos.started != nil {
		completeStep(pos.started, upgradesv1alpha1.StepFailed, reason, message, s.now)
	}
	rollback := startStep(s.plan, stepRef{name: upgradesv1alpha1.StepRollBack}, s.now)
	rollback.Reason, rollback.Message = reason, message
}

// updateFinalizer adds or removes the rollback finalizer with a patch of the
// plan's metadata.
func (r *UpgradePlanReconciler) updateFinalizer(ctx context.Context, plan *upgradesv1alpha1.UpgradePlan, change func(client.Object, string) bool) error {
	original := plan.DeepCopy()
	if !change(plan, upgradesv1alpha1.FinalizerRollback) {
		return nil
	}
	status := plan.Status
	err := r.Patch(ctx, plan, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}))
	// The patch response carries the stored status; keep the one being built.
	plan.Status = status
	return client.IgnoreNotFound(err)
}

// patchStatus derives the status a person reads and writes it with one merge
// patch, guarded by the resourceVersion read at the start of the reconcile.
func (r *UpgradePlanReconciler) patchStatus(ctx context.Context, before, plan *upgradesv1alpha1.UpgradePlan, out outcome) error {
	now := r.Clock.Now()
	transition := setStatus(plan, out, now)
	queueNotifications(plan, before.Status.Phase, transition, now)
	key := client.ObjectKeyFromObject(plan)
	if statusEqual(before, plan) {
		planState.observe(key, before, plan, nil, out.kind == outcomeWaitingForPerson, now)
		return nil
	}
	if err := r.writeStatus(ctx, before, plan); err != nil {
		return err
	}
	planState.observe(key, before, plan, transition, out.kind == outcomeWaitingForPerson, now)
	if transition != nil {
		eventType := corev1.EventTypeNormal
		if transition.warning {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(plan, nil, eventType, transition.reason, string(transition.phase), "%s", transition.message)
	}
	return nil
}

// writeStatus patches the status from before to plan, guarded by before's
// resourceVersion. A conflict caused only by someone else writing the
// plan's metadata meanwhile (a GitOps tool's label, a person's annotation)
// is retried once at the new resourceVersion: with the spec and the status
// still as this reconcile read them, what it built still holds, and the
// newer metadata gets its own reconcile.
func (r *UpgradePlanReconciler) writeStatus(ctx context.Context, before, plan *upgradesv1alpha1.UpgradePlan) error {
	err := r.Status().Patch(ctx, plan, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if !apierrors.IsConflict(err) {
		return err
	}
	live := &upgradesv1alpha1.UpgradePlan{}
	if r.APIReader.Get(ctx, client.ObjectKeyFromObject(plan), live) != nil ||
		live.Generation != before.Generation || !equality.Semantic.DeepEqual(live.Status, before.Status) {
		return err
	}
	base := before.DeepCopy()
	base.ResourceVersion = live.ResourceVersion
	return r.Status().Patch(ctx, plan, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// workloadIndex indexes plans by what they watch: "<namespace>/<Kind>/<name>"
// for each component's workload in every environment and for what quiesce
// names in every PROD target, and "<namespace>" for every environment's
// namespace.
const workloadIndex = "changegate.plan.watches"

func indexPlan(obj client.Object) []string {
	plan := obj.(*upgradesv1alpha1.UpgradePlan)
	s := &scope{plan: plan}
	var keys []string
	for _, env := range s.environments() {
		keys = append(keys, env.namespace)
		for _, c := range plan.Spec.Components {
			keys = append(keys, workloadKey(env.namespace, string(c.Kind), string(c.WorkloadName)))
		}
	}
	if quiesce := plan.Spec.PROD.Quiesce; quiesce != nil {
		for _, target := range plan.Spec.PROD.Targets {
			for _, ref := range quiesce.ScaleDown {
				keys = append(keys, workloadKey(string(target.Namespace), string(ref.Kind), string(ref.Name)))
			}
			for _, name := range quiesce.SuspendCronJobs {
				keys = append(keys, workloadKey(string(target.Namespace), kindCronJob, string(name)))
			}
		}
	}
	return keys
}

func workloadKey(namespace, kind, name string) string { return namespace + "/" + kind + "/" + name }

// plansWatching maps a watched object to the plans that name it.
func (r *UpgradePlanReconciler) plansWatching(key func(client.Object) string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var plans upgradesv1alpha1.UpgradePlanList
		if err := r.List(ctx, &plans, client.MatchingFields{workloadIndex: key(obj)}); err != nil {
			ctrlLog(ctx).Error(err, "listing the plans that watch an object", "object", client.ObjectKeyFromObject(obj))
			return nil
		}
		requests := make([]reconcile.Request, 0, len(plans.Items))
		for _, plan := range plans.Items {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&plan)})
		}
		return requests
	}
}

func byWorkload(kind string) func(client.Object) string {
	return func(obj client.Object) string { return workloadKey(obj.GetNamespace(), kind, obj.GetName()) }
}

// planOfJob maps a Job to the plan that created it, or, for a Job a CronJob
// started, to the plans whose quiesce waits for that CronJob's Jobs.
func (r *UpgradePlanReconciler) planOfJob(ctx context.Context, obj client.Object) []reconcile.Request {
	if request, ok := planOfChild(obj); ok {
		return []reconcile.Request{request}
	}
	owner := metav1.GetControllerOf(obj)
	if owner == nil || owner.Kind != kindCronJob {
		return nil
	}
	return r.plansWatching(func(obj client.Object) string { return workloadKey(obj.GetNamespace(), kindCronJob, owner.Name) })(ctx, obj)
}

func planOfLabelledChild(_ context.Context, obj client.Object) []reconcile.Request {
	if request, ok := planOfChild(obj); ok {
		return []reconcile.Request{request}
	}
	return nil
}

// SetupWithManager registers the reconciler, its index and its watches. It
// never owns an application's workloads: deleting a plan must not delete them.
func (r *UpgradePlanReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &upgradesv1alpha1.UpgradePlan{}, workloadIndex, indexPlan); err != nil {
		return fmt.Errorf("indexing plans by workload: %w", err)
	}
	plans := ctrl.NewControllerManagedBy(mgr).
		For(&upgradesv1alpha1.UpgradePlan{}).
		Named("upgradeplan").
		WithOptions(opts).
		// Only the snapshots' metadata is cached: they are big (a copy of
		// every workload spec), and read live where their content matters.
		Owns(&upgradesv1alpha1.UpgradeSnapshot{}, builder.OnlyMetadata).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.plansWatching(byWorkload(string(upgradesv1alpha1.KindDeployment))))).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.plansWatching(byWorkload(string(upgradesv1alpha1.KindStatefulSet))))).
		Watches(&appsv1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(r.plansWatching(byWorkload(string(upgradesv1alpha1.KindDaemonSet))))).
		Watches(&batchv1.CronJob{}, handler.EnqueueRequestsFromMapFunc(r.plansWatching(byWorkload(kindCronJob)))).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(r.planOfJob)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.plansWatching(func(obj client.Object) string { return obj.GetName() }))).
		Watches(&admissionv1.ValidatingAdmissionPolicy{}, handler.EnqueueRequestsFromMapFunc(r.plansAwaitingPeople)).
		Watches(&admissionv1.ValidatingAdmissionPolicyBinding{}, handler.EnqueueRequestsFromMapFunc(r.plansAwaitingPeople))
	if r.VolumeSnapshotsServed {
		plans = plans.Watches(&snapshotv1.VolumeSnapshot{}, handler.EnqueueRequestsFromMapFunc(planOfLabelledChild))
	}
	return plans.Complete(r)
}

func ctrlLog(ctx context.Context) logr.Logger { return ctrl.LoggerFrom(ctx) }

func orSomeone(user string) string {
	if user == "" {
		return "someone"
	}
	return user
}
