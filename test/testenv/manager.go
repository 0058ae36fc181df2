package testenv

import (
	"context"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
)

// ManagerAccount is the ServiceAccount config/rbac gives the manager.
const ManagerAccount = "system:serviceaccount:changegate-system:changegate-manager"

// ManagerGroups are the groups the API server gives the manager's
// ServiceAccount.
var ManagerGroups = []string{"system:serviceaccounts", "system:serviceaccounts:changegate-system", "system:authenticated"}

// AsManager returns config acting as the manager's ServiceAccount, through
// impersonation: a manager started with it has only the rights of the role
// bound to that account.
func AsManager(config *rest.Config) *rest.Config {
	impersonated := rest.CopyConfig(config)
	impersonated.Impersonate = rest.ImpersonationConfig{UserName: ManagerAccount, Groups: ManagerGroups}
	return impersonated
}

// StartManager starts a manager with what setup registers, and returns a
// function that stops it and waits until it has.
func StartManager(config *rest.Config, opts ctrl.Options, setup func(ctrl.Manager) error) (func(), error) {
	mgr, err := ctrl.NewManager(config, opts)
	if err != nil {
		return nil, err
	}
	if err := setup(mgr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}
