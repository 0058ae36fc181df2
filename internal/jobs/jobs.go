// Package jobs builds the Jobs a plan runs (backups, restores, hooks) from
// their templates and reads how they ended.
package jobs

import (
	"fmt"
	"maps"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// New returns the Job to create from a template: named name, in namespace,
// carrying labels on top of the template's own.
func New(template batchv1.JobTemplateSpec, name, namespace string, labels map[string]string) *batchv1.Job {
	job := &batchv1.Job{Spec: *template.Spec.DeepCopy()}
	job.Name, job.Namespace = name, namespace
	job.Labels = maps.Clone(template.Labels)
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	maps.Copy(job.Labels, labels)
	job.Annotations = maps.Clone(template.Annotations)
	return job
}

// State is how a Job stands.
type State int

// The states of a Job.
const (
	Running State = iota
	Succeeded
	Failed
)

// Status says how the Job stands, with a sentence for people when it failed.
// A Job whose failure is decided but whose pods still terminate
// (FailureTarget) counts as failed; one whose success is decided
// (SuccessCriteriaMet) counts as succeeded.
func Status(job *batchv1.Job) (State, string) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			return Succeeded, fmt.Sprintf("Job %s/%s succeeded", job.Namespace, job.Name)
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			return Failed, fmt.Sprintf("Job %s/%s failed: %s: %s", job.Namespace, job.Name, c.Reason, c.Message)
		}
	}
	return Running, fmt.Sprintf("Job %s/%s is running", job.Namespace, job.Name)
}
