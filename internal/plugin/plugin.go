// Package plugin is kubectl changegate: the commands people use to follow
// and sign UpgradePlans. cmd/kubectl-changegate wires it to the command line;
// tests call NewCommand with their own streams and cluster.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/controllers"
)

// options are what every command needs: the cluster and the streams.
type options struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// NewCommand returns kubectl changegate with the standard kubeconfig,
// context and namespace flags.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:           "kubectl-changegate",
		Short:         "Follow and sign changegate UpgradePlans",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.flags.AddFlags(root.PersistentFlags())
	var all bool
	list := &cobra.Command{Use: "list", Short: "List plans, where each stands and what it waits for", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.list(cmd.Context(), all) }}
	list.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list plans in every namespace")
	var target, reason string
	decide := func(value string) *cobra.Command {
		c := &cobra.Command{Use: value + " PLAN --target TARGET", Short: "Decide " + value + " for a PROD target, as yourself", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return o.decide(cmd.Context(), args[0], target, value) }}
		c.Flags().StringVar(&target, "target", "", "the PROD target decided on (required)")
		_ = c.MarkFlagRequired("target")
		return c
	}
	abort := &cobra.Command{Use: "abort PLAN --reason REASON", Short: "Stop a plan; whatever PROD changed is rolled back", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.abort(cmd.Context(), args[0], reason) }}
	abort.Flags().StringVar(&reason, "reason", "", "why (required)")
	_ = abort.MarkFlagRequired("reason")
	root.AddCommand(list,
		&cobra.Command{Use: "status PLAN", Short: "The plan's steps, approvals, checks and snapshots, and what it waits for", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return o.status(cmd.Context(), args[0]) }},
		&cobra.Command{Use: "approve PLAN", Short: "Sign UAT for the plan's VAL version, as yourself", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return o.approve(cmd.Context(), args[0]) }},
		decide(upgradesv1alpha1.DecisionGo), decide(upgradesv1alpha1.DecisionNoGo), abort,
		&cobra.Command{Use: "history PLAN", Short: "The plan's phase changes", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return o.history(cmd.Context(), args[0]) }},
	)
	return root
}

func (o *options) client() (client.Client, string, error) {
	config, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	namespace, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(config, client.Options{Scheme: controllers.NewScheme()})
	return c, namespace, err
}

func (o *options) get(ctx context.Context, name string) (client.Client, *upgradesv1alpha1.UpgradePlan, error) {
	c, namespace, err := o.client()
	if err != nil {
		return nil, nil, err
	}
	plan := &upgradesv1alpha1.UpgradePlan{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, plan); err != nil {
		return nil, nil, plainly(err)
	}
	return c, plan, nil
}

func (o *options) list(ctx context.Context, all bool) error {
	c, namespace, err := o.client()
	if err != nil {
		return err
	}
	plans := &upgradesv1alpha1.UpgradePlanList{}
	opts := []client.ListOption{}
	if !all {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := c.List(ctx, plans, opts...); err != nil {
		return plainly(err)
	}
	slices.SortFunc(plans.Items, func(a, b upgradesv1alpha1.UpgradePlan) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	w := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	if all {
		_, _ = fmt.Fprint(w, "NAMESPACE\t")
	}
	_, _ = fmt.Fprintln(w, "NAME\tPHASE\tTARGET\tVAL\tPROD\tWAITING FOR")
	for _, plan := range plans.Items {
		if all {
			_, _ = fmt.Fprintf(w, "%s\t", plan.Namespace)
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", plan.Name, orDash(string(plan.Status.Phase)), orDash(plan.Status.CurrentTarget),
			orDash(string(plan.Spec.VAL.Version)), orDash(string(plan.Spec.PROD.Version)), waitingFor(&plan))
	}
	return w.Flush()
}

// waitingFor says in one line what the plan waits for and who can unblock it.
func waitingFor(plan *upgradesv1alpha1.UpgradePlan) string {
	if plan.Status.Phase.Terminal() {
		return "nothing: the plan has ended"
	}
	if c := meta.FindStatusCondition(plan.Status.Conditions, upgradesv1alpha1.ConditionStalled); c != nil && c.Status == "True" {
		return "a person to fix " + c.Reason + ": " + c.Message
	}
	c := meta.FindStatusCondition(plan.Status.Conditions, upgradesv1alpha1.ConditionReconciling)
	if c == nil {
		return "changegate to pick the plan up"
	}
	who := ""
	switch c.Reason {
	case upgradesv1alpha1.ReasonAwaitingApproval:
		who = " (who: " + approvers(plan.Spec.UAT != nil, func() *upgradesv1alpha1.Approvers { return plan.Spec.UAT.Approvers }) + ")"
	case upgradesv1alpha1.ReasonAwaitingDecision:
		who = " (who: " + approvers(plan.Spec.PROD.Decision != nil, func() *upgradesv1alpha1.Approvers { return plan.Spec.PROD.Decision.Approvers }) + ")"
	}
	if c.Status == "True" {
		return "changegate: " + c.Message
	}
	return c.Message + who
}

func approvers(set bool, get func() *upgradesv1alpha1.Approvers) string {
	var names []string
	if set {
		if a := get(); a != nil {
			for _, u := range a.Users {
				names = append(names, string(u))
			}
			for _, g := range a.Groups {
				names = append(names, "group "+g)
			}
		}
	}
	if len(names) == 0 {
		return "anyone with the changegate-approver role but the requester"
	}
	return strings.Join(names, ", ")
}

func (o *options) status(ctx context.Context, name string) error {
	_, plan, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	out := o.streams.Out
	_, _ = fmt.Fprintf(out, "%s/%s  %s %s → %s  change %s\n", plan.Namespace, plan.Name, plan.Spec.Application, plan.Spec.VAL.Version, orDash(string(plan.Spec.PROD.Version)), plan.Spec.Change.ID)
	_, _ = fmt.Fprintf(out, "phase:       %s %s\n", orDash(string(plan.Status.Phase)), plan.Status.CurrentTarget)
	_, _ = fmt.Fprintf(out, "waiting for: %s\n", waitingFor(plan))
	_, _ = fmt.Fprintln(out, "\nSTEPS")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, step := range plan.Status.Steps {
		completed, result := "-", "running"
		if step.CompletedAt != nil {
			completed, result = stamp(step.CompletedAt.Time), string(step.Result)
		}
		_, _ = fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\n", step.Name, orDash(step.Target), stamp(step.StartedAt.Time), completed, result, step.Message)
	}
	_ = w.Flush()
	_, _ = fmt.Fprintln(out, "\nAPPROVALS")
	for _, a := range plan.Status.Approvals {
		what := a.Version
		switch a.Kind {
		case upgradesv1alpha1.ApprovalDecision:
			what = a.Decision + " for " + a.Target
		case upgradesv1alpha1.ApprovalAbort:
			what = a.Reason
		}
		_, _ = fmt.Fprintf(out, "  %s  %-8s %-20s by %s\n", stamp(a.At.Time), a.Kind, what, a.User)
	}
	_, _ = fmt.Fprintln(out, "\nCHECKS")
	for _, c := range plan.Status.Checks {
		_, _ = fmt.Fprintf(out, "  %-6s %-16s %-8s %d passes, %d failures in a row, %d attempts: %s\n", c.Environment, c.Name, c.State, c.Successes, c.Failures, c.Attempts, c.Message)
	}
	_, _ = fmt.Fprintln(out, "\nSNAPSHOTS")
	for _, s := range plan.Status.Snapshots {
		verified := "not verified"
		if s.VerifiedAt != nil {
			verified = "verified " + stamp(s.VerifiedAt.Time)
		}
		_, _ = fmt.Fprintf(out, "  %-6s %s  %s\n", s.Target, s.Name, verified)
	}
	return nil
}

func (o *options) history(ctx context.Context, name string) error {
	_, plan, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	for _, h := range plan.Status.History {
		_, _ = fmt.Fprintf(o.streams.Out, "%s  %-20s %s\n", stamp(h.At.Time), h.Phase, h.Message)
	}
	return nil
}

// whoAmI asks the API server who the caller is.
func whoAmI(ctx context.Context, c client.Client) (string, error) {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		return "", fmt.Errorf("asking the API server who you are: %w", err)
	}
	return review.Status.UserInfo.Username, nil
}

// signer reads the plan and asks who is signing it.
func (o *options) signer(ctx context.Context, name string) (client.Client, *upgradesv1alpha1.UpgradePlan, string, error) {
	c, plan, err := o.get(ctx, name)
	if err != nil {
		return nil, nil, "", err
	}
	user, err := whoAmI(ctx, c)
	return c, plan, user, err
}

func (o *options) approve(ctx context.Context, name string) error {
	c, plan, user, err := o.signer(ctx, name)
	if err != nil {
		return err
	}
	version := string(plan.Spec.VAL.Version)
	list := user
	if plan.Annotations[upgradesv1alpha1.AnnotationUATApprovedVersion] == version {
		current := plan.Annotations[upgradesv1alpha1.AnnotationUATApprovedBy]
		if slices.Contains(strings.Split(current, ","), user) {
			_, _ = fmt.Fprintf(o.streams.Out, "%s has already approved %s for %s/%s\n", user, version, plan.Namespace, plan.Name)
			return nil
		}
		if current != "" {
			list = current + "," + user
		}
	}
	if err := annotate(ctx, c, plan, map[string]string{
		upgradesv1alpha1.AnnotationUATApprovedVersion: version, upgradesv1alpha1.AnnotationUATApprovedBy: list,
	}); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.streams.Out, "%s approved %s for %s/%s\n", user, version, plan.Namespace, plan.Name)
	return nil
}

func (o *options) decide(ctx context.Context, name, target, value string) error {
	c, plan, user, err := o.signer(ctx, name)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(plan.Spec.PROD.Targets, func(t upgradesv1alpha1.Target) bool { return string(t.Name) == target }) {
		return fmt.Errorf("%s/%s has no PROD target %q", plan.Namespace, plan.Name, target)
	}
	if err := annotate(ctx, c, plan, map[string]string{
		upgradesv1alpha1.DecisionAnnotation(target): value, upgradesv1alpha1.DecidedByAnnotation(target): user,
	}); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.streams.Out, "%s decided %s for %s of %s/%s\n", user, value, target, plan.Namespace, plan.Name)
	return nil
}

func (o *options) abort(ctx context.Context, name, reason string) error {
	c, plan, user, err := o.signer(ctx, name)
	if err != nil {
		return err
	}
	if err := annotate(ctx, c, plan, map[string]string{upgradesv1alpha1.AnnotationAbort: reason, upgradesv1alpha1.AnnotationAbortedBy: user}); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.streams.Out, "%s aborted %s/%s: %s\n", user, plan.Namespace, plan.Name, reason)
	return nil
}

// annotate sets annotations with a merge patch guarded by the plan's
// resourceVersion, so an approval list is never appended to a stale copy.
func annotate(ctx context.Context, c client.Client, plan *upgradesv1alpha1.UpgradePlan, values map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": plan.ResourceVersion, "annotations": values}})
	if err != nil {
		return err
	}
	return plainly(c.Patch(ctx, plan, client.RawPatch(types.MergePatchType, patch)))
}

// plainly turns the API server's refusals into the sentence people need.
func plainly(err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err
	}
	message := status.Status().Message
	switch {
	case apierrors.IsConflict(err):
		return errors.New("the plan changed while you signed it; run the command again")
	case apierrors.IsNotFound(err):
		return fmt.Errorf("not found: %s", message)
	}
	if i := strings.Index(message, "denied request: "); i >= 0 {
		return errors.New("refused: " + message[i+len("denied request: "):])
	}
	if apierrors.IsForbidden(err) {
		return errors.New("refused: " + message)
	}
	return err
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
