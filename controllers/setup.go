package controllers

import (
	"net/http"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
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
	})
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
