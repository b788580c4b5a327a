package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Schedule actions: what a schedule's run does, each as its own route or
// command would (POST /deploy, PUT /restart, POST /rollback, POST /exec,
// deployment-engine backup).
const (
	ScheduleDeploy   = "deploy"
	ScheduleRestart  = "restart"
	ScheduleRollback = "rollback"
	ScheduleExec     = "exec"
	ScheduleBackup   = "backup"
)

// ScheduleActions are the actions a schedule may take, in order.
var ScheduleActions = []string{ScheduleDeploy, ScheduleRestart, ScheduleRollback, ScheduleExec, ScheduleBackup}

// ScheduleBackupArgs are a scheduled backup's: how many of the schedule's
// backups the engine keeps (default DefaultBackupKeep, at most
// MaxBackupKeep); the oldest beyond them are deleted after each run.
//
//	{"keep": 7}
type ScheduleBackupArgs struct {
	Keep int `json:"keep,omitempty"`
}

// Bounds of a scheduled backup's keep.
const (
	DefaultBackupKeep = 7
	MaxBackupKeep     = 1000
)

// KeepOr is how many backups to keep.
func (a ScheduleBackupArgs) KeepOr() int {
	if a.Keep == 0 {
		return DefaultBackupKeep
	}
	return a.Keep
}

// What a schedule does with the runs it missed while no planner ran.
const (
	// MissedSkip records them as missed and runs nothing.
	MissedSkip = "skip"
	// MissedRunOnce runs once, however many were missed.
	MissedRunOnce = "run_once"
)

// Results of a schedule's run.
const (
	// RunClaimed: the run is being started (a planner claimed its due
	// time); its outcome follows.
	RunClaimed = "claimed"
	// RunStarted: the run's deployment started.
	RunStarted = "started"
	// RunDone: an action that makes no deployment (a restart through
	// monit) did as asked.
	RunDone = "done"
	// RunFailed: the action was refused or failed; Detail says why.
	RunFailed = "failed"
	// RunSkipped: the previous run's deployment still ran
	// (prohibit_overlap); Deployment names it.
	RunSkipped = "skipped"
	// RunMissed: runs due while no planner ran, skipped (missed "skip").
	RunMissed = "missed"
)

// ActorSchedulePrefix begins the audit actor of a schedule's runs:
// schedule:<name>.
const ActorSchedulePrefix = "schedule:"

// ScheduleActor is the audit actor of the runs of schedule name.
func ScheduleActor(name string) string { return ActorSchedulePrefix + name }

// Schedule is work the engine runs on a cron schedule, as POST
// /deployment-engine/schedules creates it (de.cmd.schedule.add), as the
// store keeps it (bus.ScheduleKey) and as GET shows it, with its next and
// last run. Args is the action's body, as the planner runs it: a
// ScheduleDeployArgs for deploy, a Target for restart, none for rollback.
//
//	{"v": 1, "name": "nightly-web", "cron": "30 2 * * *", "time_zone": "Europe/Paris", "action": "restart",
//	 "args": {"comp": "web", "ip": "0.0.0.0", "max_in_flight": "1"}, "prohibit_overlap": true, "missed": "skip",
//	 "actor": "alice", "created": "...", "next_run": "...",
//	 "last_run": {"due": "...", "time": "...", "result": "started", "deployment": "d-...", "deployment_state": "succeeded"}}
type Schedule struct {
	V        int    `json:"v"`
	Name     string `json:"name"`
	Cron     string `json:"cron"`
	TimeZone string `json:"time_zone"`
	Action   string `json:"action"`
	// Args is the action's body, checked as its route checks it.
	Args json.RawMessage `json:"args,omitempty"`
	// ProhibitOverlap skips a run while the previous run's deployment
	// still runs.
	ProhibitOverlap bool `json:"prohibit_overlap"`
	// Missed is MissedSkip or MissedRunOnce.
	Missed string `json:"missed"`
	// Actor is who created it; Created when.
	Actor   string    `json:"actor,omitempty"`
	Created time.Time `json:"created"`
	// LastRun is the latest run, whatever its result.
	LastRun *ScheduleRun `json:"last_run,omitempty"`
	// NextRun is when it runs next, computed when it is read (not stored).
	NextRun *time.Time `json:"next_run,omitempty"`
}

// ScheduleRun is one run of a schedule.
//
//	{"due": "...", "time": "...", "result": "skipped", "deployment": "d-...", "deployment_state": "running",
//	 "detail": "the previous run's deployment d-... still runs", "planner": "planner-1a2b3c4d"}
type ScheduleRun struct {
	// Due is the cron time the run was for; Time when a planner acted on it.
	Due  time.Time `json:"due"`
	Time time.Time `json:"time"`
	// Result is one of the Run* results.
	Result string `json:"result"`
	// Deployment is the deployment the run started, or for a skipped run
	// the one still running that it yielded to.
	Deployment string `json:"deployment,omitempty"`
	// DeploymentState is Deployment's state when the schedule was read
	// (not stored).
	DeploymentState string `json:"deployment_state,omitempty"`
	Detail          string `json:"detail,omitempty"`
	// Missed counts the earlier runs due while no planner ran that this
	// one stands for.
	Missed int `json:"missed,omitempty"`
	// Planner names the planner that ran it.
	Planner string `json:"planner,omitempty"`
}

// ScheduleGet names a schedule (de.cmd.schedule.get, delete).
//
//	{"name": "nightly-web"}
type ScheduleGet struct {
	Name string `json:"name"`
}

// ScheduleDeployArgs are a scheduled deploy's options, as POST /deploy's
// query takes them.
//
//	{"canaries": 1, "max_in_flight": "25%", "auto_revert": true}
type ScheduleDeployArgs struct {
	Canaries    *int   `json:"canaries,omitempty"`
	MaxInFlight string `json:"max_in_flight,omitempty"`
	AutoRevert  *bool  `json:"auto_revert,omitempty"`
}

// scheduleNameRe is a DNS label in lower case: it stands as it is in a KV
// key, an audit actor and a URL.
var scheduleNameRe = lazyRegexp(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// MaxScheduleCron bounds a cron expression, in bytes.
const MaxScheduleCron = 100

// MaxScheduleArgs bounds a schedule's args, in bytes: an exec's command
// (MaxExecCommand) and its nodes fit.
const MaxScheduleArgs = 8192

// FieldError is a problem with one field of a request: the API answers
// 400 naming it.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// CheckSchedule checks what a schedule's creator gives, but the cron
// expression and the time zone, which the planner reads: the name, the
// action and its args, the missed policy. A failure is a *FieldError.
func CheckSchedule(s Schedule) error {
	if !scheduleNameRe().MatchString(s.Name) {
		return fieldErr("name", "%q is not a schedule name: 1 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit", Clip(s.Name))
	}
	if s.Cron == "" || len(s.Cron) > MaxScheduleCron {
		return fieldErr("cron", "want a cron expression of 5 fields (or @daily, @every 1h...) of at most %d bytes", MaxScheduleCron)
	}
	if s.Missed != MissedSkip && s.Missed != MissedRunOnce {
		return fieldErr("missed", "%q: want %q or %q", Clip(s.Missed), MissedSkip, MissedRunOnce)
	}
	_, err := ScheduleArgsOf(s.Action, s.Args)
	return err
}

// ScheduleArgsOf decodes and checks an action's args as the planner runs
// them: a ScheduleDeployArgs for deploy, a Target for restart, nil for
// rollback. A failure is a *FieldError naming action or args.
func ScheduleArgsOf(action string, raw json.RawMessage) (any, error) {
	if len(raw) > MaxScheduleArgs {
		return nil, fieldErr("args", "%d bytes; at most %d", len(raw), MaxScheduleArgs)
	}
	empty := len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
	switch action {
	case ScheduleDeploy:
		var a ScheduleDeployArgs
		if !empty {
			if err := strictJSON(raw, &a); err != nil {
				return nil, fieldErr("args", "%v", err)
			}
		}
		if a.Canaries != nil && *a.Canaries < 0 {
			return nil, fieldErr("args", "canaries must be a number >= 0")
		}
		if a.MaxInFlight != "" {
			if _, err := InFlight(a.MaxInFlight, 1); err != nil {
				return nil, fieldErr("args", "max_in_flight %v", err)
			}
		}
		return a, nil
	case ScheduleRestart:
		var t Target
		if empty {
			return nil, fieldErr("args", `name the instances to restart: {"name": "web", "ip": "0.0.0.0", "max_in_flight": 1}`)
		}
		if err := strictJSON(raw, &t); err != nil {
			return nil, fieldErr("args", "%v", err)
		}
		return t, checkRestartTarget(t)
	case ScheduleRollback:
		if !empty && string(bytes.TrimSpace(raw)) != "{}" {
			return nil, fieldErr("args", "a rollback takes no args")
		}
		return nil, nil
	case ScheduleExec:
		if empty {
			return nil, fieldErr("args", `name the command and where it runs: {"component": "web", "command": "...", "max_in_flight": 1, "timeout": 60}`)
		}
		x, err := DecodeFleetExec(raw)
		if err != nil {
			return nil, fieldErr("args", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		if ps := x.Problems(); len(ps) > 0 {
			return nil, fieldErr("args", "%s: %s", ps[0].Path, ps[0].Reason)
		}
		return x, nil
	case ScheduleBackup:
		var a ScheduleBackupArgs
		if !empty {
			if err := strictJSON(raw, &a); err != nil {
				return nil, fieldErr("args", "%v", err)
			}
		}
		if a.Keep < 0 || a.Keep > MaxBackupKeep {
			return nil, fieldErr("args", "keep %d: want 1 to %d backups (default %d)", a.Keep, MaxBackupKeep, DefaultBackupKeep)
		}
		return a, nil
	}
	return nil, fieldErr("action", "%q: want one of %s", Clip(action), strings.Join(ScheduleActions, ", "))
}

// checkRestartTarget checks a scheduled restart's instances: a component
// (or "all" without max_in_flight), an IP or "0.0.0.0", and max_in_flight
// a number or a percentage when given.
func checkRestartTarget(t Target) error {
	const maxName = 64
	switch {
	case t.Comp == "" || len(t.Comp) > maxName:
		return fieldErr("args", "name a component (at most %d bytes), or \"all\"", maxName)
	case t.IP != "0.0.0.0" && CheckNodeIP(t.IP) != nil:
		return fieldErr("args", `ip must be a node's IP or "0.0.0.0", not %q`, Clip(t.IP))
	case t.MaxInFlight == "":
		return nil
	case t.Comp == "all":
		return fieldErr("args", "a rolling restart (max_in_flight) restarts one component: name it")
	}
	if _, err := InFlight(t.MaxInFlight, 1); err != nil {
		return fieldErr("args", "max_in_flight %v", err)
	}
	return nil
}

// strictJSON decodes one JSON object into v, refusing unknown fields.
func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
