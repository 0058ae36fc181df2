// Package window decides, without a client, whether PROD may be changed at a
// given instant: inside the maintenance window and outside every freeze. It
// also says when to look again, so that the operator sets one timer instead
// of polling.
package window

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// State is the answer at one instant.
type State struct {
	// Open is true when PROD work may start now.
	Open bool
	// Missed is true when a one-off window can no longer be used.
	Missed bool
	// Next is when the answer changes next: the window opening, a freeze
	// ending, or the window closing. Zero when it never changes.
	Next time.Time
	// ClosesAt is the end of the window that is open now; zero without one.
	ClosesAt time.Time
	// Message says why, for people.
	Message string
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Validate reports what in a window cannot be carried out: a schedule cron
// cannot parse or that never opens (the 30th of February), or a time zone
// the system does not know.
func Validate(w *upgradesv1alpha1.Window) error {
	if w == nil || w.Schedule == "" {
		return nil
	}
	schedule, _, err := recurring(w)
	if err != nil {
		return err
	}
	if schedule.Next(time.Now()).IsZero() {
		return fmt.Errorf("prod.window.schedule %q never opens", w.Schedule)
	}
	return nil
}

func recurring(w *upgradesv1alpha1.Window) (cron.Schedule, time.Duration, error) {
	location := time.UTC
	if w.TimeZone != "" {
		var err error
		if location, err = time.LoadLocation(w.TimeZone); err != nil {
			return nil, 0, fmt.Errorf("prod.window.timeZone %q is not a known time zone", w.TimeZone)
		}
	}
	schedule, err := parser.Parse(w.Schedule)
	if err != nil {
		return nil, 0, fmt.Errorf("prod.window.schedule %q: %v", w.Schedule, err)
	}
	duration, err := w.Duration.Get()
	if err != nil || duration <= 0 {
		return nil, 0, fmt.Errorf("prod.window.duration %q must be a positive duration", w.Duration)
	}
	return inLocation{schedule, location}, duration, nil
}

// inLocation evaluates a cron schedule in a time zone, so that "18:00 on
// Fridays" stays 18:00 local time across daylight-saving changes.
type inLocation struct {
	cron.Schedule
	location *time.Location
}

func (s inLocation) Next(t time.Time) time.Time { return s.Schedule.Next(t.In(s.location)) }

// Evaluate answers for the window and freezes at now. Without a window, PROD
// may start at any time outside the freezes.
func Evaluate(w *upgradesv1alpha1.Window, freezes []upgradesv1alpha1.Freeze, now time.Time) State {
	opens, closes, missed, err := windowAround(w, now)
	switch {
	case err != nil:
		return State{Missed: true, Message: err.Error()}
	case opens.IsZero():
		// cron finds no opening within five years: closed, and nothing to
		// wait for.
		return State{Message: fmt.Sprintf("the window does not open within five years of %s", now.UTC().Format(time.RFC3339))}
	case missed:
		return State{Missed: true, Message: fmt.Sprintf("the window ended at %s", closes.UTC().Format(time.RFC3339))}
	case opens.After(now):
		return State{Next: opens, Message: fmt.Sprintf("the window opens at %s", opens.UTC().Format(time.RFC3339))}
	}
	for _, freeze := range freezes {
		if !now.Before(freeze.Start.Time) && now.Before(freeze.End.Time) {
			reason := freeze.Reason
			if reason == "" {
				reason = "change freeze"
			}
			if !closes.IsZero() && !freeze.End.Time.Before(closes) && w.Schedule == "" {
				return State{Missed: true, Message: fmt.Sprintf("%s until %s covers the rest of the window", reason, freeze.End.UTC().Format(time.RFC3339))}
			}
			return State{Next: freeze.End.Time, Message: fmt.Sprintf("%s until %s", reason, freeze.End.UTC().Format(time.RFC3339))}
		}
	}
	state := State{Open: true, ClosesAt: closes, Next: closes, Message: "inside the window"}
	if w == nil {
		state.Message = "no window set: PROD may start outside freezes"
	} else {
		state.Message = fmt.Sprintf("the window is open until %s", closes.UTC().Format(time.RFC3339))
	}
	return state
}

// windowAround returns the window that is open at now, or the next one to
// open; missed is true when a one-off window has passed. A recurring window
// with no opening within five years (cron's limit) opens at the zero time.
func windowAround(w *upgradesv1alpha1.Window, now time.Time) (opens, closes time.Time, missed bool, err error) {
	switch {
	case w == nil:
		return now, time.Time{}, false, nil
	case w.Schedule != "":
		schedule, duration, err := recurring(w)
		if err != nil {
			return time.Time{}, time.Time{}, false, err
		}
		// The latest opening that could still cover now is the first one
		// after now - duration.
		opens = schedule.Next(now.Add(-duration))
		return opens, opens.Add(duration), false, nil
	case w.Start != nil && w.End != nil:
		if !now.Before(w.End.Time) {
			return w.Start.Time, w.End.Time, true, nil
		}
		return w.Start.Time, w.End.Time, false, nil
	}
	return now, time.Time{}, false, nil
}
