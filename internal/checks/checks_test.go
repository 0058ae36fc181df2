package checks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// serve starts a real HTTP server on 127.0.0.1 for one test.
func serve(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	return server.URL
}

func TestHTTP(t *testing.T) {
	healthy := serve(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "status: ok") })
	failing := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database down", http.StatusServiceUnavailable)
	})
	redirecting := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusFound) })
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	huge := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "early-marker ")
		_, _ = w.Write([]byte(strings.Repeat("x", 3*MaxBody)))
		_, _ = fmt.Fprint(w, " late-marker")
	})
	tests := []struct {
		name    string
		check   upgradesv1alpha1.HTTPCheck
		timeout time.Duration
		passed  bool
		message string
	}{
		{"healthy", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(healthy)}, time.Second, true, "status 200"},
		{"healthy with the body", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(healthy), BodyContains: "ok"}, time.Second, true, "status 200"},
		{"body lacks the text", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(healthy), BodyContains: "ready"}, time.Second, false, `lacks "ready"`},
		{"failing", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(failing)}, time.Second, false, "status 503, want 200"},
		{"expected failure status", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(failing), ExpectedStatus: 503}, time.Second, true, "status 503"},
		{"redirect is not followed", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(redirecting)}, time.Second, false, "redirecting to /login (redirects are not followed)"},
		{"slow", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(slow)}, 200 * time.Millisecond, false, "no answer within 200ms"},
		{"huge body, text early", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(huge), BodyContains: "early-marker"}, 5 * time.Second, true, "status 200"},
		{"huge body, text past the read limit", upgradesv1alpha1.HTTPCheck{URL: upgradesv1alpha1.URL(huge), BodyContains: "late-marker"}, 5 * time.Second, false, fmt.Sprintf("first %d bytes read", MaxBody)},
		{"nothing listening", upgradesv1alpha1.HTTPCheck{URL: "http://127.0.0.1:1/healthz"}, time.Second, false, "connection refused"},
	}
	client := NewHTTPClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HTTP(context.Background(), client, tt.check, tt.timeout)
			if got.Passed != tt.passed || !strings.Contains(got.Message, tt.message) {
				t.Fatalf("HTTP() = %+v; want passed=%v and a message containing %q", got, tt.passed, tt.message)
			}
		})
	}
}

func TestPrometheusAnswers(t *testing.T) {
	answer := func(body string) string {
		return serve(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") == "" || r.URL.Query().Get("time") == "" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			_, _ = fmt.Fprint(w, body)
		})
	}
	vector := func(values ...string) string {
		var series []string
		for i, v := range values {
			series = append(series, fmt.Sprintf(`{"metric":{"pod":"p%d"},"value":[1730476800,%q]}`, i, v))
		}
		return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(series, ",") + `]}}`
	}
	tests := []struct {
		name    string
		body    string
		min     *float64
		max     *float64
		passed  bool
		message string
	}{
		{"within max", vector("0.002"), nil, ptr.To(0.01), true, "returned 0.002"},
		{"above max", vector("0.2"), nil, ptr.To(0.01), false, "above the maximum 0.01"},
		{"below min", vector("1"), ptr.To(2.0), nil, false, "below the minimum 2"},
		{"scalar", `{"status":"success","data":{"resultType":"scalar","result":[1730476800,"3"]}}`, ptr.To(1.0), ptr.To(5.0), true, "returned 3"},
		{"empty result", vector(), nil, ptr.To(1.0), false, "no samples"},
		{"NaN", vector("NaN"), nil, ptr.To(1.0), false, "NaN"},
		{"several series", vector("1", "2"), nil, ptr.To(5.0), false, "returned 2 series"},
		{"query error", `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`, nil, ptr.To(1.0), false, "parse error"},
		{"not Prometheus", `<html>proxy login</html>`, nil, ptr.To(1.0), false, "no Prometheus response"},
	}
	client := NewHTTPClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := upgradesv1alpha1.PrometheusCheck{Address: upgradesv1alpha1.URL(answer(tt.body)), Query: "sum(rate(errors[5m]))", Min: tt.min, Max: tt.max}
			got := Prometheus(context.Background(), client, check, time.Second, time.Now())
			if got.Passed != tt.passed || !strings.Contains(got.Message, tt.message) {
				t.Fatalf("Prometheus() = %+v; want passed=%v and a message containing %q", got, tt.passed, tt.message)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	start := time.Date(2024, 11, 1, 18, 0, 0, 0, time.UTC)
	check := upgradesv1alpha1.Check{Name: "login", SuccessThreshold: 3, FailureThreshold: 2, Interval: "10s"}
	soaked := check
	soaked.Soak = "5m"
	ok, bad := Result{Passed: true, Message: "ok"}, Result{Message: "bad"}
	tests := []struct {
		name     string
		check    upgradesv1alpha1.Check
		attempts []Result
		every    time.Duration
		want     upgradesv1alpha1.CheckState
	}{
		{"passes after successThreshold passes", check, []Result{ok, ok, ok}, 10 * time.Second, upgradesv1alpha1.CheckPassed},
		{"not yet at the threshold", check, []Result{ok, ok}, 10 * time.Second, upgradesv1alpha1.CheckRunning},
		{"fails after failureThreshold consecutive failures", check, []Result{ok, bad, bad}, 10 * time.Second, upgradesv1alpha1.CheckFailed},
		{"a pass resets the failures", check, []Result{bad, ok, bad, ok, bad}, 10 * time.Second, upgradesv1alpha1.CheckRunning},
		{"flapping never passes", check, []Result{ok, ok, bad, ok, ok, bad, ok, ok, bad, ok, ok, bad}, 10 * time.Second, upgradesv1alpha1.CheckRunning},
		{"a failed check stays failed", check, []Result{bad, bad, ok, ok, ok}, 10 * time.Second, upgradesv1alpha1.CheckFailed},
		{"soak not over", soaked, []Result{ok, ok, ok, ok}, 10 * time.Second, upgradesv1alpha1.CheckRunning},
		{"passing through the soak", soaked, []Result{ok, ok, ok, ok, ok, ok}, time.Minute, upgradesv1alpha1.CheckPassed},
		{"failing during the soak", soaked, []Result{ok, ok, ok, bad, bad}, time.Minute, upgradesv1alpha1.CheckFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := upgradesv1alpha1.CheckStatus{Environment: "main", Name: "login", State: upgradesv1alpha1.CheckPending}
			for i, attempt := range tt.attempts {
				status = Record(status, tt.check, attempt, start, start.Add(time.Duration(i)*tt.every))
			}
			if status.State != tt.want {
				t.Fatalf("after %d attempts the check is %s (%d passes, %d failures in a row); want %s",
					len(tt.attempts), status.State, status.Successes, status.Failures, tt.want)
			}
		})
	}
}

func TestDue(t *testing.T) {
	check := upgradesv1alpha1.Check{Interval: "30s"}
	if due := Due(upgradesv1alpha1.CheckStatus{}, check); !due.IsZero() {
		t.Fatalf("a check never run is due at once, got %s", due)
	}
	status := Record(upgradesv1alpha1.CheckStatus{}, check, Result{Passed: true}, time.Unix(0, 0), time.Unix(100, 0))
	if due := Due(status, check); !due.Equal(time.Unix(130, 0)) {
		t.Fatalf("next attempt due at %s; want 30s after the last", due)
	}
	if status.Attempts != 1 || status.LastRunAt == nil {
		t.Fatalf("attempt not recorded: %+v", status)
	}
}
