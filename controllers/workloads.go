package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/workload"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// getWorkload reads a component's workload in a namespace through reader:
// the cache for watching, the API server before acting.
func (r *UpgradePlanReconciler) getWorkload(ctx context.Context, reader client.Reader, namespace string, component upgradesv1alpha1.Component) (client.Object, error) {
	obj, err := workload.New(component.Kind)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKey{Namespace: namespace, Name: string(component.WorkloadName)}
	return obj, reader.Get(ctx, key, obj)
}

// setImage sets the component's container to image unless it runs it
// already. It asks the API server, not the cache, so that a change made a
// moment ago is seen and never made twice.
func (r *UpgradePlanReconciler) setImage(ctx context.Context, namespace string, component upgradesv1alpha1.Component, image string) error {
	obj, err := r.getWorkload(ctx, r.APIReader, namespace, component)
	if err != nil {
		return fmt.Errorf("reading %s %s/%s: %w", component.Kind, namespace, component.WorkloadName, err)
	}
	current, err := workload.ContainerImage(obj, string(component.Container))
	if err != nil {
		return err
	}
	if current == image {
		return nil
	}
	patch := client.RawPatch(types.StrategicMergePatchType, workload.ImagePatch(string(component.Container), image))
	if err := r.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("setting %s %s/%s container %s to %s: %w", component.Kind, namespace, component.WorkloadName, component.Container, image, err)
	}
	ctrlLog(ctx).Info("set image", "kind", component.Kind, "namespace", namespace, "name", component.WorkloadName, "container", component.Container, "image", image)
	return nil
}

// rollout says how the component's rollout of image stands, from the cache
// the workload watch keeps. A workload whose cached spec does not show the
// image yet is still progressing: its watch event is on the way.
func (r *UpgradePlanReconciler) rollout(ctx context.Context, s *scope, namespace string, component upgradesv1alpha1.Component, image string) (workload.RolloutState, string, error) {
	obj, err := r.getWorkload(ctx, r.Client, namespace, component)
	if err != nil {
		return workload.RolloutProgressing, "", fmt.Errorf("reading %s %s/%s: %w", component.Kind, namespace, component.WorkloadName, err)
	}
	current, err := workload.ContainerImage(obj, string(component.Container))
	if err != nil {
		return workload.RolloutFailed, err.Error(), nil
	}
	if current != image {
		return workload.RolloutProgressing, fmt.Sprintf("%s %s/%s: waiting for %s", component.Kind, namespace, component.WorkloadName, image), nil
	}
	status := workload.RolloutStatus(obj, s.step.StartedAt.Time, s.now)
	return status.State, status.Message, nil
}
