package snapshot

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

func web() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod-main"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromInt32(0)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.example.org/web:14.6.2",
					Env:       []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
				}}},
			},
		},
	}
}

func sealed(t *testing.T) upgradesv1alpha1.UpgradeSnapshotSpec {
	t.Helper()
	record, err := Workload("web", web())
	if err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Labels: map[string]string{"app": "clinspark"}},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1", Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	spec := upgradesv1alpha1.UpgradeSnapshotSpec{
		Plan: "clinspark-14-7", Target: "main", Namespace: "prod-main", Version: "14.6.2",
		Workloads:       []upgradesv1alpha1.WorkloadRecord{record},
		Quiesced:        []upgradesv1alpha1.QuiesceRecord{{Kind: "CronJob", Name: "lab-sync", Suspended: ptr.To(false)}},
		VolumeSnapshots: []upgradesv1alpha1.VolumeSnapshotRecord{Claim("clinspark-14-7-main-data-db-0", pvc)},
	}
	if err := Seal(&spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestSealAndVerify(t *testing.T) {
	spec := sealed(t)
	if !strings.HasPrefix(spec.Checksum, "sha256:") || len(spec.Checksum) != len("sha256:")+64 {
		t.Fatalf("checksum = %q, want sha256:<64 hex digits>", spec.Checksum)
	}
	if err := Verify(spec); err != nil {
		t.Fatalf("a freshly sealed snapshot fails verification: %v", err)
	}

	// The API server hands the content back with its keys in another order.
	data, _ := json.Marshal(spec)
	var generic map[string]any
	if err := json.Unmarshal(data, &generic); err != nil {
		t.Fatal(err)
	}
	reordered, _ := json.Marshal(generic)
	var roundTripped upgradesv1alpha1.UpgradeSnapshotSpec
	if err := json.Unmarshal(reordered, &roundTripped); err != nil {
		t.Fatal(err)
	}
	if err := Verify(roundTripped); err != nil {
		t.Fatalf("the same content read back fails verification: %v", err)
	}

	tampered := []func(*upgradesv1alpha1.UpgradeSnapshotSpec){
		func(s *upgradesv1alpha1.UpgradeSnapshotSpec) {
			s.Workloads[0].Template.Spec.Containers[0].Image = "evil:1"
		},
		func(s *upgradesv1alpha1.UpgradeSnapshotSpec) { s.Workloads[0].Replicas = ptr.To[int32](1) },
		func(s *upgradesv1alpha1.UpgradeSnapshotSpec) { s.Quiesced[0].Suspended = ptr.To(true) },
		func(s *upgradesv1alpha1.UpgradeSnapshotSpec) { s.VolumeSnapshots[0].Name = "other" },
		func(s *upgradesv1alpha1.UpgradeSnapshotSpec) {
			s.Workloads[0].Strategy.Raw = []byte(`{"type":"Recreate"}`)
		},
	}
	for i, tamper := range tampered {
		changed := *roundTripped.DeepCopy()
		tamper(&changed)
		if err := Verify(changed); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("change %d: Verify() = %v, want a checksum mismatch", i, err)
		}
	}
}

func TestSnapshotHoldsNoSecretValues(t *testing.T) {
	data, _ := json.Marshal(sealed(t))
	if !strings.Contains(string(data), `"secretKeyRef"`) {
		t.Fatal("the reference to the Secret should be recorded as the workload has it")
	}
	for _, field := range []string{`"stringData"`, `"data"`} {
		if strings.Contains(string(data), field) {
			t.Fatalf("snapshot holds %s: %s", field, data)
		}
	}
}

func TestRestorePatchPutsEveryWorkloadBack(t *testing.T) {
	upgraded := func(obj client.Object) {
		switch w := obj.(type) {
		case *appsv1.Deployment:
			w.Spec.Replicas = ptr.To[int32](0)
			w.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			w.Spec.Template.Spec.Containers[0].Image = "registry.example.org/web:14.7.0"
			w.Spec.Template.Labels["added-by-upgrade"] = "yes"
			w.Spec.Template.Spec.Containers = append(w.Spec.Template.Spec.Containers, corev1.Container{Name: "new-sidecar", Image: "sidecar:1"})
		case *appsv1.StatefulSet:
			w.Spec.Replicas = ptr.To[int32](0)
			w.Spec.Template.Spec.Containers[0].Image = "db:15"
			w.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		case *appsv1.DaemonSet:
			w.Spec.Template.Spec.Containers[0].Image = "agent:2"
		}
	}
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}
	workloads := []client.Object{
		web(),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template:       corev1.PodTemplateSpec{Spec: *podSpec.DeepCopy()}}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: *podSpec.DeepCopy()}}},
	}
	for _, original := range workloads {
		t.Run(original.GetName(), func(t *testing.T) {
			record, err := Workload("c", original)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := Restored(original, record); err != nil || !ok {
				t.Fatalf("Restored(original) = %v, %v; want true", ok, err)
			}
			changed := original.DeepCopyObject().(client.Object)
			upgraded(changed)
			if ok, _ := Restored(changed, record); ok {
				t.Fatal("Restored() is true for the upgraded workload")
			}
			patch, err := RestorePatch(record)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatalf("RestorePatch() is not a JSON patch: %v\n%s", err, patch)
			}
			doc, _ := json.Marshal(changed)
			restoredDoc, err := decoded.Apply(doc)
			if err != nil {
				t.Fatalf("applying the patch: %v", err)
			}
			restored := original.DeepCopyObject().(client.Object)
			if err := json.Unmarshal(restoredDoc, restored); err != nil {
				t.Fatal(err)
			}
			if ok, err := Restored(restored, record); err != nil || !ok {
				t.Fatalf("after the patch Restored() = %v, %v; patch: %s", ok, err, patch)
			}
		})
	}
}

func TestRestoredClaim(t *testing.T) {
	mode := corev1.PersistentVolumeFilesystem
	record := upgradesv1alpha1.VolumeSnapshotRecord{
		Name: "plan-main-data", PVC: "data-db-0", Labels: map[string]string{"app": "clinspark"},
		Claim: corev1.PersistentVolumeClaimSpec{
			VolumeName: "pv-1", VolumeMode: &mode, StorageClassName: ptr.To("fast"),
			DataSourceRef: &corev1.TypedObjectReference{Kind: "PersistentVolumeClaim", Name: "cloned-from"},
			Resources:     corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	pvc := RestoredClaim(record, "prod-main")
	switch {
	case pvc.Name != "data-db-0" || pvc.Namespace != "prod-main" || pvc.Labels["app"] != "clinspark":
		t.Fatalf("restored claim is %s/%s with labels %v", pvc.Namespace, pvc.Name, pvc.Labels)
	case pvc.Spec.VolumeName != "":
		t.Fatal("the restored claim must not bind the old volume")
	case pvc.Spec.DataSourceRef != nil:
		t.Fatal("the restored claim must not keep the old data source")
	case pvc.Spec.DataSource == nil || pvc.Spec.DataSource.Kind != "VolumeSnapshot" || pvc.Spec.DataSource.Name != "plan-main-data" ||
		ptr.Deref(pvc.Spec.DataSource.APIGroup, "") != "snapshot.storage.k8s.io":
		t.Fatalf("data source = %+v, want the VolumeSnapshot plan-main-data", pvc.Spec.DataSource)
	case *pvc.Spec.StorageClassName != "fast" || pvc.Spec.Resources.Requests.Storage().String() != "1Gi":
		t.Fatalf("the recorded spec was not kept: %+v", pvc.Spec)
	}
	if !ClaimRestored(pvc, record) {
		t.Fatal("ClaimRestored() is false for the restored claim")
	}
	original := &corev1.PersistentVolumeClaim{Spec: record.Claim}
	if ClaimRestored(original, record) {
		t.Fatal("ClaimRestored() is true for the original claim")
	}
	if record.Claim.VolumeName != "pv-1" {
		t.Fatal("RestoredClaim changed the record")
	}
}

func TestVolumeSnapshotState(t *testing.T) {
	now := metav1.Now()
	message := "the driver failed"
	tests := []struct {
		name   string
		vs     snapshotv1.VolumeSnapshot
		ready  bool
		broken string
	}{
		{"no status yet", snapshotv1.VolumeSnapshot{}, false, ""},
		{"not ready", snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false)}}, false, ""},
		{"ready", snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}}, true, ""},
		{"failed", snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{Error: &snapshotv1.VolumeSnapshotError{Message: &message}}}, false, "failed: the driver failed"},
		{"being deleted, even if ready", snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now},
			Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}}, false, "being deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready, broken := VolumeSnapshotState(&tt.vs)
			if ready != tt.ready || (tt.broken == "") != (broken == "") || !strings.Contains(broken, tt.broken) {
				t.Fatalf("VolumeSnapshotState() = %v, %q; want %v, %q", ready, broken, tt.ready, tt.broken)
			}
		})
	}
}
