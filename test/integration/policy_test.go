package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// policyNamespaceLabel marks the namespaces the approvals policy is bound to
// in the suites: the plans namespaces of the apps, where people sign as
// themselves through impersonation; the schema tests, which create plans as
// the admin, stay outside it.
const policyNamespaceLabel = "changegate-policy-test"

// readObjects decodes every document of a YAML file of config/ into objs.
func readObjects(file string, objs ...any) error { return testenv.ReadConfig(file, objs...) }

// as is a client acting as a user with groups, through impersonation.
func as(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	config := rest.CopyConfig(restConfig)
	config.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	c, err := client.New(config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	gitops      = "system:serviceaccount:" + testenv.GitOpsNamespace + ":" + testenv.GitOpsAccount
	safetyGroup = testenv.SafetyGroup
)

// bindPeople gives each person their role in the namespace
// (testenv.BindPeople says who is who).
func bindPeople(t *testing.T, ns string) {
	t.Helper()
	if err := testenv.BindPeople(context.Background(), k8s, ns); err != nil {
		t.Fatal(err)
	}
}

// annotation values for the table: nil removes the annotation.
type annotations map[string]*string

func val(v string) *string { return &v }

// signedBy is one request: a user patching the plan's annotations.
type signedBy struct {
	user        string
	annotations annotations
}

func (s signedBy) client(t *testing.T) client.Client {
	switch s.user {
	case "carol":
		return as(t, "carol", safetyGroup)
	case gitops:
		return as(t, gitops, "system:serviceaccounts", "system:serviceaccounts:ci")
	}
	return as(t, s.user)
}

func (s signedBy) apply(t *testing.T, plan *upgradesv1alpha1.UpgradePlan) error {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string(s.annotations)}})
	if err != nil {
		t.Fatal(err)
	}
	return s.client(t).Patch(context.Background(), plan.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
}

const (
	uatVersion = upgradesv1alpha1.AnnotationUATApprovedVersion
	uatBy      = upgradesv1alpha1.AnnotationUATApprovedBy
	abort      = upgradesv1alpha1.AnnotationAbort
	abortedBy  = upgradesv1alpha1.AnnotationAbortedBy
)

var (
	decision  = upgradesv1alpha1.DecisionAnnotation("main")
	decidedBy = upgradesv1alpha1.DecidedByAnnotation("main")
)

func approve(user, list string) signedBy {
	return signedBy{user, annotations{uatVersion: val(newVersion), uatBy: val(list)}}
}

func TestApprovalsPolicy(t *testing.T) {
	ns := createNamespace(t, "policy")
	setLabel(t, ns, policyNamespaceLabel, "true")
	bindPeople(t, ns)

	newPlan := func(name, requester string, narrowed bool) *upgradesv1alpha1.UpgradePlan {
		a := &app{plansNS: ns, namespace: map[string]string{"val": "policy-val", "main": "policy-main", "test": "policy-test"}}
		plan := a.plan(name)
		plan.Annotations[upgradesv1alpha1.AnnotationRequestedBy] = requester
		plan.Spec.UAT = &upgradesv1alpha1.UAT{RequiredApprovals: 2}
		if narrowed {
			plan.Spec.UAT.Approvers = &upgradesv1alpha1.Approvers{Users: []upgradesv1alpha1.Username{"alice"}, Groups: []string{safetyGroup}}
			plan.Spec.PROD.Decision = &upgradesv1alpha1.Decision{Approvers: &upgradesv1alpha1.Approvers{Users: []upgradesv1alpha1.Username{"alice", gitops}}}
		}
		return plan
	}

	// The policy takes a moment to be enforced once installed.
	waitUntilEnforced(t, func(attempt int) error {
		return as(t, "rita").Create(context.Background(), newPlan(fmt.Sprintf("probe-%d", attempt), "alice", false))
	})

	t.Run("creating", func(t *testing.T) {
		tests := []struct {
			name, user, requester, denied string
		}{
			{"the requester names themself", "rita", "rita", ""},
			{"naming someone else as requester", "rita", "alice", "requested-by to your own username, rita"},
			{"no requester", "rita", "", "requested-by to your own username, rita"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				plan := newPlan(fmt.Sprintf("create-%d", i), tt.requester, false)
				if tt.requester == "" {
					delete(plan.Annotations, upgradesv1alpha1.AnnotationRequestedBy)
				}
				expectRefusal(t, as(t, tt.user).Create(context.Background(), plan), tt.denied)
			})
		}
	})

	tests := []struct {
		name     string
		narrowed bool
		before   []signedBy
		request  signedBy
		denied   string
	}{
		{"an approver approves as themself", false, nil, approve("alice", "alice"), ""},
		{"a second approver appends themself", false, []signedBy{approve("alice", "alice")}, approve("bob", "alice,bob"), ""},
		{"approving as someone else", false, nil, approve("bob", "alice"), "add only yourself, bob"},
		{"adding someone else beside oneself", false, []signedBy{approve("alice", "alice")}, approve("bob", "alice,bob,carol"), "add only yourself, bob"},
		{"removing another's approval", false, []signedBy{approve("alice", "alice")}, approve("bob", "bob"), "append-only"},
		{"rewriting another's approval", false, []signedBy{approve("alice", "alice")}, signedBy{"bob", annotations{uatBy: val("bob")}}, "append-only"},
		{"approving twice", false, []signedBy{approve("alice", "alice")}, approve("alice", "alice,alice"), "each approver once"},
		{"a new version starts approvals again", false, []signedBy{approve("alice", "alice")}, signedBy{"bob", annotations{uatVersion: val("14.7.1"), uatBy: val("bob")}}, ""},
		{"without the approve verb", false, nil, approve("eve", "eve"), "eve may not approve, decide or abort"},
		{"outside the narrowed approvers", true, nil, approve("bob", "bob"), "not among the UAT approvers"},
		{"a member of a narrowed group", true, nil, approve("carol", "carol"), ""},
		{"the requester approves their own plan", false, nil, approve("rita", "rita"), "requester of a plan may not approve"},
		{"a GitOps pipeline listed as approver approves", false, nil, approve(gitops, gitops), ""},
		{"a go as oneself", false, nil, signedBy{"alice", annotations{decision: val("go"), decidedBy: val("alice")}}, ""},
		{"a decision of yes", false, nil, signedBy{"alice", annotations{decision: val("yes"), decidedBy: val("alice")}}, "exactly go or no-go"},
		{"deciding in another's name", false, nil, signedBy{"alice", annotations{decision: val("go"), decidedBy: val("bob")}}, "to your own username, alice"},
		{"turning another's go into a no-go", false, []signedBy{{"alice", annotations{decision: val("go"), decidedBy: val("alice")}}},
			signedBy{"bob", annotations{decision: val("no-go")}}, "decided-by.<target> to your own username, bob"},
		{"the requester decides", false, nil, signedBy{"rita", annotations{decision: val("go"), decidedBy: val("rita")}}, "may not take its go/no-go"},
		{"a decision from the pipeline named in prod.decision.approvers", true, nil, signedBy{gitops, annotations{decision: val("go"), decidedBy: val(gitops)}}, ""},
		{"a decision from someone not named", true, nil, signedBy{"bob", annotations{decision: val("no-go"), decidedBy: val("bob")}}, "not among the go/no-go approvers"},
		{"an abort signed by oneself", false, nil, signedBy{"bob", annotations{abort: val("lab interface down"), abortedBy: val("bob")}}, ""},
		{"an abort signed for someone else", false, nil, signedBy{"bob", annotations{abort: val("lab interface down"), abortedBy: val("alice")}}, "aborted-by to your own username, bob"},
		{"an abort without the approve verb", false, nil, signedBy{"eve", annotations{abort: val("no reason"), abortedBy: val("eve")}}, "eve may not approve, decide or abort"},
		{"changing the requester", false, nil, signedBy{"alice", annotations{upgradesv1alpha1.AnnotationRequestedBy: val("alice")}}, "requested-by names who requested the change and never changes"},
		{"removing the approved version", false, []signedBy{approve("alice", "alice")}, signedBy{"eve", annotations{uatVersion: nil}}, "cannot be removed"},
		{"removing a no-go before it is read", false, []signedBy{{"alice", annotations{decision: val("no-go"), decidedBy: val("alice")}}},
			signedBy{"bob", annotations{decision: nil, decidedBy: nil}}, "cannot be removed"},
		{"re-signing another's decision", false, []signedBy{{"alice", annotations{decision: val("no-go"), decidedBy: val("alice")}}},
			signedBy{"bob", annotations{decidedBy: val("bob")}}, "changes only together with the decision"},
		{"re-signing another's abort", false, []signedBy{{"alice", annotations{abort: val("lab down"), abortedBy: val("alice")}}},
			signedBy{"bob", annotations{abortedBy: val("bob")}}, "changes only together with the abort reason"},
		{"editing the plan without touching approvals", false, []signedBy{approve("alice", "alice")}, signedBy{"eve", annotations{"example.org/ticket": val("INC-1")}}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := newPlan(fmt.Sprintf("plan-%d", i), "rita", tt.narrowed)
			if err := as(t, "rita").Create(context.Background(), plan); err != nil {
				t.Fatalf("rita creating her plan: %v", err)
			}
			for _, step := range tt.before {
				if err := step.apply(t, plan); err != nil {
					t.Fatalf("setting up as %s: %v", step.user, err)
				}
			}
			expectRefusal(t, tt.request.apply(t, plan), tt.denied)
		})
	}
}

// expectRefusal asserts a request was allowed (denied == "") or refused
// with a message containing denied.
func expectRefusal(t *testing.T, err error, denied string) {
	t.Helper()
	switch {
	case denied == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case denied != "" && err == nil:
		t.Fatalf("allowed; want a refusal saying %q", denied)
	case denied != "" && (!apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), denied)):
		t.Fatalf("refused with %v; want a refusal saying %q", err, denied)
	}
}

// waitUntilEnforced retries a request the policy refuses until it does.
func waitUntilEnforced(t *testing.T, refused func(attempt int) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		time.Sleep(200 * time.Millisecond)
		if err := refused(attempt); err != nil && (apierrors.IsInvalid(err) || apierrors.IsForbidden(err)) {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the approvals policy was not enforced within 30s: %v", err)
		}
	}
}

func setLabel(t *testing.T, name, key, value string) {
	t.Helper()
	patch := []byte(`{"metadata":{"labels":{"` + key + `":"` + value + `"}}}`)
	if err := k8s.Patch(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
}

// TestApproveIsNeverAggregated reads the shipped roles: viewing and editing
// join the built-in view and edit roles, approving never does.
func TestApproveIsNeverAggregated(t *testing.T) {
	viewer, editor, approver := &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}
	if err := readObjects("rbac/user_roles.yaml", viewer, editor, approver); err != nil {
		t.Fatal(err)
	}
	if viewer.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "true" || editor.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" {
		t.Error("changegate-viewer and changegate-editor should aggregate into view and edit")
	}
	for _, role := range []*rbacv1.ClusterRole{viewer, editor, approver} {
		aggregated := false
		for key := range role.Labels {
			aggregated = aggregated || strings.HasPrefix(key, "rbac.authorization.k8s.io/aggregate-to-")
		}
		for _, rule := range role.Rules {
			for _, verb := range rule.Verbs {
				if verb == "*" || (verb == "approve" && aggregated) {
					t.Errorf("%s grants %q by aggregation or wildcard", role.Name, verb)
				}
			}
		}
	}
	if !slices.ContainsFunc(approver.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Verbs, "approve") }) {
		t.Error("changegate-approver does not grant approve")
	}
}

func TestApprovalsIgnoredWhileThePolicyIsMissing(t *testing.T) {
	ctx := context.Background()
	a := newApp(t, "failclosed")
	plan := a.plan("clinspark-14-7")
	create(t, plan)
	waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseAwaitingUATApproval && condition(p, upgradesv1alpha1.ConditionApprovalPolicyReady).Status == metav1.ConditionTrue
	})

	binding := &admissionv1.ValidatingAdmissionPolicyBinding{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "changegate-approvals"}, binding); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		fresh := binding.DeepCopy()
		fresh.ResourceVersion, fresh.UID, fresh.CreationTimestamp = "", "", metav1.Time{}
		if err := k8s.Create(ctx, fresh); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("restoring the approvals policy binding: %v", err)
		}
	}
	t.Cleanup(restore)
	if err := k8s.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return condition(p, upgradesv1alpha1.ConditionApprovalPolicyReady).Reason == upgradesv1alpha1.ReasonApprovalPolicyMissing
	})
	expectCondition(t, got, upgradesv1alpha1.ConditionStalled, metav1.ConditionTrue, upgradesv1alpha1.ReasonApprovalPolicyMissing)
	expectEvent(t, a.plansNS, plan.Name, upgradesv1alpha1.ReasonApprovalPolicyMissing)

	// Without the policy nothing authenticates this approval: it waits.
	approveUAT(t, plan, newVersion, "alice")
	time.Sleep(time.Second)
	if got = getPlan(t, plan); got.Status.Phase != upgradesv1alpha1.PhaseAwaitingUATApproval || len(got.Status.Approvals) != 0 {
		t.Fatalf("an approval was honoured without the policy: phase %s, approvals %+v", got.Status.Phase, got.Status.Approvals)
	}

	restore()
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	expectCondition(t, got, upgradesv1alpha1.ConditionApprovalPolicyReady, metav1.ConditionTrue, "")
}

func TestManagerRunsWithItsGeneratedRoleOnly(t *testing.T) {
	manager, err := client.New(managerConfig(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := manager.List(context.Background(), &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the manager's identity listed Secrets (%v): the suites would not prove its role is enough", err)
	}
	if err := manager.List(context.Background(), &upgradesv1alpha1.UpgradePlanList{}); err != nil {
		t.Fatalf("the manager's identity cannot list plans: %v", err)
	}
}
