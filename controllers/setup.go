package controllers

import (
	"net/http"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Options configure the controllers.
type Options struct {
	// MaxConcurrentReconciles is how many plans are reconciled at once.
	MaxConcurrentReconciles int
	// Clock replaces the real clock, for tests.
	Clock clock.PassiveClock
	// SkipNameValidation allows several managers in one process, for tests
	// that restart the manager.
	SkipNameValidation bool
}

// Setup registers every changegate controller with the manager. main.go and
// the test suites call it, so that the tests run the manager users run.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	reconciler := &UpgradePlanReconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Scheme:                mgr.GetScheme(),
		Recorder:              mgr.GetEventRecorder("changegate"),
		Clock:                 opts.Clock,
		VolumeSnapshotsServed: served(mgr, &snapshotv1.VolumeSnapshot{}),
	}
	if !reconciler.VolumeSnapshotsServed {
		mgr.GetLogger().Info("the cluster serves no snapshot.storage.k8s.io/v1 VolumeSnapshot API; plans that back up volumes will fail until it is installed and changegate restarted")
	}
	notifier := &Notifier{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), HTTP: &http.Client{}, Clock: opts.Clock, Interval: 500 * time.Millisecond}
	if err := mgr.Add(notifier); err != nil {
		return err
	}
	return reconciler.SetupWithManager(mgr, controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		SkipNameValidation:      &opts.SkipNameValidation,
		RateLimiter:             retryLimiter(),
		// client-go's work queue, not controller-runtime's priority queue:
		// in v0.24.1 a worker that leaves the priority queue at shutdown
		// stays counted as waiting, and the queue then blocks handing it an
		// item while holding its lock, so stopping the manager waits out its
		// whole 30 s grace period. A leader that takes 30 s to stop delays
		// the next one by as much.
		UsePriorityQueue: ptr.To(false),
	})
}

// maxRetryDelay bounds how long a plan whose reconcile failed waits before
// the next try. client-go's default doubles the delay up to 16 minutes, so a
// plan that failed through a minute's outage of the API server would sit
// idle for minutes after it came back, in the middle of a change window.
const maxRetryDelay = 30 * time.Second

// retryLimiter is client-go's default rate limiter for failed reconciles
// (per-plan exponential backoff, 10 a second overall), with the per-plan
// backoff capped at maxRetryDelay.
func retryLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxRetryDelay),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
}

// CacheOptions are the options of the manager's cache, for main.go and the
// test suites: the cache keeps no managedFields, which changegate never
// reads and which are often the largest part of a cached workload.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}

// served reports whether the API server serves the object's kind, so that a
// watch on it can start.
func served(mgr ctrl.Manager, obj client.Object) bool {
	gvk, err := mgr.GetClient().GroupVersionKindFor(obj)
	if err != nil {
		return false
	}
	_, err = mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil
}
