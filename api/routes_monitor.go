package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The manual sends {"Comp", "Ip"} to hardware and {"name", "ip"} to
// restart; accept every spelling, case-insensitively.
var compKeys = []string{"comp", "name", "component"}

// parseTarget reads a target from a JSON body or, for GET, the query.
func parseTarget(body []byte, r *http.Request) (contract.Target, string) {
	var t contract.Target
	if len(bytes.TrimSpace(body)) == 0 {
		q := r.URL.Query()
		for _, k := range compKeys {
			if v := q.Get(k); v != "" {
				t.Comp = v
			}
		}
		t.IP = q.Get("ip")
		if t.Comp == "" && t.IP == "" {
			return t, `name the component and IP: {"Comp": "nats", "Ip": "10.0.0.5"}, or "all" and "0.0.0.0"`
		}
		return t, ""
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return t, "the body is not a JSON object: " + err.Error()
	}
	for k, v := range m {
		str, ok := v.(string)
		key := strings.ToLower(k)
		switch {
		case key == "ip":
			if !ok {
				return t, "ip must be a string"
			}
			t.IP = strings.TrimSpace(str)
		case key == "max_in_flight":
			// A rolling restart: a number or a percentage.
			switch n := v.(type) {
			case string:
				t.MaxInFlight = strings.TrimSpace(n)
			case float64:
				t.MaxInFlight = strconv.FormatFloat(n, 'f', -1, 64)
			default:
				return t, "max_in_flight must be a number or a percentage"
			}
			if t.MaxInFlight == "" {
				return t, "max_in_flight must be a number or a percentage"
			}
		case slices.Contains(compKeys, key):
			if !ok {
				return t, key + " must be a string"
			}
			t.Comp = strings.TrimSpace(str)
		default:
			return t, "unknown field " + contract.Clip(k) + `: want {"Comp": "...", "Ip": "..."}`
		}
	}
	return t, ""
}

// maxName bounds a component name or an IP in a request.
const maxName = 64

// readTarget reads a target from the body or the query; on a bad one it
// answers 400 itself and returns false.
func readTarget(w http.ResponseWriter, r *http.Request) (contract.Target, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return contract.Target{}, false
	}
	t, problem := parseTarget(body, r)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return contract.Target{}, false
	}
	recordOf(r).target(t)
	// No component name or IP is this long: refuse it here, so that no
	// service quotes it back whole.
	if len(t.Comp) > maxName || len(t.IP) > maxName {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("no component %q on %q: names and IPs are at most %d bytes", contract.Clip(t.Comp), contract.Clip(t.IP), maxName))
		return contract.Target{}, false
	}
	return t, true
}

func (s *server) hardware(w http.ResponseWriter, r *http.Request) {
	if t, ok := readTarget(w, r); ok {
		s.call(w, r, subject.MonitorHardware(), t)
	}
}

// nodesTimeout bounds a request whose answer waits for the nodes: a
// deploy's check of each node (its turn may come after other clusters'
// checks: every cluster of the engine shares the installers' turns), or
// restart and stop, which answer once monit's outcome is known on every
// node (up to 90 s per instance, one node's instances one after another;
// a failed action is the monitor's 502, naming each instance with monit's
// words).
const nodesTimeout = 5 * time.Minute

// restart restarts an instance, or a component's instances, through
// monit. With max_in_flight it is a rolling restart instead: max_in_flight
// instances at a time, each taken out of its balancers, watched healthy
// and put back before the next batch; a deployment, answered 202 {"id"}
// and followed as any other.
func (s *server) restart(w http.ResponseWriter, r *http.Request) {
	t, ok := readTarget(w, r)
	switch {
	case !ok:
	case t.MaxInFlight != "":
		s.call(w, r, subject.DeployRestart(), contract.RollingRestart{V: contract.Version, Component: t.Comp, IP: t.IP, MaxInFlight: t.MaxInFlight})
	default:
		s.control(w, r, "restart", t)
	}
}

// stop stops an instance, or a component's instances, through monit.
func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	t, ok := readTarget(w, r)
	switch {
	case !ok:
	case t.MaxInFlight != "":
		writeError(w, http.StatusBadRequest, "max_in_flight applies to restart only")
	default:
		s.control(w, r, "stop", t)
	}
}

// control asks the monitor to act on t, and answers once monit's outcome
// is known on every node.
func (s *server) control(w http.ResponseWriter, r *http.Request, action string, t contract.Target) {
	s.call(w, r, subject.MonitorControl(), contract.ControlRequest{Target: t, Action: action})
}

// healSet turns auto-heal on or off: {"enabled": false}. Turning it on
// also lifts the meltdown guard and gives failing instances a new start.
func (s *server) healSet(w http.ResponseWriter, r *http.Request) {
	if enabled, ok := readHeal(w, r); ok {
		s.call(w, r, subject.HealSet(), contract.HealSet{V: contract.Version, Enabled: enabled, Actor: actorOf(r.Context())})
	}
}

// readHeal reads {"enabled": bool} and records the switch asked for.
func readHeal(w http.ResponseWriter, r *http.Request) (bool, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return false, false
	}
	var in struct {
		Enabled *bool `json:"enabled"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if in.Enabled != nil {
		recordOf(r).note(fmt.Sprintf("enabled=%v", *in.Enabled))
	}
	if err != nil || in.Enabled == nil {
		writeError(w, http.StatusBadRequest, `want {"enabled": true} or {"enabled": false}`)
		return false, false
	}
	return *in.Enabled, true
}
