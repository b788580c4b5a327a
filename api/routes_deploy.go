package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// deploy starts a deployment of the stored config (or of a plan): 202
// {"id"}.
func (s *server) deploy(w http.ResponseWriter, r *http.Request) {
	in, ok := deployRequest(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployStart(), in)
}

// deployRequest is a deploy's options from its query: ?plan=ID,
// canaries=N, max_in_flight=N|P%, auto_revert=true|false.
func deployRequest(w http.ResponseWriter, r *http.Request) (contract.DeployStart, bool) {
	q := r.URL.Query()
	in := contract.DeployStart{V: contract.Version, Plan: q.Get("plan"), MaxInFlight: q.Get("max_in_flight")}
	if in.Plan != "" && !planIDRe.MatchString(in.Plan) {
		writeError(w, http.StatusBadRequest, "plan must be the id a plan answered (hex digits)")
		return in, false
	}
	if c := q.Get("canaries"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "canaries must be a number >= 0")
			return in, false
		}
		in.Canaries = &n
	}
	if in.MaxInFlight != "" {
		if _, err := contract.InFlight(in.MaxInFlight, 1); err != nil {
			writeError(w, http.StatusBadRequest, "max_in_flight "+err.Error())
			return in, false
		}
	}
	if a := q.Get("auto_revert"); a != "" {
		b, err := strconv.ParseBool(a)
		if err != nil {
			writeError(w, http.StatusBadRequest, "auto_revert must be true or false")
			return in, false
		}
		in.AutoRevert = &b
	}
	return in, true
}

// planIDRe is the id a plan answers, as ?plan= gives it back.
var planIDRe = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// plan answers 200 with every action a deployment of the body's config (or
// of the stored one, when the body is empty) would take on each node, and
// the drift found there. It writes nothing.
func (s *server) plan(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployPlan(), contract.PlanRequest{V: contract.Version, Config: body})
}

// scale adds instances to the stored config and deploys them: 202 {"id"}.
func (s *server) scale(w http.ResponseWriter, r *http.Request) {
	if body, ok := readScale(w, r); ok {
		s.call(w, r, subject.DeployScale(), body)
	}
}

// readScale reads a scale's body, for the planner to decode, and records
// the instances it adds.
func readScale(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, ok := readBody(w, r)
	if ok {
		recordOf(r).named(scaleObject(body))
	}
	return body, ok
}

// scaleObject names the instances a scale request adds.
func scaleObject(body []byte) string {
	var raw any
	if json.Unmarshal(body, &raw) != nil {
		return "scale"
	}
	list, ok := raw.([]any)
	if !ok {
		list = []any{raw}
	}
	var out []string
	for _, x := range list {
		m, _ := x.(map[string]any)
		var comp, ip string
		for k, v := range m {
			str, _ := v.(string)
			switch strings.ToLower(k) {
			case "comp", "component", "name":
				comp = str
			case "ip":
				ip = str
			}
		}
		out = append(out, comp+"@"+ip)
	}
	return strings.Join(out, ",")
}

// takeover clears the claim an engine that no longer runs left on the
// config's nodes: {"from": "e-…", "nodes": [...]} (nodes optional). 200
// with each node's owner and whether its claim was cleared; audited with
// the actor who took the nodes over.
func (s *server) takeover(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployTakeover(), body)
}
