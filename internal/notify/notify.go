// Package notify delivers one plan event to one webhook: the JSON or
// Slack-compatible body, the Idempotency-Key header, a bounded wait, and an
// error that never repeats the URL (it is a secret). It has no Kubernetes
// client; the operator keeps the outbox in the plan's status.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// Timeout bounds one delivery attempt.
const Timeout = 5 * time.Second

// Payload is the JSON body of a notification.
type Payload struct {
	Plan           string `json:"plan"`
	Namespace      string `json:"namespace"`
	ChangeID       string `json:"changeId"`
	Event          string `json:"event"`
	Phase          string `json:"phase,omitempty"`
	Target         string `json:"target,omitempty"`
	Message        string `json:"message,omitempty"`
	Time           string `json:"time"`
	IdempotencyKey string `json:"idempotencyKey"`
}

// Body renders the delivery in the webhook's format.
func Body(format upgradesv1alpha1.NotificationFormat, p Payload) ([]byte, error) {
	if format == upgradesv1alpha1.FormatSlack {
		target := ""
		if p.Target != "" {
			target = " (" + p.Target + ")"
		}
		return json.Marshal(map[string]string{"text": fmt.Sprintf("*%s* %s/%s [%s]: %s%s — %s", p.Event, p.Namespace, p.Plan, p.ChangeID, p.Phase, target, p.Message)})
	}
	return json.Marshal(p)
}

// Send posts the body to the webhook. Any 2xx answer is a delivery; the
// error of a failed attempt names the status or the network failure, never
// the URL.
func Send(ctx context.Context, client *http.Client, webhook string, body []byte, key string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return errors.New("the webhook URL in the Secret is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // *url.Error repeats the URL
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the webhook did not answer within %s", Timeout)
		}
		return fmt.Errorf("posting to the webhook: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

// Backoff is how long to wait after a failed attempt: 1s, 2s, 4s … up to
// five minutes.
func Backoff(attempts int32) time.Duration {
	wait := time.Second
	for i := int32(1); i < attempts && wait < 5*time.Minute; i++ {
		wait *= 2
	}
	return min(wait, 5*time.Minute)
}

// Events are the notification events a phase change (or a stall within a
// phase) reports.
func Events(phase upgradesv1alpha1.Phase, phaseChanged, stalled bool) []upgradesv1alpha1.NotificationEvent {
	var events []upgradesv1alpha1.NotificationEvent
	if phaseChanged {
		events = append(events, upgradesv1alpha1.EventPhaseChanged)
		switch phase {
		case upgradesv1alpha1.PhaseAwaitingUATApproval, upgradesv1alpha1.PhaseAwaitingDecision:
			events = append(events, upgradesv1alpha1.EventAwaitingApproval)
		case upgradesv1alpha1.PhaseRollingBack:
			events = append(events, upgradesv1alpha1.EventRollingBack)
		case upgradesv1alpha1.PhaseRolledBack:
			events = append(events, upgradesv1alpha1.EventRolledBack)
		case upgradesv1alpha1.PhaseCompleted:
			events = append(events, upgradesv1alpha1.EventCompleted)
		case upgradesv1alpha1.PhaseFailed:
			events = append(events, upgradesv1alpha1.EventFailed)
		}
	}
	if stalled && !phase.Terminal() {
		events = append(events, upgradesv1alpha1.EventStalled)
	}
	return events
}
