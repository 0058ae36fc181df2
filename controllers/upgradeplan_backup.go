package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/naming"
	"github.com/changegate/changegate/internal/snapshot"
)

// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradesnapshots,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=upgrades.changegate.dev,resources=upgradesnapshots/status,verbs=get;patch
// +kubebuilder:rbac:groups=snapshot.storage.k8s.io,resources=volumesnapshots,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;create;delete

// backup (BackingUp) backs up every PROD target before any is touched. For
// each target it writes the UpgradeSnapshot (the workload specs and what
// quiesce changed, sealed with a checksum), creates the VolumeSnapshots,
// runs the backup Jobs in order, waits until all are done, then re-reads the
// snapshot and verifies its checksum. Only when every target's snapshot is
// verified does the step succeed; any failure ends it Failed, and the plan
// un-quiesces and ends without PROD having been changed.
func (r *UpgradePlanReconciler) backup(ctx context.Context, s *scope) outcome {
	var pending []string
	for _, target := range s.plan.Spec.PROD.Targets {
		env := s.target(string(target.Name))
		snap, failure, err := r.writeSnapshot(ctx, s, env)
		if err != nil {
			return failedTransiently(err)
		}
		if failure == "" {
			var waitingFor string
			waitingFor, failure, err = r.completeBackup(ctx, s, env, snap)
			if err != nil {
				return failedTransiently(err)
			}
			if waitingFor != "" {
				pending = append(pending, waitingFor)
			}
		}
		if failure != "" {
			s.complete(upgradesv1alpha1.StepFailed, upgradesv1alpha1.ReasonBackupFailed, failure)
			return progressed(upgradesv1alpha1.ReasonBackupFailed, failure)
		}
	}
	if len(pending) > 0 {
		return waiting(0, upgradesv1alpha1.ReasonProgressing, "backing up: "+strings.Join(pending, "; "))
	}
	var names []string
	for _, ref := range s.plan.Status.Snapshots {
		names = append(names, ref.Name)
	}
	message := "every PROD target is backed up and verified: " + strings.Join(names, ", ")
	s.complete(upgradesv1alpha1.StepSucceeded, upgradesv1alpha1.ReasonSucceeded, message)
	return progressed(upgradesv1alpha1.ReasonProgressing, message)
}

// snapshotName is the UpgradeSnapshot of a target: <plan>-<target>.
func snapshotName(plan *upgradesv1alpha1.UpgradePlan, target string) string {
	return naming.Child(naming.MaxName, plan.Name, target)
}

// writeSnapshot returns the target's UpgradeSnapshot, writing it first when
// it does not exist. A snapshot of that name owned by anything but this plan
// is a failure: it would restore someone else's state.
func (r *UpgradePlanReconciler) writeSnapshot(ctx context.Context, s *scope, env environment) (*upgradesv1alpha1.UpgradeSnapshot, string, error) {
	snap := &upgradesv1alpha1.UpgradeSnapshot{}
	key := client.ObjectKey{Namespace: s.plan.Namespace, Name: snapshotName(s.plan, env.name)}
	err := r.APIReader.Get(ctx, key, snap)
	if apierrors.IsNotFound(err) {
		spec, failure, err := r.captureSnapshot(ctx, s, env)
		if failure != "" || err != nil {
			return nil, failure, err
		}
		snap = &upgradesv1alpha1.UpgradeSnapshot{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: childLabels(s.plan),
				Finalizers: []string{upgradesv1alpha1.FinalizerSnapshotInUse}},
			Spec: spec,
		}
		if err := controllerutil.SetControllerReference(s.plan, snap, r.Scheme); err != nil {
			return nil, "", err
		}
		if err := r.Create(ctx, snap); err != nil {
			return nil, "", fmt.Errorf("writing UpgradeSnapshot %s: %w", key, err)
		}
		ctrlLog(ctx).Info("wrote UpgradeSnapshot", "snapshot", key, "checksum", spec.Checksum)
		return snap, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if !metav1.IsControlledBy(snap, s.plan) {
		return nil, fmt.Sprintf("UpgradeSnapshot %s exists but does not belong to this plan; delete it or rename the plan", key), nil
	}
	return snap, "", nil
}

// captureSnapshot records the target as it is now, before it is changed:
// each component's workload, what quiesce changed, the claims to snapshot
// and the backup Jobs to run. (No component is quiesced: the schema refuses
// it.)
func (r *UpgradePlanReconciler) captureSnapshot(ctx context.Context, s *scope, env environment) (upgradesv1alpha1.UpgradeSnapshotSpec, string, error) {
	plan := s.plan
	spec := upgradesv1alpha1.UpgradeSnapshotSpec{
		Plan: upgradesv1alpha1.ObjectName(plan.Name), Target: upgradesv1alpha1.TargetName(env.name),
		Namespace: upgradesv1alpha1.Name(env.namespace), Version: plan.Status.Versions[env.name],
	}
	for _, record := range plan.Status.Quiesced {
		if record.Target == env.name {
			spec.Quiesced = append(spec.Quiesced, record.QuiesceRecord)
		}
	}
	for _, component := range plan.Spec.Components {
		obj, err := r.getWorkload(ctx, r.APIReader, env.namespace, component)
		if apierrors.IsNotFound(err) {
			return spec, fmt.Sprintf("%s %s/%s of component %s no longer exists", component.Kind, env.namespace, component.WorkloadName, component.Name), nil
		}
		if err != nil {
			return spec, "", err
		}
		record, err := snapshot.Workload(component.Name, obj)
		if err != nil {
			return spec, "", err
		}
		spec.Workloads = append(spec.Workloads, record)
	}
	if backup := plan.Spec.PROD.Backup; backup != nil {
		if backup.VolumeSnapshots != nil {
			selector, err := metav1.LabelSelectorAsSelector(&backup.VolumeSnapshots.PVCSelector)
			if err != nil {
				return spec, fmt.Sprintf("backup.volumeSnapshots.pvcSelector: %v", err), nil
			}
			claims := &corev1.PersistentVolumeClaimList{}
			if err := r.APIReader.List(ctx, claims, client.InNamespace(env.namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
				return spec, "", fmt.Errorf("listing the claims to snapshot in %s: %w", env.namespace, err)
			}
			slices.SortFunc(claims.Items, func(a, b corev1.PersistentVolumeClaim) int { return strings.Compare(a.Name, b.Name) })
			for i := range claims.Items {
				name := naming.Child(naming.MaxName, plan.Name, env.name, claims.Items[i].Name)
				spec.VolumeSnapshots = append(spec.VolumeSnapshots, snapshot.Claim(name, &claims.Items[i]))
			}
		}
		for _, job := range backup.Jobs {
			spec.BackupJobs = append(spec.BackupJobs, jobName(plan, "backup", env.name, job.Name))
		}
	}
	return spec, "", snapshot.Seal(&spec)
}

// completeBackup takes the target's VolumeSnapshots and runs its backup
// Jobs, then verifies the snapshot. It returns what it still waits for, or
// why the backup failed.
func (r *UpgradePlanReconciler) completeBackup(ctx context.Context, s *scope, env environment, snap *upgradesv1alpha1.UpgradeSnapshot) (string, string, error) {
	if snap.Status.VerifiedAt != nil {
		recordSnapshot(s.plan, env.name, snap)
		return "", "", nil
	}
	ready, waitingFor, failure, err := r.takeVolumeSnapshots(ctx, s, env, snap)
	if failure != "" || err != nil {
		return "", failure, err
	}
	var succeeded int
	if backup := s.plan.Spec.PROD.Backup; backup != nil && len(backup.Jobs) > 0 {
		var message string
		var failed bool
		succeeded, message, failed, err = r.runJobs(ctx, s, env.namespace, backup.Jobs, func(job upgradesv1alpha1.Name) string {
			return jobName(s.plan, "backup", env.name, job)
		})
		switch {
		case err != nil:
			return "", "", err
		case failed:
			return "", fmt.Sprintf("backup of %s: %s", env.name, message), nil
		case message != "" && waitingFor == "":
			waitingFor = message
		}
	}
	if waitingFor != "" {
		return fmt.Sprintf("%s: %s", env.name, waitingFor), "", nil
	}
	failure, err = r.verifySnapshot(ctx, s, env, snap, ready, succeeded)
	return "", failure, err
}

// takeVolumeSnapshots creates the VolumeSnapshots the snapshot records and
// reports how many are ready to use, what it waits for, or why one failed.
func (r *UpgradePlanReconciler) takeVolumeSnapshots(ctx context.Context, s *scope, env environment, snap *upgradesv1alpha1.UpgradeSnapshot) (int, string, string, error) {
	records := snap.Spec.VolumeSnapshots
	if len(records) == 0 {
		return 0, "", "", nil
	}
	if s.plan.Spec.PROD.Backup == nil || s.plan.Spec.PROD.Backup.VolumeSnapshots == nil {
		return 0, "", "backup.volumeSnapshots was removed from the plan while backing up; the snapshot already records volumes to take", nil
	}
	if !r.VolumeSnapshotsServed {
		return 0, "", "the cluster serves no snapshot.storage.k8s.io/v1 VolumeSnapshot API: install the CSI snapshot CRDs and controller and restart changegate, or remove backup.volumeSnapshots from the plan", nil
	}
	ready := 0
	var waitingFor []string
	for _, record := range records {
		vs := &snapshotv1.VolumeSnapshot{}
		key := client.ObjectKey{Namespace: env.namespace, Name: string(record.Name)}
		err := r.Get(ctx, key, vs)
		if apierrors.IsNotFound(err) {
			vs = &snapshotv1.VolumeSnapshot{
				ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: childLabels(s.plan),
					Finalizers: []string{upgradesv1alpha1.FinalizerSnapshotInUse}},
				Spec: snapshotv1.VolumeSnapshotSpec{
					Source:                  snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(string(record.PVC))},
					VolumeSnapshotClassName: ptr.To(string(s.plan.Spec.PROD.Backup.VolumeSnapshots.ClassName)),
				},
			}
			switch err := r.Create(ctx, vs); {
			case apierrors.IsAlreadyExists(err):
				// The cache is behind; the VolumeSnapshot's event brings
				// the plan back.
				waitingFor = append(waitingFor, fmt.Sprintf("VolumeSnapshot %s of claim %s exists; waiting to see its status", key.Name, record.PVC))
				continue
			case err != nil:
				return 0, "", "", fmt.Errorf("creating VolumeSnapshot %s: %w", key, err)
			}
			ctrlLog(ctx).Info("created VolumeSnapshot", "volumeSnapshot", key, "pvc", record.PVC)
			waitingFor = append(waitingFor, fmt.Sprintf("VolumeSnapshot %s of claim %s created", key.Name, record.PVC))
			continue
		}
		if err != nil {
			return 0, "", "", err
		}
		switch ok, broken := snapshot.VolumeSnapshotState(vs); {
		case broken != "":
			return 0, "", fmt.Sprintf("%s (claim %s in %s)", broken, record.PVC, env.name), nil
		case ok:
			ready++
		default:
			waitingFor = append(waitingFor, fmt.Sprintf("VolumeSnapshot %s of claim %s not ready to use yet", key.Name, record.PVC))
		}
	}
	return ready, strings.Join(waitingFor, ", "), "", nil
}

// verifySnapshot re-reads the snapshot from the API server, checks its
// checksum, and records the verification in the snapshot's status and the
// plan's. It returns why verification failed, if it did.
func (r *UpgradePlanReconciler) verifySnapshot(ctx context.Context, s *scope, env environment, snap *upgradesv1alpha1.UpgradeSnapshot, ready, succeeded int) (string, error) {
	stored := &upgradesv1alpha1.UpgradeSnapshot{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(snap), stored); err != nil {
		return "", err
	}
	if err := snapshot.Verify(stored.Spec); err != nil {
		return fmt.Sprintf("UpgradeSnapshot %s/%s failed verification: %v", stored.Namespace, stored.Name, err), nil
	}
	original := stored.DeepCopy()
	verified := metav1.NewTime(s.now)
	stored.Status.ReadyVolumeSnapshots, stored.Status.SucceededBackupJobs = int32(ready), int32(succeeded)
	stored.Status.VerifiedAt = &verified
	meta.SetStatusCondition(&stored.Status.Conditions, metav1.Condition{
		Type: upgradesv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Verified", ObservedGeneration: stored.Generation,
		Message: fmt.Sprintf("%d volume snapshots ready, %d backup Jobs succeeded, checksum verified", ready, succeeded),
	})
	if err := r.Status().Patch(ctx, stored, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})); err != nil {
		return "", fmt.Errorf("recording the verification of UpgradeSnapshot %s: %w", stored.Name, err)
	}
	ctrlLog(ctx).Info("verified UpgradeSnapshot", "snapshot", client.ObjectKeyFromObject(stored), "target", env.name)
	recordSnapshot(s.plan, env.name, stored)
	return "", nil
}

// recordSnapshot puts a verified snapshot into status.snapshots.
func recordSnapshot(plan *upgradesv1alpha1.UpgradePlan, target string, snap *upgradesv1alpha1.UpgradeSnapshot) {
	ref := upgradesv1alpha1.SnapshotReference{Target: target, Name: snap.Name, VerifiedAt: snap.Status.VerifiedAt}
	for i := range plan.Status.Snapshots {
		if plan.Status.Snapshots[i].Target == target {
			plan.Status.Snapshots[i] = ref
			return
		}
	}
	plan.Status.Snapshots = append(plan.Status.Snapshots, ref)
}

// snapshotVerified reports whether the target's snapshot is recorded as
// verified: the condition for changing it at all.
func snapshotVerified(plan *upgradesv1alpha1.UpgradePlan, target string) bool {
	for _, ref := range plan.Status.Snapshots {
		if ref.Target == target && ref.VerifiedAt != nil {
			return true
		}
	}
	return false
}
