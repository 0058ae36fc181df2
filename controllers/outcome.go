package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// outcomeKind is how a phase function ended.
type outcomeKind int

const (
	// outcomeProgressed: the step did its work and the plan moves on.
	outcomeProgressed outcomeKind = iota
	// outcomeWaiting: the plan waits for an event, or for a timer when
	// nothing sends one (a window opening, a check interval).
	outcomeWaiting
	// outcomeWaitingForPerson: the plan waits for an approval or a decision;
	// no timer unless a deadline applies.
	outcomeWaitingForPerson
	// outcomeStalled: only a person can unblock the plan; no retry loop,
	// except for a rollback, which carries on while Stalled.
	outcomeStalled
	// outcomeFinished: the plan reached a terminal phase.
	outcomeFinished
	// outcomeError: a transient error; controller-runtime retries with backoff.
	outcomeError
)

// outcome is what a phase function returns: one of the kinds above, with a
// reason and message for the conditions a person reads.
type outcome struct {
	kind    outcomeKind
	after   time.Duration
	reason  string
	message string
	err     error
	// arrival, when set, says how the plan reached its phase, for the
	// history and the Event: the message of the step that completed before
	// a waiting step started in the same reconcile.
	arrival string
}

func progressed(reason, message string) outcome {
	return outcome{kind: outcomeProgressed, reason: reason, message: message}
}

func waiting(after time.Duration, reason, message string) outcome {
	return outcome{kind: outcomeWaiting, after: after, reason: reason, message: message}
}

func waitingForPerson(after time.Duration, reason, message string) outcome {
	return outcome{kind: outcomeWaitingForPerson, after: after, reason: reason, message: message}
}

func finished(phase upgradesv1alpha1.Phase, message string) outcome {
	return outcome{kind: outcomeFinished, reason: string(phase), message: message}
}

func stalled(reason, message string) outcome {
	return outcome{kind: outcomeStalled, reason: reason, message: message}
}

func failedTransiently(err error) outcome {
	return outcome{kind: outcomeError, reason: "Error", message: err.Error(), err: err}
}

// result maps the outcome to what controller-runtime should do next.
func (o outcome) result() ctrl.Result {
	switch o.kind {
	case outcomeProgressed:
		// The status patch that records the step triggers the next reconcile.
		return ctrl.Result{}
	case outcomeWaiting, outcomeWaitingForPerson, outcomeStalled:
		return ctrl.Result{RequeueAfter: o.after}
	default:
		return ctrl.Result{}
	}
}
