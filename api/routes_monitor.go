package api

import (
	"bytes"
	"context"
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

// promTargets is Prometheus' HTTP service discovery of the node agents.
func (s *server) promTargets(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.MonitorTargets(), nil)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.MonitorStatus(), nil)
}

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

// controlTimeout bounds restart and stop: they answer once monit's outcome
// is known on every node (up to 90 s per instance, one node's instances one
// after another). A failed action is the monitor's 502, naming each
// instance with monit's words.
const controlTimeout = 5 * time.Minute

// timeoutKey carries a route's own bound on its bus request.
type timeoutKey struct{}

func (s *server) control(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if t, ok := readTarget(w, r); ok {
			if t.MaxInFlight != "" {
				s.rollingRestart(w, r, action, t)
				return
			}
			// The server's write timeout is for quick answers.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(controlTimeout + 10*time.Second))
			r = r.WithContext(context.WithValue(r.Context(), timeoutKey{}, controlTimeout))
			s.call(w, r, subject.MonitorControl(), contract.ControlRequest{Target: t, Action: action})
		}
	}
}
