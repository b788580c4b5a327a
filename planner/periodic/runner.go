package periodic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Actions is what a run does: the planner's side.
type Actions interface {
	// Run runs s's action as a run of s, and returns the deployment it
	// started, "" for an action that makes none. A refusal is a
	// *kit.Error, whose message is recorded.
	Run(ctx context.Context, s contract.Schedule) (deployment string, err error)
	// Running tells whether deployment id still runs.
	Running(ctx context.Context, id string) (bool, error)
}

// Options configure a Runner.
type Options struct {
	Res     *bus.Resources
	Actions Actions
	Log     *slog.Logger
	// Holder names this planner in the lease, as in the deploy lock.
	Holder string
	// LeaseTTL is the lease's lifetime (default 10s).
	LeaseTTL time.Duration
	// Tick is how often the runner looks at the schedules (default 1s).
	Tick time.Duration
	// Now is the clock the schedules are due by (default time.Now).
	Now func() time.Time
}

// Runner runs the schedules while its planner holds their lease. Each run
// is claimed before it starts: its due time is written into the schedule
// compare-and-set, on the revision read, so that two planners (one whose
// lease has just expired unbeknownst to it, say) never both start it.
type Runner struct {
	o     Options
	log   *slog.Logger
	lease lease
	// since is when (by o.Now) this planner last took the lease: runs due
	// before it were missed, due while no planner ran them.
	since time.Time

	mu       sync.Mutex
	inflight map[string]bool // schedules whose run is being started here
	wg       sync.WaitGroup
}

// New makes a runner; Run runs it.
func New(o Options) *Runner {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Runner{o: o, log: o.Log.With("part", "schedules"), inflight: map[string]bool{},
		lease: lease{kv: o.Res.Scheduler, holder: o.Holder, ttl: o.LeaseTTL}}
	// Nothing says the store was away before this start.
	r.lease.calmSince = time.Now().Add(-o.LeaseTTL)
	return r
}

// Run looks at the schedules every tick until ctx ends, then waits for
// the runs it is starting and hands the lease over.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Tick)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			r.wg.Wait()
			r.lease.release()
			return
		case <-t.C:
		}
	}
}

// Holds tells whether this runner held the lease at its last look.
func (r *Runner) Holds() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease.held
}

// pass looks at every schedule once, if this planner holds the lease.
func (r *Runner) pass(ctx context.Context) {
	r.mu.Lock()
	held, taken := r.lease.hold(ctx)
	r.mu.Unlock()
	if !held {
		return
	}
	if taken {
		r.since = r.o.Now()
		r.log.Info("this planner runs the schedules", "holder", r.o.Holder)
	}
	list, err := bus.ListSchedules(ctx, r.o.Res.Engine)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("read the schedules", "err", err)
		}
		return
	}
	for _, st := range list {
		if ctx.Err() != nil {
			return
		}
		r.consider(ctx, st)
	}
}

// consider acts on schedule st if a run of it is due: skips it, records
// the runs missed, or claims the run and starts it.
func (r *Runner) consider(ctx context.Context, st bus.StoredSchedule) {
	r.mu.Lock()
	busy := r.inflight[st.Name]
	r.mu.Unlock()
	if busy {
		return // its due runs are looked at once this one has started
	}
	spec, err := Parse(st.Cron, st.TimeZone)
	if err != nil {
		r.log.Warn("a stored schedule does not parse", "schedule", st.Name, "err", err)
		return
	}
	after := st.Created
	if st.LastRun != nil && st.LastRun.Due.After(after) {
		after = st.LastRun.Due
	}
	now := r.o.Now()
	due, n := spec.dues(after, now)
	if n == 0 {
		return
	}
	run := contract.ScheduleRun{Due: due, Time: now.UTC(), Planner: r.o.Holder, Missed: n - 1}
	missed := due.Before(r.since)
	switch {
	case missed && st.Missed != contract.MissedRunOnce:
		run.Result, run.Missed = contract.RunMissed, n
		run.Detail = fmt.Sprintf("%d run(s) due while no planner ran, the last at %s: skipped (missed: skip)", n, due.Format(time.RFC3339))
		r.record(ctx, st, run)
		return
	case st.ProhibitOverlap && st.LastRun != nil && st.LastRun.Deployment != "":
		running, err := r.o.Actions.Running(ctx, st.LastRun.Deployment)
		if err != nil {
			r.log.Warn("read the previous run's deployment", "schedule", st.Name, "deployment", st.LastRun.Deployment, "err", err)
			return
		}
		if running {
			run.Result, run.Deployment = contract.RunSkipped, st.LastRun.Deployment
			run.Detail = fmt.Sprintf("skipped: the previous run's deployment %s still runs (prohibit_overlap)", st.LastRun.Deployment)
			r.record(ctx, st, run)
			return
		}
	}
	if missed {
		run.Detail = fmt.Sprintf("run once for %d run(s) due while no planner ran (missed: run_once)", n)
	}
	run.Result = contract.RunClaimed
	claimed := st.Schedule
	claimed.LastRun = &run
	rev, err := bus.PutScheduleAt(ctx, r.o.Res.Engine, claimed, st.Rev)
	if err != nil {
		// Another planner claimed it, or it was deleted or replaced: the
		// next look reads what it is now.
		if !bus.IsConflict(err) && ctx.Err() == nil {
			r.log.Warn("claim a run", "schedule", st.Name, "err", err)
		}
		return
	}
	r.mu.Lock()
	r.inflight[st.Name] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.execute(ctx, claimed, rev)
	}()
}

// execute starts the claimed run of s and records how it went.
func (r *Runner) execute(ctx context.Context, s contract.Schedule, rev uint64) {
	defer func() {
		r.mu.Lock()
		delete(r.inflight, s.Name)
		r.mu.Unlock()
	}()
	run := *s.LastRun
	dep, err := r.o.Actions.Run(ctx, s)
	run.Deployment = dep
	switch {
	case err != nil:
		run.Result = contract.RunFailed
		var ke *kit.Error
		switch {
		case errors.As(err, &ke):
			run.Detail = ke.Msg
		case ctx.Err() != nil:
			run.Detail = "the planner stopped while it started the run"
		default:
			r.log.Error("a scheduled run failed", "schedule", s.Name, "err", err)
			run.Detail = "the engine failed to start it: see the planner's log"
		}
	case dep != "":
		run.Result = contract.RunStarted
	default:
		run.Result = contract.RunDone
	}
	// What happened is recorded even when the planner is stopping.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.LastRun = &run
	if _, err := bus.PutScheduleAt(ctx, r.o.Res.Engine, s, rev); err != nil && !bus.IsConflict(err) {
		r.log.Warn("record a run", "schedule", s.Name, "err", err)
	}
	// A conflict: the schedule was deleted or replaced meanwhile; the run
	// is still audited.
	r.report(ctx, s.Name, s.Action, run, err)
}

// record writes a run that starts nothing (skipped, missed) and reports
// it.
func (r *Runner) record(ctx context.Context, st bus.StoredSchedule, run contract.ScheduleRun) {
	s := st.Schedule
	s.LastRun = &run
	if _, err := bus.PutScheduleAt(ctx, r.o.Res.Engine, s, st.Rev); err != nil {
		if !bus.IsConflict(err) && ctx.Err() == nil {
			r.log.Warn("record a run", "schedule", st.Name, "err", err)
		}
		return
	}
	r.report(ctx, s.Name, s.Action, run, nil)
}

// report puts a run in the audit trail, under the schedule's actor, and
// in the operations log.
func (r *Runner) report(ctx context.Context, name, action string, run contract.ScheduleRun, err error) {
	e := contract.AuditEntry{Actor: contract.ScheduleActor(name), Action: contract.AuditScheduleRun, Object: "schedule " + name,
		Deployment: run.Deployment, Result: "ok", Detail: action + ": " + run.Result}
	if run.Detail != "" {
		e.Detail += ": " + run.Detail
	}
	switch run.Result {
	case contract.RunStarted:
		e.Code = 202
		e.Detail = fmt.Sprintf("%s: started deployment %s", action, run.Deployment)
	case contract.RunDone:
		e.Code = 200
	case contract.RunSkipped:
		e.Result, e.Code = "failed", 409
	case contract.RunMissed:
		e.Result = "failed"
	default:
		e.Result, e.Code = "failed", 500
		var ke *kit.Error
		if errors.As(err, &ke) {
			e.Code = ke.Code
		}
	}
	if err := bus.PublishAudit(ctx, r.o.Res.JS, e); err != nil {
		r.log.Warn("audit a run", "schedule", name, "err", err)
	}
	if err := bus.PublishEngineEvent(ctx, r.o.Res.JS, "schedule", "schedule "+name+": "+e.Detail); err != nil {
		r.log.Warn("engine event", "err", err)
	}
	r.log.Info("scheduled run", "schedule", name, "action", action, "result", run.Result, "deployment", run.Deployment, "due", run.Due)
}
