package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// Schedules are written compare-and-set: a second create of a name, a run
// recorded on a revision another write replaced, and one recorded after
// the schedule was deleted are each refused.
func TestSchedulesCompareAndSet(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	kv := b.Res.Engine
	s := contract.Schedule{Name: "nightly", Cron: "@daily", TimeZone: "UTC", Action: contract.ScheduleRollback, Missed: contract.MissedSkip, Created: time.Now().UTC()}
	rev, err := bus.PutScheduleAt(ctx, kv, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.PutScheduleAt(ctx, kv, s, 0); !bus.IsConflict(err) {
		t.Fatalf("a second create: %v", err)
	}
	other := s
	other.Name = "weekly"
	if _, err := bus.PutScheduleAt(ctx, kv, other, 0); err != nil {
		t.Fatal(err)
	}
	// Two planners claim the same run on the revision they read: one wins.
	run := s
	run.LastRun = &contract.ScheduleRun{Due: time.Now().UTC(), Result: contract.RunClaimed, Planner: "p-1", DeploymentState: "running"}
	run.NextRun = &run.Created
	if _, err := bus.PutScheduleAt(ctx, kv, run, rev); err != nil {
		t.Fatal(err)
	}
	run.LastRun.Planner = "p-2"
	if _, err := bus.PutScheduleAt(ctx, kv, run, rev); !bus.IsConflict(err) {
		t.Fatalf("a second claim on the same revision: %v", err)
	}
	got, err := bus.LoadSchedule(ctx, kv, "nightly")
	if err != nil || got.LastRun == nil || got.LastRun.Planner != "p-1" || got.NextRun != nil || got.LastRun.DeploymentState != "" {
		t.Fatalf("stored: %+v %v", got, err)
	}
	list, err := bus.ListSchedules(ctx, kv)
	if err != nil || len(list) != 2 || list[0].Name != "nightly" || list[1].Name != "weekly" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := bus.DeleteSchedule(ctx, kv, "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.PutScheduleAt(ctx, kv, run, got.Rev); !bus.IsConflict(err) {
		t.Fatalf("a run recorded after the deletion: %v", err)
	}
	if _, err := bus.LoadSchedule(ctx, kv, "nightly"); !bus.IsNotFound(err) {
		t.Fatalf("deleted: %v", err)
	}
	if err := bus.DeleteSchedule(ctx, kv, "nightly"); !bus.IsNotFound(err) {
		t.Fatalf("deleted twice: %v", err)
	}
	if list, err := bus.ListSchedules(ctx, kv); err != nil || len(list) != 1 {
		t.Fatalf("list after delete: %+v %v", list, err)
	}
	// A name deleted may be created again.
	if _, err := bus.PutScheduleAt(ctx, kv, s, 0); err != nil {
		t.Fatalf("create again: %v", err)
	}
}
