package workload

import (
	"strings"
	"testing"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// FuzzTag: the version of an image built by ImageRef is read back by Tag,
// and Tag never mistakes a registry port or a digest for a tag.
func FuzzTag(f *testing.F) {
	for _, seed := range [][2]string{
		{"registry.example.org/clinspark/web", "14.7.0"},
		{"localhost:5000/web", "1.2"},
		{"web", "v1_2-rc.3"},
		{"registry:443/a/b/c", "latest"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, repository, version string) {
		if strings.ContainsAny(version, ":/@") || version == "" || strings.ContainsAny(repository, "@") ||
			strings.LastIndex(repository, ":") > strings.LastIndex(repository, "/") {
			return // the schema refuses such versions and tagged repositories
		}
		ref := ImageRef(upgradesv1alpha1.ImageRepository(repository), upgradesv1alpha1.Version(version))
		if got := Tag(ref); got != version {
			t.Fatalf("Tag(%q) = %q; want %q", ref, got, version)
		}
		if got := Tag(ref + "@sha256:0123"); got != version {
			t.Fatalf("a digest changed the tag of %q to %q", ref, got)
		}
		if got := Tag(repository); got != "" {
			t.Fatalf("the untagged %q has tag %q", repository, got)
		}
	})
}
