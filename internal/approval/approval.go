// Package approval reads the approvers' annotations on a plan and keeps the
// audit trail of what was seen. It has no client: the admission policy has
// already checked who wrote each annotation; this package decides what counts.
package approval

import (
	"slices"
	"strings"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// SplitUsers parses a comma-separated list of usernames, trimming blanks and
// dropping empty entries and repeats, in order of first appearance.
func SplitUsers(value string) []string {
	var users []string
	for _, user := range strings.Split(value, ",") {
		if user = strings.TrimSpace(user); user != "" && !slices.Contains(users, user) {
			users = append(users, user)
		}
	}
	return users
}

// Eligible reports whether user may approve or decide: never the requester
// (separation of duties), and, when the plan narrows approvers to users only,
// one of them. Group membership cannot be seen from here; the admission
// policy checks it when the annotation is written.
func Eligible(user, requester string, approvers *upgradesv1alpha1.Approvers) bool {
	if user == "" || user == requester {
		return false
	}
	if approvers == nil || len(approvers.Users) == 0 || len(approvers.Groups) > 0 {
		return true
	}
	return slices.Contains(approvers.Users, upgradesv1alpha1.Username(user))
}

// UATApprovers returns the distinct users whose approval counts for version:
// those listed in uat-approved-by while uat-approved-version equals version.
func UATApprovers(annotations map[string]string, version string, requester string, approvers *upgradesv1alpha1.Approvers) []string {
	if version == "" || annotations[upgradesv1alpha1.AnnotationUATApprovedVersion] != version {
		return nil
	}
	var counted []string
	for _, user := range SplitUsers(annotations[upgradesv1alpha1.AnnotationUATApprovedBy]) {
		if Eligible(user, requester, approvers) {
			counted = append(counted, user)
		}
	}
	return counted
}

// Decision is a go/no-go taken for a PROD target.
type Decision struct {
	Go   bool
	User string
}

// TargetDecision reads the decision for target. It reports false while there
// is no decision, the value is not exactly go or no-go (as the admission
// policy requires), or the decider may not decide.
func TargetDecision(annotations map[string]string, target, requester string, approvers *upgradesv1alpha1.Approvers) (Decision, bool) {
	user := annotations[upgradesv1alpha1.DecidedByAnnotation(target)]
	if !Eligible(user, requester, approvers) {
		return Decision{}, false
	}
	switch annotations[upgradesv1alpha1.DecisionAnnotation(target)] {
	case upgradesv1alpha1.DecisionGo:
		return Decision{Go: true, User: user}, true
	case upgradesv1alpha1.DecisionNoGo:
		return Decision{Go: false, User: user}, true
	}
	return Decision{}, false
}

// Abort reads the abort annotation: its reason and who set it. Anyone allowed
// to write it may stop a change; stopping is always the safe direction.
func Abort(annotations map[string]string) (reason, user string, ok bool) {
	reason, ok = annotations[upgradesv1alpha1.AnnotationAbort]
	if !ok {
		return "", "", false
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "no reason given"
	}
	return reason, strings.TrimSpace(annotations[upgradesv1alpha1.AnnotationAbortedBy]), true
}

// Record appends entry to the audit trail unless an entry for the same kind,
// version, target, decision and user is there already. Entries are never
// changed or removed. It reports whether it appended.
func Record(trail []upgradesv1alpha1.Approval, entry upgradesv1alpha1.Approval) ([]upgradesv1alpha1.Approval, bool) {
	for _, seen := range trail {
		if seen.Kind == entry.Kind && seen.Version == entry.Version && seen.Target == entry.Target &&
			seen.Decision == entry.Decision && seen.User == entry.User {
			return trail, false
		}
	}
	return append(trail, entry), true
}
