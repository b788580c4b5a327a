package planner

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
		{"unknown action", func(s *contract.Schedule) { s.Action = "reboot" }, "action"},
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
	s, clock := scheduleBed(t, "")
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

// A scheduled backup writes the store as `restore` takes it, each run a
// file of its own, keeping the newest `keep`; a scheduled exec is a
// deployment of kind exec that names its schedule and its actor.
func TestScheduledBackupAndExec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backups")
	s, clock := scheduleBed(t, dir)
	defer s.p.Stop()
	ctx := context.Background()
	add := func(name, action, args string) {
		t.Helper()
		rep, err := kit.Request(ctx, s.b.NC, subject.ScheduleAdd(), contract.Schedule{V: 1, Name: name, Cron: "*/5 * * * *",
			Action: action, Args: json.RawMessage(args), ProhibitOverlap: true, Missed: contract.MissedSkip, Actor: "alice"})
		if err != nil || rep.Code != 201 {
			t.Fatalf("add %s: %v %+v", name, err, rep)
		}
	}
	waitRun := func(name string) contract.ScheduleRun {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			st, err := bus.LoadSchedule(ctx, s.b.Res.Engine, name)
			if err == nil && st.LastRun != nil && st.LastRun.Due.Equal(clock.Now().Truncate(5*time.Minute)) && st.LastRun.Result != contract.RunClaimed {
				return *st.LastRun
			}
		}
		t.Fatalf("no run of %s due at %s", name, clock.Now())
		return contract.ScheduleRun{}
	}

	add("store", contract.ScheduleBackup, `{"keep": 2}`)
	// A file another schedule's name begins with is not this one's.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "store-weekly-20261101-000000.tar")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.add(5 * time.Minute)
		if run := waitRun("store"); run.Result != contract.RunDone {
			t.Fatalf("backup run: %+v", run)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "store-2*.tar"))
	want := []string{filepath.Join(dir, "store-20261205-101000.tar"), filepath.Join(dir, "store-20261205-101500.tar")}
	if !slices.Equal(files, want) {
		t.Fatalf("backups %v, want the newest two %v", files, want)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another schedule's backup was removed: %v", err)
	}
	f, err := os.Open(files[1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for tr := tar.NewReader(f); ; {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if !slices.Contains(names, "KV_"+bus.KVConfig+".snap") || !slices.Contains(names, "MANIFEST.json") {
		t.Errorf("the backup holds %v", names)
	}
	if info, err := os.Stat(files[1]); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the backup's mode: %v %v", info, err)
	}

	add("uptime", contract.ScheduleExec, `{"component": "web", "command": "uptime", "max_in_flight": "50%"}`)
	clock.add(5 * time.Minute)
	run := waitRun("uptime")
	d, err := s.p.deployment(ctx, contract.DeployGet{ID: run.Deployment})
	if run.Result != contract.RunStarted || err != nil || d.Schedule != "uptime" || d.Kind != contract.KindExec {
		t.Fatalf("the exec run %+v: deployment %+v %v", run, d, err)
	}
}

// scheduleBed is a planner of the starter catalog whose schedules are due
// by a clock the test moves, looked at every 20 ms, its scheduled backups
// in backupDir; Stop is the test's.
func scheduleBed(t *testing.T, backupDir string) (*stopBed, *testClock) {
	t.Helper()
	s := startStopBed(t)
	s.answer()
	clock := &testClock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	s.p, err = Start(context.Background(), Options{NC: s.b.NC, Res: s.b.Res, Catalogs: map[string]*catalog.Catalog{"starter": cat},
		EngineID: "e-1", Port: 50000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeTimeout: time.Minute, PlannerID: "p-1",
		SecretKey: []byte("stop-key"), ScheduleTick: 20 * time.Millisecond, ScheduleClock: clock.Now, BackupDir: backupDir})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// A planner without a backup directory runs no backup: the run fails,
// saying why, and writes nothing.
func TestScheduledBackupWithoutDir(t *testing.T) {
	s, clock := scheduleBed(t, "")
	defer s.p.Stop()
	ctx := context.Background()
	rep, err := kit.Request(ctx, s.b.NC, subject.ScheduleAdd(), contract.Schedule{V: 1, Name: "store", Cron: "*/5 * * * *",
		Action: contract.ScheduleBackup, ProhibitOverlap: true, Missed: contract.MissedSkip, Actor: "alice"})
	if err != nil || rep.Code != 201 {
		t.Fatalf("add: %v %+v", err, rep)
	}
	clock.add(5 * time.Minute)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := bus.LoadSchedule(ctx, s.b.Res.Engine, "store")
		if err == nil && st.LastRun != nil && st.LastRun.Result != contract.RunClaimed {
			if st.LastRun.Result != contract.RunFailed || !strings.Contains(st.LastRun.Detail, "no backup directory") {
				t.Fatalf("the run: %+v", *st.LastRun)
			}
			return
		}
	}
	t.Fatal("no run")
}
