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
// carrying labels on top of the template's own. A finished Job is never
// removed by a TTL: its existence is the record that it ran, and it lives as
// long as the plan that created it.
func New(template batchv1.JobTemplateSpec, name, namespace string, labels map[string]string) *batchv1.Job {
	job := &batchv1.Job{Spec: *template.Spec.DeepCopy()}
	job.Spec.TTLSecondsAfterFinished = nil
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

// Status says how the Job stands, with a sentence for people. A Job whose
// failure is decided but whose pods still terminate (FailureTarget) counts
// as failed; one whose success is decided (SuccessCriteriaMet) counts as
// succeeded. The final conditions, Complete and Failed, are read first: they
// carry the job controller's final word.
func Status(job *batchv1.Job) (State, string) {
	name := job.Namespace + "/" + job.Name
	for _, types := range [][2]batchv1.JobConditionType{{batchv1.JobComplete, batchv1.JobFailed}, {batchv1.JobSuccessCriteriaMet, batchv1.JobFailureTarget}} {
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case types[0]:
				return Succeeded, fmt.Sprintf("Job %s succeeded", name)
			case types[1]:
				why := c.Reason
				if c.Message != "" {
					why += ": " + c.Message
				}
				return Failed, fmt.Sprintf("Job %s failed: %s", name, why)
			}
		}
	}
	return Running, fmt.Sprintf("Job %s is running", name)
}
