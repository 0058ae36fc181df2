package checks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// exporter serves an application's metrics on 127.0.0.1 in the Prometheus
// text format; the test changes their values.
type exporter struct {
	mu     sync.Mutex
	values map[string]string
}

func (e *exporter) set(metric, value string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.values[metric] = value
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for metric, value := range e.values {
		_, _ = fmt.Fprintf(w, "# TYPE %s gauge\n%s %s\n", metric, metric, value)
	}
}

// startPrometheus runs the Prometheus server of $PROMETHEUS (make test
// installs Debian's package and sets it) on 127.0.0.1, scraping target every
// second, and returns its address once it is ready.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	binary := os.Getenv("PROMETHEUS")
	if binary == "" {
		t.Skip("PROMETHEUS is not set: make test installs Debian's prometheus package and sets it to the server binary")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	_ = listener.Close()

	dir := t.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: clinspark\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+address)
	logs, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", binary, err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); _ = logs.Close() })

	url := "http://" + address
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("Prometheus on %s was not ready within 30s: %v\n%s", address, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPrometheusServer(t *testing.T) {
	metrics := &exporter{values: map[string]string{"clinspark_orders_error_ratio": "0.002", "clinspark_results_backlog": "NaN"}}
	target := httptest.NewServer(metrics)
	t.Cleanup(target.Close)
	server := startPrometheus(t, strings.TrimPrefix(target.URL, "http://"))
	client := NewHTTPClient()
	query := func(q string, min, max *float64) Result {
		check := upgradesv1alpha1.PrometheusCheck{Address: upgradesv1alpha1.URL(server), Query: q, Min: min, Max: max}
		return Prometheus(context.Background(), client, check, 5*time.Second, time.Now())
	}
	// eventually retries until the scrapes have brought the wanted answer.
	eventually := func(q string, min, max *float64, passed bool, message string) {
		t.Helper()
		var got Result
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if got = query(q, min, max); got.Passed == passed && strings.Contains(got.Message, message) {
				return
			}
		}
		t.Errorf("query %q: last answer %+v; want passed=%v with %q", q, got, passed, message)
	}

	eventually("clinspark_orders_error_ratio", nil, ptr.To(0.01), true, "returned 0.002")
	eventually("sum(clinspark_orders_error_ratio)", ptr.To(0.0), ptr.To(0.01), true, "returned 0.002")
	eventually("clinspark_results_backlog", nil, ptr.To(100.0), false, "returned NaN")
	eventually("clinspark_no_such_metric", nil, ptr.To(1.0), false, "no samples")
	eventually(`{__name__=~"clinspark_.*"}`, nil, ptr.To(1.0), false, "returned 2 series")
	eventually("clinspark_orders_error_ratio +", nil, ptr.To(1.0), false, "parse error")

	// The release starts failing orders: the next scrapes show it.
	metrics.set("clinspark_orders_error_ratio", "0.2")
	eventually("clinspark_orders_error_ratio", nil, ptr.To(0.01), false, "above the maximum 0.01")

	// Nothing answers: a check fails rather than hangs.
	got := Prometheus(context.Background(), client, upgradesv1alpha1.PrometheusCheck{Address: "http://127.0.0.1:1", Query: "up", Max: ptr.To(1.0)}, time.Second, time.Now())
	if got.Passed || !strings.Contains(got.Message, "connection refused") {
		t.Errorf("a Prometheus that is down gave %+v", got)
	}
}
