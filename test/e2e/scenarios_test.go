//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

const registry = "registry.example.org/clinspark"

// app is clinspark in VAL, PROD MAIN and PROD TEST, with its plans in
// <name>-ops: a web Deployment, a db StatefulSet whose claim binds a static
// volume, and a lab-sync CronJob that quiesce suspends.
type app struct {
	ops string
	ns  map[string]string
}

func newApp(t *testing.T, name string) *app {
	t.Helper()
	ctx := context.Background()
	a := &app{ops: name + "-ops", ns: map[string]string{"val": name + "-val", "main": name + "-prod-main", "test": name + "-prod-test"}}
	objects := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.ops}}}
	for _, role := range []struct {
		name     string
		subjects []rbacv1.Subject
	}{
		{"changegate-editor", []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "rita"}, {Kind: "User", APIGroup: rbacv1.GroupName, Name: "eve"}}},
		{"changegate-approver", []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"}, {Kind: "User", APIGroup: rbacv1.GroupName, Name: "bob"},
			{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "clinical-safety"}}},
	} {
		objects = append(objects, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: a.ops, Name: role.name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.name}, Subjects: role.subjects})
	}
	for _, env := range []string{"val", "main", "test"} {
		objects = append(objects, a.environment(a.ns[env])...)
	}
	for _, obj := range objects {
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	return a
}

func (a *app) environment(ns string) []client.Object {
	labels := func(app string) map[string]string { return map[string]string{"app": app} }
	pod := func(app, image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(app)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: image}}}}
	}
	claim := corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To(""),
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{upgradesv1alpha1.LabelPlansFrom: a.ops}}},
		// A static volume, bound to the db's claim by the PV controller.
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-" + ns}, Spec: corev1.PersistentVolumeSpec{
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}, AccessModes: claim.AccessModes, StorageClassName: "",
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/clinspark/" + ns}},
			ClaimRef:               &corev1.ObjectReference{Namespace: ns, Name: "data-clinspark-db-0"},
		}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clinspark-web"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](15),
			Selector: &metav1.LabelSelector{MatchLabels: labels("web")}, Template: pod("web", registry+"/web:14.6.2")}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clinspark-db"}, Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1), ServiceName: "clinspark-db",
			Selector: &metav1.LabelSelector{MatchLabels: labels("db")}, Template: pod("db", registry+"/db:14.6.2"),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: claim}}}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lab-sync"}, Spec: batchv1.CronJobSpec{
			Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "sync", Image: registry + "/lab:2.0"}}}}}}}},
	}
}

func (a *app) plan(name, version string) *upgradesv1alpha1.UpgradePlan {
	return &upgradesv1alpha1.UpgradePlan{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.ops, Name: name, Annotations: map[string]string{upgradesv1alpha1.AnnotationRequestedBy: "rita"}},
		Spec: upgradesv1alpha1.UpgradePlanSpec{
			Application: "clinspark", Change: upgradesv1alpha1.Change{ID: "CHG-" + name},
			Components: []upgradesv1alpha1.Component{
				{Name: "web", Kind: upgradesv1alpha1.KindDeployment, WorkloadName: "clinspark-web", Container: "web", Image: registry + "/web"},
				{Name: "db", Kind: upgradesv1alpha1.KindStatefulSet, WorkloadName: "clinspark-db", Container: "db", Image: registry + "/db"},
			},
			VAL: upgradesv1alpha1.VALEnvironment{Namespace: upgradesv1alpha1.Name(a.ns["val"]), Version: upgradesv1alpha1.Version(version)},
			PROD: upgradesv1alpha1.PRODEnvironment{
				Version: upgradesv1alpha1.Version(version),
				Targets: []upgradesv1alpha1.Target{{Name: "main", Namespace: upgradesv1alpha1.Name(a.ns["main"])}, {Name: "test", Namespace: upgradesv1alpha1.Name(a.ns["test"])}},
				Quiesce: &upgradesv1alpha1.Quiesce{SuspendCronJobs: []upgradesv1alpha1.ObjectName{"lab-sync"}},
				Backup: &upgradesv1alpha1.Backup{Jobs: []upgradesv1alpha1.JobTemplate{{Name: "db-dump", Template: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
						Containers: []corev1.Container{{Name: "dump", Image: registry + "/db-tools:14.6"}}}}}}}}},
			},
		},
	}
}

// as is a client for a person, through impersonation.
func as(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	impersonated := rest.CopyConfig(config)
	impersonated.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	c, err := client.New(impersonated, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// annotate patches the plan's annotations as c's user, as kubectl annotate.
func annotate(c client.Client, plan *upgradesv1alpha1.UpgradePlan, kv ...string) error {
	values := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		values[kv[i]] = kv[i+1]
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": values}})
	return c.Patch(context.Background(), plan.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
}

func approve(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) {
	t.Helper()
	version := string(plan.Spec.VAL.Version)
	if err := annotate(as(t, "alice"), plan, upgradesv1alpha1.AnnotationUATApprovedVersion, version, upgradesv1alpha1.AnnotationUATApprovedBy, "alice"); err != nil {
		t.Fatalf("alice approving: %v", err)
	}
}

func decide(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, target, decision string) {
	t.Helper()
	err := annotate(as(t, "carol", "clinical-safety"), plan,
		upgradesv1alpha1.DecisionAnnotation(target), decision, upgradesv1alpha1.DecidedByAnnotation(target), "carol")
	if err != nil {
		t.Fatalf("carol deciding %s for %s: %v", decision, target, err)
	}
}

// waitFor waits until the plan satisfies done, as kubectl get would show it.
func waitFor(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, what string, done func(*upgradesv1alpha1.UpgradePlan) bool) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	got := &upgradesv1alpha1.UpgradePlan{}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err := admin.Get(context.Background(), client.ObjectKeyFromObject(plan), got); err == nil && done(got) {
			return got
		}
	}
	t.Fatalf("plan %s/%s did not become %s within 3m; phase %s, conditions %+v", plan.Namespace, plan.Name, what, got.Status.Phase, got.Status.Conditions)
	return nil
}

func waitPhase(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, phase upgradesv1alpha1.Phase, target string) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	return waitFor(t, plan, string(phase)+" "+target, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == phase && (target == "" || p.Status.CurrentTarget == target)
	})
}

// images returns the web and db images of an environment.
func (a *app) images(t *testing.T, env string) (string, string) {
	t.Helper()
	web, db := &appsv1.Deployment{}, &appsv1.StatefulSet{}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: a.ns[env], Name: "clinspark-web"}, web); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: a.ns[env], Name: "clinspark-db"}, db); err != nil {
		t.Fatal(err)
	}
	return web.Spec.Template.Spec.Containers[0].Image, db.Spec.Template.Spec.Containers[0].Image
}

func (a *app) expectVersion(t *testing.T, env, version string) {
	t.Helper()
	web, db := a.images(t, env)
	if web != registry+"/web:"+version || db != registry+"/db:"+version {
		t.Errorf("%s runs %s and %s; want version %s", env, web, db, version)
	}
}

func (a *app) suspended(t *testing.T, env string) bool {
	t.Helper()
	cronJob := &batchv1.CronJob{}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: a.ns[env], Name: "lab-sync"}, cronJob); err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(cronJob.Spec.Suspend, false)
}

func TestHappyPath(t *testing.T) {
	a := newApp(t, "happy")
	plan := a.plan("clinspark-14-7", "14.7.0")
	// Tonight's outage window, open already.
	start, end := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second)), metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	plan.Spec.PROD.Window = &upgradesv1alpha1.Window{Start: &start, End: &end}
	if err := as(t, "rita").Create(context.Background(), plan); err != nil {
		t.Fatalf("rita filing the plan: %v", err)
	}
	waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	a.expectVersion(t, "val", "14.7.0")
	claim := &corev1.PersistentVolumeClaim{}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: a.ns["main"], Name: "data-clinspark-db-0"}, claim); err != nil || claim.Status.Phase != corev1.ClaimBound {
		t.Errorf("the db's claim in MAIN is not bound to its static volume (%v, %s)", err, claim.Status.Phase)
	}

	approve(t, plan)
	got := waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	a.expectVersion(t, "main", "14.7.0")
	a.expectVersion(t, "test", "14.6.2")
	if !a.suspended(t, "main") || !a.suspended(t, "test") {
		t.Error("lab-sync was not suspended in PROD while it changes")
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, upgradesv1alpha1.ConditionWindowOpen) {
		t.Error("WindowOpen is not True while PROD changes inside the window")
	}
	if len(got.Status.Snapshots) != 2 || !meta.IsStatusConditionTrue(got.Status.Conditions, upgradesv1alpha1.ConditionBackupReady) {
		t.Errorf("snapshots %+v; want both targets backed up and verified", got.Status.Snapshots)
	}

	decide(t, plan, "main", upgradesv1alpha1.DecisionGo)
	waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "test")
	decide(t, plan, "test", upgradesv1alpha1.DecisionGo)
	a.expectCompleted(t, plan)
}

// expectCompleted waits until the plan is Ready and asserts what a person
// would check: every environment at 14.7.0, lab-sync resumed, and an audit
// trail holding exactly alice's UAT approval and carol's two gos.
func (a *app) expectCompleted(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	got := waitFor(t, plan, "Ready", func(p *upgradesv1alpha1.UpgradePlan) bool {
		return meta.IsStatusConditionTrue(p.Status.Conditions, upgradesv1alpha1.ConditionReady)
	})
	for _, env := range []string{"val", "main", "test"} {
		a.expectVersion(t, env, "14.7.0")
	}
	if a.suspended(t, "main") || a.suspended(t, "test") {
		t.Error("lab-sync is still suspended after the plan completed")
	}
	var trail []string
	for _, ap := range got.Status.Approvals {
		trail = append(trail, string(ap.Kind)+" "+ap.Target+" "+ap.Decision+" "+ap.User)
	}
	if strings.Join(trail, "; ") != "UAT   alice; Decision main go carol; Decision test go carol" {
		t.Errorf("audit trail %q; want exactly alice's UAT approval and carol's two gos", trail)
	}
	return got
}

func TestBrokenReleaseRollsBackOnItsOwn(t *testing.T) {
	a := newApp(t, "broken")
	plan := a.plan("clinspark-14-9", "14.9.9")
	if err := as(t, "rita").Create(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	approve(t, plan)
	got := waitPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	if c := meta.FindStatusCondition(got.Status.Conditions, upgradesv1alpha1.ConditionRolledBack); c == nil || c.Reason != upgradesv1alpha1.ReasonRolloutFailed {
		t.Errorf("RolledBack = %+v; want it rolled back because the rollout failed", c)
	}
	a.expectVersion(t, "main", "14.6.2")
	a.expectVersion(t, "test", "14.6.2")
	if a.suspended(t, "main") {
		t.Error("lab-sync is still suspended after the rollback")
	}
}

func TestNoGoAfterMain(t *testing.T) {
	a := newApp(t, "nogo")
	plan := a.plan("clinspark-14-7", "14.7.0")
	if err := as(t, "rita").Create(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	approve(t, plan)
	waitPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	decide(t, plan, "main", upgradesv1alpha1.DecisionNoGo)
	got := waitPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	a.expectVersion(t, "main", "14.6.2")
	a.expectVersion(t, "test", "14.6.2")
	for _, step := range got.Status.Steps {
		if step.Name == upgradesv1alpha1.StepUpgradePROD && step.Target == "test" {
			t.Error("TEST was touched after MAIN's no-go")
		}
	}
	web := &appsv1.Deployment{}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: a.ns["main"], Name: "clinspark-web"}, web); err != nil || web.Status.AvailableReplicas != 2 {
		t.Errorf("MAIN's web is not back and available: %v, %d available", err, web.Status.AvailableReplicas)
	}
}

func TestUnauthorizedApprovalIsRefused(t *testing.T) {
	a := newApp(t, "forged")
	plan := a.plan("clinspark-14-7", "14.7.0")
	if err := as(t, "rita").Create(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	err := annotate(as(t, "eve"), plan, upgradesv1alpha1.AnnotationUATApprovedVersion, "14.7.0", upgradesv1alpha1.AnnotationUATApprovedBy, "eve")
	if err == nil || !strings.Contains(err.Error(), "eve may not approve") {
		t.Errorf("eve, who may not approve, approved: %v", err)
	}
	err = annotate(as(t, "bob"), plan, upgradesv1alpha1.AnnotationUATApprovedVersion, "14.7.0", upgradesv1alpha1.AnnotationUATApprovedBy, "alice")
	if err == nil || !strings.Contains(err.Error(), "add only yourself, bob") {
		t.Errorf("bob approved in alice's name: %v", err)
	}
}
