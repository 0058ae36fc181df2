package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// scrape reads the manager's metrics the way Prometheus does: over HTTP, in
// the text format, from the registry the manager's metrics endpoint serves.
func scrape(t *testing.T) string {
	t.Helper()
	server := httptest.NewServer(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	defer server.Close()
	resp, err := http.Get(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// expectSample asserts the scrape has a sample starting with prefix (metric
// name and labels) whose value is not zero.
func expectSample(t *testing.T, scraped, prefix string) {
	t.Helper()
	for _, line := range strings.Split(scraped, "\n") {
		if strings.HasPrefix(line, prefix+" ") && !strings.HasSuffix(line, " 0") {
			return
		}
	}
	t.Errorf("no non-zero sample %s in the scrape", prefix)
}

func TestMetrics(t *testing.T) {
	a := newApp(t, "metrics")
	plan := a.plan("clinspark-14-7")
	create(t, plan)
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingUATApproval, "")
	waitingFor := `changegate_waiting_for_person_seconds{name="clinspark-14-7",namespace="` + a.plansNS + `"}`
	scraped := scrape(t)
	if !strings.Contains(scraped, waitingFor) {
		t.Errorf("no %s while the plan waits for its UAT approval", waitingFor)
	}
	expectSample(t, scraped, `changegate_plans{phase="AwaitingUATApproval"}`)

	approveUAT(t, plan, newVersion, "alice")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseAwaitingDecision, "main")
	decide(t, plan, "main", upgradesv1alpha1.DecisionNoGo, "carol")
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")

	scraped = scrape(t)
	expectSample(t, scraped, `changegate_transitions_total{phase="RolledBack"}`)
	expectSample(t, scraped, `changegate_rollbacks_total{reason="NoGo"}`)
	expectSample(t, scraped, `changegate_step_duration_seconds_count{step="UpgradePROD"}`)
	expectSample(t, scraped, `changegate_plans{phase="RolledBack"}`)
	if strings.Contains(scraped, waitingFor) {
		t.Errorf("%s is still reported after the plan ended", waitingFor)
	}
	for _, line := range strings.Split(scraped, "\n") {
		if strings.HasPrefix(line, "changegate_") && strings.Contains(line, "uid=") {
			t.Errorf("a changegate metric carries an unbounded label: %s", line)
		}
	}
}
