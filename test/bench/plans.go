package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// The application every plan upgrades: clinspark, in its own VAL, MAIN and
// TEST namespaces per plan, from oldVersion to newVersion.
const (
	plansNamespace = "bench-plans"
	oldVersion     = "14.6.2"
	newVersion     = "14.7.0"
	registry       = "registry.example.org/clinspark"
	// requester files every plan; approver signs UAT; decider, a clinical
	// safety officer, takes the go/no-go (testenv.BindPeople binds them).
	requester = "rita"
	approver  = "alice"
	decider   = "carol"
)

// environments are where each plan's components live: VAL and the two PROD
// targets, in the order the plan upgrades them.
var environments = []string{"val", "main", "test"}

// component is one workload of the application.
type component struct {
	name, kind, workload string
}

var components = []component{
	{"web", "Deployment", "clinspark-web"},
	{"db", "StatefulSet", "clinspark-db"},
	{"agent", "DaemonSet", "clinspark-agent"},
}

func namespaceOf(plan, env string) string { return plan + "-" + env }

func image(component, version string) string {
	return fmt.Sprintf("%s/%s:%s", registry, component, version)
}

// appObjects are what one plan's application consists of: per environment,
// a namespace opted in to plans from plansNamespace, and the three
// workloads at oldVersion, each with a log-shipper sidecar the plan must
// leave alone.
func appObjects(plan string) []client.Object {
	var objs []client.Object
	for _, env := range environments {
		ns := namespaceOf(plan, env)
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{upgradesv1alpha1.LabelPlansFrom: plansNamespace}}})
		for _, c := range components {
			template := corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": c.name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: c.name, Image: image(c.name, oldVersion)},
					{Name: "log-shipper", Image: "registry.example.org/infra/log-shipper:3.1"},
				}},
			}
			selector := &metav1.LabelSelector{MatchLabels: template.Labels}
			meta := metav1.ObjectMeta{Namespace: ns, Name: c.workload}
			switch c.kind {
			case "Deployment":
				objs = append(objs, &appsv1.Deployment{ObjectMeta: meta,
					Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector, Template: template}})
			case "StatefulSet":
				objs = append(objs, &appsv1.StatefulSet{ObjectMeta: meta,
					Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: selector, Template: template}})
			case "DaemonSet":
				objs = append(objs, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template}})
			}
		}
	}
	return objs
}

// newPlan is the plan of one application: the three components from
// oldVersion to newVersion, VAL then PROD MAIN then PROD TEST, one UAT
// approval, no window, no quiesce, no volume snapshots or backup Jobs (the
// UpgradeSnapshot of each PROD target is still written and verified). VAL
// has an HTTP check that passes at its first attempt. A plan that rolls
// back has a PROD HTTP check that fails at its first attempt, with
// failureThreshold 1 and automatic rollback; the others have no PROD check,
// since PROD checks keep running, on their interval, while the plan awaits
// its go/no-go.
func newPlan(name, healthURL string, rollsBack bool) *upgradesv1alpha1.UpgradePlan {
	check := func(checkName, path string) upgradesv1alpha1.Check {
		return upgradesv1alpha1.Check{Name: upgradesv1alpha1.Name(checkName),
			HTTP:     &upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(healthURL + path), BodyContains: "ok"},
			Interval: "10s", Timeout: "2s", SuccessThreshold: 1, FailureThreshold: 1}
	}
	plan := &upgradesv1alpha1.UpgradePlan{
		ObjectMeta: metav1.ObjectMeta{Namespace: plansNamespace, Name: name,
			Annotations: map[string]string{upgradesv1alpha1.AnnotationRequestedBy: requester}},
		Spec: upgradesv1alpha1.UpgradePlanSpec{
			Application: "clinspark",
			Change:      upgradesv1alpha1.Change{ID: "CHG-BENCH-" + name, Summary: "clinspark " + newVersion},
			VAL: upgradesv1alpha1.VALEnvironment{Namespace: upgradesv1alpha1.Name(namespaceOf(name, "val")), Version: newVersion,
				Checks: []upgradesv1alpha1.Check{check("login", "/val/"+name)}},
			UAT: &upgradesv1alpha1.UAT{RequiredApprovals: 1},
			PROD: upgradesv1alpha1.PRODEnvironment{
				Version: newVersion,
				Targets: []upgradesv1alpha1.Target{
					{Name: "main", Namespace: upgradesv1alpha1.Name(namespaceOf(name, "main"))},
					{Name: "test", Namespace: upgradesv1alpha1.Name(namespaceOf(name, "test"))},
				},
			},
		},
	}
	for _, c := range components {
		plan.Spec.Components = append(plan.Spec.Components, upgradesv1alpha1.Component{
			Name: upgradesv1alpha1.Name(c.name), Kind: upgradesv1alpha1.WorkloadKind(c.kind), WorkloadName: upgradesv1alpha1.ObjectName(c.workload),
			Container: upgradesv1alpha1.Name(c.name), Image: upgradesv1alpha1.ImageRepository(registry + "/" + c.name)})
	}
	if rollsBack {
		plan.Spec.PROD.Checks = []upgradesv1alpha1.Check{check("orders", "/prod/"+name)}
		plan.Spec.PROD.Rollback = &upgradesv1alpha1.RollbackPolicy{Automatic: ptr.To(true)}
	}
	return plan
}

// person is a client acting as one user, through impersonation, as their
// kubectl would.
func person(config *rest.Config, user string, groups ...string) (client.Client, error) {
	impersonated := rest.CopyConfig(config)
	impersonated.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	return client.New(impersonated, client.Options{Scheme: testenv.Scheme()})
}

// annotate merges annotations into the plan, as kubectl changegate does.
func annotate(ctx context.Context, c client.Client, plan string, annotations map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return err
	}
	obj := &upgradesv1alpha1.UpgradePlan{ObjectMeta: metav1.ObjectMeta{Namespace: plansNamespace, Name: plan}}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// health is the applications' health endpoint, on 127.0.0.1: /val/<plan>
// answers 200 "ok"; /prod/<plan> answers 503, and the time of its first
// failing answer is kept for the plan (failureThreshold 1: that answer
// reaches the threshold).
type health struct {
	url    string
	server *http.Server
	mu     sync.Mutex
	failed map[string]time.Time
}

func startHealth() (*health, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &health{url: "http://" + listener.Addr().String(), failed: map[string]time.Time{}}
	h.server = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if plan, ok := strings.CutPrefix(r.URL.Path, "/prod/"); ok {
			h.mu.Lock()
			if _, seen := h.failed[plan]; !seen {
				h.failed[plan] = time.Now()
			}
			h.mu.Unlock()
			http.Error(w, "orders service unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = h.server.Serve(listener) }()
	return h, nil
}

// failedAt is when the PROD check of the plan first failed.
func (h *health) failedAt(plan string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.failed[plan]
	return at, ok
}

// inParallel runs do for 0..n-1 on workers goroutines and returns the first
// error; after one, the rest are not started.
func inParallel(ctx context.Context, n, workers int, do func(ctx context.Context, i int) error) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(inner, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-inner.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
