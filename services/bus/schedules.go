package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
)

// Schedules are kept in KVEngine, one key each: schedule.<name>. Every
// write is made compare-and-set on the revision read, so that a run is
// claimed by one planner only and a deleted schedule is never written
// back by a run that raced its deletion.

// schedulePrefix begins the key of every schedule in KVEngine.
const schedulePrefix = "schedule."

// ScheduleKey is the key of schedule name in KVEngine.
func ScheduleKey(name string) string { return schedulePrefix + name }

// StoredSchedule is a schedule as read, with the revision it was read at.
type StoredSchedule struct {
	contract.Schedule
	Rev uint64
}

// LoadSchedule reads schedule name; a missing one is an error IsNotFound
// recognises.
func LoadSchedule(ctx context.Context, kv jetstream.KeyValue, name string) (StoredSchedule, error) {
	e, err := kv.Get(ctx, ScheduleKey(name))
	if err != nil {
		return StoredSchedule{}, fmt.Errorf("read schedule %s: %w", name, err)
	}
	var s contract.Schedule
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return StoredSchedule{}, fmt.Errorf("decode schedule %s: %w", name, err)
	}
	return StoredSchedule{Schedule: s, Rev: e.Revision()}, nil
}

// ListSchedules reads every schedule, by name. One deleted while they are
// read is left out.
func ListSchedules(ctx context.Context, kv jetstream.KeyValue) ([]StoredSchedule, error) {
	lister, err := kv.ListKeysFiltered(ctx, schedulePrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer func() { _ = lister.Stop() }() // the lister ends itself once drained
	var names []string
	for k := range lister.Keys() {
		names = append(names, strings.TrimPrefix(k, schedulePrefix))
	}
	slices.Sort(names)
	out := make([]StoredSchedule, 0, len(names))
	for _, n := range names {
		s, err := LoadSchedule(ctx, kv, n)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// PutScheduleAt writes s only if its key is still at revision rev (0: a
// new schedule, or one deleted). It returns the new revision; a refused
// write is an error IsConflict recognises. NextRun and each run's
// DeploymentState are computed when read, and not stored.
func PutScheduleAt(ctx context.Context, kv jetstream.KeyValue, s contract.Schedule, rev uint64) (uint64, error) {
	s.V, s.NextRun = contract.Version, nil
	if s.LastRun != nil {
		last := *s.LastRun
		last.DeploymentState = ""
		s.LastRun = &last
	}
	b, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	n, err := PutAt(ctx, kv, ScheduleKey(s.Name), b, rev)
	if err != nil {
		return 0, fmt.Errorf("store schedule %s: %w", s.Name, err)
	}
	return n, nil
}

// DeleteSchedule deletes schedule name, on the revision it reads (a run
// recorded meanwhile is read again); a missing one is an error IsNotFound
// recognises. A planner's write of a run on the revision before fails
// from then on: no run brings it back.
func DeleteSchedule(ctx context.Context, kv jetstream.KeyValue, name string) error {
	for try := 1; ; try++ {
		st, err := LoadSchedule(ctx, kv, name)
		if err != nil {
			return err
		}
		err = kv.Delete(ctx, ScheduleKey(name), jetstream.LastRevision(st.Rev))
		if err == nil {
			return nil
		}
		if !IsConflict(err) || try >= maintenanceTries {
			return fmt.Errorf("delete schedule %s: %w", name, err)
		}
	}
}
