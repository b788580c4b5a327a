package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// scheduleAdd answers POST /schedules: the body is checked here as far as
// the API can (the args as the action's own route reads them), then the
// planner checks the cron expression and the zone, and stores it.
func (s *server) scheduleAdd(w http.ResponseWriter, r *http.Request) {
	in, ok := readSchedule(w, r)
	if !ok {
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	s.call(w, r, subject.ScheduleAdd(), in)
}

// scheduleNamed sends a command about the schedule the path names.
func (s *server) scheduleNamed(subj string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.call(w, r, subj, contract.ScheduleGet{Name: chi.URLParam(r, "name")})
	}
}

// scheduleBody is POST /schedules' body.
type scheduleBody struct {
	Name     string          `json:"name"`
	Cron     string          `json:"cron"`
	TimeZone string          `json:"time_zone,omitempty"`
	Action   string          `json:"action"`
	Args     json.RawMessage `json:"args,omitempty"`
	// ProhibitOverlap defaults to true, Missed to "skip".
	ProhibitOverlap *bool  `json:"prohibit_overlap,omitempty"`
	Missed          string `json:"missed,omitempty"`
}

// badSchedule answers 400 naming the field at fault.
func badSchedule(w http.ResponseWriter, field, reason string) {
	writeJSON(w, http.StatusBadRequest, contract.ErrorBody{Error: "schedule rejected: " + field + ": " + reason,
		Problems: []contract.Problem{{Path: field, Reason: reason}}})
}

// readSchedule reads a schedule from the body, its args read as its
// action's route reads its own, and records it for the audit; on a bad
// one it answers 400 itself and returns false.
func readSchedule(w http.ResponseWriter, r *http.Request) (contract.Schedule, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return contract.Schedule{}, false
	}
	var in scheduleBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, `want {"name", "cron", "time_zone", "action", "args", "prohibit_overlap", "missed"}: `+err.Error())
		return contract.Schedule{}, false
	}
	a := recordOf(r)
	a.named(contract.Clip(in.Name))
	a.note(fmt.Sprintf("add: %s at %q", contract.Clip(in.Action), contract.Clip(in.Cron)))
	out := contract.Schedule{Name: in.Name, Cron: in.Cron, TimeZone: in.TimeZone, Action: in.Action,
		ProhibitOverlap: in.ProhibitOverlap == nil || *in.ProhibitOverlap, Missed: in.Missed}
	if out.Missed == "" {
		out.Missed = contract.MissedSkip
	}
	args, err := scheduleArgs(in.Action, in.Args, r)
	if err != nil {
		var fe *contract.FieldError
		if errors.As(err, &fe) {
			badSchedule(w, fe.Field, fe.Reason)
		} else {
			badSchedule(w, "args", err.Error())
		}
		return contract.Schedule{}, false
	}
	out.Args = args
	if err := contract.CheckSchedule(out); err != nil {
		var fe *contract.FieldError
		errors.As(err, &fe)
		badSchedule(w, fe.Field, fe.Reason)
		return contract.Schedule{}, false
	}
	return out, true
}

// scheduleArgs reads an action's args as its route reads its request, and
// gives them as the planner runs them (contract.ScheduleArgsOf).
func scheduleArgs(action string, raw json.RawMessage, r *http.Request) (json.RawMessage, error) {
	if len(raw) > contract.MaxScheduleArgs {
		return nil, fmt.Errorf("%d bytes; at most %d", len(raw), contract.MaxScheduleArgs)
	}
	empty := len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
	switch action {
	case contract.ScheduleRestart:
		// PUT /restart's body: {"name" or "Comp", "ip", "max_in_flight"}.
		if empty {
			return nil, errors.New(`name the instances to restart, as PUT /restart's body: {"name": "web", "ip": "0.0.0.0", "max_in_flight": 1}`)
		}
		t, problem := parseTarget(raw, r)
		if problem != "" {
			return nil, errors.New(problem)
		}
		if len(t.Comp) > maxName || len(t.IP) > maxName {
			return nil, fmt.Errorf("names and IPs are at most %d bytes", maxName)
		}
		return json.Marshal(t)
	case contract.ScheduleDeploy:
		// POST /deploy's query, as JSON.
		if empty {
			return nil, nil
		}
		d, err := deployArgs(raw)
		if err != nil {
			return nil, err
		}
		return json.Marshal(d)
	}
	// A rollback takes none; an unknown action is named by CheckSchedule.
	return raw, nil
}

// deployArgs reads {"canaries", "max_in_flight", "auto_revert"}, each as
// POST /deploy's query parameter of that name takes it; a number may be
// given as a string, as in a query.
func deployArgs(raw json.RawMessage) (contract.ScheduleDeployArgs, error) {
	var d contract.ScheduleDeployArgs
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return d, errors.New("not a JSON object: " + err.Error())
	}
	for k, v := range m {
		s := fmt.Sprint(v)
		switch k {
		case "canaries":
			n, err := strconv.Atoi(s)
			if f, isNum := v.(float64); isNum && f != math.Trunc(f) || err != nil || n < 0 {
				return d, errors.New("canaries must be a number >= 0")
			}
			d.Canaries = &n
		case "max_in_flight":
			d.MaxInFlight = strings.TrimSpace(s)
			if _, err := contract.InFlight(d.MaxInFlight, 1); err != nil {
				return d, errors.New("max_in_flight " + err.Error())
			}
		case "auto_revert":
			b, err := strconv.ParseBool(s)
			if err != nil {
				return d, errors.New("auto_revert must be true or false")
			}
			d.AutoRevert = &b
		default:
			return d, fmt.Errorf("unknown field %s: a scheduled deploy takes canaries, max_in_flight and auto_revert", contract.Clip(k))
		}
	}
	return d, nil
}
