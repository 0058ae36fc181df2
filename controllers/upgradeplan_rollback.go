package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/snapshot"
	"github.com/changegate/changegate/internal/workload"
)

// claimPoll is how often a rollback looks at claims it waits to be deleted:
// the operator does not watch claims, which are many and rarely of interest.
const claimPoll = 2 * time.Second

// restoring is how far the restore of one target got: what it still waits
// for, when to look again without an event, and, when a person must step in,
// why (a reason and a message).
type restoring struct {
	pending     []string
	poll        time.Duration
	stuckReason string
	stuck       string
}

// rollBack (RollingBack) puts every PROD target the plan touched back as its
// UpgradeSnapshot recorded it, last target first: the claims from their
// VolumeSnapshots (with restore.volumes), the workload specs, then the
// restore Jobs, and waits for the rollouts. Then it un-quiesces. With no
// target touched it only un-quiesces, records Skipped, and the plan ends
// Failed. Past restore.maxDuration the plan is Stalled, and the rollback
// carries on.
func (r *UpgradePlanReconciler) rollBack(ctx context.Context, s *scope) outcome {
	touched := touchedTargets(s.plan)
	var progress restoring
	for i := len(touched) - 1; i >= 0; i-- {
		target, err := r.restoreTarget(ctx, s, s.target(string(touched[i].Name)))
		if err != nil {
			if r.rollbackOverdue(s) {
				// The error may never clear by itself: people must hear of it.
				return r.rollbackWaiting(s, restoring{pending: []string{err.Error()}, poll: 10 * time.Second})
			}
			return failedTransiently(err)
		}
		progress.pending = append(progress.pending, target.pending...)
		progress.poll = max(progress.poll, target.poll)
		if target.stuck != "" {
			progress.stuckReason, progress.stuck = target.stuckReason, target.stuck
		}
	}
	if progress.stuck != "" {
		out := stalled(progress.stuckReason, progress.stuck)
		out.after = progress.poll
		return out
	}
	if len(progress.pending) > 0 {
		return r.rollbackWaiting(s, progress)
	}
	if err := r.unquiesce(ctx, s); err != nil {
		return failedTransiently(err)
	}
	if len(touched) == 0 {
		s.complete(upgradesv1alpha1.StepSkipped, s.step.Reason, s.step.Message+"; PROD was not changed")
		return progressed(s.step.Reason, "nothing in PROD to roll back")
	}
	names := make([]string, 0, len(touched))
	for _, target := range touched {
		names = append(names, string(target.Name))
	}
	message := fmt.Sprintf("restored %s from the snapshots taken before the upgrade", strings.Join(names, ", "))
	s.complete(upgradesv1alpha1.StepSucceeded, s.step.Reason, message)
	return progressed(upgradesv1alpha1.ReasonProgressing, message)
}

// rollbackWaiting waits for the rollback, waking at restore.maxDuration at
// the latest; from then on the plan is Stalled while the rollback goes on.
func (r *UpgradePlanReconciler) rollbackWaiting(s *scope, progress restoring) outcome {
	limit, deadline := rollbackDeadline(s)
	message := "rolling back: " + strings.Join(progress.pending, "; ")
	if !s.now.Before(deadline) {
		out := stalled(upgradesv1alpha1.ReasonRollbackDeadlineExceeded, fmt.Sprintf(
			"the rollback has run longer than restore.maxDuration (%s) and carries on; check the target now: %s", limit, message))
		out.after = progress.poll
		return out
	}
	after := deadline.Sub(s.now)
	if progress.poll > 0 {
		after = min(after, progress.poll)
	}
	return waiting(after, upgradesv1alpha1.ReasonProgressing, message)
}

// rollbackDeadline is restore.maxDuration (default 1h) and when it runs out.
func rollbackDeadline(s *scope) (time.Duration, time.Time) {
	limit := time.Hour
	if restore := s.plan.Spec.PROD.Restore; restore != nil {
		limit = restore.MaxDuration.GetOr(limit)
	}
	return limit, s.step.StartedAt.Add(limit)
}

func (r *UpgradePlanReconciler) rollbackOverdue(s *scope) bool {
	_, deadline := rollbackDeadline(s)
	return !s.now.Before(deadline)
}

// restoreTarget moves one target one stage further back to its snapshot.
func (r *UpgradePlanReconciler) restoreTarget(ctx context.Context, s *scope, env environment) (restoring, error) {
	snap, unusable, err := r.usableSnapshot(ctx, s, env)
	if err != nil {
		return restoring{}, err
	}
	if snap == nil {
		// Without a snapshot the images recorded when the plan started are
		// the best there is; a person must restore the rest.
		rollouts, err := r.applyImages(ctx, s, env, previousImages(s.plan, env.name))
		if err != nil {
			return restoring{}, err
		}
		return restoring{pending: append(rollouts.failed, rollouts.pending...), stuckReason: upgradesv1alpha1.ReasonSnapshotUnusable,
			stuck: unusable + "; only the images recorded in status.previousImages were restored: restore the rest of " + env.name + " by hand"}, nil
	}
	if restore := s.plan.Spec.PROD.Restore; restore != nil && restore.Volumes && len(snap.Spec.VolumeSnapshots) > 0 {
		if progress, err := r.restoreClaims(ctx, s, env, snap); err != nil || len(progress.pending) > 0 || progress.stuck != "" {
			return progress, err
		}
	}
	for _, record := range snap.Spec.Workloads {
		if err := r.restoreWorkload(ctx, env, record); err != nil {
			return restoring{}, err
		}
	}
	if restore := s.plan.Spec.PROD.Restore; restore != nil && len(restore.Jobs) > 0 {
		_, message, failed, err := r.runJobs(ctx, s, env.namespace, restore.Jobs, func(job upgradesv1alpha1.Name) string {
			return jobName(s.plan, "restore", env.name, job)
		})
		switch {
		case err != nil:
			return restoring{}, err
		case failed:
			return restoring{stuckReason: upgradesv1alpha1.ReasonRestoreFailed, stuck: fmt.Sprintf("restore of %s: %s; fix the cause, then delete the Job so that it runs again", env.name, message)}, nil
		case message != "":
			return restoring{pending: []string{fmt.Sprintf("%s: %s", env.name, message)}}, nil
		}
	}
	var pending []string
	for _, record := range snap.Spec.Workloads {
		if message, err := r.restoredRollout(ctx, s, env, record); err != nil || message != "" {
			if err != nil {
				return restoring{}, err
			}
			pending = append(pending, message)
		}
	}
	return restoring{pending: pending}, nil
}

// usableSnapshot returns the target's UpgradeSnapshot if it exists and its
// checksum holds; otherwise nil and a sentence saying why.
func (r *UpgradePlanReconciler) usableSnapshot(ctx context.Context, s *scope, env environment) (*upgradesv1alpha1.UpgradeSnapshot, string, error) {
	snap := &upgradesv1alpha1.UpgradeSnapshot{}
	key := client.ObjectKey{Namespace: s.plan.Namespace, Name: snapshotName(s.plan, env.name)}
	// Read live: the cache holds only the snapshots' metadata.
	err := r.APIReader.Get(ctx, key, snap)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Sprintf("UpgradeSnapshot %s is missing", key.Name), nil
	}
	if err != nil {
		return nil, "", err
	}
	if err := snapshot.Verify(snap.Spec); err != nil {
		return nil, fmt.Sprintf("UpgradeSnapshot %s: %v", key.Name, err), nil
	}
	return snap, "", nil
}

// restoreClaims recreates each recorded claim from its VolumeSnapshot: the
// components are scaled to zero, each claim not yet restored is deleted and,
// once gone, created again with the VolumeSnapshot as its data source. The
// claims a StatefulSet made from its claim templates are restored the same
// way, under the names the StatefulSet looks for. A claim restored already
// is left alone, so a restarted rollback never restores one twice.
func (r *UpgradePlanReconciler) restoreClaims(ctx context.Context, s *scope, env environment, snap *upgradesv1alpha1.UpgradeSnapshot) (restoring, error) {
	claims := map[string]*corev1.PersistentVolumeClaim{}
	restored := true
	for _, record := range snap.Spec.VolumeSnapshots {
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: string(record.PVC)}, pvc)
		switch {
		case apierrors.IsNotFound(err):
			pvc = nil
		case err != nil:
			return restoring{}, err
		}
		claims[string(record.PVC)] = pvc
		restored = restored && pvc != nil && snapshot.ClaimRestored(pvc, record)
	}
	if restored {
		return restoring{}, nil
	}
	// No claim is deleted unless every snapshot to restore it from is there.
	if unusable, err := r.unusableVolumeSnapshot(ctx, env, snap); err != nil || unusable != "" {
		return restoring{stuckReason: upgradesv1alpha1.ReasonSnapshotUnusable, stuck: unusable + fmt.Sprintf(
			"; the claims of %s were not touched: restore their data by hand, then set spec.prod.restore.volumes to false to finish the rollback", env.name)}, err
	}

	var pending []string
	for _, record := range snap.Spec.Workloads {
		if record.Kind == upgradesv1alpha1.KindDaemonSet {
			continue
		}
		obj, err := r.setReplicas(ctx, env.namespace, record.Kind, string(record.Name), 0)
		if err != nil {
			return restoring{}, err
		}
		if message, err := r.podsGone(ctx, obj); err != nil || message != "" {
			if err != nil {
				return restoring{}, err
			}
			pending = append(pending, message)
		}
	}
	if len(pending) > 0 {
		return restoring{pending: pending}, nil
	}

	for _, record := range snap.Spec.VolumeSnapshots {
		switch pvc := claims[string(record.PVC)]; {
		case pvc == nil:
			claim := snapshot.RestoredClaim(record, env.namespace)
			switch err := r.Create(ctx, claim); {
			case apierrors.IsAlreadyExists(err):
				// The cache is behind; the claim's event brings the plan back.
				pending = append(pending, fmt.Sprintf("claim %s/%s exists; waiting to see it", env.namespace, record.PVC))
				continue
			case err != nil:
				return restoring{}, fmt.Errorf("restoring claim %s/%s from VolumeSnapshot %s: %w", env.namespace, record.PVC, record.Name, err)
			}
			ctrlLog(ctx).Info("restored claim", "namespace", env.namespace, "pvc", record.PVC, "volumeSnapshot", record.Name)
			pending = append(pending, fmt.Sprintf("claim %s/%s recreated from VolumeSnapshot %s", env.namespace, record.PVC, record.Name))
		case snapshot.ClaimRestored(pvc, record):
		case pvc.DeletionTimestamp.IsZero():
			uid := pvc.UID
			if err := r.Delete(ctx, pvc, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				return restoring{}, fmt.Errorf("deleting claim %s/%s to restore it: %w", env.namespace, record.PVC, err)
			}
			ctrlLog(ctx).Info("deleted claim to restore it", "namespace", env.namespace, "pvc", record.PVC)
			pending = append(pending, fmt.Sprintf("claim %s/%s deleted, to be recreated from VolumeSnapshot %s", env.namespace, record.PVC, record.Name))
		default:
			pending = append(pending, fmt.Sprintf("claim %s/%s is being deleted; a pod outside the plan's components may still use it", env.namespace, record.PVC))
		}
	}
	return restoring{pending: pending, poll: claimPoll}, nil
}

// unusableVolumeSnapshot says why one of the target's VolumeSnapshots cannot
// restore its claim — missing, being deleted, failed or not ready — reading
// each from the API server, or returns "".
func (r *UpgradePlanReconciler) unusableVolumeSnapshot(ctx context.Context, env environment, snap *upgradesv1alpha1.UpgradeSnapshot) (string, error) {
	for _, record := range snap.Spec.VolumeSnapshots {
		vs := &snapshotv1.VolumeSnapshot{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: string(record.Name)}, vs)
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("VolumeSnapshot %s/%s is missing", env.namespace, record.Name), nil
		}
		if err != nil {
			return "", err
		}
		switch ready, broken := snapshot.VolumeSnapshotState(vs); {
		case broken != "":
			return broken, nil
		case !ready:
			return fmt.Sprintf("VolumeSnapshot %s/%s is not ready to use", env.namespace, record.Name), nil
		}
	}
	return "", nil
}

// restoreWorkload puts a workload's pod template, replicas and update
// strategy back as recorded, unless they are already, reading it live so
// that nothing is patched twice.
func (r *UpgradePlanReconciler) restoreWorkload(ctx context.Context, env environment, record upgradesv1alpha1.WorkloadRecord) error {
	obj, err := workload.New(record.Kind)
	if err != nil {
		return err
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: string(record.Name)}, obj); err != nil {
		return fmt.Errorf("reading %s %s/%s to restore it: %w", record.Kind, env.namespace, record.Name, err)
	}
	if done, err := snapshot.Restored(obj, record); err != nil || done {
		return err
	}
	patch, err := snapshot.RestorePatch(record)
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return fmt.Errorf("restoring %s %s/%s: %w", record.Kind, env.namespace, record.Name, err)
	}
	ctrlLog(ctx).Info("restored workload from its snapshot", "kind", record.Kind, "namespace", env.namespace, "name", record.Name)
	return nil
}

// restoredRollout says what a restored workload still waits for, from the
// cache: nothing once its recorded spec has rolled out.
func (r *UpgradePlanReconciler) restoredRollout(ctx context.Context, s *scope, env environment, record upgradesv1alpha1.WorkloadRecord) (string, error) {
	obj, err := workload.New(record.Kind)
	if err != nil {
		return "", err
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: string(record.Name)}, obj); err != nil {
		return "", err
	}
	if done, err := snapshot.Restored(obj, record); err != nil || !done {
		return fmt.Sprintf("%s %s/%s: waiting for the restored spec", record.Kind, env.namespace, record.Name), err
	}
	if status := workload.RolloutStatus(obj, s.step.StartedAt.Time, s.now); status.State != workload.RolloutComplete {
		return status.Message, nil
	}
	return "", nil
}

// previousImages are the images the environment's components ran when the
// plan resolved them.
func previousImages(plan *upgradesv1alpha1.UpgradePlan, environment string) map[string]string {
	wanted := map[string]string{}
	for _, image := range plan.Status.PreviousImages {
		if image.Environment == environment {
			wanted[image.Component] = image.Image
		}
	}
	return wanted
}
