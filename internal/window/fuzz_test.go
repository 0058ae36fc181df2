package window

import (
	"testing"
	"time"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// FuzzEvaluate: for any schedule, duration, time zone and instant, the
// answer is consistent: open means a close in the future (recurring), and
// closed means a next opening after now; nothing panics.
func FuzzEvaluate(f *testing.F) {
	f.Add("0 18 * * 5", "6h", "Europe/London", int64(1729877400))
	f.Add("30 1 * * 0", "1h", "Europe/London", int64(1743292800))
	f.Add("0 0 29 2 *", "90m", "America/New_York", int64(1700000000))
	f.Add("*/15 * * * *", "5m", "UTC", int64(0))
	f.Fuzz(func(t *testing.T, schedule, duration, zone string, unix int64) {
		w := &upgradesv1alpha1.Window{Schedule: schedule, Duration: upgradesv1alpha1.Duration(duration), TimeZone: zone}
		if schedule == "" || Validate(w) != nil || unix < 0 || unix > 1<<34 {
			return // the schema refuses a window that is neither one-off nor recurring
		}
		now := time.Unix(unix, 0)
		state := Evaluate(w, nil, now)
		switch {
		case state.Missed:
			t.Fatalf("a recurring window was missed at %s: %s", now, state.Message)
		case state.Open && !state.ClosesAt.After(now):
			t.Fatalf("open at %s but closing at %s", now, state.ClosesAt)
		case !state.Open && !state.Next.IsZero() && !state.Next.After(now):
			t.Fatalf("closed at %s but opening at %s", now, state.Next)
		case state.Message == "":
			t.Fatal("no message for people")
		}
	})
}
