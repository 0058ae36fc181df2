package jobs

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestNew(t *testing.T) {
	template := batchv1.JobTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db", "upgrades.changegate.dev/plan": "forged"}},
		Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](2), TTLSecondsAfterFinished: ptr.To[int32](60), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "dump", Image: "pg:16"}},
		}}},
	}
	job := New(template, "plan-backup-main-dump", "prod-main", map[string]string{"upgrades.changegate.dev/plan": "plan"})
	if job.Name != "plan-backup-main-dump" || job.Namespace != "prod-main" {
		t.Fatalf("job is %s/%s, want prod-main/plan-backup-main-dump", job.Namespace, job.Name)
	}
	if job.Labels["app"] != "db" || job.Labels["upgrades.changegate.dev/plan"] != "plan" {
		t.Fatalf("labels = %v: the template's labels are kept and the plan's win", job.Labels)
	}
	if *job.Spec.BackoffLimit != 2 || job.Spec.Template.Spec.Containers[0].Image != "pg:16" {
		t.Fatalf("spec was not copied from the template: %+v", job.Spec)
	}
	if job.Spec.TTLSecondsAfterFinished != nil {
		t.Fatal("a Job with a TTL would vanish after it ran and be run again")
	}
	job.Spec.Template.Spec.Containers[0].Image = "changed"
	job.Labels["app"] = "changed"
	if template.Spec.Template.Spec.Containers[0].Image != "pg:16" || template.Labels["app"] != "db" {
		t.Fatal("changing the Job changed the template it came from")
	}
}

func TestStatus(t *testing.T) {
	condition := func(kind batchv1.JobConditionType, status corev1.ConditionStatus) batchv1.JobCondition {
		return batchv1.JobCondition{Type: kind, Status: status, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}
	}
	tests := []struct {
		name       string
		conditions []batchv1.JobCondition
		want       State
		message    string
	}{
		{"no conditions is running", nil, Running, "is running"},
		{"complete", []batchv1.JobCondition{condition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue), condition(batchv1.JobComplete, corev1.ConditionTrue)}, Succeeded, "succeeded"},
		{"success decided, pods finishing", []batchv1.JobCondition{condition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue)}, Succeeded, "succeeded"},
		{"failed", []batchv1.JobCondition{condition(batchv1.JobFailureTarget, corev1.ConditionTrue), condition(batchv1.JobFailed, corev1.ConditionTrue)}, Failed, "backoff limit"},
		{"failure decided, pods terminating", []batchv1.JobCondition{condition(batchv1.JobFailureTarget, corev1.ConditionTrue)}, Failed, "BackoffLimitExceeded"},
		{"the final condition's message wins", []batchv1.JobCondition{{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"}, condition(batchv1.JobFailed, corev1.ConditionTrue)}, Failed, "failed: BackoffLimitExceeded: Job has reached"},
		{"a false condition does not count", []batchv1.JobCondition{condition(batchv1.JobFailed, corev1.ConditionFalse)}, Running, "is running"},
		{"suspended is still running", []batchv1.JobCondition{condition(batchv1.JobSuspended, corev1.ConditionTrue)}, Running, "is running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "dump", Namespace: "prod"}, Status: batchv1.JobStatus{Conditions: tt.conditions}}
			got, message := Status(job)
			if got != tt.want || !strings.Contains(message, tt.message) {
				t.Fatalf("Status() = %v, %q; want %v and a message containing %q", got, message, tt.want, tt.message)
			}
		})
	}
}
