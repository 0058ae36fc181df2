// Package v1alpha1 holds the changegate API: UpgradePlan, which carries an
// application upgrade from VAL to PROD, and UpgradeSnapshot, the verified
// record a plan rolls back to.
//
// +kubebuilder:object:generate=true
// +groupName=upgrades.changegate.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every changegate type.
	GroupVersion = schema.GroupVersion{Group: "upgrades.changegate.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the changegate types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the changegate types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
