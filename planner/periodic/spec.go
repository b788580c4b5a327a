// Package periodic is the engine's schedules: their book in the store
// (Book answers their commands), when each is due from its cron
// expression in its time zone, and the runner that, on the one planner
// holding the schedules' lease, starts each due run once (Runner).
package periodic

import (
	"strings"
	"time"
	// The zones travel in the binary: a control machine without
	// /usr/share/zoneinfo reads Europe/Paris as one with it does.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/deployment-engine/engine/services/contract"
)

// DefaultZone is a schedule's time zone when none is given.
const DefaultZone = "UTC"

// parser reads the standard 5 fields (minute hour day-of-month month
// day-of-week) and the descriptors (@daily, @every 1h30m...).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is when a schedule is due: its cron expression read in its zone.
type Spec struct {
	sched cron.Schedule
	loc   *time.Location
}

// Parse reads a cron expression and an IANA time zone ("" is UTC). A
// failure is a *contract.FieldError naming cron or time_zone.
func Parse(expr, zone string) (Spec, error) {
	if zone == "" {
		zone = DefaultZone
	}
	// "Local" is whichever zone each machine of a split engine is set to.
	if zone == "Local" || len(zone) > 64 {
		return Spec{}, &contract.FieldError{Field: "time_zone", Reason: "name an IANA zone (UTC, Europe/Paris...)"}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return Spec{}, &contract.FieldError{Field: "time_zone", Reason: "no IANA zone " + quote(zone) + " (UTC, Europe/Paris...)"}
	}
	if len(expr) > contract.MaxScheduleCron {
		return Spec{}, &contract.FieldError{Field: "cron", Reason: "too long"}
	}
	t := strings.TrimSpace(expr)
	if strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return Spec{}, &contract.FieldError{Field: "cron", Reason: "name the zone in time_zone, not in the expression"}
	}
	s, err := parser.Parse(t)
	if err != nil {
		return Spec{}, &contract.FieldError{Field: "cron", Reason: quote(expr) + " is not a cron expression: " + err.Error() +
			` (want 5 fields, minute hour day-of-month month day-of-week, or @daily, @every 1h...)`}
	}
	out := Spec{sched: s, loc: loc}
	if out.Next(time.Now()).IsZero() {
		return Spec{}, &contract.FieldError{Field: "cron", Reason: quote(expr) + " is never due (a day no month has?)"}
	}
	return out, nil
}

// IsZero tells whether s was not parsed.
func (s Spec) IsZero() bool { return s.sched == nil }

// Next is the first time the schedule is due after t.
func (s Spec) Next(t time.Time) time.Time {
	return s.sched.Next(t.In(s.loc)).UTC()
}

// maxDues bounds the dues one look counts: a schedule of every second
// missed for a month is gone through over several looks, not one.
const maxDues = 100_000

// dues counts the times s was due in (after, now], and returns the latest
// of them (zero time and 0 when none).
func (s Spec) dues(after, now time.Time) (time.Time, int) {
	var last time.Time
	n := 0
	for next := s.Next(after); !next.After(now) && !next.IsZero() && n < maxDues; next = s.Next(next) {
		last = next
		n++
	}
	return last, n
}

func quote(s string) string { return `"` + contract.Clip(s) + `"` }
