package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

const (
	dbClaim      = "data-clinspark-db-0" // the claim the db StatefulSet's claim template makes
	secretValue  = "s3cret-never-in-a-snapshot"
	lab          = "lab-transfer"
	labSync      = "lab-sync"
	labReplicas  = 2
	snapClass    = "csi-snapclass"
	planWithData = "clinspark-14-7"
)

func claimSpec() corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
}

// addData gives each PROD target what a backup and a quiesce act on: the
// db's claim (bound to a volume), an interface Deployment, a CronJob, and
// the Secret the workloads read their password from.
func (a *app) addData(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, env := range []string{"main", "test"} {
		ns := a.namespace[env]
		claim := claimSpec()
		claim.VolumeName = "pv-" + ns
		objects := []client.Object{
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbClaim, Labels: map[string]string{"app": "clinspark"}}, Spec: claim},
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: lab}, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](labReplicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": lab}},
				Template: podTemplate(lab, lab, "registry.example.org/clinspark/lab:2.0")}},
			&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: labSync}, Spec: batchv1.CronJobSpec{
				Schedule: "*/5 * * * *", JobTemplate: jobTemplate("sync")}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials"}, StringData: map[string]string{"password": secretValue}},
		}
		for _, obj := range objects {
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("creating %T %s in %s: %v", obj, obj.GetName(), ns, err)
			}
		}
	}
}

func jobTemplate(name string) batchv1.JobTemplateSpec {
	return batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: name, Image: "registry.example.org/clinspark/tools:1", Args: []string{name}}},
	}}}}
}

// backedUpPlan is the plan with quiesce, volume snapshots, a backup Job and
// a restore of volumes and data.
func (a *app) backedUpPlan() *upgradesv1alpha1.UpgradePlan {
	plan := a.plan(planWithData)
	plan.Spec.PROD.Quiesce = &upgradesv1alpha1.Quiesce{
		ScaleDown:       []upgradesv1alpha1.WorkloadReference{{Kind: "Deployment", Name: lab}},
		SuspendCronJobs: []upgradesv1alpha1.ObjectName{labSync},
	}
	plan.Spec.PROD.Backup = &upgradesv1alpha1.Backup{
		VolumeSnapshots: &upgradesv1alpha1.VolumeSnapshotBackup{ClassName: snapClass,
			PVCSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "clinspark"}}},
		Jobs: []upgradesv1alpha1.JobTemplate{{Name: "db-dump", Template: jobTemplate("dump")}},
	}
	plan.Spec.PROD.Restore = &upgradesv1alpha1.Restore{
		Volumes: true,
		Jobs:    []upgradesv1alpha1.JobTemplate{{Name: "db-restore", Template: jobTemplate("restore")}},
	}
	return plan
}

// prodState is what a person would compare before and after: each
// workload's spec, with its resourceVersion, in every PROD target.
type prodState map[string]client.Object

func (a *app) prodState(t *testing.T) prodState {
	t.Helper()
	state := prodState{}
	for _, env := range []string{"main", "test"} {
		for _, obj := range a.workloads(a.namespace[env]) {
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
				t.Fatal(err)
			}
			state[env+"/"+obj.GetName()] = obj
		}
	}
	return state
}

func specOf(obj client.Object) any {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return w.Spec
	case *appsv1.StatefulSet:
		return w.Spec
	case *appsv1.DaemonSet:
		return w.Spec
	}
	return nil
}

// expectRestored asserts each workload's spec equals what it was before,
// field for field.
func (a *app) expectRestored(t *testing.T, before prodState) {
	t.Helper()
	for key, now := range a.prodState(t) {
		if !equality.Semantic.DeepEqual(specOf(before[key]), specOf(now)) {
			was, _ := json.Marshal(specOf(before[key]))
			is, _ := json.Marshal(specOf(now))
			t.Errorf("%s is not as before the plan:\nbefore %s\nnow    %s", key, was, is)
		}
	}
}

// expectUntouched asserts no workload was written at all: same
// resourceVersion, so byte for byte the same object.
func (a *app) expectUntouched(t *testing.T, before prodState) {
	t.Helper()
	for key, now := range a.prodState(t) {
		if now.GetResourceVersion() != before[key].GetResourceVersion() {
			t.Errorf("%s was written (resourceVersion %s → %s)", key, before[key].GetResourceVersion(), now.GetResourceVersion())
		}
	}
}

// expectResumed asserts what quiesce stopped runs again in every target.
func (a *app) expectResumed(t *testing.T) {
	t.Helper()
	a.expectQuiesced(t, false)
}

func (a *app) expectQuiesced(t *testing.T, quiesced bool) {
	t.Helper()
	for _, env := range []string{"main", "test"} {
		ns := a.namespace[env]
		deployment, cronJob := &appsv1.Deployment{}, &batchv1.CronJob{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: lab}, deployment); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: labSync}, cronJob); err != nil {
			t.Fatal(err)
		}
		wantReplicas, wantSuspend := int32(labReplicas), false
		if quiesced {
			wantReplicas, wantSuspend = 0, true
		}
		if got := ptr.Deref(deployment.Spec.Replicas, 1); got != wantReplicas {
			t.Errorf("%s: Deployment %s has %d replicas; want %d", env, lab, got, wantReplicas)
		}
		if got := ptr.Deref(cronJob.Spec.Suspend, false); got != wantSuspend {
			t.Errorf("%s: CronJob %s suspend=%t; want %t", env, labSync, got, wantSuspend)
		}
	}
}

// planJobs are the Jobs a plan created in a namespace, by name.
func planJobs(t *testing.T, namespace, plan string) map[string]*batchv1.Job {
	t.Helper()
	list := &batchv1.JobList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(namespace), client.MatchingLabels{upgradesv1alpha1.LabelPlan: plan}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*batchv1.Job{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	return byName
}

func upgradeSnapshots(t *testing.T, a *app) []upgradesv1alpha1.UpgradeSnapshot {
	t.Helper()
	list := &upgradesv1alpha1.UpgradeSnapshotList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(a.plansNS)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestBackupThenNoGoOnTestRestoresBothTargets(t *testing.T) {
	ctx := context.Background()
	a := newApp(t, "restore")
	a.addData(t)
	before := a.prodState(t)
	observer := observePROD(t, a)

	// A lab-sync run is under way in MAIN when the window opens.
	cronJob := &batchv1.CronJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: a.namespace["main"], Name: labSync}, cronJob); err != nil {
		t.Fatal(err)
	}
	running := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace["main"], Name: "lab-sync-29000000",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: labSync, UID: cronJob.UID, Controller: ptr.To(true)}}},
		Spec: jobTemplate("sync").Spec}
	if err := k8s.Create(ctx, running); err != nil {
		t.Fatal(err)
	}

	plan := a.backedUpPlan()
	createAndApprove(t, plan)

	// Quiescing stops the interface and waits for the running sync.
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseQuiescing && strings.Contains(condition(p, upgradesv1alpha1.ConditionReconciling).Message, running.Name)
	})
	a.expectQuiesced(t, true)
	if len(got.Status.Quiesced) != 4 {
		t.Errorf("status.quiesced = %+v; want the Deployment and the CronJob in both targets", got.Status.Quiesced)
	}
	time.Sleep(time.Second)
	if got := getPlan(t, plan); got.Status.Phase != upgradesv1alpha1.PhaseQuiescing {
		t.Fatalf("the plan moved to %s while a lab-sync Job still ran", got.Status.Phase)
	}
	if err := testenv.Finish(ctx, k8s, running, true); err != nil {
		t.Fatal(err)
	}

	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	expectCondition(t, got, upgradesv1alpha1.ConditionBackupReady, metav1.ConditionTrue, upgradesv1alpha1.ReasonSucceeded)
	expectCondition(t, got, upgradesv1alpha1.ConditionQuiesced, metav1.ConditionTrue, upgradesv1alpha1.ReasonQuiesced)
	if len(got.Status.Snapshots) != 2 || got.Status.Snapshots[0].VerifiedAt == nil || got.Status.Snapshots[1].VerifiedAt == nil {
		t.Fatalf("status.snapshots = %+v; want both targets verified", got.Status.Snapshots)
	}
	snapshots := upgradeSnapshots(t, a)
	if len(snapshots) != 2 {
		t.Fatalf("%d UpgradeSnapshots; want one per target", len(snapshots))
	}
	for _, snap := range snapshots {
		env := string(snap.Spec.Target)
		if snap.Name != planWithData+"-"+env || !metav1.IsControlledBy(&snap, got) || snap.Status.VerifiedAt == nil {
			t.Errorf("UpgradeSnapshot %s: owned by the plan %t, verified %v", snap.Name, metav1.IsControlledBy(&snap, got), snap.Status.VerifiedAt)
		}
		if len(snap.Spec.Workloads) != 3 || len(snap.Spec.Quiesced) != 2 || len(snap.Spec.VolumeSnapshots) != 1 || len(snap.Spec.BackupJobs) != 1 {
			t.Errorf("UpgradeSnapshot %s records %d workloads, %d quiesced, %d volume snapshots, %d backup Jobs; want 3, 2, 1, 1",
				snap.Name, len(snap.Spec.Workloads), len(snap.Spec.Quiesced), len(snap.Spec.VolumeSnapshots), len(snap.Spec.BackupJobs))
		}
		if snap.Status.ReadyVolumeSnapshots != 1 || snap.Status.SucceededBackupJobs != 1 {
			t.Errorf("UpgradeSnapshot %s status = %+v", snap.Name, snap.Status)
		}
		data, _ := json.Marshal(snap)
		if strings.Contains(string(data), secretValue) {
			t.Errorf("UpgradeSnapshot %s holds the value of a Secret", snap.Name)
		}
		vs := &snapshotv1.VolumeSnapshot{}
		key := client.ObjectKey{Namespace: a.namespace[env], Name: string(snap.Spec.VolumeSnapshots[0].Name)}
		if err := k8s.Get(ctx, key, vs); err != nil {
			t.Fatalf("VolumeSnapshot of %s: %v", env, err)
		}
		if ptr.Deref(vs.Spec.Source.PersistentVolumeClaimName, "") != dbClaim || ptr.Deref(vs.Spec.VolumeSnapshotClassName, "") != snapClass {
			t.Errorf("VolumeSnapshot %s snapshots %v with class %v; want %s with %s", key, vs.Spec.Source.PersistentVolumeClaimName, vs.Spec.VolumeSnapshotClassName, dbClaim, snapClass)
		}
		if !slices.Contains(vs.Finalizers, upgradesv1alpha1.FinalizerSnapshotInUse) {
			t.Errorf("VolumeSnapshot %s is not protected while the plan can roll back: finalizers %v", key, vs.Finalizers)
		}
		// A snapshot is never deleted while the plan can roll back: a
		// deleted UpgradeSnapshot stays, and the rollback still uses it.
		if err := k8s.Delete(ctx, &snap); err != nil {
			t.Fatal(err)
		}
		held := &upgradesv1alpha1.UpgradeSnapshot{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&snap), held); err != nil || held.DeletionTimestamp.IsZero() {
			t.Fatalf("a deleted UpgradeSnapshot should be held by its finalizer until the plan ends: %v", err)
		}
		if jobs := planJobs(t, a.namespace[env], planWithData); len(jobs) != 1 {
			t.Errorf("%s has %d plan Jobs; want the backup Job", env, len(jobs))
		}
	}

	decide(t, plan, "main", upgradesv1alpha1.DecisionGo, "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	decide(t, plan, "test", upgradesv1alpha1.DecisionNoGo, "carol")
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")

	a.expectRestored(t, before)
	a.expectResumed(t)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonNoGo)
	expectCondition(t, got, upgradesv1alpha1.ConditionQuiesced, metav1.ConditionFalse, upgradesv1alpha1.ReasonResumed)
	for _, env := range []string{"main", "test"} {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: a.namespace[env], Name: dbClaim}, pvc); err != nil {
			t.Fatal(err)
		}
		wantSource := planWithData + "-" + env + "-" + dbClaim
		if pvc.Spec.DataSource == nil || pvc.Spec.DataSource.Kind != "VolumeSnapshot" || pvc.Spec.DataSource.Name != wantSource {
			t.Errorf("%s: claim %s has data source %+v; want VolumeSnapshot %s", env, dbClaim, pvc.Spec.DataSource, wantSource)
		}
		if pvc.Labels["app"] != "clinspark" || pvc.Spec.VolumeName != "" {
			t.Errorf("%s: restored claim has labels %v and volume %q; want its labels and a new volume", env, pvc.Labels, pvc.Spec.VolumeName)
		}
		restoreJob := planJobs(t, a.namespace[env], planWithData)[planWithData+"-restore-"+env+"-db-restore"]
		if restoreJob == nil || restoreJob.Status.Succeeded != 1 {
			t.Errorf("%s: the restore Job did not run to success: %+v", env, restoreJob)
		}
	}
	// Once the plan has ended the snapshots are released: the deleted ones go.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(upgradeSnapshots(t, a)) == 0, nil
	})
	if err != nil {
		t.Errorf("the deleted UpgradeSnapshots were still held after the plan ended: %+v", upgradeSnapshots(t, a))
	}
	observer.expectNoChangeBeforeVerification(t)
}

func TestQuiesceIsUndoneWhenThePlanCompletes(t *testing.T) {
	a := newApp(t, "quiet")
	a.addData(t)
	plan := a.backedUpPlan()
	driveToDecision(t, plan)
	a.expectQuiesced(t, true)
	decide(t, plan, "main", upgradesv1alpha1.DecisionGo, "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	decide(t, plan, "test", upgradesv1alpha1.DecisionGo, "carol")
	got := waitForCompleted(t, plan)
	a.expectResumed(t)
	a.expectImages(t, "main", newVersion)
	a.expectImages(t, "test", newVersion)
	expectCondition(t, got, upgradesv1alpha1.ConditionQuiesced, metav1.ConditionFalse, upgradesv1alpha1.ReasonResumed)
	for _, env := range []string{"main", "test"} {
		if jobs := planJobs(t, a.namespace[env], planWithData); len(jobs) != 1 {
			t.Errorf("%s: %d plan Jobs after a completed plan; want only the backup Job", env, len(jobs))
		}
	}

	// Once the plan has ended, what it created follows its lifetime: deleting
	// it deletes the Jobs and VolumeSnapshots in the targets' namespaces.
	if err := k8s.Delete(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		left := 0
		for _, env := range []string{"main", "test"} {
			volumeSnapshots := &snapshotv1.VolumeSnapshotList{}
			if err := k8s.List(ctx, volumeSnapshots, client.InNamespace(a.namespace[env])); err != nil {
				return false, err
			}
			for _, job := range planJobs(t, a.namespace[env], planWithData) {
				if job.DeletionTimestamp.IsZero() {
					left++
				}
			}
			left += len(volumeSnapshots.Items)
		}
		return left == 0, nil
	})
	if err != nil {
		t.Error("the plan's Jobs and VolumeSnapshots outlived the deleted plan")
	}
}

func TestFailedBackupJobLeavesPRODUntouched(t *testing.T) {
	a := newApp(t, "dumpfail")
	a.addData(t)
	before := a.prodState(t)
	jobs.Fail(a.namespace["test"], planWithData+"-backup-test-db-dump")
	plan := a.backedUpPlan()
	createAndApprove(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseFailed, "")

	a.expectUntouched(t, before)
	a.expectResumed(t)
	expectCondition(t, got, upgradesv1alpha1.ConditionBackupReady, metav1.ConditionFalse, upgradesv1alpha1.ReasonBackupFailed)
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionTrue, upgradesv1alpha1.ReasonBackupFailed)
	if message := condition(got, upgradesv1alpha1.ConditionBackupReady).Message; !strings.Contains(message, "db-dump") || !strings.Contains(message, "backoff limit") {
		t.Errorf("BackupReady says %q; want it to name the failed Job and why", message)
	}
	if findStep(got, upgradesv1alpha1.StepUpgradePROD, "main") != nil {
		t.Error("PROD was upgraded after a failed backup")
	}
}

func TestFailedVolumeSnapshotBlocksTheUpgrade(t *testing.T) {
	a := newApp(t, "snapfail")
	a.addData(t)
	before := a.prodState(t)
	storage.Fail(a.namespace["main"], dbClaim, "the CSI driver could not snapshot the volume")
	plan := a.backedUpPlan()
	createAndApprove(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseFailed, "")

	a.expectUntouched(t, before)
	a.expectResumed(t)
	c := condition(got, upgradesv1alpha1.ConditionBackupReady)
	if c.Status != metav1.ConditionFalse || c.Reason != upgradesv1alpha1.ReasonBackupFailed || !strings.Contains(c.Message, "could not snapshot") {
		t.Errorf("BackupReady = %s/%s %q; want False/BackupFailed naming the snapshot error", c.Status, c.Reason, c.Message)
	}
	if findStep(got, upgradesv1alpha1.StepUpgradePROD, "main") != nil {
		t.Error("PROD was upgraded although a volume snapshot failed")
	}
}

func TestRestartsDuringBackupAndRollbackRepeatNothing(t *testing.T) {
	ctx := context.Background()
	a := newApp(t, "restartbackup")
	a.addData(t)
	before := a.prodState(t)
	backupJob := planWithData + "-backup-main-db-dump"
	restoreJob := planWithData + "-restore-main-db-restore"
	jobs.Hold(a.namespace["main"], backupJob)
	jobs.Hold(a.namespace["main"], restoreJob)
	mark := effects.mark()

	plan := a.backedUpPlan()
	createAndApprove(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseBackingUp, "")
	held := waitForJob(t, a.namespace["main"], backupJob)
	restartChangegate(t)
	restartChangegate(t)
	if err := testenv.Finish(ctx, k8s, held, true); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	decide(t, plan, "main", upgradesv1alpha1.DecisionNoGo, "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRollingBack, "")
	held = waitForJob(t, a.namespace["main"], restoreJob)
	restartChangegate(t)
	restartChangegate(t)
	if err := testenv.Finish(ctx, k8s, held, true); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")

	a.expectRestored(t, before)
	a.expectResumed(t)
	if n := len(upgradeSnapshots(t, a)); n != 2 {
		t.Errorf("%d UpgradeSnapshots; want one per target", n)
	}
	// Two backup Jobs and MAIN's restore Job; two snapshots of each kind.
	created := effects.since(mark)
	if n := created.count("create", &batchv1.Job{}); n != 3 {
		t.Errorf("changegate created %d Jobs; want 3", n)
	}
	if n := created.count("create", &upgradesv1alpha1.UpgradeSnapshot{}); n != 2 {
		t.Errorf("changegate created %d UpgradeSnapshots; want 2", n)
	}
	if n := created.count("create", &snapshotv1.VolumeSnapshot{}); n != 2 {
		t.Errorf("changegate created %d VolumeSnapshots; want 2", n)
	}
}

func restartChangegate(t *testing.T) {
	t.Helper()
	stopChangegate()
	var err error
	if stopChangegate, err = startChangegate(); err != nil {
		t.Fatal(err)
	}
}

func waitForJob(t *testing.T, namespace, name string) *batchv1.Job {
	t.Helper()
	job := &batchv1.Job{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, job)
		if err == nil {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("Job %s/%s was not created: %v", namespace, name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getPlan(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	got := &upgradesv1alpha1.UpgradePlan{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(plan), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRollbackOverItsDeadlineStallsAndCarriesOn(t *testing.T) {
	a := newApp(t, "slowrestore")
	a.addData(t)
	before := a.prodState(t)
	restoreJob := planWithData + "-restore-main-db-restore"
	jobs.Hold(a.namespace["main"], restoreJob)
	plan := a.backedUpPlan()
	plan.Spec.PROD.Restore.MaxDuration = "2s"
	driveToDecision(t, plan)
	decide(t, plan, "main", upgradesv1alpha1.DecisionNoGo, "carol")

	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Status == metav1.ConditionTrue
	})
	if got.Status.Phase != upgradesv1alpha1.PhaseRollingBack {
		t.Fatalf("phase %s; want RollingBack to go on while Stalled", got.Status.Phase)
	}
	stalled := condition(got, upgradesv1alpha1.ConditionStalled)
	if stalled.Reason != upgradesv1alpha1.ReasonRollbackDeadlineExceeded || !strings.Contains(stalled.Message, restoreJob) {
		t.Errorf("Stalled = %s %q; want %s naming what the rollback waits for", stalled.Reason, stalled.Message, upgradesv1alpha1.ReasonRollbackDeadlineExceeded)
	}
	expectEvent(t, a.plansNS, plan.Name, upgradesv1alpha1.ReasonRollbackDeadlineExceeded)

	// The rollback carries on: once the restore Job finishes, it completes.
	held := waitForJob(t, a.namespace["main"], restoreJob)
	if err := testenv.Finish(context.Background(), k8s, held, true); err != nil {
		t.Fatal(err)
	}
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectRestored(t, before)
	a.expectResumed(t)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonNoGo)
}

// expectEvent waits for a Warning Event on the plan with that reason.
func expectEvent(t *testing.T, namespace, plan, reason string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		var events eventsv1.EventList
		if err := k8s.List(ctx, &events, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == plan && e.Reason == reason && e.Type == corev1.EventTypeWarning {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no Warning Event with reason %s on plan %s", reason, plan)
	}
}

func TestRollbackNeverDeletesAClaimWithoutItsSnapshot(t *testing.T) {
	ctx := context.Background()
	a := newApp(t, "lostsnap")
	a.addData(t)
	plan := a.backedUpPlan()
	driveToDecision(t, plan)
	claim := &corev1.PersistentVolumeClaim{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: a.namespace["main"], Name: dbClaim}, claim); err != nil {
		t.Fatal(err)
	}
	// Someone deletes MAIN's VolumeSnapshot: on a real cluster the snapshot
	// controller would delete the stored snapshot behind it.
	vs := &snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace["main"], Name: planWithData + "-main-" + dbClaim}}
	if err := k8s.Delete(ctx, vs); err != nil {
		t.Fatal(err)
	}
	decide(t, plan, "main", upgradesv1alpha1.DecisionNoGo, "carol")
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionStalled).Reason == upgradesv1alpha1.ReasonSnapshotUnusable
	})
	if got.Status.Phase != upgradesv1alpha1.PhaseRollingBack || !strings.Contains(condition(got, upgradesv1alpha1.ConditionStalled).Message, "being deleted") {
		t.Errorf("phase %s, Stalled %q; want RollingBack, stalled because the VolumeSnapshot is being deleted", got.Status.Phase, condition(got, upgradesv1alpha1.ConditionStalled).Message)
	}
	after := &corev1.PersistentVolumeClaim{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(claim), after); err != nil {
		t.Fatal(err)
	}
	if after.UID != claim.UID || !after.DeletionTimestamp.IsZero() {
		t.Error("the claim was deleted although its snapshot was going away")
	}

	// The person restores the data by hand and lets the rollback finish
	// without volumes, as the message says.
	if err := updatePlanTyped(plan, func(p *upgradesv1alpha1.UpgradePlan) { p.Spec.PROD.Restore.Volumes = false }); err != nil {
		t.Fatal(err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectImages(t, "main", oldVersion)
}
