package testenv

import (
	"context"
	"slices"
	"sync"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// pvcProtection is the finalizer the API server puts on every claim; the
// PVC protection controller, which envtest does not run, removes it once no
// pod uses the claim.
const pvcProtection = "kubernetes.io/pvc-protection"

// Storage plays, on envtest, the controllers that handle volumes: the CSI
// snapshot controller, which marks every VolumeSnapshot ready to use (or
// failed, for a claim marked with Fail), and the PVC protection controller,
// which lets a deleted claim go (envtest runs no pods that could use it).
type Storage struct {
	client  client.Client
	mu      sync.Mutex
	failing map[client.ObjectKey]string
}

// Fail makes the snapshots of a claim fail with message.
func (s *Storage) Fail(namespace, pvc, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing == nil {
		s.failing = map[client.ObjectKey]string{}
	}
	s.failing[client.ObjectKey{Namespace: namespace, Name: pvc}] = message
}

func (s *Storage) failure(namespace, pvc string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	message, ok := s.failing[client.ObjectKey{Namespace: namespace, Name: pvc}]
	return message, ok
}

// SetupWithManager registers both controllers.
func (s *Storage) SetupWithManager(mgr ctrl.Manager) error {
	s.client = mgr.GetClient()
	opts := controller.Options{SkipNameValidation: ptr.To(true)}
	err := ctrl.NewControllerManagedBy(mgr).Named("test-snapshot-controller").For(&snapshotv1.VolumeSnapshot{}).WithOptions(opts).
		Complete(reconcile.Func(s.snapshot))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("test-pvc-protection").For(&corev1.PersistentVolumeClaim{}).WithOptions(opts).
		Complete(reconcile.Func(s.releaseClaim))
}

func (s *Storage) snapshot(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	vs := &snapshotv1.VolumeSnapshot{}
	if err := s.client.Get(ctx, req.NamespacedName, vs); err != nil || vs.Status != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	now := metav1.NewTime(time.Now())
	pvc := ptr.Deref(vs.Spec.Source.PersistentVolumeClaimName, "")
	if message, failed := s.failure(vs.Namespace, pvc); failed {
		vs.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapshotv1.VolumeSnapshotError{Time: &now, Message: &message}}
	} else {
		vs.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), CreationTime: &now, RestoreSize: ptr.To(resource.MustParse("1Gi")),
			BoundVolumeSnapshotContentName: ptr.To("snapcontent-" + string(vs.UID))}
	}
	return reconcile.Result{}, client.IgnoreNotFound(s.client.Status().Update(ctx, vs))
}

func (s *Storage) releaseClaim(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := s.client.Get(ctx, req.NamespacedName, pvc); err != nil || pvc.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !controllerutil.RemoveFinalizer(pvc, pvcProtection) {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, client.IgnoreNotFound(s.client.Update(ctx, pvc))
}

// Jobs plays the job controller, on envtest, for the Jobs changegate
// creates: each succeeds at once, unless its name is marked with Fail, or
// with Hold, when it keeps running until the test finishes it with Finish.
// Other Jobs (a CronJob's, say) are left for the test to finish.
type Jobs struct {
	client  client.Client
	mu      sync.Mutex
	failing []client.ObjectKey
	held    []client.ObjectKey
}

// Fail makes the Job of that namespace and name fail.
func (j *Jobs) Fail(namespace, name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failing = append(j.failing, client.ObjectKey{Namespace: namespace, Name: name})
}

// Hold keeps the Job of that namespace and name running.
func (j *Jobs) Hold(namespace, name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.held = append(j.held, client.ObjectKey{Namespace: namespace, Name: name})
}

// SetupWithManager registers the controller.
func (j *Jobs) SetupWithManager(mgr ctrl.Manager) error {
	j.client = mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).Named("test-job-controller").For(&batchv1.Job{}).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			job := &batchv1.Job{}
			if err := j.client.Get(ctx, req.NamespacedName, job); err != nil || job.Labels[upgradesv1alpha1.LabelPlan] == "" || job.Status.StartTime != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			j.mu.Lock()
			held, failing := slices.Contains(j.held, req.NamespacedName), slices.Contains(j.failing, req.NamespacedName)
			j.mu.Unlock()
			if held {
				return reconcile.Result{}, nil
			}
			if failing {
				if err := j.failedPod(ctx, job); err != nil {
					return reconcile.Result{}, err
				}
			}
			return reconcile.Result{}, client.IgnoreNotFound(Finish(ctx, j.client, job, !failing))
		}))
}

// FailureMessage is the termination message the pod of a failing Job
// leaves, as a test suite's last output would.
const FailureMessage = "smoke suite: 3 of 40 tests failed (login, orders, results)"

// failedPod leaves the pod a failing Job would have run: its container
// terminated with exit code 1 and FailureMessage.
func (j *Jobs) failedPod(ctx context.Context, job *batchv1.Job) error {
	// The ServiceAccount admission plugin wants the namespace's default
	// account, which envtest's missing controller-manager never creates.
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: "default"}}
	if err := j.client.Create(ctx, account); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: job.Name + "-pod", Labels: map[string]string{batchv1.JobNameLabel: job.Name}},
		Spec:       *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := j.client.Create(ctx, pod); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	pod.Status.Phase = corev1.PodFailed
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: FailureMessage}}})
	}
	return j.client.Status().Update(ctx, pod)
}

// Finish ends a Job as the job controller would: succeeded or failed.
func Finish(ctx context.Context, c client.Client, job *batchv1.Job, succeeded bool) error {
	now := metav1.NewTime(time.Now())
	condition := func(kind batchv1.JobConditionType, reason string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: kind, Status: corev1.ConditionTrue, Reason: reason, LastProbeTime: now, LastTransitionTime: now}
	}
	job.Status.StartTime = &now
	if succeeded {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{condition(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), condition(batchv1.JobComplete, "CompletionsReached")}
	} else {
		job.Status.Failed = 1
		target, failed := condition(batchv1.JobFailureTarget, "BackoffLimitExceeded"), condition(batchv1.JobFailed, "BackoffLimitExceeded")
		target.Message = "Job has reached the specified backoff limit"
		failed.Message = target.Message
		job.Status.Conditions = []batchv1.JobCondition{target, failed}
	}
	return c.Status().Update(ctx, job)
}
