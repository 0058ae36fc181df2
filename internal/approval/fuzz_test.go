package approval

import (
	"slices"
	"strings"
	"testing"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// FuzzUATApprovers: whatever the annotations hold, what counts is distinct,
// trimmed, non-empty, never the requester, and only for the right version.
func FuzzUATApprovers(f *testing.F) {
	for _, seed := range []struct{ version, by, requester string }{
		{"14.7.0", "alice,bob", "rita"},
		{"14.7.0", " alice , alice,, rita ,", "rita"},
		{"14.7.1", "alice", "rita"},
		{"14.7.0", ",,,", ""},
		{"", "alice", "rita"},
	} {
		f.Add(seed.version, seed.by, seed.requester)
	}
	f.Fuzz(func(t *testing.T, version, by, requester string) {
		annotations := map[string]string{upgradesv1alpha1.AnnotationUATApprovedVersion: "14.7.0", upgradesv1alpha1.AnnotationUATApprovedBy: by}
		counted := UATApprovers(annotations, version, requester, nil)
		if version != "14.7.0" && len(counted) > 0 {
			t.Fatalf("approvals for %q counted for version %q", "14.7.0", version)
		}
		for i, user := range counted {
			if user == "" || user != strings.TrimSpace(user) || strings.Contains(user, ",") {
				t.Fatalf("counted a malformed user %q", user)
			}
			if user == requester {
				t.Fatalf("the requester %q was counted", requester)
			}
			if slices.Contains(counted[:i], user) {
				t.Fatalf("%q counted twice in %v", user, counted)
			}
		}
	})
}

// FuzzTargetDecision: only exactly go or no-go, from someone other than the
// requester, is a decision.
func FuzzTargetDecision(f *testing.F) {
	f.Add("go", "carol", "rita")
	f.Add("no-go", "carol", "rita")
	f.Add("yes", "carol", "rita")
	f.Add("go", "rita", "rita")
	f.Add(" go", "", "rita")
	f.Fuzz(func(t *testing.T, value, user, requester string) {
		annotations := map[string]string{upgradesv1alpha1.DecisionAnnotation("main"): value, upgradesv1alpha1.DecidedByAnnotation("main"): user}
		decision, ok := TargetDecision(annotations, "main", requester, nil)
		if !ok {
			return
		}
		if value != upgradesv1alpha1.DecisionGo && value != upgradesv1alpha1.DecisionNoGo {
			t.Fatalf("%q was taken as a decision", value)
		}
		if decision.Go != (value == upgradesv1alpha1.DecisionGo) || decision.User == "" || decision.User == requester {
			t.Fatalf("decision %+v from %q (requester %q)", decision, value, requester)
		}
	})
}
