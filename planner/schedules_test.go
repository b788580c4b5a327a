package planner

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// testClock is the schedules' clock in a test.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The schedule commands check what they store as the action's own route
// would, 400 naming the field; a stored schedule is listed, read and
// deleted.
func TestScheduleCommands(t *testing.T) {
	s := startStopBed(t)
	s.startPlanner(t)
	defer s.p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ask := func(subj string, body any) (int, string) {
		t.Helper()
		rep, err := kit.Request(ctx, s.b.NC, subj, body)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Code, string(rep.Body)
	}
	good := contract.Schedule{V: 1, Name: "weekly-web", Cron: "0 3 * * 0", TimeZone: "Europe/Paris", Action: contract.ScheduleRestart,
		Args: json.RawMessage(`{"comp": "web", "ip": "0.0.0.0", "max_in_flight": "1"}`), ProhibitOverlap: true, Missed: contract.MissedSkip, Actor: "alice"}
	for _, tc := range []struct {
		name  string
		edit  func(*contract.Schedule)
		field string
	}{
		{"bad cron", func(s *contract.Schedule) { s.Cron = "every sunday" }, "cron"},
		{"unknown zone", func(s *contract.Schedule) { s.TimeZone = "Europe/Atlantis" }, "time_zone"},
		{"unknown action", func(s *contract.Schedule) { s.Action = "backup" }, "action"},
		{"a component the config lacks", func(s *contract.Schedule) {
			s.Args = json.RawMessage(`{"comp": "nats", "ip": "0.0.0.0", "max_in_flight": "1"}`)
		}, "args"},
		{"a node the component is not on", func(s *contract.Schedule) { s.Args = json.RawMessage(`{"comp": "web", "ip": "10.9.0.2"}`) }, "args"},
		{"deploy args", func(s *contract.Schedule) {
			s.Action, s.Args = contract.ScheduleDeploy, json.RawMessage(`{"canaries": "one"}`)
		}, "args"},
		{"bad name", func(s *contract.Schedule) { s.Name = "weekly.web" }, "name"},
		{"missed", func(s *contract.Schedule) { s.Missed = "catch-up" }, "missed"},
	} {
		bad := good
		tc.edit(&bad)
		code, body := ask(subject.ScheduleAdd(), bad)
		if code != 400 || !strings.Contains(body, `"path":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, code, body, tc.field)
		}
	}
	code, body := ask(subject.ScheduleAdd(), good)
	var got contract.Schedule
	if code != 201 || json.Unmarshal([]byte(body), &got) != nil || got.NextRun == nil || got.Created.IsZero() || got.Actor != "alice" {
		t.Fatalf("add: %d %s", code, body)
	}
	// Sunday 03:00 in Paris, in UTC.
	if next := got.NextRun.In(time.UTC); next.Weekday() != time.Sunday || next.Hour() != 2 && next.Hour() != 1 {
		t.Errorf("next run %s", next)
	}
	if code, body := ask(subject.ScheduleAdd(), good); code != 409 {
		t.Errorf("added twice: %d %s", code, body)
	}
	if code, body := ask(subject.ScheduleGet(), contract.ScheduleGet{Name: "weekly-web"}); code != 200 || !strings.Contains(body, `"time_zone":"Europe/Paris"`) {
		t.Errorf("get: %d %s", code, body)
	}
	for _, name := range []string{"nightly", "../x", strings.Repeat("a", 300)} {
		if code, body := ask(subject.ScheduleGet(), contract.ScheduleGet{Name: name}); code != 404 {
			t.Errorf("get %q: %d %s", name, code, body)
		}
	}
	code, body = ask(subject.ScheduleList(), nil)
	var list []contract.Schedule
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].Name != "weekly-web" {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := ask(subject.ScheduleDelete(), contract.ScheduleGet{Name: "weekly-web"}); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body := ask(subject.ScheduleDelete(), contract.ScheduleGet{Name: "weekly-web"}); code != 404 {
		t.Fatalf("deleted twice: %d %s", code, body)
	}
}

// A scheduled deploy is a deployment that names its schedule; the next
// run, due while it still runs (no installer takes its steps), is skipped;
// a planner's Stop ends the runner.
func TestScheduledDeploy(t *testing.T) {
	s := startStopBed(t)
	s.answer()
	clock := &testClock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	s.p, err = Start(context.Background(), Options{NC: s.b.NC, Res: s.b.Res, Catalogs: map[string]*catalog.Catalog{"starter": cat},
		EngineID: "e-1", Port: 50000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeTimeout: time.Minute, PlannerID: "p-1",
		SecretKey: []byte("stop-key"), ScheduleTick: 20 * time.Millisecond, ScheduleClock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.p.Stop()
	ctx := context.Background()
	rep, err := kit.Request(ctx, s.b.NC, subject.ScheduleAdd(), contract.Schedule{V: 1, Name: "nightly", Cron: "*/5 * * * *",
		Action: contract.ScheduleDeploy, Args: json.RawMessage(`{"max_in_flight": "1"}`), ProhibitOverlap: true, Missed: contract.MissedSkip, Actor: "alice"})
	if err != nil || rep.Code != 201 {
		t.Fatalf("add: %v %+v", err, rep)
	}
	waitRun := func(result string) contract.ScheduleRun {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			st, err := bus.LoadSchedule(ctx, s.b.Res.Engine, "nightly")
			if err == nil && st.LastRun != nil && st.LastRun.Due.Equal(clock.Now().Truncate(5*time.Minute)) && st.LastRun.Result == result {
				return *st.LastRun
			}
		}
		t.Fatalf("no run %s due at %s", result, clock.Now())
		return contract.ScheduleRun{}
	}
	clock.add(5 * time.Minute)
	run := waitRun(contract.RunStarted)
	d, err := s.p.deployment(ctx, contract.DeployGet{ID: run.Deployment})
	if err != nil || d.Schedule != "nightly" || d.State != contract.DeployRunning {
		t.Fatalf("the run's deployment: %+v %v", d, err)
	}
	clock.add(5 * time.Minute)
	if skipped := waitRun(contract.RunSkipped); skipped.Deployment != run.Deployment {
		t.Fatalf("skipped: %+v", skipped)
	}
	rep, err = kit.Request(ctx, s.b.NC, subject.ScheduleGet(), contract.ScheduleGet{Name: "nightly"})
	var view contract.Schedule
	if err != nil || json.Unmarshal(rep.Body, &view) != nil || view.LastRun == nil || view.LastRun.DeploymentState != contract.DeployRunning ||
		view.NextRun == nil || !view.NextRun.Equal(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("get: %v %s", err, rep.Body)
	}
}
