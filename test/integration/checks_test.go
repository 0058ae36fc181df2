package integration

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/naming"
	"github.com/changegate/changegate/test/testenv"
)

// health is an application's health endpoint on 127.0.0.1: each path answers
// 200 "ok" until the test breaks it; a flapping path alternates.
type health struct {
	url      string
	mu       sync.Mutex
	broken   map[string]bool
	flapping map[string]bool
	calls    atomic.Int64
}

func newHealth(t *testing.T) *health {
	h := &health{broken: map[string]bool{}, flapping: map[string]bool{}}
	var flip atomic.Bool
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.calls.Add(1)
		h.mu.Lock()
		broken, flapping := h.broken[r.URL.Path], h.flapping[r.URL.Path]
		h.mu.Unlock()
		if flapping {
			broken = flip.Load()
			flip.Store(!broken)
		}
		if broken {
			http.Error(w, "orders service unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(server.Close)
	h.url = server.URL
	return h
}

func (h *health) set(path string, broken, flapping bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broken[path], h.flapping[path] = broken, flapping
}

func httpCheck(name, url string) upgradesv1alpha1.Check {
	return upgradesv1alpha1.Check{Name: upgradesv1alpha1.Name(name), HTTP: &upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(url), BodyContains: "ok"},
		Interval: "200ms", Timeout: "1s", SuccessThreshold: 2, FailureThreshold: 2}
}

func checkOf(p *upgradesv1alpha1.UpgradePlan, environment, name string) upgradesv1alpha1.CheckStatus {
	for _, c := range p.Status.Checks {
		if c.Environment == environment && c.Name == name {
			return c
		}
	}
	return upgradesv1alpha1.CheckStatus{}
}

func TestFailingPRODCheckRollsBack(t *testing.T) {
	h := newHealth(t)
	h.set("/prod", true, false)
	a := newApp(t, "prodcheck")
	plan := a.plan("clinspark-14-7")
	plan.Spec.VAL.Checks = []upgradesv1alpha1.Check{httpCheck("login", h.url+"/val")}
	plan.Spec.PROD.Checks = []upgradesv1alpha1.Check{httpCheck("orders", h.url+"/prod")}
	create(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	if c := checkOf(got, "val", "login"); c.State != upgradesv1alpha1.CheckPassed || c.Successes < 2 {
		t.Errorf("VAL check = %+v; want Passed after 2 passes", c)
	}
	approveUAT(t, plan, newVersion, "alice")
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")

	c := checkOf(got, "main", "orders")
	if c.State != upgradesv1alpha1.CheckFailed || c.Failures != 2 || !strings.Contains(c.Message, "status 503") {
		t.Errorf("MAIN check = %+v; want Failed after 2 failures naming the status", c)
	}
	expectCondition(t, got, upgradesv1alpha1.ConditionChecksPassed, metav1.ConditionFalse, upgradesv1alpha1.ReasonCheckFailed)
	expectCondition(t, got, upgradesv1alpha1.ConditionRolledBack, metav1.ConditionTrue, upgradesv1alpha1.ReasonCheckFailed)
	expectEvent(t, a.plansNS, plan.Name, upgradesv1alpha1.ReasonCheckFailed)
	a.expectImages(t, "main", oldVersion)
	a.expectImages(t, "test", oldVersion)
	if findStep(got, upgradesv1alpha1.StepUpgradePROD, "test") != nil {
		t.Error("TEST was upgraded although MAIN failed its checks")
	}
}

func TestFlappingCheckNeverPasses(t *testing.T) {
	h := newHealth(t)
	h.set("/val", false, true)
	a := newApp(t, "flapping")
	plan := a.plan("clinspark-14-7")
	plan.Spec.VAL.Checks = []upgradesv1alpha1.Check{httpCheck("login", h.url+"/val")}
	create(t, plan)
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return checkOf(p, "val", "login").Attempts >= 8
	})
	if got.Status.Phase != upgradesv1alpha1.PhaseVerifyingVAL {
		t.Errorf("a flapping check let the plan reach %s", got.Status.Phase)
	}
	if c := checkOf(got, "val", "login"); c.State != upgradesv1alpha1.CheckRunning || c.Successes > 1 || c.Failures > 1 {
		t.Errorf("flapping check = %+v; want Running with never two results alike in a row", c)
	}
	// Stop it here: the plan is aborted and ends without touching PROD.
	annotate(t, "carol", plan, upgradesv1alpha1.AnnotationAbort, "flapping login page", upgradesv1alpha1.AnnotationAbortedBy, "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseFailed, "")
}

func TestCheckFailingWhileAwaitingTheDecisionRollsBack(t *testing.T) {
	h := newHealth(t)
	a := newApp(t, "latefail")
	plan := a.plan("clinspark-14-7")
	plan.Spec.PROD.Checks = []upgradesv1alpha1.Check{httpCheck("orders", h.url+"/prod")}
	driveToDecision(t, plan)
	h.set("/prod", true, false)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	decision := findStep(got, upgradesv1alpha1.StepDecision, "main")
	if decision.Reason != upgradesv1alpha1.ReasonCheckFailed || !strings.Contains(decision.Message, "while awaiting the go/no-go") {
		t.Errorf("decision step = %+v; want it ended by the failing check", decision)
	}
	a.expectImages(t, "main", oldVersion)
}

func TestJobChecks(t *testing.T) {
	a := newApp(t, "jobcheck")
	plan := a.plan("clinspark-14-7")
	smoke := upgradesv1alpha1.Check{Name: "smoke", Job: &upgradesv1alpha1.JobCheck{Template: jobTemplate("smoke")}, Interval: "1s", FailureThreshold: 1}
	twice := smoke
	twice.SuccessThreshold = 2
	plan.Spec.VAL.Checks = []upgradesv1alpha1.Check{twice}
	plan.Spec.PROD.Checks = []upgradesv1alpha1.Check{smoke}
	failing := naming.Child(naming.MaxLabelName, plan.Name, "check", "main", "smoke", "1")
	jobs.Fail(a.namespace["main"], failing)
	create(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	// Two passes in a row: a second Job, started on a timer an interval
	// after the first; starting it removed the first.
	if c := checkOf(got, "val", "smoke"); c.State != upgradesv1alpha1.CheckPassed || c.Attempts != 2 || !strings.Contains(c.Message, "succeeded") {
		t.Errorf("VAL Job check = %+v; want Passed by two Jobs", c)
	}
	valJobs := planJobs(t, a.namespace["val"], plan.Name)
	if _, ok := valJobs[naming.Child(naming.MaxLabelName, plan.Name, "check", "val", "smoke", "2")]; !ok || len(valJobs) != 1 {
		t.Errorf("VAL check Jobs left: %v; want only the second attempt's", valJobs)
	}
	approveUAT(t, plan, newVersion, "alice")
	got = waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
	c := checkOf(got, "main", "smoke")
	if c.State != upgradesv1alpha1.CheckFailed || !strings.Contains(c.Message, testenv.FailureMessage) {
		t.Errorf("MAIN Job check = %+v; want Failed with the pod's termination message", c)
	}
}

func TestFailingVALCheckRestoresVAL(t *testing.T) {
	h := newHealth(t)
	h.set("/val", true, false)
	a := newApp(t, "valcheck")
	plan := a.plan("clinspark-14-7")
	plan.Spec.VAL.Checks = []upgradesv1alpha1.Check{httpCheck("login", h.url+"/val")}
	create(t, plan)
	got := waitForPhase(t, plan, upgradesv1alpha1.PhaseFailed, "")
	expectCondition(t, got, upgradesv1alpha1.ConditionChecksPassed, metav1.ConditionFalse, upgradesv1alpha1.ReasonCheckFailed)
	if c := checkOf(got, "val", "login"); c.State != upgradesv1alpha1.CheckFailed || !strings.Contains(c.Message, "status 503") {
		t.Errorf("VAL check = %+v; want Failed with the answer it got", c)
	}
	a.expectImages(t, "val", oldVersion)
	if got.Status.ValidatedVersion != "" {
		t.Errorf("validatedVersion = %q after VAL failed its checks", got.Status.ValidatedVersion)
	}
}

func TestFailedCheckWithoutAutomaticRollbackWaitsForPeople(t *testing.T) {
	h := newHealth(t)
	h.set("/prod", true, false)
	a := newApp(t, "manualrb")
	plan := a.plan("clinspark-14-7")
	plan.Spec.PROD.Checks = []upgradesv1alpha1.Check{httpCheck("orders", h.url+"/prod")}
	plan.Spec.PROD.Rollback = &upgradesv1alpha1.RollbackPolicy{Automatic: ptr.To(false)}
	driveToDecision(t, plan)
	time.Sleep(time.Second)
	got := getPlan(t, plan)
	if got.Status.Phase != upgradesv1alpha1.PhaseAwaitingDecision {
		t.Fatalf("phase %s; without automatic rollback a failed check leaves the go/no-go to people", got.Status.Phase)
	}
	expectCondition(t, got, upgradesv1alpha1.ConditionChecksPassed, metav1.ConditionFalse, upgradesv1alpha1.ReasonCheckFailed)
	decide(t, plan, "main", "no-go", "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")
}
