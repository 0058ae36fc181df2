package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/plugin"
)

// kubeconfigFile writes a kubeconfig for the test API server's admin, as a
// user of the plugin would have.
func kubeconfigFile(t *testing.T) string {
	t.Helper()
	config := clientcmdapi.NewConfig()
	config.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	config.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	config.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	config.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlChangegate runs the plugin as kubectl would, returning its output
// and error.
func kubectlChangegate(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.Execute()
	return out.String(), err
}

var timestamps = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\dZ`)

// golden compares output, with its timestamps masked, to
// testdata/plugin/<name>.golden; UPDATE_GOLDEN=1 rewrites the file.
func golden(t *testing.T, name, output string) {
	t.Helper()
	output = timestamps.ReplaceAllString(output, "<time>")
	path := filepath.Join("testdata", "plugin", name+".golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(output), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (UPDATE_GOLDEN=1 writes it)", err)
	}
	if output != string(want) {
		t.Errorf("kubectl changegate output differs from %s:\n--- got\n%s\n--- want\n%s", path, output, want)
	}
}

func TestKubectlPlugin(t *testing.T) {
	kubeconfig := kubeconfigFile(t)
	a := newApp(t, "plugin")
	plan := a.plan("clinspark-14-7")
	create(t, plan)
	waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseAwaitingUATApproval && condition(p, upgradesv1alpha1.ConditionApprovalPolicyReady).Status == "True"
	})
	ns := []string{"-n", a.plansNS}

	out, err := kubectlChangegate(t, kubeconfig, append(ns, "list")...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "list-awaiting-approval", out)

	// The requester may not approve: the policy's refusal, as a sentence.
	_, err = kubectlChangegate(t, kubeconfig, append(ns, "--as", "rita", "approve", "clinspark-14-7")...)
	if err == nil || err.Error() != "refused: the requester of a plan may not approve it: separation of duties; ask another approver" {
		t.Errorf("rita approving her own plan: %v", err)
	}
	out, err = kubectlChangegate(t, kubeconfig, append(ns, "--as", "alice", "approve", "clinspark-14-7")...)
	if err != nil || out != "alice approved 14.7.0 for plugin-ops/clinspark-14-7\n" {
		t.Fatalf("alice approving: %q, %v", out, err)
	}
	// The phase shows once MAIN is verified; the wait for its go/no-go is
	// recorded by the next reconcile, which the golden status includes.
	waitForPlan(t, client.ObjectKeyFromObject(plan), 30*time.Second, func(p *upgradesv1alpha1.UpgradePlan) bool {
		return p.Status.Phase == upgradesv1alpha1.PhaseAwaitingDecision &&
			condition(p, upgradesv1alpha1.ConditionReconciling).Reason == upgradesv1alpha1.ReasonAwaitingDecision
	})

	out, err = kubectlChangegate(t, kubeconfig, append(ns, "status", "clinspark-14-7")...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-awaiting-decision", out)

	_, err = kubectlChangegate(t, kubeconfig, append(ns, "--as", "carol", "--as-group", "clinical-safety", "go", "clinspark-14-7", "--target", "prod")...)
	if err == nil || !strings.Contains(err.Error(), `no PROD target "prod"`) {
		t.Errorf("a decision for an unknown target: %v", err)
	}
	out, err = kubectlChangegate(t, kubeconfig, append(ns, "--as", "carol", "--as-group", "clinical-safety", "no-go", "clinspark-14-7", "--target", "main")...)
	if err != nil || out != "carol decided no-go for main of plugin-ops/clinspark-14-7\n" {
		t.Fatalf("carol deciding: %q, %v", out, err)
	}
	waitForPhase(t, plan, upgradesv1alpha1.PhaseRolledBack, "")

	out, err = kubectlChangegate(t, kubeconfig, append(ns, "history", "clinspark-14-7")...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "history-rolled-back", out)

	_, err = kubectlChangegate(t, kubeconfig, append(ns, "--as", "eve", "abort", "clinspark-14-7", "--reason", "just because")...)
	if err == nil || !strings.HasPrefix(err.Error(), "refused: eve may not approve, decide or abort") {
		t.Errorf("eve aborting: %v", err)
	}
}
