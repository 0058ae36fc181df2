package controllers

import (
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
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
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("changegate"),
		Clock:     opts.Clock,
	}
	return reconciler.SetupWithManager(mgr, controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		SkipNameValidation:      &opts.SkipNameValidation,
	})
}
