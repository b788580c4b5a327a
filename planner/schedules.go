package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/periodic"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Schedules are kept in the engine's store (bus.ScheduleKey), so that
// every planner of a split engine answers for them; the one holding the
// schedules' lease runs them (periodic.Runner), each run as the schedule's
// action's own command would, its deployment naming the schedule.

// scheduleEndpoints are the planner's schedule commands.
func (p *Planner) scheduleEndpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.ScheduleAdd():    p.scheduleAdd,
		subject.ScheduleGet():    p.scheduleGet,
		subject.ScheduleList():   p.scheduleList,
		subject.ScheduleDelete(): p.scheduleDelete,
	}
}

// startSchedules runs the schedules' runner as work of the planner: Stop
// ends it, and it hands the lease over as it ends.
func (p *Planner) startSchedules() {
	r := periodic.New(periodic.Options{Res: p.o.Res, Actions: scheduleActions{p}, Log: p.log,
		Holder: p.o.PlannerID, LeaseTTL: p.o.LeaseTTL, Tick: p.o.ScheduleTick, Now: p.o.ScheduleClock})
	p.svc.Go(r.Run)
}

// fieldError is a schedule's problem with one field, answered 400 naming it.
func fieldError(err error) error {
	var fe *contract.FieldError
	if errors.As(err, &fe) {
		return &kit.Error{Code: 400, Msg: "schedule rejected: " + fe.Error(), Problems: []contract.Problem{{Path: fe.Field, Reason: fe.Reason}}}
	}
	return err
}

// scheduleAdd stores a new schedule: 201 with it and its next run; 409
// when one has its name.
func (p *Planner) scheduleAdd(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.Schedule
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if _, err := periodic.Prepare(&in); err != nil {
		return 0, nil, fieldError(err)
	}
	if err := p.checkScheduleTarget(ctx, in); err != nil {
		return 0, nil, fieldError(err)
	}
	in.Created, in.LastRun, in.NextRun = p.scheduleNow().UTC(), nil, nil
	if _, err := bus.PutScheduleAt(ctx, p.o.Res.Engine, in, 0); err != nil {
		if bus.IsConflict(err) {
			return 0, nil, kit.Errorf(409, "a schedule named %s exists: delete it first to replace it", in.Name)
		}
		return 0, nil, err
	}
	p.log.Info("schedule added", "schedule", in.Name, "cron", in.Cron, "zone", in.TimeZone, "action", in.Action, "actor", in.Actor)
	p.engineEvent(ctx, "schedule", fmt.Sprintf("schedule %s added by %s: %s at %q (%s)", in.Name, in.Actor, in.Action, in.Cron, in.TimeZone))
	return 201, p.scheduleView(ctx, in), nil
}

// checkScheduleTarget checks a restart's instances against the stored
// config, as PUT /restart would: a component of it (or "all"), on a node
// it runs on (or "0.0.0.0"). Without a config there is nothing to check
// against yet; each run checks again.
func (p *Planner) checkScheduleTarget(ctx context.Context, s contract.Schedule) error {
	if s.Action != contract.ScheduleRestart {
		return nil
	}
	args, err := contract.ScheduleArgsOf(s.Action, s.Args)
	if err != nil {
		return err
	}
	t := args.(contract.Target)
	cfg, ok, err := p.loadConfig(ctx)
	if err != nil || !ok || t.Comp == "all" {
		return err
	}
	if _, err := cfg.InstancesOf(t.Comp, t.IP); err != nil {
		return &contract.FieldError{Field: "args", Reason: err.Error()}
	}
	return nil
}

// scheduleGet answers one schedule, with its next and last run; 404 for
// none.
func (p *Planner) scheduleGet(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ScheduleGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	st, err := p.loadSchedule(ctx, in.Name)
	if err != nil {
		return 0, nil, err
	}
	return 200, p.scheduleView(ctx, st.Schedule), nil
}

// scheduleList answers every schedule, by name.
func (p *Planner) scheduleList(ctx context.Context, _ micro.Request) (int, any, error) {
	list, err := bus.ListSchedules(ctx, p.o.Res.Engine)
	if err != nil {
		return 0, nil, err
	}
	out := make([]contract.Schedule, 0, len(list))
	for _, st := range list {
		out = append(out, p.scheduleView(ctx, st.Schedule))
	}
	return 200, out, nil
}

// scheduleDelete deletes a schedule: it runs no more. A run it started
// goes on.
func (p *Planner) scheduleDelete(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ScheduleGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	st, err := p.loadSchedule(ctx, in.Name)
	if err != nil {
		return 0, nil, err
	}
	if err := bus.DeleteSchedule(ctx, p.o.Res.Engine, in.Name); err != nil {
		if bus.IsNotFound(err) {
			return 0, nil, kit.Errorf(404, "no schedule %s", in.Name)
		}
		return 0, nil, err
	}
	p.log.Info("schedule deleted", "schedule", in.Name)
	p.engineEvent(ctx, "schedule", "schedule "+in.Name+" deleted")
	st.NextRun = nil
	return 200, st.Schedule, nil
}

// loadSchedule reads schedule name: 404 for none.
func (p *Planner) loadSchedule(ctx context.Context, name string) (bus.StoredSchedule, error) {
	st, err := periodic.Load(ctx, p.o.Res.Engine, name)
	if errors.Is(err, periodic.ErrNotFound) {
		return st, &kit.Error{Code: 404, Msg: err.Error()}
	}
	return st, err
}

// scheduleView is s as shown: its next run, and its last run's
// deployment's state now.
func (p *Planner) scheduleView(ctx context.Context, s contract.Schedule) contract.Schedule {
	if next, ok := periodic.NextRun(s, p.scheduleNow()); ok {
		s.NextRun = &next
	}
	if s.LastRun != nil && s.LastRun.Deployment != "" {
		last := *s.LastRun
		if d, err := p.deployment(ctx, contract.DeployGet{ID: last.Deployment}); err == nil {
			last.DeploymentState = d.State
		}
		s.LastRun = &last
	}
	return s
}

// scheduleNow is the time schedules are due by.
func (p *Planner) scheduleNow() time.Time {
	if p.o.ScheduleClock != nil {
		return p.o.ScheduleClock()
	}
	return time.Now()
}

// scheduleKey carries the schedule a run is of, for the deployment it
// begins (see beginLocked).
type scheduleKey struct{}

func scheduleOf(ctx context.Context) string {
	s, _ := ctx.Value(scheduleKey{}).(string)
	return s
}

// scheduleActions are the planner's side of the runner.
type scheduleActions struct{ p *Planner }

// Run runs s's action as its command would, the deployment it begins
// naming s.
func (a scheduleActions) Run(ctx context.Context, s contract.Schedule) (string, error) {
	p := a.p
	args, err := contract.ScheduleArgsOf(s.Action, s.Args)
	if err != nil {
		return "", kit.Errorf(400, "the stored schedule: %v", err)
	}
	ctx = context.WithValue(ctx, scheduleKey{}, s.Name)
	switch s.Action {
	case contract.ScheduleDeploy:
		d := args.(contract.ScheduleDeployArgs)
		cfg, err := p.storedConfig(ctx)
		if err != nil {
			return "", err
		}
		return p.start(ctx, cfg, contract.UpdateSettings{Canaries: d.Canaries, MaxInFlight: d.MaxInFlight, AutoRevert: d.AutoRevert})
	case contract.ScheduleRestart:
		t := args.(contract.Target)
		if t.MaxInFlight != "" {
			return p.restartWith(ctx, contract.RollingRestart{V: contract.Version, Component: t.Comp, IP: t.IP, MaxInFlight: t.MaxInFlight})
		}
		return "", p.monitRestart(ctx, t)
	default:
		return p.rollbackNow(ctx)
	}
}

// monitRestartTimeout bounds a restart through monit, as the API bounds
// PUT /restart.
const monitRestartTimeout = 5 * time.Minute

// monitRestart restarts instances through the monitor, as PUT /restart
// without max_in_flight does; it makes no deployment.
func (p *Planner) monitRestart(ctx context.Context, t contract.Target) error {
	ctx, cancel := context.WithTimeout(ctx, monitRestartTimeout)
	defer cancel()
	rep, err := kit.Request(ctx, p.o.NC, subject.MonitorControl(), contract.ControlRequest{Target: t, Action: "restart"})
	if err != nil {
		return kit.Errorf(503, "the monitor did not answer: %v", err)
	}
	if rep.Code >= 300 {
		return kit.Errorf(rep.Code, "restart through monit: %s", contract.Clip(string(rep.Body)))
	}
	return nil
}

// Running tells whether deployment id still runs, here or driven by
// another planner.
func (a scheduleActions) Running(ctx context.Context, id string) (bool, error) {
	d, err := a.p.deployment(ctx, contract.DeployGet{ID: id})
	var ke *kit.Error
	if errors.As(err, &ke) && ke.Code == 404 {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.State == contract.DeployRunning || d.State == contract.DeployPending, nil
}
