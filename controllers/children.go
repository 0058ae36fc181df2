package controllers

import (
	"context"
	"errors"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/jobs"
	"github.com/changegate/changegate/internal/naming"
)

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// The objects a plan creates have deterministic names and carry the plan's
// labels. Those in the plan's namespace (UpgradeSnapshots) are owned by the
// plan. Those in an environment's namespace (Jobs, VolumeSnapshots) cannot
// be — an owner reference across namespaces is treated as missing by the
// garbage collector — so the labels tie them to the plan and the plan's
// finalizer deletes them with it.

// childLabels are the labels of every object a plan creates.
func childLabels(plan *upgradesv1alpha1.UpgradePlan) map[string]string {
	return map[string]string{
		upgradesv1alpha1.LabelPlan:          plan.Name,
		upgradesv1alpha1.LabelPlanNamespace: plan.Namespace,
	}
}

// planOfChild maps an object carrying the plan labels to its plan.
func planOfChild(obj client.Object) (reconcile.Request, bool) {
	name, namespace := obj.GetLabels()[upgradesv1alpha1.LabelPlan], obj.GetLabels()[upgradesv1alpha1.LabelPlanNamespace]
	if name == "" || namespace == "" {
		return reconcile.Request{}, false
	}
	return reconcile.Request{NamespacedName: client.ObjectKey{Namespace: namespace, Name: name}}, true
}

// jobName is the name of the Job a plan runs for a purpose (backup, restore)
// in an environment.
func jobName(plan *upgradesv1alpha1.UpgradePlan, purpose, environment string, job upgradesv1alpha1.Name) string {
	return naming.Child(naming.MaxLabelName, plan.Name, purpose, environment, string(job))
}

// runJobs runs the templates one after the other in namespace, each under
// the name names gives it, and reports how far they got: the number that
// succeeded, a sentence about the one running or failed, and whether one
// failed. A Job is created only once every Job before it has succeeded, and
// only when no Job of that name exists: a Job is never run twice.
func (r *UpgradePlanReconciler) runJobs(ctx context.Context, s *scope, namespace string, templates []upgradesv1alpha1.JobTemplate, name func(upgradesv1alpha1.Name) string) (int, string, bool, error) {
	for i, template := range templates {
		job := &batchv1.Job{}
		key := client.ObjectKey{Namespace: namespace, Name: name(template.Name)}
		err := r.Get(ctx, key, job)
		if apierrors.IsNotFound(err) {
			job = jobs.New(template.Template, key.Name, key.Namespace, childLabels(s.plan))
			switch err := r.Create(ctx, job); {
			case apierrors.IsAlreadyExists(err):
				// The cache is behind, as it is for a while after the API
				// server comes back; the Job's event brings the plan back.
				return i, fmt.Sprintf("Job %s exists; waiting to see its status", key), false, nil
			case err != nil:
				return i, "", false, fmt.Errorf("creating Job %s: %w", key, err)
			}
			ctrlLog(ctx).Info("created Job", "job", key)
			return i, fmt.Sprintf("Job %s started", key), false, nil
		}
		if err != nil {
			return i, "", false, err
		}
		switch state, message := jobs.Status(job); state {
		case jobs.Running:
			return i, message, false, nil
		case jobs.Failed:
			return i, message, true, nil
		}
	}
	return len(templates), "", false, nil
}

// releaseSnapshots removes the finalizer that keeps a plan's UpgradeSnapshots
// and VolumeSnapshots while it can still roll back. It is called once the
// plan has ended; from then on they live as long as the plan.
func (r *UpgradePlanReconciler) releaseSnapshots(ctx context.Context, s *scope) error {
	snapshots := &metav1.PartialObjectMetadataList{}
	snapshots.SetGroupVersionKind(upgradesv1alpha1.GroupVersion.WithKind("UpgradeSnapshotList"))
	if err := r.List(ctx, snapshots, client.InNamespace(s.plan.Namespace), client.MatchingLabels(childLabels(s.plan))); err != nil {
		return err
	}
	var errs []error
	for i := range snapshots.Items {
		errs = append(errs, r.removeFinalizer(ctx, &snapshots.Items[i], upgradesv1alpha1.FinalizerSnapshotInUse))
	}
	volumeSnapshots, err := r.volumeSnapshotsOf(ctx, s)
	if err != nil {
		return err
	}
	for i := range volumeSnapshots {
		errs = append(errs, r.removeFinalizer(ctx, &volumeSnapshots[i], upgradesv1alpha1.FinalizerSnapshotInUse))
	}
	return errors.Join(errs...)
}

// deleteChildren deletes the Jobs and VolumeSnapshots a plan created in its
// environments' namespaces, as the garbage collector does for what lives in
// the plan's own namespace. It is called when a deleted plan has nothing
// left to roll back.
func (r *UpgradePlanReconciler) deleteChildren(ctx context.Context, s *scope) error {
	if err := r.releaseSnapshots(ctx, s); err != nil {
		return err
	}
	volumeSnapshots, err := r.volumeSnapshotsOf(ctx, s)
	if err != nil {
		return err
	}
	var errs []error
	for i := range volumeSnapshots {
		errs = append(errs, client.IgnoreNotFound(r.Delete(ctx, &volumeSnapshots[i])))
	}
	for _, env := range s.environments() {
		list := &batchv1.JobList{}
		if err := r.List(ctx, list, client.InNamespace(env.namespace), client.MatchingLabels(childLabels(s.plan))); err != nil {
			return err
		}
		for i := range list.Items {
			errs = append(errs, client.IgnoreNotFound(r.Delete(ctx, &list.Items[i], client.PropagationPolicy("Background"))))
		}
	}
	return errors.Join(errs...)
}

// volumeSnapshotsOf lists the VolumeSnapshots the plan created in its PROD
// targets.
func (r *UpgradePlanReconciler) volumeSnapshotsOf(ctx context.Context, s *scope) ([]snapshotv1.VolumeSnapshot, error) {
	if !r.VolumeSnapshotsServed {
		return nil, nil
	}
	var all []snapshotv1.VolumeSnapshot
	for _, target := range s.plan.Spec.PROD.Targets {
		list := &snapshotv1.VolumeSnapshotList{}
		if err := r.List(ctx, list, client.InNamespace(string(target.Namespace)), client.MatchingLabels(childLabels(s.plan))); err != nil {
			return nil, err
		}
		all = append(all, list.Items...)
	}
	return all, nil
}

// removeFinalizer removes a finalizer from an object with a patch, if it
// carries it.
func (r *UpgradePlanReconciler) removeFinalizer(ctx context.Context, obj client.Object, finalizer string) error {
	if !controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	original := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})))
}
