package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus, so that
// kubectl wait, Argo CD and Flux read a plan without knowing changegate.
const (
	// ConditionReady is True only when the plan has Completed.
	ConditionReady = "Ready"

	// ConditionReconciling is True while the plan is moving: a step is under
	// way or the operator waits for something with no person involved.
	ConditionReconciling = "Reconciling"

	// ConditionStalled is True when only a person can unblock the plan. Its
	// reason says what is wrong; see the Reason constants.
	ConditionStalled = "Stalled"

	// ConditionUATApproved is True once enough distinct approvers approved
	// the validated version.
	ConditionUATApproved = "UATApproved"

	// ConditionApprovalPolicyReady is True while the admission policy that
	// authenticates approvals is installed and denies; approvals are honoured
	// only then.
	ConditionApprovalPolicyReady = "ApprovalPolicyReady"

	// ConditionNamespacesPermitted is True when every namespace the plan
	// changes has opted in with the plans-from label.
	ConditionNamespacesPermitted = "NamespacesPermitted"

	// ConditionWindowOpen is True while PROD may be changed: inside the
	// window and outside every freeze.
	ConditionWindowOpen = "WindowOpen"

	// ConditionQuiesced is True while what quiesce names is stopped.
	ConditionQuiesced = "Quiesced"

	// ConditionBackupReady is True once the snapshot of every PROD target is
	// written, its volume snapshots and backup Jobs are done, and its
	// checksum is verified.
	ConditionBackupReady = "BackupReady"

	// ConditionChecksPassed is True when the checks of the current
	// environment pass, False when one failed.
	ConditionChecksPassed = "ChecksPassed"

	// ConditionRolledBack is True once a rollback restored every touched
	// target.
	ConditionRolledBack = "RolledBack"
)

// Condition reasons. Each reason of Stalled names what a person must fix.
const (
	// ReasonProgressing: the plan is working on a step.
	ReasonProgressing = "Progressing"
	// ReasonSucceeded: the plan has Completed.
	ReasonSucceeded = "Succeeded"
	// ReasonFailed: the plan ended Failed; PROD was not changed or was
	// restored.
	ReasonFailed = "Failed"
	// ReasonPaused: spec.paused holds the plan.
	ReasonPaused = "Paused"
	// ReasonAwaitingApproval: the plan waits for UAT approvals.
	ReasonAwaitingApproval = "AwaitingApproval"
	// ReasonAwaitingPromotion: the plan waits for prod.version to be set.
	ReasonAwaitingPromotion = "AwaitingPromotion"
	// ReasonAwaitingWindow: the plan waits for the window to open or a
	// freeze to end.
	ReasonAwaitingWindow = "AwaitingWindow"
	// ReasonAwaitingDecision: a PROD target waits for its go/no-go.
	ReasonAwaitingDecision = "AwaitingDecision"

	// ReasonWorkloadNotFound: a component's workload or container is missing.
	ReasonWorkloadNotFound = "WorkloadNotFound"
	// ReasonNamespaceNotPermitted: a namespace has not opted in with the
	// plans-from label.
	ReasonNamespaceNotPermitted = "NamespaceNotPermitted"
	// ReasonPromotionBlocked: prod.version differs from the validated version.
	ReasonPromotionBlocked = "PromotionBlocked"
	// ReasonWindowMissed: the one-off window has passed.
	ReasonWindowMissed = "WindowMissed"
	// ReasonRollbackDeadlineExceeded: a rollback runs longer than
	// restore.maxDuration; it carries on.
	ReasonRollbackDeadlineExceeded = "RollbackDeadlineExceeded"
	// ReasonApprovalPolicyMissing: the admission policy or its binding is not
	// installed with Deny, so approvals are not honoured.
	ReasonApprovalPolicyMissing = "ApprovalPolicyMissing"
	// ReasonInvalidSpec: the spec passed the schema but cannot be carried out,
	// such as an unknown time zone.
	ReasonInvalidSpec = "InvalidSpec"

	// ReasonChecksPassing: every check of the environment passes.
	ReasonChecksPassing = "ChecksPassing"
	// ReasonCheckFailed: a check reached its failure threshold.
	ReasonCheckFailed = "CheckFailed"
	// ReasonRolloutFailed: a workload did not roll out in time.
	ReasonRolloutFailed = "RolloutFailed"
	// ReasonBackupFailed: a volume snapshot, backup Job or checksum failed.
	ReasonBackupFailed = "BackupFailed"
	// ReasonRestoreFailed: a restore Job failed during a rollback; the
	// rollback waits until a person deletes the Job so that it runs again.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonSnapshotUnusable: a target's UpgradeSnapshot is missing or fails
	// its checksum; the rollback restores the images recorded in status.
	ReasonSnapshotUnusable = "SnapshotUnusable"
	// ReasonQuiesced: what quiesce names is stopped.
	ReasonQuiesced = "Quiesced"
	// ReasonResumed: what quiesce stopped runs again as before.
	ReasonResumed = "Resumed"
	// ReasonNoGo: an approver decided no-go.
	ReasonNoGo = "NoGo"
	// ReasonDecisionTimeout: no decision came within prod.decision.timeout.
	ReasonDecisionTimeout = "DecisionTimeout"
	// ReasonWindowEnded: the window ended before the plan completed.
	ReasonWindowEnded = "WindowEnded"
	// ReasonAborted: a person set the abort annotation.
	ReasonAborted = "Aborted"
)
