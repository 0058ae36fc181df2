package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

var payload = Payload{Plan: "clinspark-14-7", Namespace: "clinical-ops", ChangeID: "CHG-1", Event: "RolledBack", Phase: "RolledBack",
	Target: "main", Message: "carol decided no-go", Time: "2024-11-01T18:00:00Z", IdempotencyKey: "uid-7-desk-RolledBack"}

func TestBody(t *testing.T) {
	data, err := Body(upgradesv1alpha1.FormatJSON, payload)
	if err != nil {
		t.Fatal(err)
	}
	var got Payload
	if err := json.Unmarshal(data, &got); err != nil || got != payload {
		t.Fatalf("JSON body %s does not carry the payload: %v", data, err)
	}
	data, _ = Body(upgradesv1alpha1.FormatSlack, payload)
	var slack map[string]string
	if err := json.Unmarshal(data, &slack); err != nil || !strings.Contains(slack["text"], "*RolledBack* clinical-ops/clinspark-14-7 [CHG-1]") || !strings.Contains(slack["text"], "carol decided no-go") {
		t.Fatalf("Slack body %s", data)
	}
}

func TestSend(t *testing.T) {
	var key string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { key = r.Header.Get("Idempotency-Key") }))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }))
	defer failing.Close()
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer hanging.Close()

	if err := Send(context.Background(), http.DefaultClient, ok.URL+"/hooks/s3cret-token", []byte("{}"), "k1"); err != nil || key != "k1" {
		t.Fatalf("delivery to a healthy webhook: %v (key %q)", err, key)
	}
	err := Send(context.Background(), http.DefaultClient, failing.URL+"/hooks/s3cret-token", []byte("{}"), "k2")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a failing webhook gave %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := Send(ctx, http.DefaultClient, hanging.URL+"/hooks/s3cret-token", []byte("{}"), "k3"); err == nil {
		t.Fatal("a webhook that never answers was counted as delivered")
	}
	err = Send(context.Background(), http.DefaultClient, "http://127.0.0.1:1/hooks/s3cret-token", []byte("{}"), "k4")
	if err == nil || strings.Contains(err.Error(), "s3cret-token") || strings.Contains(err.Error(), "127.0.0.1:1/hooks") {
		t.Fatalf("the error %v must not repeat the URL", err)
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 20: 5 * time.Minute} {
		if got := Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %s; want %s", attempts, got, want)
		}
	}
}

func TestEvents(t *testing.T) {
	got := Events(upgradesv1alpha1.PhaseRolledBack, true, false)
	if len(got) != 2 || got[0] != upgradesv1alpha1.EventPhaseChanged || got[1] != upgradesv1alpha1.EventRolledBack {
		t.Errorf("RolledBack reports %v", got)
	}
	if got := Events(upgradesv1alpha1.PhaseAwaitingDecision, true, false); len(got) != 2 || got[1] != upgradesv1alpha1.EventAwaitingApproval {
		t.Errorf("AwaitingDecision reports %v", got)
	}
	if got := Events(upgradesv1alpha1.PhasePending, false, true); len(got) != 1 || got[0] != upgradesv1alpha1.EventStalled {
		t.Errorf("a stall within Pending reports %v", got)
	}
}
