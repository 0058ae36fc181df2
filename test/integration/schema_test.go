package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// fullPlan is a valid plan that sets every part of the spec, so that each
// malformed case below changes exactly one thing.
const fullPlan = `
apiVersion: upgrades.changegate.dev/v1alpha1
kind: UpgradePlan
spec:
  application: clinspark
  change: { id: CHG-2024-1147, releaseNotes: "https://docs.example.org/clinspark/14.7", summary: Maintenance release }
  components:
    - { name: web, kind: Deployment, workloadName: clinspark-web, container: web, image: registry.example.org/clinspark/web }
    - { name: db, kind: StatefulSet, workloadName: clinspark-db, container: db, image: "localhost:5000/clinspark/db" }
  val:
    namespace: clinspark-val
    version: "14.7.0"
    checks:
      - { name: login, http: { url: "http://web.clinspark-val.svc:8080/healthz", expectedStatus: 200, bodyContains: ok }, interval: 10s, timeout: 5s, successThreshold: 3, failureThreshold: 3, soak: 5m }
    hooks:
      preUpgrade:
        - { name: announce, template: { spec: { template: { spec: { restartPolicy: Never, containers: [ { name: a, image: busybox } ] } } } } }
  uat:
    approvers: { users: [alice], groups: [clinical-safety] }
    requiredApprovals: 1
  prod:
    version: "14.7.0"
    targets:
      - { name: main, namespace: clinspark-prod-main }
      - { name: test, namespace: clinspark-prod-test }
    window: { start: "2024-11-01T16:00:00Z", end: "2024-11-02T00:36:00Z" }
    freezes: [ { start: "2024-12-20T00:00:00Z", end: "2025-01-03T00:00:00Z", reason: year end } ]
    onWindowEnd: Rollback
    quiesce: { scaleDown: [ { kind: Deployment, name: lab-transfer } ], suspendCronJobs: [lab-sync] }
    backup: { volumeSnapshots: { className: csi-snapclass, pvcSelector: { matchLabels: { app: clinspark } } } }
    restore: { volumes: true, maxDuration: 1h }
    checks:
      - { name: error-rate, prometheus: { address: "http://prometheus.monitoring:9090", query: "sum(up)", max: 0.01 } }
    decision: { approvers: { users: [carol] }, timeout: 5h }
    rollback: { automatic: true }
  notifications:
    - { name: service-desk, webhook: { urlSecretRef: { name: changegate-hooks, key: url } }, events: [PhaseChanged, Failed] }
`

// minimalPlan has only what the schema requires: no prod.version yet, no
// window, no checks.
const minimalPlan = `
apiVersion: upgrades.changegate.dev/v1alpha1
kind: UpgradePlan
spec:
  application: clinspark
  change: { id: CHG-1 }
  components:
    - { name: web, kind: Deployment, workloadName: clinspark-web, container: web, image: registry.example.org/clinspark/web }
  val: { namespace: clinspark-val, version: "14.7.0" }
  prod:
    targets: [ { name: main, namespace: clinspark-prod-main } ]
`

func planFromYAML(t *testing.T, doc, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("parsing plan: %v", err)
	}
	obj.SetNamespace(namespace)
	obj.SetName(name)
	return obj
}

// path addresses a field: strings are keys, ints are list indexes.
type path []any

func walk(t *testing.T, obj map[string]any, p path) (any, func(any)) {
	t.Helper()
	var cur any = obj
	for i, step := range p[:len(p)-1] {
		switch key := step.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %v: step %d is not an object", p, i)
			}
			if _, ok := m[key]; !ok {
				m[key] = map[string]any{}
			}
			cur = m[key]
		case int:
			cur = cur.([]any)[key]
		}
	}
	parent, last := cur, p[len(p)-1]
	switch key := last.(type) {
	case string:
		m := parent.(map[string]any)
		return m[key], func(v any) {
			if v == nil {
				delete(m, key)
			} else {
				m[key] = v
			}
		}
	case int:
		l := parent.([]any)
		return l[key], func(v any) { l[key] = v }
	}
	t.Fatalf("bad path %v", p)
	return nil, nil
}

func set(p path, value any) func(*testing.T, map[string]any) {
	return func(t *testing.T, obj map[string]any) { _, assign := walk(t, obj, p); assign(value) }
}

func remove(p path) func(*testing.T, map[string]any) { return set(p, nil) }

func appendTo(p path, value any) func(*testing.T, map[string]any) {
	return func(t *testing.T, obj map[string]any) {
		cur, assign := walk(t, obj, p)
		list, _ := cur.([]any)
		assign(append(list, value))
	}
}

// updatePlan applies mutate to the newest version of the plan and updates
// it, retrying when the operator wrote status in between, as kubectl edit
// would have the user do.
func updatePlan(t *testing.T, plan *unstructured.Unstructured, mutate func(*testing.T, map[string]any)) error {
	t.Helper()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(plan), plan); err != nil {
			return err
		}
		mutate(t, plan.Object)
		return k8s.Update(context.Background(), plan)
	})
}

// yamlValue parses a YAML fragment into what unstructured holds.
func yamlValue(doc string) any {
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		panic(err)
	}
	return v
}

func manyComponents(n int) any {
	list := make([]any, n)
	for i := range list {
		list[i] = yamlValue(fmt.Sprintf("{ name: c%d, kind: Deployment, workloadName: w%d, container: c, image: registry.example.org/app/c%d }", i, i, i))
	}
	return list
}

// fieldError finds the cause the API server gave for field and returns its
// message, failing when the request was not rejected as invalid or no cause
// names that field.
func fieldError(t *testing.T, err error, field string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("the API server accepted the plan; want a rejection naming %s", field)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error naming %s, got: %v", field, err)
	}
	var fields []string
	if details := status.Status().Details; details != nil {
		for _, cause := range details.Causes {
			if cause.Field == field {
				return cause.Message
			}
			fields = append(fields, cause.Field)
		}
	}
	t.Fatalf("no cause names %s; causes name %v; error: %v", field, fields, err)
	return ""
}

func TestSchemaRejectsMalformedPlans(t *testing.T) {
	ns := createNamespace(t, "schema-reject")
	longVersion := strings.Repeat("1", 129)

	cases := []struct {
		name    string
		mutate  func(*testing.T, map[string]any)
		field   string
		message string
	}{
		{"application missing", remove(path{"spec", "application"}), "spec.application", "Required value"},
		{"application not a DNS label", set(path{"spec", "application"}, "Clin Spark"), "spec.application", "must be a DNS label"},
		{"change id missing", remove(path{"spec", "change", "id"}), "spec.change.id", "Required value"},
		{"change id with spaces", set(path{"spec", "change", "id"}, "CHG 2024"), "spec.change.id", "must start with a letter or digit"},
		{"release notes not a URL", set(path{"spec", "change", "releaseNotes"}, "see the wiki"), "spec.change.releaseNotes", "absolute http or https URL"},
		{"no components", set(path{"spec", "components"}, []any{}), "spec.components", "at least 1"},
		{"33 components", set(path{"spec", "components"}, manyComponents(33)), "spec.components", "must have at most 32 items"},
		{"duplicate component names", set(path{"spec", "components", 1, "name"}, "web"), "spec.components[1]", "Duplicate value"},
		{"component kind CronJob", set(path{"spec", "components", 0, "kind"}, "CronJob"), "spec.components[0].kind", `supported values: "Deployment", "StatefulSet", "DaemonSet"`},
		{"image with a tag", set(path{"spec", "components", 0, "image"}, "registry.example.org/clinspark/web:14.7.0"), "spec.components[0].image", "without tag or digest"},
		{"image with a digest", set(path{"spec", "components", 0, "image"}, "registry.example.org/clinspark/web@sha256:0123"), "spec.components[0].image", "without tag or digest"},
		{"image short name with a tag", set(path{"spec", "components", 0, "image"}, "web:10"), "spec.components[0].image", "without tag or digest"},
		{"container not a DNS label", set(path{"spec", "components", 0, "container"}, "Web_1"), "spec.components[0].container", "must be a DNS label"},
		{"workload name invalid", set(path{"spec", "components", 0, "workloadName"}, "clinspark_web"), "spec.components[0].workloadName", "must be a Kubernetes object name"},
		{"two components, same container", set(path{"spec", "components", 1}, yamlValue("{ name: web2, kind: Deployment, workloadName: clinspark-web, container: web, image: registry.example.org/clinspark/web }")), "spec.components", "same container of the same workload"},
		{"val version missing", remove(path{"spec", "val", "version"}), "spec.val.version", "Required value"},
		{"val version not a tag", set(path{"spec", "val", "version"}, ".14.7"), "spec.val.version", "must be a valid image tag"},
		{"val version with a colon", set(path{"spec", "val", "version"}, "14.7:0"), "spec.val.version", "must be a valid image tag"},
		{"val version too long", set(path{"spec", "val", "version"}, longVersion), "spec.val.version", "may not be more than 128"},
		{"val namespace missing", remove(path{"spec", "val", "namespace"}), "spec.val.namespace", "Required value"},
		{"val namespace not a DNS label", set(path{"spec", "val", "namespace"}, "ClinSpark.VAL"), "spec.val.namespace", "must be a DNS label"},
		{"no PROD targets", set(path{"spec", "prod", "targets"}, []any{}), "spec.prod.targets", "at least 1"},
		{"target name too long for an annotation key", set(path{"spec", "prod", "targets", 0, "name"}, strings.Repeat("m", 53)), "spec.prod.targets[0].name", "decided-by.<target>"},
		{"duplicate target names", set(path{"spec", "prod", "targets", 1, "name"}, "main"), "spec.prod.targets[1]", "Duplicate value"},
		{"two targets, one namespace", set(path{"spec", "prod", "targets", 1, "namespace"}, "clinspark-prod-main"), "spec.prod.targets", "two targets use the same namespace"},
		{"target in the VAL namespace", set(path{"spec", "prod", "targets", 1, "namespace"}, "clinspark-val"), "spec.prod.targets", "cannot use the VAL namespace"},
		{"prod version not a tag", set(path{"spec", "prod", "version"}, "14.7.0 final"), "spec.prod.version", "must be a valid image tag"},
		{"window ends before it starts", set(path{"spec", "prod", "window", "end"}, "2024-11-01T15:00:00Z"), "spec.prod.window.end", "end must be after start"},
		{"window start not a time", set(path{"spec", "prod", "window", "start"}, "Friday evening"), "spec.prod.window.start", "date-time"},
		{"window both one-off and recurring", set(path{"spec", "prod", "window", "schedule"}, "0 18 * * 5"), "spec.prod.window", "set either start and end"},
		{"window start without end", remove(path{"spec", "prod", "window", "end"}), "spec.prod.window", "set either start and end"},
		{"window schedule not cron", set(path{"spec", "prod", "window"}, yamlValue(`{ schedule: "every friday", duration: 6h }`)), "spec.prod.window.schedule", "five fields"},
		{"window duration in words", set(path{"spec", "prod", "window"}, yamlValue(`{ schedule: "0 18 * * 5", duration: "6 hours" }`)), "spec.prod.window.duration", "must be a duration such as"},
		{"window time zone malformed", set(path{"spec", "prod", "window"}, yamlValue(`{ schedule: "0 18 * * 5", duration: 6h, timeZone: "GMT +1" }`)), "spec.prod.window.timeZone", "IANA time zone"},
		{"time zone on a one-off window", set(path{"spec", "prod", "window", "timeZone"}, "Europe/London"), "spec.prod.window.timeZone", "only to a recurring window"},
		{"freeze ends before it starts", set(path{"spec", "prod", "freezes", 0, "end"}, "2024-12-01T00:00:00Z"), "spec.prod.freezes[0].end", "end must be after start"},
		{"onWindowEnd unknown", set(path{"spec", "prod", "onWindowEnd"}, "Pause"), "spec.prod.onWindowEnd", `supported values: "Rollback", "Continue"`},
		{"check with http and job", set(path{"spec", "val", "checks", 0, "job"}, yamlValue("{ template: { spec: {} } }")), "spec.val.checks[0]", "exactly one of http, job or prometheus"},
		{"check with no kind", remove(path{"spec", "val", "checks", 0, "http"}), "spec.val.checks[0]", "exactly one of http, job or prometheus"},
		{"http check ftp URL", set(path{"spec", "val", "checks", 0, "http", "url"}, "ftp://web/healthz"), "spec.val.checks[0].http.url", "absolute http or https URL"},
		{"http check status 700", set(path{"spec", "val", "checks", 0, "http", "expectedStatus"}, 700), "spec.val.checks[0].http.expectedStatus", "less than or equal to 599"},
		{"check interval in words", set(path{"spec", "val", "checks", 0, "interval"}, "10 seconds"), "spec.val.checks[0].interval", "must be a duration such as"},
		{"check soak without unit", set(path{"spec", "val", "checks", 0, "soak"}, "300"), "spec.val.checks[0].soak", "must be a duration such as"},
		{"check successThreshold 0", set(path{"spec", "val", "checks", 0, "successThreshold"}, 0), "spec.val.checks[0].successThreshold", "greater than or equal to 1"},
		{"check failureThreshold a word", set(path{"spec", "val", "checks", 0, "failureThreshold"}, "three"), "spec.val.checks[0].failureThreshold", "must be of type integer"},
		{"prometheus min above max", set(path{"spec", "prod", "checks", 0, "prometheus", "min"}, 0.5), "spec.prod.checks[0].prometheus", "min must not be greater than max"},
		{"prometheus without bounds", remove(path{"spec", "prod", "checks", 0, "prometheus", "max"}), "spec.prod.checks[0].prometheus", "set min, max or both"},
		{"prometheus query empty", set(path{"spec", "prod", "checks", 0, "prometheus", "query"}, ""), "spec.prod.checks[0].prometheus.query", "at least 1"},
		{"restore volumes without volume snapshots", remove(path{"spec", "prod", "backup"}), "spec.prod.restore.volumes", "needs backup.volumeSnapshots"},
		{"restore maxDuration in words", set(path{"spec", "prod", "restore", "maxDuration"}, "1 hour"), "spec.prod.restore.maxDuration", "must be a duration such as"},
		{"decision timeout in words", set(path{"spec", "prod", "decision", "timeout"}, "soon"), "spec.prod.decision.timeout", "must be a duration such as"},
		{"requiredApprovals 0", set(path{"spec", "uat", "requiredApprovals"}, 0), "spec.uat.requiredApprovals", "greater than or equal to 1"},
		{"approver with a comma", set(path{"spec", "uat", "approvers", "users", 0}, "alice,bob"), "spec.uat.approvers.users[0]", "single username"},
		{"duplicate approver", appendTo(path{"spec", "uat", "approvers", "users"}, "alice"), "spec.uat.approvers.users[1]", "Duplicate value"},
		{"quiesce a component", set(path{"spec", "prod", "quiesce", "scaleDown", 0, "name"}, "clinspark-web"), "spec.prod.quiesce.scaleDown", "cannot also be scaled down"},
		{"quiesce a DaemonSet", set(path{"spec", "prod", "quiesce", "scaleDown", 0, "kind"}, "DaemonSet"), "spec.prod.quiesce.scaleDown[0].kind", `supported values: "Deployment", "StatefulSet"`},
		{"hook without a name", remove(path{"spec", "val", "hooks", "preUpgrade", 0, "name"}), "spec.val.hooks.preUpgrade[0].name", "Required value"},
		{"notification event unknown", set(path{"spec", "notifications", 0, "events", 0}, "Exploded"), "spec.notifications[0].events[0]", "supported values"},
		{"notification secret key invalid", set(path{"spec", "notifications", 0, "webhook", "urlSecretRef", "key"}, "web hook"), "spec.notifications[0].webhook.urlSecretRef.key", "must be a Secret key"},
		// A rule on the whole object has no field path: the API server names it <nil>.
		{"plan name too long for a label", set(path{"metadata", "name"}, strings.Repeat("p", 64)), "<nil>", "at most 63 characters"},
		{"volume snapshot class missing", remove(path{"spec", "prod", "backup", "volumeSnapshots", "className"}), "spec.prod.backup.volumeSnapshots.className", "Required value"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := planFromYAML(t, fullPlan, ns, fmt.Sprintf("malformed-%d", i))
			tc.mutate(t, plan.Object)
			err := k8s.Create(context.Background(), plan)
			message := fieldError(t, err, tc.field)
			if !strings.Contains(message, tc.message) {
				t.Errorf("the error for %s says %q; want it to contain %q", tc.field, message, tc.message)
			}
		})
	}
}

func TestSchemaAcceptsValidPlans(t *testing.T) {
	ns := createNamespace(t, "schema-accept")
	ctx := context.Background()

	t.Run("full plan", func(t *testing.T) {
		if err := k8s.Create(ctx, planFromYAML(t, fullPlan, ns, "full")); err != nil {
			t.Fatalf("a plan using every field was rejected: %v", err)
		}
	})

	t.Run("minimal plan gets defaults", func(t *testing.T) {
		if err := k8s.Create(ctx, planFromYAML(t, minimalPlan, ns, "minimal")); err != nil {
			t.Fatalf("a minimal plan (no prod.version, no window, no checks) was rejected: %v", err)
		}
		plan := &upgradesv1alpha1.UpgradePlan{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "minimal"}, plan); err != nil {
			t.Fatal(err)
		}
		if plan.Spec.PROD.OnWindowEnd != upgradesv1alpha1.WindowEndRollback {
			t.Errorf("prod.onWindowEnd defaults to %q; want Rollback", plan.Spec.PROD.OnWindowEnd)
		}
	})

	t.Run("recurring window", func(t *testing.T) {
		plan := planFromYAML(t, fullPlan, ns, "recurring")
		set(path{"spec", "prod", "window"}, yamlValue(`{ schedule: "0 18 * * 5", duration: 6h30m, timeZone: Europe/London }`))(t, plan.Object)
		if err := k8s.Create(ctx, plan); err != nil {
			t.Fatalf("a plan with a recurring window was rejected: %v", err)
		}
	})

	t.Run("check defaults", func(t *testing.T) {
		plan := planFromYAML(t, fullPlan, ns, "check-defaults")
		set(path{"spec", "val", "checks"}, []any{yamlValue(`{ name: up, http: { url: "https://web:8443/" } }`)})(t, plan.Object)
		set(path{"spec", "uat"}, yamlValue(`{ approvers: { groups: [clinical-safety] } }`))(t, plan.Object)
		if err := k8s.Create(ctx, plan); err != nil {
			t.Fatalf("a plan with an undecorated check was rejected: %v", err)
		}
		typed := &upgradesv1alpha1.UpgradePlan{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(plan), typed); err != nil {
			t.Fatal(err)
		}
		check := typed.Spec.VAL.Checks[0]
		if check.Interval != "10s" || check.SuccessThreshold != 1 || check.FailureThreshold != 3 || check.HTTP.ExpectedStatus != 200 {
			t.Errorf("check defaults are interval=%q successThreshold=%d failureThreshold=%d expectedStatus=%d; want 10s, 1, 3, 200",
				check.Interval, check.SuccessThreshold, check.FailureThreshold, check.HTTP.ExpectedStatus)
		}
		if typed.Spec.UAT.RequiredApprovals != 1 {
			t.Errorf("uat.requiredApprovals defaults to %d; want 1", typed.Spec.UAT.RequiredApprovals)
		}
	})
}

func TestSamplesAreAccepted(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "samples")
	files, err := filepath.Glob(filepath.Join(dir, "upgrades_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", dir, err)
	}
	created := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !created[obj.GetNamespace()] {
			createNamespace(t, obj.GetNamespace())
			created[obj.GetNamespace()] = true
		}
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Errorf("sample %s was rejected: %v", filepath.Base(file), err)
		}
	}
}

func TestSchemaRefusesChangesToImmutableFields(t *testing.T) {
	ns := createNamespace(t, "schema-immutable")
	ctx := context.Background()

	cases := []struct {
		name    string
		start   string
		mutate  func(*testing.T, map[string]any)
		field   string
		message string
	}{
		{"components", fullPlan, set(path{"spec", "components", 0, "image"}, "registry.example.org/other/web"), "spec.components", "components are immutable"},
		{"component removed", fullPlan, set(path{"spec", "components"}, []any{yamlValue("{ name: web, kind: Deployment, workloadName: clinspark-web, container: web, image: registry.example.org/clinspark/web }")}), "spec.components", "components are immutable"},
		{"val.version", fullPlan, set(path{"spec", "val", "version"}, "14.8.0"), "spec.val.version", "val.version is immutable"},
		{"uat changed", fullPlan, set(path{"spec", "uat", "requiredApprovals"}, 2), "spec.uat", "uat is immutable"},
		{"uat removed", fullPlan, remove(path{"spec", "uat"}), "spec.uat", "uat is immutable"},
		{"targets changed", minimalPlan, set(path{"spec", "prod", "targets", 0, "namespace"}, "clinspark-prod-elsewhere"), "spec.prod.targets", "prod.targets are immutable"},
		{"uat added", minimalPlan, set(path{"spec", "uat"}, yamlValue("{ requiredApprovals: 1 }")), "spec.uat", "uat is immutable"},
		{"prod.decision changed", fullPlan, set(path{"spec", "prod", "decision", "timeout"}, "8h"), "spec.prod.decision", "prod.decision is immutable"},
		{"prod.decision approvers widened", fullPlan, remove(path{"spec", "prod", "decision", "approvers"}), "spec.prod.decision", "prod.decision is immutable"},
		{"prod.version once set", fullPlan, set(path{"spec", "prod", "version"}, "14.7.1"), "spec.prod.version", "prod.version is immutable once set"},
		{"prod.version removed once set", fullPlan, remove(path{"spec", "prod", "version"}), "spec.prod.version", "prod.version is immutable once set"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := planFromYAML(t, tc.start, ns, fmt.Sprintf("immutable-%d", i))
			if err := k8s.Create(ctx, plan); err != nil {
				t.Fatalf("creating the plan: %v", err)
			}
			err := updatePlan(t, plan, tc.mutate)
			message := fieldError(t, err, tc.field)
			if !strings.Contains(message, tc.message) {
				t.Errorf("the error for %s says %q; want it to contain %q", tc.field, message, tc.message)
			}
		})
	}

	t.Run("prod.version may be set once by a pipeline", func(t *testing.T) {
		plan := planFromYAML(t, minimalPlan, ns, "promote")
		if err := k8s.Create(ctx, plan); err != nil {
			t.Fatal(err)
		}
		if err := updatePlan(t, plan, set(path{"spec", "prod", "version"}, "14.7.0")); err != nil {
			t.Fatalf("setting an empty prod.version was refused: %v", err)
		}
	})

	t.Run("mutable fields still change", func(t *testing.T) {
		plan := planFromYAML(t, fullPlan, ns, "mutable")
		if err := k8s.Create(ctx, plan); err != nil {
			t.Fatal(err)
		}
		err := updatePlan(t, plan, func(t *testing.T, obj map[string]any) {
			set(path{"spec", "paused"}, true)(t, obj)
			set(path{"spec", "prod", "window", "end"}, "2024-11-02T02:00:00Z")(t, obj)
		})
		if err != nil {
			t.Fatalf("pausing the plan and moving the window end was refused: %v", err)
		}
	})
}

func TestUpgradeSnapshotIsImmutable(t *testing.T) {
	ns := createNamespace(t, "snapshot-immutable")
	ctx := context.Background()
	replicas := int32(2)
	snapshot := &upgradesv1alpha1.UpgradeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plan-main"},
		Spec: upgradesv1alpha1.UpgradeSnapshotSpec{
			Plan: "plan", Target: "main", Namespace: "clinspark-prod-main", Version: "14.6.2",
			Workloads: []upgradesv1alpha1.WorkloadRecord{{Component: "web", Kind: upgradesv1alpha1.KindDeployment, Name: "clinspark-web", Replicas: &replicas}},
			Checksum:  "sha256:00",
		},
	}
	if err := k8s.Create(ctx, snapshot); err != nil {
		t.Fatalf("creating a snapshot: %v", err)
	}
	snapshot.Spec.Version = "14.7.0"
	err := k8s.Update(ctx, snapshot)
	if message := fieldError(t, err, "spec"); !strings.Contains(message, "cannot be changed") {
		t.Errorf("changing a recorded snapshot says %q; want it to say it cannot be changed", message)
	}
}
