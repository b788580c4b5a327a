package planner

import (
	"context"
	"errors"
	"time"

	"github.com/deployment-engine/engine/planner/periodic"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Schedules are kept in the engine's store (bus.ScheduleKey), so that
// every planner of a split engine answers for them; the one holding the
// schedules' lease runs them (periodic.Runner), each run as the schedule's
// action's own command would, its deployment naming the schedule.

// scheduleEndpoints are the planner's schedule commands (periodic.Book).
func (p *Planner) scheduleEndpoints() map[string]kit.Handler {
	return periodic.Book{KV: p.o.Res.Engine, Log: p.log, Now: p.scheduleNow, CheckTarget: p.checkScheduleTarget,
		Event: p.engineEvent, State: func(ctx context.Context, id string) string {
			d, err := p.deployment(ctx, contract.DeployGet{ID: id})
			if err != nil {
				return ""
			}
			return d.State
		}}.Endpoints()
}

// startSchedules runs the schedules' runner as work of the planner: Stop
// ends it, and it hands the lease over as it ends.
func (p *Planner) startSchedules() {
	r := periodic.New(periodic.Options{Res: p.o.Res, Actions: scheduleActions{p}, Log: p.log,
		Holder: p.o.PlannerID, LeaseTTL: p.o.LeaseTTL, Tick: p.o.ScheduleTick, Now: p.o.ScheduleClock})
	p.svc.Go(r.Run)
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
	case contract.ScheduleExec:
		x := args.(contract.FleetExec)
		x.V, x.Actor = contract.Version, contract.ScheduleActor(s.Name)
		started, err := p.startExec(ctx, x)
		return started.ID, err
	case contract.ScheduleBackup:
		return "", p.scheduledBackup(ctx, s.Name, args.(contract.ScheduleBackupArgs).KeepOr())
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
