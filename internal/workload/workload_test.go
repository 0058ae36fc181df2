package workload

import (
	"encoding/json"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestTag(t *testing.T) {
	cases := map[string]string{
		"registry.example.org/clinspark/web:14.7.0": "14.7.0",
		"localhost:5000/web:1.2":                    "1.2",
		"localhost:5000/web":                        "",
		"web":                                       "",
		"web:latest":                                "latest",
		"registry.example.org/web:14.7@sha256:abc": "14.7",
		"registry.example.org/web@sha256:abc":      "",
	}
	for image, want := range cases {
		if got := Tag(image); got != want {
			t.Errorf("Tag(%q) = %q; want %q", image, got, want)
		}
	}
}

func TestImagePatchNamesOnlyTheContainer(t *testing.T) {
	var patch map[string]any
	if err := json.Unmarshal(ImagePatch("web", "r/web:2"), &patch); err != nil {
		t.Fatal(err)
	}
	containers := patch["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	if len(containers) != 1 {
		t.Fatalf("the patch touches %d containers; want 1", len(containers))
	}
	c := containers[0].(map[string]any)
	if len(c) != 2 || c["name"] != "web" || c["image"] != "r/web:2" {
		t.Errorf("the patch sets %v; want only name=web and image=r/web:2", c)
	}
}

func TestContainerImage(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "sidecar", Image: "proxy:1"}, {Name: "web", Image: "r/web:1"}}
	if image, err := ContainerImage(d, "web"); err != nil || image != "r/web:1" {
		t.Errorf("ContainerImage(web) = %q, %v; want r/web:1", image, err)
	}
	if _, err := ContainerImage(d, "db"); err == nil || err.Error() != `container "db" not found in ns/web` {
		t.Errorf("a missing container gives %v; want an error naming it and the workload", err)
	}
}

func TestRolloutStatus(t *testing.T) {
	start := time.Date(2024, 11, 1, 16, 0, 0, 0, time.UTC)
	soon, late := start.Add(time.Minute), start.Add(DefaultRolloutDeadline+time.Second)
	deployment := func(generation, observed int64, updated, available int32, conditions ...appsv1.DeploymentCondition) client.Object {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: generation}}
		d.Spec.Replicas = ptr.To[int32](2)
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: updated + (2 - updated), UpdatedReplicas: updated, AvailableReplicas: available, Conditions: conditions}
		return d
	}
	statefulSet := func(generation, observed int64, updated, ready int32, current, update string) client.Object {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", Generation: generation}}
		s.Spec.Replicas = ptr.To[int32](2)
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: observed, UpdatedReplicas: updated, ReadyReplicas: ready, CurrentRevision: current, UpdateRevision: update}
		return s
	}
	daemonSet := func(generation, observed int64, desired, updated, available int32) client.Object {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "agent", Generation: generation}}
		d.Status = appsv1.DaemonSetStatus{ObservedGeneration: observed, DesiredNumberScheduled: desired, UpdatedNumberScheduled: updated, NumberAvailable: available}
		return d
	}
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet web-2 has timed out progressing."}

	cases := []struct {
		name string
		obj  client.Object
		now  time.Time
		want RolloutState
	}{
		{"deployment done", deployment(2, 2, 2, 2), soon, RolloutComplete},
		{"deployment spec not yet observed", deployment(3, 2, 2, 2), soon, RolloutProgressing},
		{"deployment half updated", deployment(2, 2, 1, 2), soon, RolloutProgressing},
		{"deployment updated, not available", deployment(2, 2, 2, 1), soon, RolloutProgressing},
		{"deployment past its progress deadline", deployment(2, 2, 1, 1, deadline), soon, RolloutFailed},
		{"deployment waits for its own deadline, not ours", deployment(2, 2, 1, 1), late, RolloutProgressing},
		{"statefulset done", statefulSet(2, 2, 2, 2, "r2", "r2"), soon, RolloutComplete},
		{"statefulset revision not current", statefulSet(2, 2, 2, 2, "r1", "r2"), soon, RolloutProgressing},
		{"statefulset not ready", statefulSet(2, 2, 2, 1, "r2", "r2"), soon, RolloutProgressing},
		{"statefulset over the deadline", statefulSet(2, 2, 1, 1, "r1", "r2"), late, RolloutFailed},
		{"daemonset done", daemonSet(2, 2, 3, 3, 3), soon, RolloutComplete},
		{"daemonset not observed", daemonSet(2, 1, 3, 3, 3), soon, RolloutProgressing},
		{"daemonset over the deadline", daemonSet(2, 2, 3, 1, 3), late, RolloutFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RolloutStatus(tc.obj, start, tc.now)
			if got.State != tc.want {
				t.Errorf("state %v (%s); want %v", got.State, got.Message, tc.want)
			}
			if got.Message == "" {
				t.Error("no message for people")
			}
		})
	}
}

func TestStopped(t *testing.T) {
	deployment := func(spec, generation, observed, pods int32) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Namespace, d.Generation = "lab-transfer", "prod", int64(generation)
		d.Spec.Replicas = &spec
		d.Status.ObservedGeneration, d.Status.Replicas = int64(observed), pods
		return d
	}
	tests := []struct {
		name string
		obj  client.Object
		want bool
	}{
		{"scaled to zero and no pods", deployment(0, 2, 2, 0), true},
		{"scaled to zero, pods still running", deployment(0, 2, 2, 1), false},
		{"scale-down not seen by the controller yet", deployment(0, 2, 1, 0), false},
		{"still asks for replicas", deployment(2, 2, 2, 0), false},
		{"statefulset at zero", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](0)}}, true},
		{"daemonsets cannot be scaled", &appsv1.DaemonSet{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, message := Stopped(tt.obj); got != tt.want || (!got && message == "") {
				t.Fatalf("Stopped() = %v, %q; want %v (and a message when false)", got, message, tt.want)
			}
		})
	}
}

func TestReplicas(t *testing.T) {
	if got := *Replicas(&appsv1.Deployment{}); got != 1 {
		t.Fatalf("an unset Deployment replicas is %d, want the API default 1", got)
	}
	if got := *Replicas(&appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)}}); got != 3 {
		t.Fatalf("StatefulSet replicas = %d, want 3", got)
	}
	if Replicas(&appsv1.DaemonSet{}) != nil {
		t.Fatal("a DaemonSet has no replicas")
	}
	if got := string(ReplicasPatch(0)); got != `{"spec":{"replicas":0}}` {
		t.Fatalf("ReplicasPatch(0) = %s", got)
	}
}
