package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ReadConfig decodes the documents of a YAML file of config/ (a path
// relative to it, such as "policy/approvals.yaml") into objs, in order. A
// file holding more documents than objs is an error: whoever reads it would
// miss what the others hold.
func ReadConfig(file string, objs ...any) error {
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", file))
	if err != nil {
		return err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for _, obj := range objs {
		if err := decoder.Decode(obj); err != nil {
			return fmt.Errorf("decoding %s: %w", file, err)
		}
	}
	var extra map[string]any
	if err := decoder.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s holds more documents than the caller knows: %v", file, extra)
	}
	return nil
}

// InstallApprovalsPolicy installs the approvals admission policy and its
// binding from config/policy, and the changegate-viewer, -editor and
// -approver ClusterRoles from config/rbac. With a namespace selector the
// binding covers only the namespaces it selects; with nil it is installed as
// shipped, covering every namespace.
func InstallApprovalsPolicy(ctx context.Context, c client.Client, namespaces *metav1.LabelSelector) error {
	policy, binding := &admissionv1.ValidatingAdmissionPolicy{}, &admissionv1.ValidatingAdmissionPolicyBinding{}
	if err := ReadConfig("policy/approvals.yaml", policy, binding); err != nil {
		return err
	}
	if namespaces != nil {
		binding.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: namespaces}
	}
	viewer, editor, approver := &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}
	if err := ReadConfig("rbac/user_roles.yaml", viewer, editor, approver); err != nil {
		return err
	}
	for _, obj := range []client.Object{policy, binding, viewer, editor, approver} {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("installing %s: %w", obj.GetName(), err)
		}
	}
	return nil
}

// BindManagerRole installs the generated ClusterRole of the manager and its
// binding to the manager's ServiceAccount from config/rbac, as make
// build-installer ships them.
func BindManagerRole(ctx context.Context, c client.Client) error {
	for _, file := range []string{"role.yaml", "role_binding.yaml"} {
		data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", file))
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("reading config/rbac/%s: %w", file, err)
		}
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("installing config/rbac/%s: %w", file, err)
		}
	}
	return nil
}

// The people BindPeople gives roles to, besides the users named there.
const (
	// SafetyGroup is the group of clinical safety officers: approvers.
	SafetyGroup = "clinical-safety"
	// GitOpsNamespace and GitOpsAccount name the ServiceAccount of the
	// GitOps pipeline: an approver.
	GitOpsNamespace = "ci"
	GitOpsAccount   = "gitops"
)

// BindPeople gives each person their role in the namespace: rita requests
// changes (editor, and approver, so that separation of duties is what stops
// her), alice, bob, dave and the GitOps pipeline approve, carol approves
// through SafetyGroup, eve only edits.
func BindPeople(ctx context.Context, c client.Client, namespace string) error {
	user := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: name}
	}
	bindings := map[string][]rbacv1.Subject{
		"changegate-editor": {user("rita"), user("eve")},
		"changegate-approver": {user("rita"), user("alice"), user("bob"), user("dave"),
			{Kind: "Group", APIGroup: rbacv1.GroupName, Name: SafetyGroup},
			{Kind: "ServiceAccount", Namespace: GitOpsNamespace, Name: GitOpsAccount}},
	}
	for role, subjects := range bindings {
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: role},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, Subjects: subjects}
		if err := c.Create(ctx, binding); err != nil {
			return fmt.Errorf("binding %s in %s: %w", role, namespace, err)
		}
	}
	return nil
}
