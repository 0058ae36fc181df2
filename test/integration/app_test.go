package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// app is a clinical-style application deployed in VAL, MAIN and TEST, and a
// plan to upgrade it from 14.6.2 to 14.7.0.
type app struct {
	name      string
	plansNS   string
	namespace map[string]string // environment → namespace
}

const (
	oldVersion = "14.6.2"
	newVersion = "14.7.0"
	registry   = "registry.example.org/clinspark"
)

func image(component, version string) string {
	return fmt.Sprintf("%s/%s:%s", registry, component, version)
}

// newApp creates the namespaces (opted in to plans from the plans namespace)
// and, in each, a web Deployment with a sidecar, a db StatefulSet and an
// agent DaemonSet, all at oldVersion.
func newApp(t *testing.T, name string) *app {
	t.Helper()
	a := &app{name: name, plansNS: createNamespace(t, name+"-ops"), namespace: map[string]string{}}
	setLabel(t, a.plansNS, policyNamespaceLabel, "true")
	bindPeople(t, a.plansNS)
	for _, env := range []string{"val", "main", "test"} {
		ns := createNamespace(t, name+"-"+env)
		a.namespace[env] = ns
		labelNamespace(t, ns, a.plansNS)
		for _, obj := range a.workloads(ns) {
			if err := k8s.Create(context.Background(), obj); err != nil {
				t.Fatalf("creating %s in %s: %v", obj.GetName(), ns, err)
			}
		}
	}
	return a
}

func labelNamespace(t *testing.T, ns, plansFrom string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := &corev1.Namespace{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns}, obj); err != nil {
			return err
		}
		if obj.Labels == nil {
			obj.Labels = map[string]string{}
		}
		obj.Labels[upgradesv1alpha1.LabelPlansFrom] = plansFrom
		return k8s.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func podTemplate(app, container, img string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: container, Image: img, Env: []corev1.EnvVar{
				{Name: "SITE", Value: "st-elsewhere"},
				{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password"}}},
			}},
			{Name: "log-shipper", Image: "registry.example.org/infra/log-shipper:3.1"},
		}},
	}
}

func (a *app) workloads(ns string) []client.Object {
	selector := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	}
	return []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clinspark-web"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), Selector: selector("web"), Template: podTemplate("web", "web", image("web", oldVersion))}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clinspark-db"}, Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1), Selector: selector("db"), Template: podTemplate("db", "db", image("db", oldVersion)),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{"app": "clinspark"}},
				Spec:       claimSpec(),
			}}}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clinspark-agent"}, Spec: appsv1.DaemonSetSpec{
			Selector: selector("agent"), Template: podTemplate("agent", "agent", image("agent", oldVersion))}},
	}
}

// plan returns a plan over the three components with two PROD targets and
// no window, requested by rita.
func (a *app) plan(name string) *upgradesv1alpha1.UpgradePlan {
	return &upgradesv1alpha1.UpgradePlan{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.plansNS, Name: name,
			Annotations: map[string]string{upgradesv1alpha1.AnnotationRequestedBy: "rita"}},
		Spec: upgradesv1alpha1.UpgradePlanSpec{
			Application: "clinspark",
			Change:      upgradesv1alpha1.Change{ID: "CHG-" + name},
			Components: []upgradesv1alpha1.Component{
				{Name: "web", Kind: upgradesv1alpha1.KindDeployment, WorkloadName: "clinspark-web", Container: "web", Image: registry + "/web"},
				{Name: "db", Kind: upgradesv1alpha1.KindStatefulSet, WorkloadName: "clinspark-db", Container: "db", Image: registry + "/db"},
				{Name: "agent", Kind: upgradesv1alpha1.KindDaemonSet, WorkloadName: "clinspark-agent", Container: "agent", Image: registry + "/agent"},
			},
			VAL: upgradesv1alpha1.VALEnvironment{Namespace: upgradesv1alpha1.Name(a.namespace["val"]), Version: newVersion},
			PROD: upgradesv1alpha1.PRODEnvironment{
				Version: newVersion,
				Targets: []upgradesv1alpha1.Target{
					{Name: "main", Namespace: upgradesv1alpha1.Name(a.namespace["main"])},
					{Name: "test", Namespace: upgradesv1alpha1.Name(a.namespace["test"])},
				},
			},
		},
	}
}

// images returns the image of every container of every workload in env.
func (a *app) images(t *testing.T, env string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, obj := range a.workloads(a.namespace[env]) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		var template corev1.PodTemplateSpec
		switch w := obj.(type) {
		case *appsv1.Deployment:
			template = w.Spec.Template
		case *appsv1.StatefulSet:
			template = w.Spec.Template
		case *appsv1.DaemonSet:
			template = w.Spec.Template
		}
		for _, c := range template.Spec.Containers {
			got[obj.GetName()+"/"+c.Name] = c.Image
		}
	}
	return got
}

// expectImages asserts every component of env runs version and every other
// container is untouched.
func (a *app) expectImages(t *testing.T, env, version string) {
	t.Helper()
	want := map[string]string{
		"clinspark-web/web": image("web", version), "clinspark-db/db": image("db", version), "clinspark-agent/agent": image("agent", version),
		"clinspark-web/log-shipper": "registry.example.org/infra/log-shipper:3.1", "clinspark-db/log-shipper": "registry.example.org/infra/log-shipper:3.1",
		"clinspark-agent/log-shipper": "registry.example.org/infra/log-shipper:3.1",
	}
	got := a.images(t, env)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s runs %s; want %s", env, k, got[k], v)
		}
	}
}

// annotate sets annotations on the plan as user, as their kubectl would.
func annotate(t *testing.T, user string, plan *upgradesv1alpha1.UpgradePlan, kv ...string) {
	t.Helper()
	values := annotations{}
	for i := 0; i+1 < len(kv); i += 2 {
		values[kv[i]] = val(kv[i+1])
	}
	if err := (signedBy{user, values}).apply(t, plan); err != nil {
		t.Fatalf("annotating the plan as %s: %v", user, err)
	}
}

// approveUAT has each of users (comma-separated) approve version in turn,
// each appending themself as kubectl changegate approve does.
func approveUAT(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, version, users string) {
	t.Helper()
	for _, user := range strings.Split(users, ",") {
		current := getPlan(t, plan).Annotations
		list := user
		if current[upgradesv1alpha1.AnnotationUATApprovedVersion] == version && current[upgradesv1alpha1.AnnotationUATApprovedBy] != "" {
			list = current[upgradesv1alpha1.AnnotationUATApprovedBy] + "," + user
		}
		annotate(t, user, plan, upgradesv1alpha1.AnnotationUATApprovedVersion, version, upgradesv1alpha1.AnnotationUATApprovedBy, list)
	}
}

func decide(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, target, decision, user string) {
	annotate(t, user, plan, upgradesv1alpha1.DecisionAnnotation(target), decision, upgradesv1alpha1.DecidedByAnnotation(target), user)
}

// waitForPhase waits until the plan shows phase (and target, when given).
func waitForPhase(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, phase upgradesv1alpha1.Phase, target string) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	return waitForPhaseWithin(t, plan, phase, target, 30*time.Second)
}

// waitForPhaseWithin waits up to timeout until the plan shows phase (and
// target, when given).
func waitForPhaseWithin(t *testing.T, plan *upgradesv1alpha1.UpgradePlan, phase upgradesv1alpha1.Phase, target string, timeout time.Duration) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	return waitForPlan(t, client.ObjectKeyFromObject(plan), timeout, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == phase && (target == "" || p.Status.CurrentTarget == target)
	})
}

// waitForCompleted waits until the plan is Ready: Completed, with its last
// step (un-quiescing) done.
func waitForCompleted(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) *upgradesv1alpha1.UpgradePlan {
	t.Helper()
	return waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseCompleted && condition(p, upgradesv1alpha1.ConditionReady).Status == metav1.ConditionTrue
	})
}

func condition(p *upgradesv1alpha1.UpgradePlan, conditionType string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, conditionType); c != nil {
		return *c
	}
	return metav1.Condition{Type: conditionType, Status: "absent"}
}

func expectCondition(t *testing.T, p *upgradesv1alpha1.UpgradePlan, conditionType string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := condition(p, conditionType)
	if c.Status != status || (reason != "" && c.Reason != reason) {
		t.Errorf("condition %s is %s/%s (%q); want %s/%s", conditionType, c.Status, c.Reason, c.Message, status, reason)
	}
}
