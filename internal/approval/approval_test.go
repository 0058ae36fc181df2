package approval

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

const (
	version = upgradesv1alpha1.AnnotationUATApprovedVersion
	by      = upgradesv1alpha1.AnnotationUATApprovedBy
)

func TestUATApprovers(t *testing.T) {
	onlyAlice := &upgradesv1alpha1.Approvers{Users: []upgradesv1alpha1.Username{"alice"}}
	withGroups := &upgradesv1alpha1.Approvers{Users: []upgradesv1alpha1.Username{"alice"}, Groups: []string{"clinical-safety"}}
	cases := []struct {
		name        string
		annotations map[string]string
		approvers   *upgradesv1alpha1.Approvers
		want        []string
	}{
		{"no annotations", nil, nil, nil},
		{"one approver", map[string]string{version: "14.7.0", by: "alice"}, nil, []string{"alice"}},
		{"two approvers, blanks trimmed", map[string]string{version: "14.7.0", by: " alice , bob "}, nil, []string{"alice", "bob"}},
		{"the same approver twice counts once", map[string]string{version: "14.7.0", by: "alice,alice"}, nil, []string{"alice"}},
		{"empty entries dropped", map[string]string{version: "14.7.0", by: "alice,,"}, nil, []string{"alice"}},
		{"approval for another version ignored", map[string]string{version: "14.6.0", by: "alice"}, nil, nil},
		{"approvers without a version ignored", map[string]string{by: "alice"}, nil, nil},
		{"the requester does not count", map[string]string{version: "14.7.0", by: "rita,alice"}, nil, []string{"alice"}},
		{"narrowed to users: others ignored", map[string]string{version: "14.7.0", by: "bob,alice"}, onlyAlice, []string{"alice"}},
		{"narrowed with groups: the policy decides", map[string]string{version: "14.7.0", by: "bob,alice"}, withGroups, []string{"bob", "alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := UATApprovers(tc.annotations, "14.7.0", "rita", tc.approvers)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
}

func TestTargetDecision(t *testing.T) {
	decision := func(value, user string) map[string]string {
		return map[string]string{
			upgradesv1alpha1.DecisionAnnotation("main"):  value,
			upgradesv1alpha1.DecidedByAnnotation("main"): user,
		}
	}
	cases := []struct {
		name        string
		annotations map[string]string
		want        Decision
		ok          bool
	}{
		{"none", nil, Decision{}, false},
		{"go", decision("go", "carol"), Decision{Go: true, User: "carol"}, true},
		{"no-go", decision("no-go", "carol"), Decision{Go: false, User: "carol"}, true},
		{"unknown value", decision("maybe", "carol"), Decision{}, false},
		{"no decider", decision("go", ""), Decision{}, false},
		{"by the requester", decision("go", "rita"), Decision{}, false},
		{"for another target", map[string]string{upgradesv1alpha1.DecisionAnnotation("test"): "go", upgradesv1alpha1.DecidedByAnnotation("test"): "carol"}, Decision{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := TargetDecision(tc.annotations, "main", "rita", nil)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestAbort(t *testing.T) {
	if _, _, ok := Abort(map[string]string{}); ok {
		t.Error("no annotation reads as an abort")
	}
	reason, user, ok := Abort(map[string]string{upgradesv1alpha1.AnnotationAbort: " lab results delayed ", upgradesv1alpha1.AnnotationAbortedBy: "dave"})
	if !ok || reason != "lab results delayed" || user != "dave" {
		t.Errorf("got %q, %q, %v; want the reason and the user", reason, user, ok)
	}
	if reason, _, _ := Abort(map[string]string{upgradesv1alpha1.AnnotationAbort: ""}); reason != "no reason given" {
		t.Errorf("an empty reason reads %q", reason)
	}
}

func TestRecordAppendsOnce(t *testing.T) {
	at := metav1.NewTime(time.Date(2024, 11, 1, 16, 0, 0, 0, time.UTC))
	alice := upgradesv1alpha1.Approval{Kind: upgradesv1alpha1.ApprovalUAT, Version: "14.7.0", User: "alice", At: at}
	trail, added := Record(nil, alice)
	if !added || len(trail) != 1 {
		t.Fatalf("first approval: added=%v len=%d", added, len(trail))
	}
	later := alice
	later.At = metav1.NewTime(at.Add(time.Hour))
	trail, added = Record(trail, later)
	if added || len(trail) != 1 || !trail[0].At.Equal(&at) {
		t.Errorf("the same approval seen again was recorded again or rewritten: %+v", trail)
	}
	bob := alice
	bob.User = "bob"
	if trail, added = Record(trail, bob); !added || len(trail) != 2 || trail[0].User != "alice" {
		t.Errorf("a second approver was not appended after the first: %+v", trail)
	}
}
