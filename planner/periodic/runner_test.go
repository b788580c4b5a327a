package periodic

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// clock is the schedules' time in a test: it moves when the test says.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// actions are a planner's side in a test: every run starts a deployment
// d-<n> that runs until the test ends it; block holds a run until its ctx
// ends.
type actions struct {
	mu      sync.Mutex
	runs    []string // "<holder>:<schedule>"
	running map[string]bool
	holder  string
	block   bool
	refuse  *kit.Error
}

func newActions(holder string) *actions { return &actions{running: map[string]bool{}, holder: holder} }

func (a *actions) Run(ctx context.Context, s contract.Schedule) (string, error) {
	a.mu.Lock()
	block, refuse := a.block, a.refuse
	a.mu.Unlock()
	if block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if refuse != nil {
		return "", refuse
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.runs = append(a.runs, a.holder+":"+s.Name)
	id := fmt.Sprintf("d-%s-%d", a.holder, len(a.runs))
	a.running[id] = true
	return id, nil
}

func (a *actions) Running(_ context.Context, id string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running[id], nil
}

func (a *actions) end(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.running, id)
}

func (a *actions) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.runs)
}

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// bed is a bus, a clock at t0 and the audit entries of the runs.
type bed struct {
	b     *bustest.Bus
	clock *clock
	mu    sync.Mutex
	audit []contract.AuditEntry
}

func newBed(t *testing.T) *bed {
	t.Helper()
	e := &bed{b: bustest.Start(t, bus.ServerOptions{}), clock: &clock{now: t0}}
	sub, err := e.b.NC.Subscribe(subject.Audit(contract.AuditScheduleRun), func(m *nats.Msg) {
		var a contract.AuditEntry
		if json.Unmarshal(m.Data, &a) == nil {
			e.mu.Lock()
			e.audit = append(e.audit, a)
			e.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

func (e *bed) runner(holder string, a Actions, ttl time.Duration) *Runner {
	return New(Options{Res: e.b.Res, Actions: a, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Holder: holder, LeaseTTL: ttl, Tick: 20 * time.Millisecond, Now: e.clock.Now})
}

// add stores a schedule made at t0 of every minute.
func (e *bed) add(t *testing.T, name string, edit func(*contract.Schedule)) {
	t.Helper()
	s := contract.Schedule{Name: name, Cron: "* * * * *", TimeZone: "UTC", Action: contract.ScheduleRollback,
		ProhibitOverlap: true, Missed: contract.MissedSkip, Created: t0}
	if edit != nil {
		edit(&s)
	}
	if _, err := bus.PutScheduleAt(context.Background(), e.b.Res.Engine, s, 0); err != nil {
		t.Fatal(err)
	}
}

func (e *bed) last(t *testing.T, name string) contract.ScheduleRun {
	t.Helper()
	st, err := bus.LoadSchedule(context.Background(), e.b.Res.Engine, name)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRun == nil {
		return contract.ScheduleRun{}
	}
	return *st.LastRun
}

// settle runs passes of the runners until the run of name due at due is
// recorded with an end result.
func (e *bed) settle(t *testing.T, name string, due time.Time, rs ...*Runner) contract.ScheduleRun {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, r := range rs {
			r.pass(ctx)
		}
		if l := e.last(t, name); l.Due.Equal(due) && l.Result != contract.RunClaimed {
			return l
		}
	}
	t.Fatalf("no run of %s due at %s: last %+v", name, due, e.last(t, name))
	return contract.ScheduleRun{}
}

func (e *bed) audited(t *testing.T, want int) []contract.AuditEntry {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		e.mu.Lock()
		got := append([]contract.AuditEntry(nil), e.audit...)
		e.mu.Unlock()
		if len(got) >= want {
			return got
		}
	}
	t.Fatalf("fewer than %d audit entries of runs", want)
	return nil
}

// A schedule runs at each due time, once; a run due while the previous
// run's deployment still runs is skipped, and audited so; a refused run is
// recorded failed with the refusal.
func TestRunnerRunsWithoutOverlap(t *testing.T) {
	e := newBed(t)
	a := newActions("p-1")
	r := e.runner("p-1", a, time.Second)
	e.add(t, "nightly", nil)
	r.pass(context.Background())
	if a.count() != 0 {
		t.Fatal("a run before it was due")
	}
	e.clock.add(time.Minute)
	first := e.settle(t, "nightly", t0.Add(time.Minute), r)
	if first.Result != contract.RunStarted || first.Deployment != "d-p-1-1" || first.Planner != "p-1" {
		t.Fatalf("first run: %+v", first)
	}
	// Passes while nothing is due start nothing.
	for range 5 {
		r.pass(context.Background())
	}
	e.clock.add(time.Minute)
	skipped := e.settle(t, "nightly", t0.Add(2*time.Minute), r)
	if skipped.Result != contract.RunSkipped || skipped.Deployment != "d-p-1-1" || a.count() != 1 {
		t.Fatalf("a run while the previous one's deployment runs: %+v, %d runs", skipped, a.count())
	}
	a.end("d-p-1-1")
	e.clock.add(time.Minute)
	if third := e.settle(t, "nightly", t0.Add(3*time.Minute), r); third.Result != contract.RunStarted || third.Deployment != "d-p-1-2" {
		t.Fatalf("third run: %+v", third)
	}
	a.mu.Lock()
	a.refuse = kit.Errorf(409, "deployment d-x is still running; roll back when it has finished")
	a.mu.Unlock()
	a.end("d-p-1-2")
	e.clock.add(time.Minute)
	if failed := e.settle(t, "nightly", t0.Add(4*time.Minute), r); failed.Result != contract.RunFailed || !strings.Contains(failed.Detail, "d-x is still running") {
		t.Fatalf("a refused run: %+v", failed)
	}
	got := e.audited(t, 4)
	for i, want := range []struct{ result, deployment, detail string }{
		{"ok", "d-p-1-1", "started deployment d-p-1-1"},
		{"failed", "d-p-1-1", "prohibit_overlap"},
		{"ok", "d-p-1-2", "started deployment d-p-1-2"},
		{"failed", "", "still running"},
	} {
		g := got[i]
		if g.Actor != "schedule:nightly" || g.Result != want.result || g.Deployment != want.deployment || !strings.Contains(g.Detail, want.detail) {
			t.Errorf("audit entry %d: %+v, want %+v", i, g, want)
		}
	}
	// Allowed to overlap, the next run is started while d-p-1-3 would run.
	a.mu.Lock()
	a.refuse = nil
	a.mu.Unlock()
	st, _ := bus.LoadSchedule(context.Background(), e.b.Res.Engine, "nightly")
	st.ProhibitOverlap = false
	st.LastRun.Deployment = "d-p-1-2"
	a.mu.Lock()
	a.running["d-p-1-2"] = true
	a.mu.Unlock()
	if _, err := bus.PutScheduleAt(context.Background(), e.b.Res.Engine, st.Schedule, st.Rev); err != nil {
		t.Fatal(err)
	}
	e.clock.add(time.Minute)
	if run := e.settle(t, "nightly", t0.Add(5*time.Minute), r); run.Result != contract.RunStarted {
		t.Fatalf("allowed to overlap: %+v", run)
	}
}

// Runs missed while no planner ran: skipped and counted, or run once.
func TestRunnerMissedRuns(t *testing.T) {
	for _, tc := range []struct {
		missed string
		want   string
		runs   int
	}{
		{contract.MissedSkip, contract.RunMissed, 0},
		{contract.MissedRunOnce, contract.RunStarted, 1},
	} {
		t.Run(tc.missed, func(t *testing.T) {
			e := newBed(t)
			e.add(t, "hourly", func(s *contract.Schedule) { s.Missed = tc.missed })
			// The engine was down for ten minutes and a half.
			e.clock.add(10*time.Minute + 30*time.Second)
			a := newActions("p-1")
			r := e.runner("p-1", a, time.Second)
			run := e.settle(t, "hourly", t0.Add(10*time.Minute), r)
			if run.Result != tc.want || a.count() != tc.runs {
				t.Fatalf("%+v, %d runs", run, a.count())
			}
			wantMissed := 10
			if tc.runs == 1 {
				wantMissed = 9 // the run stands for the nine before it
			}
			if run.Missed != wantMissed || !strings.Contains(run.Detail, "10 run(s) due while no planner ran") {
				t.Fatalf("missed: %+v", run)
			}
			// Then it runs as due.
			for i := 1; i <= tc.runs; i++ {
				a.end(fmt.Sprintf("d-p-1-%d", i))
			}
			e.clock.add(30 * time.Second)
			if next := e.settle(t, "hourly", t0.Add(11*time.Minute), r); next.Result != contract.RunStarted || next.Missed != 0 {
				t.Fatalf("next: %+v", next)
			}
		})
	}
}

// Two planners on one bus: the one holding the lease runs each due run,
// once; when it stops without a word (killed), the other takes the lease
// once it expires and runs on, the runs missed meanwhile per the schedule.
// A deleted schedule runs no more.
func TestRunnerOnePlannerRuns(t *testing.T) {
	e := newBed(t)
	e.add(t, "nightly", func(s *contract.Schedule) { s.ProhibitOverlap = false })
	a1, a2 := newActions("p-1"), newActions("p-2")
	const ttl = 300 * time.Millisecond
	r1, r2 := e.runner("p-1", a1, ttl), e.runner("p-2", a2, ttl)
	r1.pass(context.Background())
	for i := 1; i <= 3; i++ {
		e.clock.add(time.Minute)
		e.settle(t, "nightly", t0.Add(time.Duration(i)*time.Minute), r1, r2, r2)
	}
	if a1.count() != 3 || a2.count() != 0 || !r1.Holds() || r2.Holds() {
		t.Fatalf("runs: p-1 %d, p-2 %d", a1.count(), a2.count())
	}
	// p-1 is killed: its lease expires, p-2 takes it.
	deadline := time.Now().Add(5 * time.Second)
	for !r2.Holds() {
		if time.Now().After(deadline) {
			t.Fatal("p-2 never took the lease")
		}
		time.Sleep(20 * time.Millisecond)
		r2.pass(context.Background())
	}
	e.clock.add(time.Minute)
	if run := e.settle(t, "nightly", t0.Add(4*time.Minute), r2); run.Planner != "p-2" || a2.count() != 1 || a1.count() != 3 {
		t.Fatalf("after the failover: %+v; p-1 %d, p-2 %d", run, a1.count(), a2.count())
	}
	if err := bus.DeleteSchedule(context.Background(), e.b.Res.Engine, "nightly"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.clock.add(time.Minute)
		r1.pass(context.Background())
		r2.pass(context.Background())
	}
	time.Sleep(100 * time.Millisecond)
	if a1.count()+a2.count() != 4 {
		t.Fatalf("a deleted schedule ran: p-1 %d, p-2 %d", a1.count(), a2.count())
	}
}

// Two planners that both think they hold the lease (one's expired
// unbeknownst to it) and read the same schedule start its run once: the
// run is claimed compare-and-set.
func TestRunnerClaimsOnce(t *testing.T) {
	e := newBed(t)
	e.add(t, "nightly", nil)
	e.clock.add(time.Minute)
	st, err := bus.LoadSchedule(context.Background(), e.b.Res.Engine, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 := newActions("p-1"), newActions("p-2")
	r1, r2 := e.runner("p-1", a1, time.Second), e.runner("p-2", a2, time.Second)
	var wg sync.WaitGroup
	for _, r := range []*Runner{r1, r2} {
		wg.Go(func() { r.consider(context.Background(), st) })
	}
	wg.Wait()
	r1.wg.Wait()
	r2.wg.Wait()
	if n := a1.count() + a2.count(); n != 1 {
		t.Fatalf("%d runs started, want 1", n)
	}
}

// Run ends within a moment of its ctx, a run in flight with it, and its
// goroutines are gone; the lease is handed over at once.
func TestRunnerStops(t *testing.T) {
	e := newBed(t)
	e.add(t, "nightly", nil)
	base := len(runnerGoroutines())
	a := newActions("p-1")
	a.block = true
	r := e.runner("p-1", a, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	e.clock.add(time.Minute)
	for deadline := time.Now().Add(5 * time.Second); e.last(t, "nightly").Result != contract.RunClaimed; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run was not claimed")
		}
	}
	began := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end within 10 s of its ctx")
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Run took %s to end", took)
	}
	if l := e.last(t, "nightly"); l.Result != contract.RunFailed {
		t.Errorf("the run ended by the stop: %+v", l)
	}
	for deadline := time.Now().Add(5 * time.Second); len(runnerGoroutines()) > base; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the runner's goroutines after Run, %d before:\n%s", len(runnerGoroutines()), base, strings.Join(runnerGoroutines(), "\n\n"))
		}
	}
	// Another planner takes the lease at once: it was released.
	r2 := e.runner("p-2", newActions("p-2"), time.Minute)
	if r2.pass(context.Background()); !r2.Holds() {
		t.Fatal("the lease was not handed over")
	}
}

// runnerGoroutines are the stacks of the goroutines running the runner's
// code (the embedded NATS server's own come and go with its consumers).
func runnerGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "planner/periodic.") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return out
}
