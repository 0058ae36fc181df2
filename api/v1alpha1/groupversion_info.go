// Package v1alpha1 holds the changegate API: UpgradePlan, which carries an
// application upgrade from VAL to PROD, and UpgradeSnapshot, the verified
// record a plan rolls back to.
//
// +kubebuilder:object:generate=true
// +groupName=upgrades.changegate.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every changegate type.
	GroupVersion = schema.GroupVersion{Group: "upgrades.changegate.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the changegate types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the changegate types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &UpgradePlan{}, &UpgradePlanList{}, &UpgradeSnapshot{}, &UpgradeSnapshotList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
