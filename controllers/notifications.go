package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/notify"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// queueNotifications adds to the plan's outbox, in the same status write
// that records the transition, one delivery per notification that asked for
// the events the transition reports. Delivering is the Notifier's job: a
// reconcile never waits on a webhook.
func queueNotifications(plan *upgradesv1alpha1.UpgradePlan, before upgradesv1alpha1.Phase, t *transition, now time.Time) {
	if t == nil || len(plan.Spec.Notifications) == 0 {
		return
	}
	stalled := t.warning && t.phase == before
	for _, event := range notify.Events(t.phase, t.phase != before, stalled) {
		for _, n := range plan.Spec.Notifications {
			if len(n.Events) > 0 && !slices.Contains(n.Events, event) {
				continue
			}
			plan.Status.Notifications = append(plan.Status.Notifications, upgradesv1alpha1.NotificationDelivery{
				Name: string(n.Name), Event: event, Phase: t.phase, Target: plan.Status.CurrentTarget,
				Key:     fmt.Sprintf("%s-%d-%s-%s", plan.UID, len(plan.Status.History), n.Name, event),
				Message: truncate(t.message, 1024), At: metav1.NewTime(now),
			})
		}
	}
	// Keep the outbox bounded: the oldest delivered entries go first.
	for over := len(plan.Status.Notifications) - 100; over > 0; over-- {
		i := slices.IndexFunc(plan.Status.Notifications, func(d upgradesv1alpha1.NotificationDelivery) bool { return d.DeliveredAt != nil })
		if i < 0 {
			i = 0
		}
		plan.Status.Notifications = slices.Delete(plan.Status.Notifications, i, i+1)
	}
}

// Notifier delivers the plans' outboxes to their webhooks, at least once,
// retrying with backoff, and records each attempt in status. It runs beside
// the reconciler, on the leader only.
type Notifier struct {
	Client    client.Client
	APIReader client.Reader
	HTTP      *http.Client
	Clock     clock.PassiveClock
	// Interval is how often it looks for deliveries that are due.
	Interval time.Duration
}

// Start runs the delivery loop until ctx ends.
func (n *Notifier) Start(ctx context.Context) error {
	ticker := time.NewTicker(n.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			n.deliverDue(ctx)
		}
	}
}

func (n *Notifier) deliverDue(ctx context.Context) {
	plans := &upgradesv1alpha1.UpgradePlanList{}
	if err := n.Client.List(ctx, plans); err != nil {
		ctrlLog(ctx).Error(err, "listing plans to notify")
		return
	}
	for i := range plans.Items {
		if plan := &plans.Items[i]; n.due(plan) {
			if err := n.deliver(ctx, plan); err != nil {
				ctrlLog(ctx).V(1).Info("recording notification attempts; will retry", "plan", client.ObjectKeyFromObject(plan), "reason", err.Error())
			}
		}
	}
}

func (n *Notifier) due(plan *upgradesv1alpha1.UpgradePlan) bool {
	now := n.Clock.Now()
	return slices.ContainsFunc(plan.Status.Notifications, func(d upgradesv1alpha1.NotificationDelivery) bool {
		return d.DeliveredAt == nil && (d.NextAttemptAt == nil || !now.Before(d.NextAttemptAt.Time))
	})
}

// deliver attempts every due delivery of one plan and records the attempts
// with one status patch. If that patch is lost, the next round sends again:
// receivers drop repeats by the idempotency key.
func (n *Notifier) deliver(ctx context.Context, plan *upgradesv1alpha1.UpgradePlan) error {
	before := plan.DeepCopy()
	for i := range plan.Status.Notifications {
		d := &plan.Status.Notifications[i]
		now := n.Clock.Now()
		if d.DeliveredAt != nil || (d.NextAttemptAt != nil && now.Before(d.NextAttemptAt.Time)) {
			continue
		}
		err := n.send(ctx, plan, d)
		d.Attempts++
		if err == nil {
			delivered := metav1.NewTime(n.Clock.Now())
			d.DeliveredAt, d.NextAttemptAt, d.LastError = &delivered, nil, ""
			continue
		}
		next := metav1.NewTime(n.Clock.Now().Add(notify.Backoff(d.Attempts)))
		d.NextAttemptAt, d.LastError = &next, truncate(err.Error(), 1024)
	}
	return n.Client.Status().Patch(ctx, plan, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// send posts one delivery; the webhook URL is read from its Secret for each
// attempt, live, and goes nowhere else.
func (n *Notifier) send(ctx context.Context, plan *upgradesv1alpha1.UpgradePlan, d *upgradesv1alpha1.NotificationDelivery) error {
	i := slices.IndexFunc(plan.Spec.Notifications, func(spec upgradesv1alpha1.Notification) bool { return string(spec.Name) == d.Name })
	if i < 0 {
		return fmt.Errorf("notification %s is no longer in spec.notifications", d.Name)
	}
	webhook := plan.Spec.Notifications[i].Webhook
	secret := &corev1.Secret{}
	ref := webhook.URLSecretRef
	if err := n.APIReader.Get(ctx, client.ObjectKey{Namespace: plan.Namespace, Name: string(ref.Name)}, secret); err != nil {
		return fmt.Errorf("reading the webhook URL from Secret %s: %v", ref.Name, err)
	}
	url, ok := secret.Data[ref.Key]
	if !ok || len(url) == 0 {
		return fmt.Errorf("the Secret %s has no key %s holding the webhook URL", ref.Name, ref.Key)
	}
	body, err := notify.Body(webhook.Format, notify.Payload{
		Plan: plan.Name, Namespace: plan.Namespace, ChangeID: plan.Spec.Change.ID, Event: string(d.Event), Phase: string(d.Phase),
		Target: d.Target, Message: d.Message, Time: d.At.UTC().Format(time.RFC3339), IdempotencyKey: d.Key,
	})
	if err != nil {
		return err
	}
	return notify.Send(ctx, n.HTTP, string(url), body, d.Key)
}
