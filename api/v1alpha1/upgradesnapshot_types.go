package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// UpgradeSnapshotSpec is the recorded state of one PROD target before the
// plan touched it. It is written once, before the target is changed, and
// never altered: a rollback restores exactly this.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an UpgradeSnapshot records what a rollback restores and cannot be changed"
type UpgradeSnapshotSpec struct {
	// plan is the name of the UpgradePlan that took the snapshot.
	// +required
	Plan ObjectName `json:"plan"`

	// target is the PROD target recorded.
	// +required
	Target TargetName `json:"target"`

	// namespace of the target.
	// +required
	Namespace Name `json:"namespace"`

	// version that ran in the target before the plan.
	// +optional
	Version string `json:"version,omitempty"`

	// workloads are each component's workload as it was.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Workloads []WorkloadRecord `json:"workloads,omitempty"`

	// quiesced is what quiesce changed and how it was before.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Quiesced []QuiesceRecord `json:"quiesced,omitempty"`

	// volumeSnapshots are the CSI snapshots taken of the target's PVCs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	VolumeSnapshots []VolumeSnapshotRecord `json:"volumeSnapshots,omitempty"`

	// backupJobs are the backup Jobs run for the target.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	BackupJobs []string `json:"backupJobs,omitempty"`

	// checksum is the SHA-256 of the recorded content above, verified before
	// the target is touched and before a rollback uses it.
	// +required
	// +kubebuilder:validation:MaxLength=80
	Checksum string `json:"checksum"`
}

// WorkloadRecord is one workload as it was before the upgrade.
type WorkloadRecord struct {
	// component this workload belongs to.
	// +required
	Component Name `json:"component"`

	// kind of the workload.
	// +required
	Kind WorkloadKind `json:"kind"`

	// name of the workload.
	// +required
	Name ObjectName `json:"name"`

	// replicas it had; empty for DaemonSets.
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// template is the pod template as it was, field for field.
	// +required
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template corev1.PodTemplateSpec `json:"template"`

	// strategy is the workload's update strategy as it was.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Strategy *runtime.RawExtension `json:"strategy,omitempty"`
}

// QuiesceRecord is one object quiesce changed, with its value before.
type QuiesceRecord struct {
	// kind of the object: Deployment, StatefulSet or CronJob.
	// +required
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;CronJob
	Kind string `json:"kind"`

	// name of the object.
	// +required
	Name ObjectName `json:"name"`

	// replicas it had, for workloads.
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// suspended is whether a CronJob was already suspended.
	// +optional
	Suspended *bool `json:"suspended,omitempty"`
}

// VolumeSnapshotRecord is one CSI snapshot of one PVC.
type VolumeSnapshotRecord struct {
	// name of the VolumeSnapshot, in the target's namespace.
	// +required
	Name ObjectName `json:"name"`

	// pvc is the name of the claim snapshotted.
	// +required
	PVC ObjectName `json:"pvc"`

	// labels the claim carried, given back to the restored claim.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// claim is the claim's spec as it was, to recreate it on restore.
	// +required
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Claim corev1.PersistentVolumeClaimSpec `json:"claim"`
}

// UpgradeSnapshotStatus is what the operator verified of the snapshot.
type UpgradeSnapshotStatus struct {
	// readyVolumeSnapshots is how many volume snapshots are ready to use.
	// +optional
	ReadyVolumeSnapshots int32 `json:"readyVolumeSnapshots,omitempty"`

	// succeededBackupJobs is how many backup Jobs succeeded.
	// +optional
	SucceededBackupJobs int32 `json:"succeededBackupJobs,omitempty"`

	// verifiedAt is when the snapshot was re-read and its checksum matched.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`

	// conditions: Ready when every part of the backup is complete and verified.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=usnap,categories=changegate
// +kubebuilder:printcolumn:name="Plan",type=string,JSONPath=`.spec.plan`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Verified",type=date,JSONPath=`.status.verifiedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// UpgradeSnapshot is the recorded state of one PROD target that a plan rolls
// back to. It is owned by its plan.
type UpgradeSnapshot struct {
	metav1.TypeMeta `json:",inline"`

	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the recorded state.
	// +required
	Spec UpgradeSnapshotSpec `json:"spec"`

	// status is what was verified of it.
	// +optional
	Status UpgradeSnapshotStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// UpgradeSnapshotList is a list of UpgradeSnapshots.
type UpgradeSnapshotList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UpgradeSnapshot `json:"items"`
}
