package naming

import (
	"strings"
	"testing"
)

func TestChild(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct {
		name  string
		limit int
		parts []string
		want  string
	}{
		{"short names are joined", MaxLabelName, []string{"plan", "backup", "main", "dump"}, "plan-backup-main-dump"},
		{"exactly at the limit stays", 9, []string{"abcd", "efgh"}, "abcd-efgh"},
		{"too long is cut and hashed", MaxLabelName, []string{long, "backup", "main"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Child(tt.limit, tt.parts...)
			if len(got) > tt.limit {
				t.Fatalf("Child() = %q, %d characters, over the limit %d", got, len(got), tt.limit)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("Child() = %q, want %q", got, tt.want)
			}
			if again := Child(tt.limit, tt.parts...); again != got {
				t.Fatalf("Child() is not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestChildKeepsLongNamesDistinct(t *testing.T) {
	long := strings.Repeat("x", 70)
	a, b := Child(MaxLabelName, long, "main"), Child(MaxLabelName, long, "test")
	if a == b {
		t.Fatalf("two different long names were cut to the same name %q", a)
	}
}
