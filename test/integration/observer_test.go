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
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/test/testenv"
)

// prodObserver records, from informers, every change to a component's spec
// in PROD and the moment each UpgradeSnapshot was verified. envtest has one
// etcd, whose revision orders every write, so the resourceVersions of the
// two kinds of event tell which came first. Informers watch again, and list
// what they missed, when the API server restarts, so the observer sees
// through an outage: a workload changed while it could not watch shows as
// one change, at the resourceVersion of the last.
type prodObserver struct {
	mu       sync.Mutex
	changes  []string // "<rv> <namespace>/<name>"
	changeRV []int64
	changeAt []time.Time // when the API server wrote each change, to the second
	verified map[string]int64
	// seen is the resourceVersion of each object as last seen, by kind
	// and key; namespaces are the ones watched.
	seen       map[string]string
	namespaces []string
}

func observePROD(t *testing.T, a *app) *prodObserver {
	t.Helper()
	o := &prodObserver{verified: map[string]int64{}, seen: map[string]string{}, namespaces: []string{a.namespace["main"], a.namespace["test"], a.plansNS}}
	namespaces := map[string]cache.Config{}
	for _, ns := range o.namespaces {
		namespaces[ns] = cache.Config{}
	}
	informers, err := cache.New(restConfig, cache.Options{Scheme: testenv.Scheme(), DefaultNamespaces: namespaces})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { o.record(nil, obj.(client.Object)) },
		UpdateFunc: func(old, obj any) {
			o.record(old.(client.Object), obj.(client.Object))
		},
	}
	for _, list := range observedLists() {
		obj := listItem(list)
		informer, err := informers.GetInformer(ctx, obj)
		if err != nil {
			t.Fatalf("watching %T: %v", obj, err)
		}
		if _, err := informer.AddEventHandler(handler); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("the PROD observer's informers did not sync")
	}
	return o
}

// record notes a PROD workload whose generation moved from old's, and the
// first sight of each UpgradeSnapshot verified.
func (o *prodObserver) record(old, obj client.Object) {
	rv, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[seenKey(obj)] = obj.GetResourceVersion()
	switch obj := obj.(type) {
	case *upgradesv1alpha1.UpgradeSnapshot:
		if _, seen := o.verified[obj.Name]; !seen && obj.Status.VerifiedAt != nil {
			o.verified[obj.Name] = rv
		}
	default:
		if old != nil && strings.HasPrefix(obj.GetName(), "clinspark-") && obj.GetGeneration() != old.GetGeneration() {
			o.changes = append(o.changes, obj.GetResourceVersion()+" "+obj.GetNamespace()+"/"+obj.GetName())
			o.changeRV = append(o.changeRV, rv)
			o.changeAt = append(o.changeAt, lastWritten(obj))
		}
	}
}

// observedLists are the kinds the observer watches.
func observedLists() []client.ObjectList {
	return []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}, &upgradesv1alpha1.UpgradeSnapshotList{}}
}

// listItem is an empty object of the kind list holds.
func listItem(list client.ObjectList) client.Object {
	switch list.(type) {
	case *appsv1.DeploymentList:
		return &appsv1.Deployment{}
	case *appsv1.StatefulSetList:
		return &appsv1.StatefulSet{}
	case *appsv1.DaemonSetList:
		return &appsv1.DaemonSet{}
	}
	return &upgradesv1alpha1.UpgradeSnapshot{}
}

func seenKey(obj client.Object) string {
	return fmt.Sprintf("%T %s/%s", obj, obj.GetNamespace(), obj.GetName())
}

// catchUp waits until the observer has seen every object it watches as the
// API server now has it: after an outage, informers come back late.
func (o *prodObserver) catchUp(t *testing.T) {
	t.Helper()
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
