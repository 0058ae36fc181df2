package v1alpha1

// The annotations below are the approvers' interface. An admission policy
// (config/policy) makes sure every identity written into them is the caller's
// own; the operator reads them and records what it saw in status.approvals.
const (
	annotationPrefix = "upgrades.changegate.dev/"

	// AnnotationRequestedBy names the user who created the plan. It is set at
	// creation and never changes; that user may not approve or decide.
	AnnotationRequestedBy = annotationPrefix + "requested-by"

	// AnnotationUATApprovedVersion is the version the UAT approvers approve.
	// Approvals count only while it equals spec.val.version.
	AnnotationUATApprovedVersion = annotationPrefix + "uat-approved-version"

	// AnnotationUATApprovedBy lists the UAT approvers, comma-separated and
	// append-only.
	AnnotationUATApprovedBy = annotationPrefix + "uat-approved-by"

	// AnnotationDecisionPrefix starts the go/no-go annotation of a PROD target;
	// see DecisionAnnotation.
	AnnotationDecisionPrefix = annotationPrefix + "decision."

	// AnnotationDecidedByPrefix starts the annotation naming who decided for a
	// PROD target; see DecidedByAnnotation.
	AnnotationDecidedByPrefix = annotationPrefix + "decided-by."

	// AnnotationAbort stops the plan; its value is the reason. Whatever PROD
	// already changed is rolled back.
	AnnotationAbort = annotationPrefix + "abort"

	// AnnotationAbortedBy names the user who aborted the plan.
	AnnotationAbortedBy = annotationPrefix + "aborted-by"
)

// LabelPlansFrom opts a namespace in to being changed by the plans of one
// namespace: a plan may only change workloads in a namespace whose label
// value equals the plan's own namespace.
const LabelPlansFrom = annotationPrefix + "plans-from"

// LabelPlan is set on every object a plan creates (Jobs, snapshots, volume
// snapshots) and holds the plan's name.
const LabelPlan = annotationPrefix + "plan"

// LabelPlanNamespace is set beside LabelPlan and holds the plan's namespace:
// objects in an environment's namespace cannot carry an owner reference to
// a plan in another namespace, so these two labels tie them to it.
const LabelPlanNamespace = annotationPrefix + "plan-namespace"

// FinalizerRollback keeps a plan from being deleted while PROD is changed and
// not completed; the operator rolls PROD back before removing it.
const FinalizerRollback = annotationPrefix + "rollback"

// FinalizerSnapshotInUse keeps an UpgradeSnapshot and its VolumeSnapshots
// from being deleted while their plan can still roll back. The operator
// removes it once the plan has ended.
const FinalizerSnapshotInUse = annotationPrefix + "snapshot-in-use"

// Decision values of the decision.<target> annotation.
const (
	DecisionGo   = "go"
	DecisionNoGo = "no-go"
)

// DecisionAnnotation is the key holding go or no-go for a PROD target.
func DecisionAnnotation(target string) string { return AnnotationDecisionPrefix + target }

// DecidedByAnnotation is the key naming who decided for a PROD target.
func DecidedByAnnotation(target string) string { return AnnotationDecidedByPrefix + target }
