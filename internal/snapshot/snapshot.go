// Package snapshot captures what a rollback restores — each workload's pod
// template, replicas and update strategy, and the claims of the volumes
// snapshotted — seals it with a checksum, verifies it, and computes the
// patches and claims that put a target back as it was. It has no client.
package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
	"github.com/changegate/changegate/internal/workload"
)

// Workload records a component's workload as it is now.
func Workload(component upgradesv1alpha1.Name, obj client.Object) (upgradesv1alpha1.WorkloadRecord, error) {
	template, err := workload.PodTemplate(obj)
	if err != nil {
		return upgradesv1alpha1.WorkloadRecord{}, err
	}
	strategy, err := json.Marshal(updateStrategy(obj))
	if err != nil {
		return upgradesv1alpha1.WorkloadRecord{}, fmt.Errorf("recording the update strategy of %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return upgradesv1alpha1.WorkloadRecord{
		Component: component,
		Kind:      kindOf(obj),
		Name:      upgradesv1alpha1.ObjectName(obj.GetName()),
		Replicas:  workload.Replicas(obj),
		Template:  *template.DeepCopy(),
		Strategy:  &runtime.RawExtension{Raw: strategy},
	}, nil
}

// Claim records a claim about to be snapshotted into the VolumeSnapshot
// named volumeSnapshot.
func Claim(volumeSnapshot string, pvc *corev1.PersistentVolumeClaim) upgradesv1alpha1.VolumeSnapshotRecord {
	return upgradesv1alpha1.VolumeSnapshotRecord{
		Name:   upgradesv1alpha1.ObjectName(volumeSnapshot),
		PVC:    upgradesv1alpha1.ObjectName(pvc.Name),
		Labels: maps.Clone(pvc.Labels),
		Claim:  *pvc.Spec.DeepCopy(),
	}
}

// Seal sets the checksum of the recorded content.
func Seal(spec *upgradesv1alpha1.UpgradeSnapshotSpec) error {
	sum, err := checksum(*spec)
	if err != nil {
		return err
	}
	spec.Checksum = sum
	return nil
}

// Verify checks that the recorded content still has the checksum it was
// sealed with.
func Verify(spec upgradesv1alpha1.UpgradeSnapshotSpec) error {
	sum, err := checksum(spec)
	if err != nil {
		return err
	}
	if spec.Checksum != sum {
		return fmt.Errorf("checksum mismatch: recorded %q, content hashes to %q", spec.Checksum, sum)
	}
	return nil
}

// checksum is the SHA-256 of the spec without its checksum, in a canonical
// JSON form (sorted keys, numbers as written), so that the same content gives
// the same sum after a round trip through the API server.
func checksum(spec upgradesv1alpha1.UpgradeSnapshotSpec) (string, error) {
	spec.Checksum = ""
	data, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encoding the snapshot: %w", err)
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var canonical any
	if err := decoder.Decode(&canonical); err != nil {
		return "", fmt.Errorf("decoding the snapshot: %w", err)
	}
	if data, err = json.Marshal(canonical); err != nil {
		return "", fmt.Errorf("encoding the snapshot: %w", err)
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Restored reports whether the workload's pod template, replicas and update
// strategy are those recorded.
func Restored(obj client.Object, record upgradesv1alpha1.WorkloadRecord) (bool, error) {
	template, err := workload.PodTemplate(obj)
	if err != nil {
		return false, err
	}
	if !equality.Semantic.DeepEqual(*template, record.Template) {
		return false, nil
	}
	if record.Replicas != nil && !equality.Semantic.DeepEqual(workload.Replicas(obj), record.Replicas) {
		return false, nil
	}
	if record.Strategy == nil {
		return true, nil
	}
	fresh, err := workload.New(kindOf(obj))
	if err != nil {
		return false, err
	}
	recorded := updateStrategy(fresh)
	if err := json.Unmarshal(record.Strategy.Raw, recorded); err != nil {
		return false, fmt.Errorf("reading the recorded update strategy of %s: %w", record.Name, err)
	}
	return equality.Semantic.DeepEqual(updateStrategy(obj), recorded), nil
}

// RestorePatch is a JSON patch that sets the workload's pod template,
// replicas and update strategy to those recorded, replacing each whole: the
// restored template equals the recorded one field for field.
func RestorePatch(record upgradesv1alpha1.WorkloadRecord) ([]byte, error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	ops := []op{{Op: "add", Path: "/spec/template", Value: record.Template}}
	if record.Replicas != nil && record.Kind != upgradesv1alpha1.KindDaemonSet {
		ops = append(ops, op{Op: "add", Path: "/spec/replicas", Value: *record.Replicas})
	}
	if record.Strategy != nil && len(record.Strategy.Raw) > 0 {
		path := "/spec/updateStrategy"
		if record.Kind == upgradesv1alpha1.KindDeployment {
			path = "/spec/strategy"
		}
		ops = append(ops, op{Op: "add", Path: path, Value: json.RawMessage(record.Strategy.Raw)})
	}
	return json.Marshal(ops)
}

// RestoredClaim is the claim to create in place of a recorded one: the
// recorded spec and labels, bound to no volume, with the VolumeSnapshot as
// its data source so that the storage driver fills it from the snapshot.
func RestoredClaim(record upgradesv1alpha1.VolumeSnapshotRecord, namespace string) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{Spec: *record.Claim.DeepCopy()}
	pvc.Name, pvc.Namespace, pvc.Labels = string(record.PVC), namespace, maps.Clone(record.Labels)
	pvc.Spec.VolumeName = ""
	pvc.Spec.DataSourceRef = nil
	pvc.Spec.DataSource = &corev1.TypedLocalObjectReference{
		APIGroup: ptr.To("snapshot.storage.k8s.io"),
		Kind:     "VolumeSnapshot",
		Name:     string(record.Name),
	}
	return pvc
}

// VolumeSnapshotState says whether a VolumeSnapshot can restore a claim:
// ready, or not yet, or — with a sentence saying why — never (it failed or is
// being deleted, which on a real cluster deletes the stored snapshot too).
func VolumeSnapshotState(vs *snapshotv1.VolumeSnapshot) (ready bool, broken string) {
	name := vs.Namespace + "/" + vs.Name
	switch status := vs.Status; {
	case !vs.DeletionTimestamp.IsZero():
		return false, fmt.Sprintf("VolumeSnapshot %s is being deleted", name)
	case status != nil && status.Error != nil && status.Error.Message != nil:
		return false, fmt.Sprintf("VolumeSnapshot %s failed: %s", name, *status.Error.Message)
	case status != nil && ptr.Deref(status.ReadyToUse, false):
		return true, ""
	}
	return false, ""
}

// ClaimRestored reports whether the claim was already recreated from the
// recorded VolumeSnapshot.
func ClaimRestored(pvc *corev1.PersistentVolumeClaim, record upgradesv1alpha1.VolumeSnapshotRecord) bool {
	source := pvc.Spec.DataSource
	return pvc.DeletionTimestamp.IsZero() && source != nil && source.Kind == "VolumeSnapshot" && source.Name == string(record.Name)
}

func kindOf(obj client.Object) upgradesv1alpha1.WorkloadKind {
	switch obj.(type) {
	case *appsv1.Deployment:
		return upgradesv1alpha1.KindDeployment
	case *appsv1.StatefulSet:
		return upgradesv1alpha1.KindStatefulSet
	case *appsv1.DaemonSet:
		return upgradesv1alpha1.KindDaemonSet
	}
	return ""
}

// updateStrategy points at the workload's update strategy.
func updateStrategy(obj client.Object) any {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Strategy
	case *appsv1.StatefulSet:
		return &w.Spec.UpdateStrategy
	case *appsv1.DaemonSet:
		return &w.Spec.UpdateStrategy
	}
	return nil
}
