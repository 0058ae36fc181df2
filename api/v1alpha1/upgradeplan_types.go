package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UpgradePlanSpec describes one change: which application, which components,
// which version goes to VAL and then to PROD, and the controls on the way.
//
// +kubebuilder:validation:XValidation:rule="self.components == oldSelf.components",message="components are immutable: one plan is one change; create a new plan for other components",fieldPath=".components"
// +kubebuilder:validation:XValidation:rule="self.val.version == oldSelf.val.version",message="val.version is immutable: one plan is one change; create a new plan for another version",fieldPath=".val.version"
// +kubebuilder:validation:XValidation:rule="has(self.uat) == has(oldSelf.uat) && (!has(self.uat) || self.uat == oldSelf.uat)",message="uat is immutable: the approval rules of a change cannot be altered once it is filed",fieldPath=".uat"
// +kubebuilder:validation:XValidation:rule="has(self.prod.decision) == has(oldSelf.prod.decision) && (!has(self.prod.decision) || self.prod.decision == oldSelf.prod.decision)",message="prod.decision is immutable: the go/no-go rules of a change cannot be altered once it is filed",fieldPath=".prod.decision"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.prod.version) || oldSelf.prod.version.size() == 0 || (has(self.prod.version) && self.prod.version == oldSelf.prod.version)",message="prod.version is immutable once set: create a new plan to promote another version",fieldPath=".prod.version"
// +kubebuilder:validation:XValidation:rule="self.prod.targets == oldSelf.prod.targets",message="prod.targets are immutable: decisions and rollbacks are recorded per target; create a new plan for other targets",fieldPath=".prod.targets"
// +kubebuilder:validation:XValidation:rule="self.prod.targets.all(t, t.__namespace__ != self.val.__namespace__)",message="a PROD target cannot use the VAL namespace",fieldPath=".prod.targets"
// +kubebuilder:validation:XValidation:rule="!has(self.prod.quiesce) || !has(self.prod.quiesce.scaleDown) || self.prod.quiesce.scaleDown.all(q, !self.components.exists(c, c.kind == q.kind && c.workloadName == q.name))",message="a component cannot also be scaled down by quiesce: it would be upgraded and verified while stopped",fieldPath=".prod.quiesce.scaleDown"
type UpgradePlanSpec struct {
	// application is the name of the application being upgraded, for people
	// and for the Application printer column.
	// +required
	Application Name `json:"application"`

	// change documents the change this plan carries out.
	// +required
	Change Change `json:"change"`

	// components are what "version" changes: one container image in one
	// workload each. The same workload name is looked up in every
	// environment's namespace.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(c, self.exists_one(d, d.kind == c.kind && d.workloadName == c.workloadName && d.container == c.container))",message="two components name the same container of the same workload"
	Components []Component `json:"components"`

	// val is the validation environment, upgraded and verified first.
	// +required
	VAL VALEnvironment `json:"val"`

	// uat sets who must approve the validated version before PROD.
	// +optional
	UAT *UAT `json:"uat,omitempty"`

	// prod describes the production targets and the controls around them.
	// +required
	PROD PRODEnvironment `json:"prod"`

	// notifications are webhooks told about the plan's progress.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Notifications []Notification `json:"notifications,omitempty"`

	// paused holds the plan: the current step finishes, nothing new starts.
	// A rollback in progress is never paused.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// Change is the change record this plan carries out.
type Change struct {
	// id of the change in the change-management system, such as CHG-2024-1147.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._/-]*$')",message="must start with a letter or digit and contain only letters, digits, '.', '_', '/' and '-'"
	ID string `json:"id"`

	// releaseNotes links to the vendor's release notes.
	// +optional
	ReleaseNotes URL `json:"releaseNotes,omitempty"`

	// summary says in one line what the change is.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Summary string `json:"summary,omitempty"`
}

// WorkloadKind is the kind of workload a component lives in.
//
// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
type WorkloadKind string

// The workload kinds changegate upgrades.
const (
	KindDeployment  WorkloadKind = "Deployment"
	KindStatefulSet WorkloadKind = "StatefulSet"
	KindDaemonSet   WorkloadKind = "DaemonSet"
)

// Component is one container image of one workload.
type Component struct {
	// name identifies the component in status and snapshots.
	// +required
	Name Name `json:"name"`

	// kind of the workload.
	// +required
	Kind WorkloadKind `json:"kind"`

	// workloadName is the workload's name, the same in every environment.
	// +required
	WorkloadName ObjectName `json:"workloadName"`

	// container is the name of the container whose image changes. Other
	// containers of the workload are left alone.
	// +required
	Container Name `json:"container"`

	// image is the repository; the version is the tag.
	// +required
	Image ImageRepository `json:"image"`
}

// VALEnvironment is the validation instance.
type VALEnvironment struct {
	// namespace of the VAL instance. It must carry the label
	// upgrades.changegate.dev/plans-from=<plan namespace>.
	// +required
	Namespace Name `json:"namespace"`

	// version to install in VAL and validate.
	// +required
	// +kubebuilder:validation:MinLength=1
	Version Version `json:"version"`

	// checks must pass in VAL after its upgrade.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Checks []Check `json:"checks,omitempty"`

	// hooks run around the VAL upgrade.
	// +optional
	Hooks *Hooks `json:"hooks,omitempty"`
}

// UAT sets the user-acceptance approval that gates PROD.
type UAT struct {
	// approvers narrows who may approve; when empty, anyone holding the
	// approve verb on upgradeplans may.
	// +optional
	Approvers *Approvers `json:"approvers,omitempty"`

	// requiredApprovals is how many distinct users must approve.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	RequiredApprovals int32 `json:"requiredApprovals,omitempty"`
}

// WindowEndAction says what happens when the window ends before the plan
// has completed.
//
// +kubebuilder:validation:Enum=Rollback;Continue
type WindowEndAction string

// The actions at the end of the window.
const (
	// WindowEndRollback rolls back whatever PROD changed.
	WindowEndRollback WindowEndAction = "Rollback"
	// WindowEndContinue carries on and records that the window was overrun.
	WindowEndContinue WindowEndAction = "Continue"
)

// PRODEnvironment describes the production targets and the controls around
// their upgrade.
//
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.restore.volumes) || !self.restore.volumes || (has(self.backup) && has(self.backup.volumeSnapshots))",message="restore.volumes needs backup.volumeSnapshots: there is nothing to restore volumes from",fieldPath=".restore.volumes"
type PRODEnvironment struct {
	// version to install in PROD. It may stay empty until a pipeline promotes
	// the validated version; a different version than the one validated in
	// VAL is refused.
	// +optional
	Version Version `json:"version,omitempty"`

	// targets are the PROD instances, upgraded in this order, one at a time.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(t, self.exists_one(u, u.__namespace__ == t.__namespace__))",message="two targets use the same namespace"
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.name != 'val')",message="a PROD target cannot be named val: that name stands for the VAL environment in status"
	Targets []Target `json:"targets"`

	// window is when PROD may be changed. Without a window PROD may start at
	// any time outside the freezes.
	// +optional
	Window *Window `json:"window,omitempty"`

	// freezes are periods in which no PROD work starts.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Freezes []Freeze `json:"freezes,omitempty"`

	// onWindowEnd says what happens when the window ends before the plan
	// completes.
	// +optional
	// +kubebuilder:default=Rollback
	OnWindowEnd WindowEndAction `json:"onWindowEnd,omitempty"`

	// quiesce names what to stop before the backup: interfaces, transfers.
	// +optional
	Quiesce *Quiesce `json:"quiesce,omitempty"`

	// backup says what to back up of every target before any is touched.
	// The workload specs are always recorded.
	// +optional
	Backup *Backup `json:"backup,omitempty"`

	// restore says what a rollback restores besides the workload specs.
	// +optional
	Restore *Restore `json:"restore,omitempty"`

	// hooks run around each target's upgrade.
	// +optional
	Hooks *Hooks `json:"hooks,omitempty"`

	// checks must pass on each target after its upgrade, and keep passing
	// while it waits for its go/no-go.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Checks []Check `json:"checks,omitempty"`

	// decision sets who takes the go/no-go for each target and how long they
	// have.
	// +optional
	Decision *Decision `json:"decision,omitempty"`

	// rollback sets when a rollback starts by itself.
	// +optional
	Rollback *RollbackPolicy `json:"rollback,omitempty"`
}

// Target is one PROD instance.
type Target struct {
	// name of the target, such as main or test. It is part of the
	// decision.<target> annotation keys, so it is at most 52 characters.
	// +required
	Name TargetName `json:"name"`

	// namespace of the target. It must carry the label
	// upgrades.changegate.dev/plans-from=<plan namespace>.
	// +required
	Namespace Name `json:"namespace"`
}

// Window is when PROD may be changed: either one-off (start and end) or
// recurring (schedule, duration and timeZone).
//
// +kubebuilder:validation:XValidation:rule="(has(self.start) && has(self.end) && !has(self.schedule) && !has(self.duration)) || (!has(self.start) && !has(self.end) && has(self.schedule) && has(self.duration))",message="set either start and end (a one-off window) or schedule and duration (a recurring window)"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.end) || self.end > self.start",message="end must be after start",fieldPath=".end"
// +kubebuilder:validation:XValidation:rule="!has(self.timeZone) || has(self.schedule)",message="timeZone applies only to a recurring window (schedule)",fieldPath=".timeZone"
type Window struct {
	// start of a one-off window, RFC 3339.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`

	// end of a one-off window, RFC 3339.
	// +optional
	End *metav1.Time `json:"end,omitempty"`

	// schedule opens a recurring window, in cron syntax (minute hour
	// day-of-month month day-of-week), such as "0 18 * * 5" for Fridays at 18:00.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f.size() > 0).size() == 5",message="must be a cron schedule of five fields: minute hour day-of-month month day-of-week"
	Schedule string `json:"schedule,omitempty"`

	// duration of each recurring window.
	// +optional
	Duration Duration `json:"duration,omitempty"`

	// timeZone of the schedule, an IANA name such as Europe/London.
	// Defaults to UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')",message="must be an IANA time zone name such as Europe/London or UTC"
	TimeZone string `json:"timeZone,omitempty"`
}

// Freeze is a period in which no PROD work starts.
//
// +kubebuilder:validation:XValidation:rule="self.end > self.start",message="end must be after start",fieldPath=".end"
type Freeze struct {
	// start of the freeze, RFC 3339.
	// +required
	Start metav1.Time `json:"start"`

	// end of the freeze, RFC 3339.
	// +required
	End metav1.Time `json:"end"`

	// reason people are told while the freeze holds the plan.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`
}

// QuiesceKind is the kind of workload quiesce scales down.
//
// +kubebuilder:validation:Enum=Deployment;StatefulSet
type QuiesceKind string

// Quiesce names what to stop in every PROD target before the backup, and to
// restore afterwards.
type Quiesce struct {
	// scaleDown workloads to zero replicas; their replica counts are recorded
	// and restored.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ScaleDown []WorkloadReference `json:"scaleDown,omitempty"`

	// suspendCronJobs names CronJobs to suspend; running Jobs are waited for.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	SuspendCronJobs []ObjectName `json:"suspendCronJobs,omitempty"`
}

// WorkloadReference names a workload in the target's namespace.
type WorkloadReference struct {
	// kind of the workload.
	// +required
	Kind QuiesceKind `json:"kind"`

	// name of the workload.
	// +required
	Name ObjectName `json:"name"`
}

// Backup says what is backed up of every PROD target before any is touched.
type Backup struct {
	// volumeSnapshots takes CSI snapshots of the target's PVCs.
	// +optional
	VolumeSnapshots *VolumeSnapshotBackup `json:"volumeSnapshots,omitempty"`

	// jobs run in each target's namespace, such as a database dump; each must
	// succeed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Jobs []JobTemplate `json:"jobs,omitempty"`
}

// VolumeSnapshotBackup selects the PVCs to snapshot.
type VolumeSnapshotBackup struct {
	// className is the VolumeSnapshotClass to use.
	// +required
	ClassName ObjectName `json:"className"`

	// pvcSelector selects the PVCs in each target's namespace.
	// +required
	PVCSelector metav1.LabelSelector `json:"pvcSelector"`
}

// Restore says what a rollback restores besides the workload specs.
type Restore struct {
	// volumes restores PVC data from the volume snapshots.
	// +optional
	Volumes bool `json:"volumes,omitempty"`

	// jobs run after the workloads are restored, such as a database restore.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Jobs []JobTemplate `json:"jobs,omitempty"`

	// maxDuration a rollback may take; past it the plan is Stalled and the
	// on-call team alerted, while the rollback carries on.
	// +optional
	// +kubebuilder:default="1h"
	MaxDuration Duration `json:"maxDuration,omitempty"`
}

// Decision sets who takes the go/no-go for each target and how long they have.
type Decision struct {
	// approvers narrows who may decide; when empty, anyone holding the
	// approve verb on upgradeplans may.
	// +optional
	Approvers *Approvers `json:"approvers,omitempty"`

	// timeout is how long after a target's checks pass a decision may take;
	// without one by then the target is rolled back.
	// +optional
	Timeout Duration `json:"timeout,omitempty"`
}

// RollbackPolicy sets when a rollback starts by itself.
type RollbackPolicy struct {
	// automatic rolls back when PROD checks fail. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Automatic *bool `json:"automatic,omitempty"`
}

// NotificationEvent is a kind of event a notification reports.
//
// +kubebuilder:validation:Enum=PhaseChanged;AwaitingApproval;RollingBack;RolledBack;Completed;Failed;Stalled
type NotificationEvent string

// The events a notification can report.
const (
	EventPhaseChanged     NotificationEvent = "PhaseChanged"
	EventAwaitingApproval NotificationEvent = "AwaitingApproval"
	EventRollingBack      NotificationEvent = "RollingBack"
	EventRolledBack       NotificationEvent = "RolledBack"
	EventCompleted        NotificationEvent = "Completed"
	EventFailed           NotificationEvent = "Failed"
	EventStalled          NotificationEvent = "Stalled"
)

// NotificationFormat is the body a webhook receives.
//
// +kubebuilder:validation:Enum=JSON;Slack
type NotificationFormat string

// The webhook body formats.
const (
	FormatJSON  NotificationFormat = "JSON"
	FormatSlack NotificationFormat = "Slack"
)

// Notification sends the plan's progress to a webhook.
type Notification struct {
	// name identifies the notification in status.
	// +required
	Name Name `json:"name"`

	// webhook receives a POST for each event.
	// +required
	Webhook Webhook `json:"webhook"`

	// events to send; all of them when empty.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	Events []NotificationEvent `json:"events,omitempty"`
}

// Webhook is an HTTP endpoint whose URL is kept in a Secret.
type Webhook struct {
	// urlSecretRef names the Secret key, in the plan's namespace, holding the
	// URL. The URL is never logged or written to status.
	// +required
	URLSecretRef SecretKeyReference `json:"urlSecretRef"`

	// format of the body: JSON (default) or Slack-compatible text.
	// +optional
	// +kubebuilder:default=JSON
	Format NotificationFormat `json:"format,omitempty"`
}

// SecretKeyReference names a key of a Secret in the plan's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	Name ObjectName `json:"name"`

	// key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="must be a Secret key: letters, digits, '-', '_' and '.'"
	Key string `json:"key"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=uplan,categories=changegate
// +kubebuilder:printcolumn:name="Application",type=string,JSONPath=`.spec.application`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.currentTarget`
// +kubebuilder:printcolumn:name="VAL",type=string,JSONPath=`.spec.val.version`
// +kubebuilder:printcolumn:name="PROD",type=string,JSONPath=`.spec.prod.version`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// UpgradePlan carries one application upgrade from VAL to PROD.
//
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a plan's name is at most 63 characters: it labels the Jobs and snapshots the plan creates"
type UpgradePlan struct {
	metav1.TypeMeta `json:",inline"`

	// metadata of the plan. Approvers sign it through its annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the change the plan carries out.
	// +required
	Spec UpgradePlanSpec `json:"spec"`

	// status is what the operator has done and seen.
	// +optional
	Status UpgradePlanStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// UpgradePlanList is a list of UpgradePlans.
type UpgradePlanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UpgradePlan `json:"items"`
}
