package testenv

import (
	"context"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Rollouts plays the workload controllers and the kubelet on envtest, which
// runs neither: whenever a Deployment, StatefulSet or DaemonSet changes, it
// reports the rollout complete, with every replica updated and available —
// unless a container runs an image marked broken, in which case the rollout
// never becomes available and a Deployment reports ProgressDeadlineExceeded,
// as the real deployment controller would.
type Rollouts struct {
	client client.Client
	mu     sync.Mutex
	broken map[string]bool
}

// Break marks an image (full reference) as one whose pods never become ready.
func (r *Rollouts) Break(image string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken == nil {
		r.broken = map[string]bool{}
	}
	r.broken[image] = true
}

func (r *Rollouts) isBroken(template corev1.PodTemplateSpec) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range template.Spec.Containers {
		if r.broken[c.Image] {
			return true
		}
	}
	return false
}

// SetupWithManager registers one controller per workload kind.
func (r *Rollouts) SetupWithManager(mgr ctrl.Manager) error {
	r.client = mgr.GetClient()
	opts := controller.Options{SkipNameValidation: ptr.To(true)}
	for name, obj := range map[string]client.Object{"deployments": &appsv1.Deployment{}, "statefulsets": &appsv1.StatefulSet{}, "daemonsets": &appsv1.DaemonSet{}} {
		kind := obj
		err := ctrl.NewControllerManagedBy(mgr).Named("test-rollouts-" + name).For(kind).WithOptions(opts).
			Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
				return reconcile.Result{}, r.roll(ctx, req, kind.DeepCopyObject().(client.Object))
			}))
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Rollouts) roll(ctx context.Context, req reconcile.Request, obj client.Object) error {
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject()
	switch w := obj.(type) {
	case *appsv1.Deployment:
		want := ptr.Deref(w.Spec.Replicas, 1)
		available := want
		w.Status = appsv1.DeploymentStatus{ObservedGeneration: w.Generation, Replicas: want, UpdatedReplicas: want}
		progressing := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}
		if r.isBroken(w.Spec.Template) {
			available = 0
			progressing = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
				Message: "ReplicaSet " + w.Name + " has timed out progressing."}
		}
		progressing.LastUpdateTime, progressing.LastTransitionTime = metav1.Unix(0, 0), metav1.Unix(0, 0)
		w.Status.AvailableReplicas, w.Status.ReadyReplicas = available, available
		w.Status.Conditions = []appsv1.DeploymentCondition{progressing}
	case *appsv1.StatefulSet:
		want := ptr.Deref(w.Spec.Replicas, 1)
		ready := want
		if r.isBroken(w.Spec.Template) {
			ready = 0
		}
		revision := fmt.Sprintf("%s-%d", w.Name, w.Generation)
		w.Status = appsv1.StatefulSetStatus{ObservedGeneration: w.Generation, Replicas: want, UpdatedReplicas: want, ReadyReplicas: ready,
			AvailableReplicas: ready, CurrentReplicas: want, CurrentRevision: revision, UpdateRevision: revision}
	case *appsv1.DaemonSet:
		nodes := int32(3)
		available := nodes
		if r.isBroken(w.Spec.Template) {
			available = 0
		}
		w.Status = appsv1.DaemonSetStatus{ObservedGeneration: w.Generation, DesiredNumberScheduled: nodes, CurrentNumberScheduled: nodes,
			UpdatedNumberScheduled: nodes, NumberReady: available, NumberAvailable: available}
	}
	if equality.Semantic.DeepEqual(before, obj) {
		return nil
	}
	return client.IgnoreNotFound(r.client.Status().Update(ctx, obj))
}
