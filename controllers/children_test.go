package controllers

import (
	"context"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// TestRunJobsWhileTheCacheIsBehind checks what a plan says of a Job the
// cache has not seen: after an outage, the cache may not hold a Job the
// plan created before it. The Job is neither created twice nor reported
// as just started.
func TestRunJobsWhileTheCacheIsBehind(t *testing.T) {
	const name = "plan-backup-main-db-dump"
	existing := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "main", Name: name, Labels: map[string]string{"created": "before"}}}
	cases := []struct {
		name        string
		objects     []client.Object
		wantMessage string
	}{
		{"no Job yet", nil, "Job main/" + name + " started"},
		{"a Job the cache has not seen", []client.Object{existing}, "Job main/" + name + " exists; waiting to see its status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			stored := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(tc.objects...).Build()
			// The cache: it has not seen any Job.
			behind := interceptor.NewClient(stored, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*batchv1.Job); ok {
						return apierrors.NewNotFound(batchv1.Resource("jobs"), key.Name)
					}
					return c.Get(ctx, key, obj, opts...)
				},
			})
			r := &UpgradePlanReconciler{Client: behind, APIReader: stored}
			plan := &upgradesv1alpha1.UpgradePlan{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "plan"}}
			templates := []upgradesv1alpha1.JobTemplate{{Name: "db-dump", Template: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dump", Image: "dump:1"}}}},
			}}}}

			done, message, failed, err := r.runJobs(ctx, &scope{plan: plan}, "main", templates, func(upgradesv1alpha1.Name) string { return name })
			if err != nil || done != 0 || failed || message != tc.wantMessage {
				t.Errorf("runJobs = %d, %q, failed %t, %v; want 0, %q, false, nil", done, message, failed, err, tc.wantMessage)
			}
			jobs := &batchv1.JobList{}
			if err := stored.List(ctx, jobs); err != nil {
				t.Fatal(err)
			}
			if len(jobs.Items) != 1 || jobs.Items[0].Name != name {
				t.Fatalf("%d Jobs stored; want exactly the one", len(jobs.Items))
			}
			if tc.objects != nil && jobs.Items[0].Labels["created"] != "before" {
				t.Error("the Job that existed was replaced")
			}
		})
	}
}
