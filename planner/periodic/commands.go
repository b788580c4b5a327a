package periodic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Book answers the schedule commands (add, get, list, delete) on the
// schedules kept in the store; the planner gives it what only it knows.
type Book struct {
	KV  jetstream.KeyValue
	Log *slog.Logger
	Now func() time.Time
	// CheckTarget checks a new schedule's action against the stored
	// config, as the action's own command would.
	CheckTarget func(ctx context.Context, s contract.Schedule) error
	// State is the state of deployment id now, "" when unknown.
	State func(ctx context.Context, id string) string
	// Event records an operation for the operations log.
	Event func(ctx context.Context, kind, msg string)
}

// Endpoints are the book's commands by subject.
func (b Book) Endpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.ScheduleAdd():    b.add,
		subject.ScheduleGet():    b.get,
		subject.ScheduleList():   b.list,
		subject.ScheduleDelete(): b.delete,
	}
}

// fieldError is a schedule's problem with one field, answered 400 naming it.
func fieldError(err error) error {
	var fe *contract.FieldError
	if errors.As(err, &fe) {
		return &kit.Error{Code: 400, Msg: "schedule rejected: " + fe.Error(), Problems: []contract.Problem{{Path: fe.Field, Reason: fe.Reason}}}
	}
	return err
}

// add stores a new schedule: 201 with it and its next run; 409 when one
// has its name.
func (b Book) add(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.Schedule
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if _, err := Prepare(&in); err != nil {
		return 0, nil, fieldError(err)
	}
	if err := b.CheckTarget(ctx, in); err != nil {
		return 0, nil, fieldError(err)
	}
	in.Created, in.LastRun, in.NextRun = b.Now().UTC(), nil, nil
	if _, err := bus.PutScheduleAt(ctx, b.KV, in, 0); err != nil {
		if bus.IsConflict(err) {
			return 0, nil, kit.Errorf(409, "a schedule named %s exists: delete it first to replace it", in.Name)
		}
		return 0, nil, err
	}
	b.Log.Info("schedule added", "schedule", in.Name, "cron", in.Cron, "zone", in.TimeZone, "action", in.Action, "actor", in.Actor)
	b.Event(ctx, "schedule", fmt.Sprintf("schedule %s added by %s: %s at %q (%s)", in.Name, in.Actor, in.Action, in.Cron, in.TimeZone))
	return 201, b.view(ctx, in), nil
}

// get answers one schedule, with its next and last run; 404 for none.
func (b Book) get(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ScheduleGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	st, err := b.load(ctx, in.Name)
	if err != nil {
		return 0, nil, err
	}
	return 200, b.view(ctx, st.Schedule), nil
}

// list answers every schedule, by name.
func (b Book) list(ctx context.Context, _ micro.Request) (int, any, error) {
	all, err := bus.ListSchedules(ctx, b.KV)
	if err != nil {
		return 0, nil, err
	}
	out := make([]contract.Schedule, 0, len(all))
	for _, st := range all {
		out = append(out, b.view(ctx, st.Schedule))
	}
	return 200, out, nil
}

// delete deletes a schedule: it runs no more. A run it started goes on.
func (b Book) delete(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ScheduleGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	st, err := b.load(ctx, in.Name)
	if err != nil {
		return 0, nil, err
	}
	if err := bus.DeleteSchedule(ctx, b.KV, in.Name); err != nil {
		if bus.IsNotFound(err) {
			return 0, nil, kit.Errorf(404, "no schedule %s", in.Name)
		}
		return 0, nil, err
	}
	b.Log.Info("schedule deleted", "schedule", in.Name)
	b.Event(ctx, "schedule", "schedule "+in.Name+" deleted")
	st.NextRun = nil
	return 200, st.Schedule, nil
}

// load reads schedule name: 404 for none.
func (b Book) load(ctx context.Context, name string) (bus.StoredSchedule, error) {
	st, err := Load(ctx, b.KV, name)
	if errors.Is(err, ErrNotFound) {
		return st, &kit.Error{Code: 404, Msg: err.Error()}
	}
	return st, err
}

// view is s as shown: its next run, and its last run's deployment's
// state now.
func (b Book) view(ctx context.Context, s contract.Schedule) contract.Schedule {
	if next, ok := NextRun(s, b.Now()); ok {
		s.NextRun = &next
	}
	if s.LastRun != nil && s.LastRun.Deployment != "" {
		last := *s.LastRun
		if st := b.State(ctx, last.Deployment); st != "" {
			last.DeploymentState = st
		}
		s.LastRun = &last
	}
	return s
}
