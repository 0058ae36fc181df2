package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is where a plan stands, derived from its recorded steps for people to
// read. The operator never decides anything from it.
//
// +kubebuilder:validation:Enum=Pending;UpgradingVAL;VerifyingVAL;AwaitingUATApproval;AwaitingPromotion;AwaitingWindow;Quiescing;BackingUp;UpgradingPROD;VerifyingPROD;AwaitingDecision;Completed;RollingBack;RolledBack;Failed
type Phase string

// The phases of a plan, in order, then the terminal and exceptional ones.
const (
	PhasePending             Phase = "Pending"
	PhaseUpgradingVAL        Phase = "UpgradingVAL"
	PhaseVerifyingVAL        Phase = "VerifyingVAL"
	PhaseAwaitingUATApproval Phase = "AwaitingUATApproval"
	PhaseAwaitingPromotion   Phase = "AwaitingPromotion"
	PhaseAwaitingWindow      Phase = "AwaitingWindow"
	PhaseQuiescing           Phase = "Quiescing"
	PhaseBackingUp           Phase = "BackingUp"
	PhaseUpgradingPROD       Phase = "UpgradingPROD"
	PhaseVerifyingPROD       Phase = "VerifyingPROD"
	PhaseAwaitingDecision    Phase = "AwaitingDecision"
	PhaseCompleted           Phase = "Completed"
	PhaseRollingBack         Phase = "RollingBack"
	PhaseRolledBack          Phase = "RolledBack"
	PhaseFailed              Phase = "Failed"
)

// Terminal reports whether no further step follows the phase.
func (p Phase) Terminal() bool {
	return p == PhaseCompleted || p == PhaseRolledBack || p == PhaseFailed
}

// StepName names a recorded step. Steps that happen per PROD target carry the
// target in Step.Target.
//
// +kubebuilder:validation:Enum=Resolve;UpgradeVAL;VerifyVAL;RestoreVAL;UATApproval;Promotion;Window;Quiesce;Backup;UpgradePROD;VerifyPROD;Decision;Complete;RollBack
type StepName string

// The steps a plan records, in the order they normally happen.
const (
	StepResolve     StepName = "Resolve"
	StepUpgradeVAL  StepName = "UpgradeVAL"
	StepVerifyVAL   StepName = "VerifyVAL"
	StepRestoreVAL  StepName = "RestoreVAL"
	StepUATApproval StepName = "UATApproval"
	StepPromotion   StepName = "Promotion"
	StepWindow      StepName = "Window"
	StepQuiesce     StepName = "Quiesce"
	StepBackup      StepName = "Backup"
	StepUpgradePROD StepName = "UpgradePROD"
	StepVerifyPROD  StepName = "VerifyPROD"
	StepDecision    StepName = "Decision"
	StepComplete    StepName = "Complete"
	StepRollBack    StepName = "RollBack"
)

// StepResult is how a completed step ended.
//
// +kubebuilder:validation:Enum=Succeeded;Failed;Skipped
type StepResult string

// The results of a completed step.
const (
	StepSucceeded StepResult = "Succeeded"
	StepFailed    StepResult = "Failed"
	StepSkipped   StepResult = "Skipped"
)

// Step is a recorded fact: a step of the plan started, and maybe completed.
// Steps are written once and never rewritten; the plan's decisions are made
// from them.
type Step struct {
	// name of the step.
	// +required
	Name StepName `json:"name"`

	// target is the PROD target the step belongs to, if any.
	// +optional
	Target string `json:"target,omitempty"`

	// startedAt is when the step started.
	// +required
	StartedAt metav1.Time `json:"startedAt"`

	// completedAt is when the step completed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// result of the completed step.
	// +optional
	Result StepResult `json:"result,omitempty"`

	// reason is a CamelCase word for why the step ended as it did, such as
	// NoGo or RolloutFailed; the conditions carry it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`

	// message says what happened, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ApprovalKind is what an approval approved.
//
// +kubebuilder:validation:Enum=UAT;Decision;Abort
type ApprovalKind string

// The kinds of approvals.
const (
	ApprovalUAT      ApprovalKind = "UAT"
	ApprovalDecision ApprovalKind = "Decision"
	ApprovalAbort    ApprovalKind = "Abort"
)

// Approval is one approval, decision or abort the operator saw, with who
// gave it and when. The list is an audit trail: entries are only appended.
type Approval struct {
	// kind of approval.
	// +required
	Kind ApprovalKind `json:"kind"`

	// version approved, for UAT approvals.
	// +optional
	Version string `json:"version,omitempty"`

	// target decided on, for decisions.
	// +optional
	Target string `json:"target,omitempty"`

	// decision taken: go or no-go, for decisions.
	// +optional
	Decision string `json:"decision,omitempty"`

	// reason given, for aborts.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`

	// user who gave it.
	// +required
	User string `json:"user"`

	// at is when the operator first saw it.
	// +required
	At metav1.Time `json:"at"`
}

// SnapshotReference points at the UpgradeSnapshot of a PROD target.
type SnapshotReference struct {
	// target the snapshot belongs to.
	// +required
	Target string `json:"target"`

	// name of the UpgradeSnapshot, in the plan's namespace.
	// +required
	Name string `json:"name"`

	// verifiedAt is when the snapshot was re-read and its checksum verified.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
}

// QuiescedObject is one object quiesce stopped in one PROD target, with how
// it was before.
type QuiescedObject struct {
	// target is the PROD target whose namespace holds the object.
	// +required
	Target string `json:"target"`

	QuiesceRecord `json:",inline"`
}

// NotificationDelivery is one event for one notification, delivered at
// least once.
type NotificationDelivery struct {
	// name of the notification in spec.notifications.
	// +required
	Name string `json:"name"`

	// event reported.
	// +required
	Event NotificationEvent `json:"event"`

	// key identifies the event; receivers use it to drop repeats (it is sent
	// as the Idempotency-Key header and in the body).
	// +required
	Key string `json:"key"`

	// phase the plan entered.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// target the plan was working on.
	// +optional
	Target string `json:"target,omitempty"`

	// message says what happened.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// at is when it happened.
	// +required
	At metav1.Time `json:"at"`

	// attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// deliveredAt is when the webhook accepted it.
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`

	// nextAttemptAt is when the next attempt is due.
	// +optional
	NextAttemptAt *metav1.Time `json:"nextAttemptAt,omitempty"`

	// lastError says why the last attempt failed; it never holds the URL.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
}

// CheckState is where a check stands.
//
// +kubebuilder:validation:Enum=Pending;Running;Passed;Failed
type CheckState string

// The states of a check.
const (
	CheckPending CheckState = "Pending"
	CheckRunning CheckState = "Running"
	CheckPassed  CheckState = "Passed"
	CheckFailed  CheckState = "Failed"
)

// CheckStatus is the state of one check in one environment.
type CheckStatus struct {
	// environment is val or the name of a PROD target.
	// +required
	Environment string `json:"environment"`

	// name of the check.
	// +required
	Name string `json:"name"`

	// state of the check.
	// +required
	State CheckState `json:"state"`

	// successes is the number of consecutive passes.
	// +optional
	Successes int32 `json:"successes"`

	// failures is the number of consecutive failures.
	// +optional
	Failures int32 `json:"failures"`

	// attempts is the number of attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// message of the last attempt.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// lastRunAt is when the last attempt ran.
	// +optional
	LastRunAt *metav1.Time `json:"lastRunAt,omitempty"`
}

// EnvironmentVAL is the key of the VAL environment in status.versions,
// status.checks and status.previousImages; PROD targets use their names.
const EnvironmentVAL = "val"

// RecordedImage is the image one component ran in one environment before
// the plan changed it; restoring an environment sets these images back.
type RecordedImage struct {
	// environment is val or the name of a PROD target.
	// +required
	Environment string `json:"environment"`

	// component is the name of the component.
	// +required
	Component string `json:"component"`

	// image is the full image reference the container ran.
	// +required
	Image string `json:"image"`
}

// HistoryEntry is one line of the plan's history.
type HistoryEntry struct {
	// at is when it happened.
	// +required
	At metav1.Time `json:"at"`

	// phase the plan entered.
	// +required
	Phase Phase `json:"phase"`

	// message says why.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// MaxHistory is how many history entries a plan keeps; older ones are
// dropped, newest last.
const MaxHistory = 50

// UpgradePlanStatus is what the operator has done and seen.
type UpgradePlanStatus struct {
	// observedGeneration is the generation of the spec last reconciled
	// without error.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is where the plan stands, for people.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// currentTarget is the PROD target being worked on.
	// +optional
	CurrentTarget string `json:"currentTarget,omitempty"`

	// versions is what ran before the plan touched each environment: the key
	// is val or a PROD target's name.
	// +optional
	Versions map[string]string `json:"versions,omitempty"`

	// previousImages are the images every component ran in every
	// environment when the plan resolved them, before anything changed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=300
	PreviousImages []RecordedImage `json:"previousImages,omitempty"`

	// validatedVersion is the version verified in VAL.
	// +optional
	ValidatedVersion string `json:"validatedVersion,omitempty"`

	// approvals is the audit trail of approvals, decisions and aborts seen.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Approvals []Approval `json:"approvals,omitempty"`

	// quiesced is what quiesce stopped in each PROD target, recorded before
	// it was stopped, so that it is restored exactly.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=512
	Quiesced []QuiescedObject `json:"quiesced,omitempty"`

	// notifications is the outbox of webhook deliveries: each event each
	// notification reports, until delivered, newest last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Notifications []NotificationDelivery `json:"notifications,omitempty"`

	// snapshots are the UpgradeSnapshots taken, one per PROD target.
	// +optional
	// +listType=map
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=8
	Snapshots []SnapshotReference `json:"snapshots,omitempty"`

	// checks is the state of every check.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Checks []CheckStatus `json:"checks,omitempty"`

	// steps are the recorded facts the plan moves on.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Steps []Step `json:"steps,omitempty"`

	// history of phase changes, newest last, at most 50 entries.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	History []HistoryEntry `json:"history,omitempty"`

	// conditions follow kstatus: Ready, Reconciling and Stalled, then the
	// domain conditions documented in conditions.go.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
