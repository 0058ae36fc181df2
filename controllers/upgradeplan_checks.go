package controllers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/checks"
	"github.com/changegate/changegate/internal/jobs"
	"github.com/changegate/changegate/internal/naming"
)

// checkClient makes the HTTP and Prometheus attempts; it never follows a
// redirect.
var checkClient = checks.NewHTTPClient()

// verdict is how an environment's checks stand after the attempts that were
// due: one failed, all passed, or still running, with when to look again.
type verdict struct {
	failed  string
	passed  bool
	waiting []string
	next    time.Duration
}

// runChecks makes every attempt of env's checks that is due, records it in
// status.checks and reports the verdict. since is when the environment's
// upgrade ended: the soak counts from there. The HTTP and Prometheus
// attempts of one reconcile run at the same time, so a reconcile waits at
// most for the longest timeout; a Job check starts its Job and is woken by
// the Job's watch.
func (r *UpgradePlanReconciler) runChecks(ctx context.Context, s *scope, env environment, since time.Time) (verdict, error) {
	list := s.plan.Spec.VAL.Checks
	if env.name != upgradesv1alpha1.EnvironmentVAL {
		list = s.plan.Spec.PROD.Checks
	}
	results := make([]*checks.Result, len(list))
	// running is, for a Job check whose Job runs, when it times out.
	running := make([]time.Time, len(list))
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, check := range list {
		status := checkStatus(s.plan, env.name, string(check.Name))
		if status.State == upgradesv1alpha1.CheckFailed || s.now.Before(checks.Due(*status, check)) {
			continue
		}
		if check.Job != nil {
			result, timesOut, err := r.jobAttempt(ctx, s, env, check, status)
			if err != nil {
				return verdict{}, err
			}
			results[i], running[i] = result, timesOut
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			result := attempt(ctx, check, s.now)
			results[i] = &result
		}()
	}
	wg.Wait()

	out := verdict{passed: true}
	for i, check := range list {
		status := checkStatus(s.plan, env.name, string(check.Name))
		if result := results[i]; result != nil {
			was := status.State
			*status = checks.Record(*status, check, *result, since, s.now)
			if status.State != was && (status.State == upgradesv1alpha1.CheckPassed || status.State == upgradesv1alpha1.CheckFailed) {
				r.checkEvent(s, env, *status)
			}
		}
		switch status.State {
		case upgradesv1alpha1.CheckFailed:
			out.failed = fmt.Sprintf("check %s failed in %s: %s", check.Name, env.name, status.Message)
		case upgradesv1alpha1.CheckPassed:
		default:
			out.passed = false
			out.waiting = append(out.waiting, fmt.Sprintf("check %s: %d of %d passes (%s)", check.Name, status.Successes, max(1, check.SuccessThreshold), status.Message))
		}
		if status.State == upgradesv1alpha1.CheckFailed {
			continue
		}
		// Wake for the next attempt, or for the running Job's timeout: a
		// Job that finishes wakes the plan through its watch before that.
		wake := checks.Due(*status, check)
		if !running[i].IsZero() {
			wake = running[i]
		}
		if due := max(wake.Sub(s.now), time.Second); out.next == 0 || due < out.next {
			out.next = due
		}
	}
	if out.failed != "" {
		out.passed = false
	}
	return out, nil
}

// attempt makes one HTTP or Prometheus attempt.
func attempt(ctx context.Context, check upgradesv1alpha1.Check, now time.Time) checks.Result {
	if check.HTTP != nil {
		return checks.HTTP(ctx, checkClient, *check.HTTP, checks.Timeout(check))
	}
	return checks.Prometheus(ctx, checkClient, *check.Prometheus, checks.Timeout(check), now)
}

// jobAttempt runs the Job of the check's next attempt, named after the
// attempt's number, in the environment's namespace. It returns the result
// once the Job has ended or outlived the check's timeout; while it runs, nil
// and when it times out. Starting an attempt deletes the previous attempt's
// Job, whose result status.checks holds by then, so that a long wait for a
// go/no-go does not pile up Jobs; a failed check's last Job stays to be
// read.
func (r *UpgradePlanReconciler) jobAttempt(ctx context.Context, s *scope, env environment, check upgradesv1alpha1.Check, status *upgradesv1alpha1.CheckStatus) (*checks.Result, time.Time, error) {
	name := checkJobName(s.plan, env, check, status.Attempts+1)
	timeout := checks.Timeout(check)
	job := &batchv1.Job{}
	err := r.Get(ctx, client.ObjectKey{Namespace: env.namespace, Name: name}, job)
	if apierrors.IsNotFound(err) {
		if status.Attempts > 0 {
			previous := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: env.namespace, Name: checkJobName(s.plan, env, check, status.Attempts)}}
			if err := r.Delete(ctx, previous, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return nil, time.Time{}, fmt.Errorf("deleting the previous check Job %s/%s: %w", env.namespace, previous.Name, err)
			}
		}
		job = jobs.New(check.Job.Template, name, env.namespace, childLabels(s.plan))
		message := fmt.Sprintf("Job %s/%s started", env.namespace, name)
		switch err := r.Create(ctx, job); {
		case apierrors.IsAlreadyExists(err):
			// The cache is behind; the Job's event brings the plan back.
			message = fmt.Sprintf("Job %s/%s exists; waiting to see its status", env.namespace, name)
		case err != nil:
			return nil, time.Time{}, fmt.Errorf("starting check Job %s/%s: %w", env.namespace, name, err)
		}
		status.State, status.Message = upgradesv1alpha1.CheckRunning, message
		return nil, s.now.Add(timeout), nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	switch state, message := jobs.Status(job); state {
	case jobs.Succeeded:
		return &checks.Result{Passed: true, Message: message}, time.Time{}, nil
	case jobs.Failed:
		tail, err := r.terminationMessage(ctx, job)
		if err != nil {
			return nil, time.Time{}, err
		}
		if tail != "" {
			message += "; " + tail
		}
		return &checks.Result{Message: message}, time.Time{}, nil
	}
	timesOut := job.CreationTimestamp.Add(timeout)
	if !s.now.Before(timesOut) {
		return &checks.Result{Message: fmt.Sprintf("Job %s/%s did not finish within %s", env.namespace, name, timeout)}, time.Time{}, nil
	}
	return nil, timesOut, nil
}

func checkJobName(plan *upgradesv1alpha1.UpgradePlan, env environment, check upgradesv1alpha1.Check, attempt int32) string {
	return naming.Child(naming.MaxLabelName, plan.Name, "check", env.name, string(check.Name), strconv.Itoa(int(attempt)))
}

// terminationMessage is the tail of the termination message the newest
// failed pod of a Job left, read live.
func (r *UpgradePlanReconciler) terminationMessage(ctx context.Context, job *batchv1.Job) (string, error) {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.JobNameLabel: job.Name}); err != nil {
		return "", err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	for _, pod := range pods.Items {
		for _, c := range pod.Status.ContainerStatuses {
			// With restartPolicy OnFailure the failure is the last state.
			for _, t := range []*corev1.ContainerStateTerminated{c.State.Terminated, c.LastTerminationState.Terminated} {
				if t == nil || t.ExitCode == 0 || t.Message == "" {
					continue
				}
				message := strings.TrimSpace(t.Message)
				if len(message) > 256 {
					message = "..." + message[len(message)-253:]
				}
				return fmt.Sprintf("pod %s container %s: %s", pod.Name, c.Name, message), nil
			}
		}
	}
	return "", nil
}

// checkStatus returns the status entry of a check in an environment,
// adding a Pending one the first time.
func checkStatus(plan *upgradesv1alpha1.UpgradePlan, environment, name string) *upgradesv1alpha1.CheckStatus {
	for i := range plan.Status.Checks {
		if c := &plan.Status.Checks[i]; c.Environment == environment && c.Name == name {
			return c
		}
	}
	plan.Status.Checks = append(plan.Status.Checks, upgradesv1alpha1.CheckStatus{Environment: environment, Name: name, State: upgradesv1alpha1.CheckPending})
	return &plan.Status.Checks[len(plan.Status.Checks)-1]
}

// checkEvent tells people a check passed or failed.
func (r *UpgradePlanReconciler) checkEvent(s *scope, env environment, status upgradesv1alpha1.CheckStatus) {
	eventType, reason := corev1.EventTypeNormal, "CheckPassed"
	if status.State == upgradesv1alpha1.CheckFailed {
		eventType, reason = corev1.EventTypeWarning, upgradesv1alpha1.ReasonCheckFailed
	}
	r.Recorder.Eventf(s.plan, nil, eventType, reason, "Check", "check %s %s in %s: %s", status.Name, strings.ToLower(string(status.State)), env.name, status.Message)
}
