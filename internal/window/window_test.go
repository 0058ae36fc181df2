package window

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mt(s string) *metav1.Time { t := metav1.NewTime(at(s)); return &t }

func TestEvaluate(t *testing.T) {
	oneOff := &upgradesv1alpha1.Window{Start: mt("2024-11-01T16:00:00Z"), End: mt("2024-11-02T00:36:00Z")}
	fridays := &upgradesv1alpha1.Window{Schedule: "0 18 * * 5", Duration: "6h", TimeZone: "Europe/London"}
	sundays := &upgradesv1alpha1.Window{Schedule: "0 0 * * 0", Duration: "3h", TimeZone: "Europe/London"}
	small := &upgradesv1alpha1.Window{Schedule: "30 1 * * 0", Duration: "1h", TimeZone: "Europe/London"}
	never := &upgradesv1alpha1.Window{Schedule: "0 0 30 2 *", Duration: "1h"}
	leapDay := &upgradesv1alpha1.Window{Schedule: "0 0 29 2 *", Duration: "1h"}
	freeze := []upgradesv1alpha1.Freeze{{Start: *mt("2024-11-01T17:00:00Z"), End: *mt("2024-11-01T18:00:00Z"), Reason: "lab go-live"}}
	longFreeze := []upgradesv1alpha1.Freeze{{Start: *mt("2024-11-01T17:00:00Z"), End: *mt("2024-11-03T00:00:00Z")}}

	cases := []struct {
		name    string
		window  *upgradesv1alpha1.Window
		freezes []upgradesv1alpha1.Freeze
		now     string
		open    bool
		missed  bool
		next    string
	}{
		{"no window", nil, nil, "2024-11-01T12:00:00Z", true, false, ""},
		{"no window, inside a freeze", nil, freeze, "2024-11-01T17:30:00Z", false, false, "2024-11-01T18:00:00Z"},
		{"before a one-off window", oneOff, nil, "2024-11-01T15:00:00Z", false, false, "2024-11-01T16:00:00Z"},
		{"at its start", oneOff, nil, "2024-11-01T16:00:00Z", true, false, "2024-11-02T00:36:00Z"},
		{"inside it", oneOff, nil, "2024-11-01T20:00:00Z", true, false, "2024-11-02T00:36:00Z"},
		{"at its end", oneOff, nil, "2024-11-02T00:36:00Z", false, true, ""},
		{"inside it, during a freeze", oneOff, freeze, "2024-11-01T17:30:00Z", false, false, "2024-11-01T18:00:00Z"},
		{"a freeze covering the rest of it", oneOff, longFreeze, "2024-11-01T17:30:00Z", false, true, ""},
		// Europe/London is UTC+1 in summer and UTC in winter: 18:00 local is
		// 17:00Z before the last Sunday of October and 18:00Z after it.
		{"recurring, Friday before the clocks go back", fridays, nil, "2024-10-25T17:30:00Z", true, false, "2024-10-25T23:00:00Z"},
		{"recurring, Friday after the clocks go back", fridays, nil, "2024-11-01T17:30:00Z", false, false, "2024-11-01T18:00:00Z"},
		{"recurring, Thursday", fridays, nil, "2024-10-31T12:00:00Z", false, false, "2024-11-01T18:00:00Z"},
		{"recurring windows are never missed", fridays, nil, "2024-11-02T12:00:00Z", false, false, "2024-11-08T18:00:00Z"},
		// The last Sunday of March 2025 (the 30th) the clocks go forward:
		// 18:00 local is 18:00Z the Friday before and 17:00Z the Friday after.
		{"recurring, Friday before the clocks go forward", fridays, nil, "2025-03-28T12:00:00Z", false, false, "2025-03-28T18:00:00Z"},
		{"recurring, Friday after the clocks go forward", fridays, nil, "2025-04-04T12:00:00Z", false, false, "2025-04-04T17:00:00Z"},
		{"recurring, open across the change", sundays, nil, "2025-03-30T02:30:00Z", true, false, "2025-03-30T03:00:00Z"},
		{"recurring, the window's duration is real time", sundays, nil, "2025-03-30T03:00:00Z", false, false, "2025-04-05T23:00:00Z"},
		// 01:30 does not exist in London on 30 March 2025: that week has no
		// window. On 27 October 2024 it happens twice: the first one opens.
		{"recurring, local time that does not exist", small, nil, "2025-03-29T12:00:00Z", false, false, "2025-04-06T00:30:00Z"},
		{"recurring, local time that happens twice", small, nil, "2024-10-26T12:00:00Z", false, false, "2024-10-27T00:30:00Z"},
		// A schedule that never fires keeps PROD closed (Validate refuses
		// it before a plan gets here), as does the 29th of February when
		// cron's five-year search finds none: 2100 is no leap year.
		{"recurring, never", never, nil, "2024-11-01T12:00:00Z", false, false, ""},
		{"recurring, none within five years", leapDay, nil, "2097-03-01T00:00:00Z", false, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(tc.window, tc.freezes, at(tc.now))
			if got.Open != tc.open || got.Missed != tc.missed {
				t.Errorf("open=%v missed=%v (%s); want open=%v missed=%v", got.Open, got.Missed, got.Message, tc.open, tc.missed)
			}
			if tc.next != "" && !got.Next.Equal(at(tc.next)) {
				t.Errorf("next change at %s; want %s", got.Next.UTC().Format(time.RFC3339), tc.next)
			}
			if got.Message == "" {
				t.Error("no message for people")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	bad := []*upgradesv1alpha1.Window{
		{Schedule: "0 18 * * 5", Duration: "6h", TimeZone: "Europe/Atlantis"},
		{Schedule: "61 18 * * 5", Duration: "6h"},
		{Schedule: "0 0 30 2 *", Duration: "1h"},
		{Schedule: "0 0 * 1 ,", Duration: "1m"},
	}
	for _, w := range bad {
		if err := Validate(w); err == nil {
			t.Errorf("Validate(%+v) accepted it", w)
		}
	}
	if err := Validate(&upgradesv1alpha1.Window{Schedule: "0 18 * * FRI", Duration: "6h"}); err != nil {
		t.Errorf("a valid schedule was refused: %v", err)
	}
}
