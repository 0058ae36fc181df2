// Package workload knows the three kinds of workload changegate upgrades —
// Deployments, StatefulSets and DaemonSets — without a client: which image a
// container runs, the patch that changes only that image, and whether a
// rollout is done, still going, or failed.
package workload

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// DefaultRolloutDeadline bounds the rollout of StatefulSets and DaemonSets,
// which have no progressDeadlineSeconds of their own.
const DefaultRolloutDeadline = 10 * time.Minute

// New returns an empty object of the kind, to read a workload into.
func New(kind upgradesv1alpha1.WorkloadKind) (client.Object, error) {
	switch kind {
	case upgradesv1alpha1.KindDeployment:
		return &appsv1.Deployment{}, nil
	case upgradesv1alpha1.KindStatefulSet:
		return &appsv1.StatefulSet{}, nil
	case upgradesv1alpha1.KindDaemonSet:
		return &appsv1.DaemonSet{}, nil
	}
	return nil, fmt.Errorf("unsupported workload kind %q", kind)
}

// PodTemplate returns the workload's pod template.
func PodTemplate(obj client.Object) (*corev1.PodTemplateSpec, error) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template, nil
	case *appsv1.StatefulSet:
		return &w.Spec.Template, nil
	case *appsv1.DaemonSet:
		return &w.Spec.Template, nil
	}
	return nil, fmt.Errorf("unsupported workload type %T", obj)
}

// ContainerImage returns the image of the named container, or an error that
// names the container when the workload has none of that name.
func ContainerImage(obj client.Object, container string) (string, error) {
	template, err := PodTemplate(obj)
	if err != nil {
		return "", err
	}
	for _, c := range template.Spec.Containers {
		if c.Name == container {
			return c.Image, nil
		}
	}
	return "", fmt.Errorf("container %q not found in %s/%s", container, obj.GetNamespace(), obj.GetName())
}

// ImageRef joins an image repository and a version into a reference.
func ImageRef(repository upgradesv1alpha1.ImageRepository, version upgradesv1alpha1.Version) string {
	return string(repository) + ":" + string(version)
}

// Tag returns the tag of an image reference, or "" when it has none. A digest
// is ignored; a registry port is not mistaken for a tag.
func Tag(image string) string {
	if at := strings.Index(image, "@"); at >= 0 {
		image = image[:at]
	}
	lastSlash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= lastSlash {
		return ""
	}
	return image[colon+1:]
}

// ImagePatch is a strategic merge patch that sets the image of one container
// of a workload's pod template; every other field and container is left as
// it is, because the API server merges containers by name.
func ImagePatch(container, image string) []byte {
	patch := map[string]any{
		"spec": map[string]any{
			"template": map[string]any{
				"spec": map[string]any{
					"containers": []map[string]any{{"name": container, "image": image}},
				},
			},
		},
	}
	data, err := json.Marshal(patch)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return data
}

// RolloutState is where a workload's rollout stands.
type RolloutState int

// The states of a rollout.
const (
	RolloutProgressing RolloutState = iota
	RolloutComplete
	RolloutFailed
)

// Rollout is the state of a rollout and a sentence about it for people.
type Rollout struct {
	State   RolloutState
	Message string
}

// RolloutStatus says whether the workload's current spec has rolled out.
// since is when the upgrade started; StatefulSets and DaemonSets that are not
// done DefaultRolloutDeadline after it have failed.
func RolloutStatus(obj client.Object, since, now time.Time) Rollout {
	name := obj.GetNamespace() + "/" + obj.GetName()
	var done bool
	var progress string
	switch w := obj.(type) {
	case *appsv1.Deployment:
		for _, c := range w.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				return Rollout{RolloutFailed, fmt.Sprintf("Deployment %s exceeded its progress deadline: %s", name, c.Message)}
			}
		}
		want := replicas(w.Spec.Replicas)
		done = w.Status.ObservedGeneration >= w.Generation &&
			w.Status.UpdatedReplicas == want && w.Status.Replicas == want && w.Status.AvailableReplicas == want
		progress = fmt.Sprintf("Deployment %s: %d of %d replicas updated, %d available", name, w.Status.UpdatedReplicas, want, w.Status.AvailableReplicas)
	case *appsv1.StatefulSet:
		want := replicas(w.Spec.Replicas)
		done = w.Status.ObservedGeneration >= w.Generation &&
			w.Status.UpdatedReplicas == want && w.Status.ReadyReplicas == want &&
			(w.Status.UpdateRevision == "" || w.Status.CurrentRevision == w.Status.UpdateRevision)
		progress = fmt.Sprintf("StatefulSet %s: %d of %d replicas updated, %d ready", name, w.Status.UpdatedReplicas, want, w.Status.ReadyReplicas)
	case *appsv1.DaemonSet:
		want := w.Status.DesiredNumberScheduled
		done = w.Status.ObservedGeneration >= w.Generation &&
			w.Status.UpdatedNumberScheduled == want && w.Status.NumberAvailable == want
		progress = fmt.Sprintf("DaemonSet %s: %d of %d pods updated, %d available", name, w.Status.UpdatedNumberScheduled, want, w.Status.NumberAvailable)
	default:
		return Rollout{RolloutFailed, fmt.Sprintf("unsupported workload type %T", obj)}
	}
	if done {
		return Rollout{RolloutComplete, progress}
	}
	if _, isDeployment := obj.(*appsv1.Deployment); !isDeployment && now.Sub(since) > DefaultRolloutDeadline {
		return Rollout{RolloutFailed, fmt.Sprintf("%s; not rolled out %s after the upgrade started", progress, DefaultRolloutDeadline)}
	}
	return Rollout{RolloutProgressing, progress}
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// Replicas returns the replicas a Deployment or StatefulSet asks for, with
// the API's default of 1 when unset, and nil for a DaemonSet, which has none.
func Replicas(obj client.Object) *int32 {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		n := replicas(w.Spec.Replicas)
		return &n
	case *appsv1.StatefulSet:
		n := replicas(w.Spec.Replicas)
		return &n
	}
	return nil
}

// ReplicasPatch is a merge patch that sets spec.replicas and nothing else.
func ReplicasPatch(n int32) []byte {
	return fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
}

// Stopped reports whether a Deployment or StatefulSet is scaled to zero and
// its controller reports no pods left, with a sentence for people while it
// is not.
func Stopped(obj client.Object) (bool, string) {
	var kind string
	var observed int64
	var pods int32
	switch w := obj.(type) {
	case *appsv1.Deployment:
		kind, observed, pods = "Deployment", w.Status.ObservedGeneration, w.Status.Replicas
	case *appsv1.StatefulSet:
		kind, observed, pods = "StatefulSet", w.Status.ObservedGeneration, w.Status.Replicas
	default:
		return false, fmt.Sprintf("%T %s/%s cannot be scaled down", obj, obj.GetNamespace(), obj.GetName())
	}
	if *Replicas(obj) == 0 && observed >= obj.GetGeneration() && pods == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s %s/%s: waiting for its pods to stop (%d left)", kind, obj.GetNamespace(), obj.GetName(), pods)
}

// Selector returns the label selector of a workload's pods.
func Selector(obj client.Object) *metav1.LabelSelector {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return w.Spec.Selector
	case *appsv1.StatefulSet:
		return w.Spec.Selector
	case *appsv1.DaemonSet:
		return w.Spec.Selector
	}
	return nil
}
