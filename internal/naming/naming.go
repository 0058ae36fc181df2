// Package naming gives the objects a plan creates deterministic names, so
// that asking "does it exist already?" is enough to never create one twice.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Limits on object names.
const (
	// MaxName is the longest name most objects may have (a DNS subdomain).
	MaxName = 253
	// MaxLabelName is the longest name of objects whose name becomes a label
	// value, such as Jobs (their pods carry a job-name label).
	MaxLabelName = 63
)

// Child joins parts with "-" into a name of at most limit characters. A name
// that would be longer is cut and ends in a hash of the whole, so that two
// long names stay distinct and the same parts always give the same name.
func Child(limit int, parts ...string) string {
	name := strings.Join(parts, "-")
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	head := strings.TrimRight(name[:limit-len(suffix)-1], "-.")
	return head + "-" + suffix
}
