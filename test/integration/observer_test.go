package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// prodObserver records, from watches, every change to a component's spec in
// PROD and the moment each UpgradeSnapshot was verified. envtest has one
// etcd, whose revision orders every write, so the resourceVersions of the
// two kinds of event tell which came first. When the API server restarts,
// each watch starts again from the last resourceVersion it saw; the suite's
// API server serves watches from etcd (testenv.Restartable), which replays
// every event since, so the observer misses nothing through an outage, or
// says so.
type prodObserver struct {
	mu       sync.Mutex
	changes  []string // "<rv> <namespace>/<name>"
	changeRV []int64
	changeAt []time.Time // when the API server wrote each change, to the second
	verified map[string]int64
	// seen is the resourceVersion, and generations the generation, of each
	// object as last seen, by seenKey.
	seen        map[string]string
	generations map[string]int64
	// lost names the watches that could not start again where they
	// stopped.
	lost       []string
	namespaces []string
}

func observePROD(t *testing.T, a *app) *prodObserver {
	t.Helper()
	o := &prodObserver{verified: map[string]int64{}, seen: map[string]string{}, generations: map[string]int64{},
		namespaces: []string{a.namespace["main"], a.namespace["test"], a.plansNS}}
	watcher, err := client.NewWithWatch(restConfig, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, ns := range o.namespaces {
		for _, list := range observedLists() {
			w, err := watcher.Watch(ctx, list, client.InNamespace(ns))
			if err != nil {
				t.Fatalf("watching %T in %s: %v", list, ns, err)
			}
			go o.follow(ctx, watcher, w, list, ns)
		}
	}
	return o
}

// follow records the events of w, a watch of list in namespace ns, and
// when it ends watches again from the last resourceVersion seen, until ctx
// is done.
func (o *prodObserver) follow(ctx context.Context, watcher client.WithWatch, w watch.Interface, list client.ObjectList, ns string) {
	var rv string
	for {
		for event := range w.ResultChan() {
			if event.Type == watch.Error {
				if err := apierrors.FromObject(event.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					o.lose(fmt.Sprintf("%T in %s from resourceVersion %s: %v", list, ns, rv, err))
					w.Stop()
					return
				}
				break
			}
			if obj, ok := event.Object.(client.Object); ok {
				rv = obj.GetResourceVersion()
				o.record(event.Type, obj)
			}
		}
		w.Stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = watcher.Watch(ctx, list, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}}); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (o *prodObserver) lose(watch string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lost = append(o.lost, watch)
}

// record notes a PROD workload whose generation moved, and the first sight
// of each UpgradeSnapshot verified.
func (o *prodObserver) record(event watch.EventType, obj client.Object) {
	rv, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	key := seenKey(obj)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[key] = obj.GetResourceVersion()
	switch obj := obj.(type) {
	case *upgradesv1alpha1.UpgradeSnapshot:
		if _, seen := o.verified[obj.Name]; !seen && obj.Status.VerifiedAt != nil {
			o.verified[obj.Name] = rv
		}
	default:
		previous, seen := o.generations[key]
		if seen && event == watch.Modified && obj.GetGeneration() != previous && strings.HasPrefix(obj.GetName(), "clinspark-") {
			o.changes = append(o.changes, obj.GetResourceVersion()+" "+obj.GetNamespace()+"/"+obj.GetName())
			o.changeRV = append(o.changeRV, rv)
			o.changeAt = append(o.changeAt, lastWritten(obj))
		}
		o.generations[key] = obj.GetGeneration()
	}
}

// observedLists are the kinds the observer watches.
func observedLists() []client.ObjectList {
	return []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}, &upgradesv1alpha1.UpgradeSnapshotList{}}
}

func seenKey(obj client.Object) string {
	return fmt.Sprintf("%T %s/%s", obj, obj.GetNamespace(), obj.GetName())
}

// catchUp waits until the observer has seen every object it watches as the
// API server now has it: after an outage, its watches come back late.
func (o *prodObserver) catchUp(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	lost := o.lost
	o.mu.Unlock()
	if len(lost) > 0 {
		t.Fatalf("the PROD observer could not watch on after an outage: %s", strings.Join(lost, "; "))
	}
	var behind string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, ns := range o.namespaces {
			for _, list := range observedLists() {
				if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
					behind = err.Error()
					return false, nil
				}
				items, err := meta.ExtractList(list)
				if err != nil {
					return false, err
				}
				for _, item := range items {
					obj := item.(client.Object)
					o.mu.Lock()
					seen := o.seen[seenKey(obj)]
					o.mu.Unlock()
					if seen != obj.GetResourceVersion() {
						behind = fmt.Sprintf("%s at resourceVersion %q, not %s", seenKey(obj), seen, obj.GetResourceVersion())
						return false, nil
					}
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the PROD observer did not catch up with the API server: %s", behind)
	}
}

// expectNoChangeBeforeVerification asserts that both snapshots were verified
// and that every change to a PROD component's spec came after.
func (o *prodObserver) expectNoChangeBeforeVerification(t *testing.T) {
	t.Helper()
	o.catchUp(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.verified) != 2 {
		t.Fatalf("saw %d snapshots verified; want 2", len(o.verified))
	}
	if len(o.changes) == 0 {
		t.Fatal("saw no change to PROD at all: the observer is blind")
	}
	var lastVerified int64
	for _, rv := range o.verified {
		lastVerified = max(lastVerified, rv)
	}
	for i, rv := range o.changeRV {
		if rv < lastVerified {
			t.Errorf("PROD changed before every snapshot was verified (at resourceVersion %d): %s", lastVerified, o.changes[i])
		}
	}
}

// lastWritten is when the object was last written, from its managedFields:
// the API server's clock, to the second.
func lastWritten(obj client.Object) time.Time {
	var last time.Time
	for _, entry := range obj.GetManagedFields() {
		if entry.Time != nil && entry.Time.After(last) {
			last = entry.Time.Time
		}
	}
	return last
}

// expectWithin asserts every change to PROD was written between start and
// end. The API server records seconds; start is a whole second, so a write
// a moment before it shows as the second before.
func (o *prodObserver) expectWithin(t *testing.T, start, end time.Time) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, at := range o.changeAt {
		if at.Before(start) || at.After(end) {
			t.Errorf("PROD changed at %s, outside the window %s to %s: %s", at.Format(time.RFC3339), start.Format(time.RFC3339), end.Format(time.RFC3339), o.changes[i])
		}
	}
}
