package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/notify"
)

// serviceDesk is a webhook on 127.0.0.1 that fails its first requests, then
// recovers, and records every request it gets.
type serviceDesk struct {
	mu       sync.Mutex
	failures int
	requests []struct {
		key     string
		payload notify.Payload
	}
}

func (d *serviceDesk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p notify.Payload
	_ = json.Unmarshal(body, &p)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, struct {
		key     string
		payload notify.Payload
	}{r.Header.Get("Idempotency-Key"), p})
	if d.failures > 0 {
		d.failures--
		http.Error(w, "service desk is down", http.StatusBadGateway)
	}
}

func TestNotificationsAreDeliveredAtLeastOnce(t *testing.T) {
	ctx := context.Background()
	desk := &serviceDesk{failures: 2}
	server := httptest.NewServer(desk)
	defer server.Close()
	webhook := server.URL + "/hooks/T0KEN-s3cret"

	a := newApp(t, "notify")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.plansNS, Name: "changegate-hooks"}, StringData: map[string]string{"url": webhook}}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	plan := a.plan("clinspark-14-7")
	plan.Spec.Notifications = []upgradesv1alpha1.Notification{{
		Name:    "service-desk",
		Webhook: upgradesv1alpha1.Webhook{URLSecretRef: upgradesv1alpha1.SecretKeyReference{Name: "changegate-hooks", Key: "url"}},
		Events:  []upgradesv1alpha1.NotificationEvent{upgradesv1alpha1.EventAwaitingApproval},
	}}
	create(t, plan)

	// The desk fails twice; the operator retries with backoff until it takes it.
	got := waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return len(p.Status.Notifications) == 1 && p.Status.Notifications[0].DeliveredAt != nil
	})
	d := got.Status.Notifications[0]
	if d.Event != upgradesv1alpha1.EventAwaitingApproval || d.Attempts != 3 || d.LastError != "" || d.Phase != upgradesv1alpha1.PhaseAwaitingUATApproval {
		t.Errorf("delivery = %+v; want AwaitingApproval delivered on the third attempt", d)
	}
	desk.mu.Lock()
	requests := desk.requests
	desk.mu.Unlock()
	if len(requests) != 3 {
		t.Fatalf("the desk got %d requests; want 3 (two failures, one success)", len(requests))
	}
	for _, r := range requests {
		if r.key == "" || r.key != requests[0].key || r.payload.IdempotencyKey != r.key || r.payload.Plan != plan.Name || r.payload.ChangeID != plan.Spec.Change.ID {
			t.Errorf("request %+v; want the same idempotency key on every attempt and the plan's payload", r)
		}
	}

	// The URL is a secret: it is in no status and no Event.
	data, _ := json.Marshal(got.Status)
	if strings.Contains(string(data), "T0KEN") {
		t.Error("the webhook URL leaked into status")
	}
	var events corev1.EventList
	if err := k8s.List(ctx, &events, client.InNamespace(a.plansNS)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, "T0KEN") {
			t.Errorf("the webhook URL leaked into an Event: %s", e.Message)
		}
	}
}
