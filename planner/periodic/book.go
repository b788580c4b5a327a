package periodic

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// ErrNotFound is a schedule that is not stored, or a name no schedule
// can have.
var ErrNotFound = errors.New("no such schedule")

// Prepare fills s's defaults (the time zone) and checks it: a field's
// problem is a *contract.FieldError. It returns when s is due.
func Prepare(s *contract.Schedule) (Spec, error) {
	if s.TimeZone == "" {
		s.TimeZone = DefaultZone
	}
	if err := contract.CheckSchedule(*s); err != nil {
		return Spec{}, err
	}
	return Parse(s.Cron, s.TimeZone)
}

// Load reads schedule name from kv.
func Load(ctx context.Context, kv jetstream.KeyValue, name string) (bus.StoredSchedule, error) {
	if err := contract.CheckSchedule(contract.Schedule{Name: name, Cron: "-", Missed: contract.MissedSkip, Action: contract.ScheduleRollback}); err != nil {
		return bus.StoredSchedule{}, fmt.Errorf("%w %q", ErrNotFound, contract.Clip(name))
	}
	st, err := bus.LoadSchedule(ctx, kv, name)
	if bus.IsNotFound(err) {
		return st, fmt.Errorf("%w %s", ErrNotFound, name)
	}
	return st, err
}

// NextRun is when s runs next after now: never before it was created,
// nor at or before its last run's due time.
func NextRun(s contract.Schedule, now time.Time) (time.Time, bool) {
	spec, err := Parse(s.Cron, s.TimeZone)
	if err != nil || spec.IsZero() {
		return time.Time{}, false
	}
	after := now
	if s.Created.After(after) {
		after = s.Created
	}
	if s.LastRun != nil && s.LastRun.Due.After(after) {
		after = s.LastRun.Due
	}
	return spec.Next(after), true
}
