package controllers

import (
	"context"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/jobs"
	"github.com/changegate/changegate/internal/workload"
)

// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list

const kindCronJob = "CronJob"

// quiesce (Quiescing) stops what prod.quiesce names in every PROD target:
// Deployments and StatefulSets scaled to zero, CronJobs suspended. It first
// records how each was, in status.quiesced, and changes nothing in that
// reconcile; the next one stops them and waits until their pods and the
// CronJobs' running Jobs are gone.
func (r *UpgradePlanReconciler) quiesce(ctx context.Context, s *scope) outcome {
	quiesce := s.plan.Spec.PROD.Quiesce
	if quiesce == nil || len(quiesce.ScaleDown)+len(quiesce.SuspendCronJobs) == 0 {
		s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonProgressing, "nothing to quiesce")
		return progressed(upgradesv1alpha1.ReasonProgressing, "nothing to quiesce")
	}
	if len(s.plan.Status.Quiesced) == 0 {
		return r.recordQuiesce(ctx, s)
	}
	var pending []string
	for _, record := range s.plan.Status.Quiesced {
		namespace := s.target(record.Target).namespace
		waitingFor, err := r.stop(ctx, namespace, record.QuiesceRecord)
		if apierrors.IsNotFound(err) {
			message := fmt.Sprintf("%s %s/%s, named in prod.quiesce, was deleted while quiescing", record.Kind, namespace, record.Name)
			s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonWorkloadNotFound, message)
			return progressed(upgradesv1alpha1.ReasonWorkloadNotFound, message)
		}
		if err != nil {
			return failedTransiently(err)
		}
		pending = append(pending, waitingFor...)
	}
	if len(pending) > 0 {
		return waiting(0, upgradesv1alpha1.ReasonProgressing, "quiescing: "+strings.Join(pending, "; "))
	}
	message := fmt.Sprintf("stopped %s in every PROD target", quiescedNames(s.plan))
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonQuiesced, message)
	return progressed(upgradesv1alpha1.ReasonQuiesced, message)
}

// recordQuiesce reads, live, how every object quiesce names is now, and
// records it in status.quiesced before anything is stopped: a manager that
// dies after stopping them still knows what to restore.
func (r *UpgradePlanReconciler) recordQuiesce(ctx context.Context, s *scope) outcome {
	quiesce := s.plan.Spec.PROD.Quiesce
	var records []upgradesv1alpha1.QuiescedObject
	for _, target := range s.plan.Spec.PROD.Targets {
		namespace := string(target.Namespace)
		for _, ref := range quiesce.ScaleDown {
			obj, err := workload.New(upgradesv1alpha1.WorkloadKind(ref.Kind))
			if err != nil {
				return stalled(upgradesv1alpha1.ReasonInvalidSpec, err.Error())
			}
			if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: string(ref.Name)}, obj); err != nil {
				return r.quiesceReadFailed(s, string(ref.Kind), namespace, string(ref.Name), err)
			}
			records = append(records, upgradesv1alpha1.QuiescedObject{Target: string(target.Name), QuiesceRecord: upgradesv1alpha1.QuiesceRecord{
				Kind: string(ref.Kind), Name: ref.Name, Replicas: workload.Replicas(obj),
			}})
		}
		for _, name := range quiesce.SuspendCronJobs {
			cronJob := &batchv1.CronJob{}
			if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: string(name)}, cronJob); err != nil {
				return r.quiesceReadFailed(s, kindCronJob, namespace, string(name), err)
			}
			records = append(records, upgradesv1alpha1.QuiescedObject{Target: string(target.Name), QuiesceRecord: upgradesv1alpha1.QuiesceRecord{
				Kind: kindCronJob, Name: name, Suspended: ptr.To(ptr.Deref(cronJob.Spec.Suspend, false)),
			}})
		}
	}
	s.plan.Status.Quiesced = records
	return progressed(upgradesv1alpha1.ReasonProgressing, fmt.Sprintf("recorded how %s run before stopping them", quiescedNames(s.plan)))
}

func (r *UpgradePlanReconciler) quiesceReadFailed(s *scope, kind, namespace, name string, err error) outcome {
	if !apierrors.IsNotFound(err) {
		return failedTransiently(err)
	}
	message := fmt.Sprintf("%s %s/%s, named in prod.quiesce, does not exist", kind, namespace, name)
	s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonWorkloadNotFound, message)
	return progressed(upgradesv1alpha1.ReasonWorkloadNotFound, message)
}

// stop scales a workload to zero or suspends a CronJob, unless done already,
// and says what it still waits for: pods, or Jobs the CronJob started.
func (r *UpgradePlanReconciler) stop(ctx context.Context, namespace string, record upgradesv1alpha1.QuiesceRecord) ([]string, error) {
	if record.Kind == kindCronJob {
		if err := r.setSuspend(ctx, namespace, string(record.Name), true); err != nil {
			return nil, err
		}
		return r.runningJobsOf(ctx, namespace, string(record.Name))
	}
	obj, err := r.setReplicas(ctx, namespace, upgradesv1alpha1.WorkloadKind(record.Kind), string(record.Name), 0)
	if err != nil {
		return nil, err
	}
	message, err := r.podsGone(ctx, obj)
	if err != nil || message == "" {
		return nil, err
	}
	return []string{message}, nil
}

// podsGone says what a workload scaled to zero still waits for, or "" once
// its controller reports no replicas (news the workload's watch brings to
// the cache) and no pod of it is left, not even a terminating one.
func (r *UpgradePlanReconciler) podsGone(ctx context.Context, obj client.Object) (string, error) {
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return "", err
	}
	if stopped, message := workload.Stopped(obj); !stopped {
		return message, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(workload.Selector(obj))
	if err != nil {
		return "", err
	}
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(obj.GetNamespace()), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return "", err
	}
	if len(pods.Items) > 0 {
		return fmt.Sprintf("%s/%s: %d pods still terminating", obj.GetNamespace(), obj.GetName(), len(pods.Items)), nil
	}
	return "", nil
}

// unquiesce puts back what quiesce stopped, exactly as recorded: the replica
// counts, and each CronJob's suspend flag. What was deleted since is skipped.
// It is called on every ending after Quiescing: Completed, RolledBack and
// Failed.
func (r *UpgradePlanReconciler) unquiesce(ctx context.Context, s *scope) error {
	for _, record := range s.plan.Status.Quiesced {
		namespace := s.target(record.Target).namespace
		var err error
		if record.Kind == kindCronJob {
			err = r.setSuspend(ctx, namespace, string(record.Name), ptr.Deref(record.Suspended, false))
		} else if record.Replicas != nil {
			_, err = r.setReplicas(ctx, namespace, upgradesv1alpha1.WorkloadKind(record.Kind), string(record.Name), *record.Replicas)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// setReplicas sets a Deployment's or StatefulSet's replicas unless they are
// set already, reading the workload live so that nothing is patched twice.
func (r *UpgradePlanReconciler) setReplicas(ctx context.Context, namespace string, kind upgradesv1alpha1.WorkloadKind, name string, replicas int32) (client.Object, error) {
	obj, err := workload.New(kind)
	if err != nil {
		return nil, err
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, err
	}
	if current := workload.Replicas(obj); current == nil || *current == replicas {
		return obj, nil
	}
	if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, workload.ReplicasPatch(replicas))); err != nil {
		return nil, fmt.Errorf("scaling %s %s/%s to %d: %w", kind, namespace, name, replicas, err)
	}
	ctrlLog(ctx).Info("scaled", "kind", kind, "namespace", namespace, "name", name, "replicas", replicas)
	return obj, nil
}

// setSuspend sets a CronJob's suspend flag unless it is set already.
func (r *UpgradePlanReconciler) setSuspend(ctx context.Context, namespace, name string, suspend bool) error {
	cronJob := &batchv1.CronJob{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cronJob); err != nil {
		return err
	}
	if ptr.Deref(cronJob.Spec.Suspend, false) == suspend {
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, suspend)
	if err := r.Patch(ctx, cronJob, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("setting suspend=%t on CronJob %s/%s: %w", suspend, namespace, name, err)
	}
	ctrlLog(ctx).Info("set CronJob suspend", "namespace", namespace, "name", name, "suspend", suspend)
	return nil
}

// runningJobsOf names the Jobs a CronJob started that have not finished,
// asking the API server: a Job started a moment before the suspension may
// not be in the cache yet.
func (r *UpgradePlanReconciler) runningJobsOf(ctx context.Context, namespace, cronJob string) ([]string, error) {
	list := &batchv1.JobList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var running []string
	for i := range list.Items {
		job := &list.Items[i]
		owner := metav1.GetControllerOf(job)
		if owner == nil || owner.Kind != kindCronJob || owner.Name != cronJob {
			continue
		}
		if state, _ := jobs.Status(job); state == jobs.Running {
			running = append(running, fmt.Sprintf("Job %s/%s of CronJob %s is still running", namespace, job.Name, cronJob))
		}
	}
	return running, nil
}

// missingQuiesceObject names the first object prod.quiesce names that does
// not exist in namespace, or returns "".
func (r *UpgradePlanReconciler) missingQuiesceObject(ctx context.Context, s *scope, namespace string) (string, error) {
	quiesce := s.plan.Spec.PROD.Quiesce
	if quiesce == nil {
		return "", nil
	}
	type named struct {
		kind string
		obj  client.Object
	}
	var objects []named
	for _, ref := range quiesce.ScaleDown {
		obj, err := workload.New(upgradesv1alpha1.WorkloadKind(ref.Kind))
		if err != nil {
			return "", err
		}
		obj.SetName(string(ref.Name))
		objects = append(objects, named{string(ref.Kind), obj})
	}
	for _, name := range quiesce.SuspendCronJobs {
		objects = append(objects, named{kindCronJob, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: string(name)}}})
	}
	for _, o := range objects {
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: o.obj.GetName()}, o.obj)
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("%s %s/%s", o.kind, namespace, o.obj.GetName()), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", nil
}

// quiescedNames lists what quiesce names, for people.
func quiescedNames(plan *upgradesv1alpha1.UpgradePlan) string {
	var names []string
	if q := plan.Spec.PROD.Quiesce; q != nil {
		for _, ref := range q.ScaleDown {
			names = append(names, fmt.Sprintf("%s %s", ref.Kind, ref.Name))
		}
		for _, name := range q.SuspendCronJobs {
			names = append(names, fmt.Sprintf("CronJob %s", name))
		}
	}
	return strings.Join(names, ", ")
}
