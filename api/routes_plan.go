package api

import (
	"net/http"
	"regexp"
	"strconv"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// rollback deploys the last config whose deployment succeeded again: 202
// {"id"}; 409 when there is none, or a deployment runs.
func (s *server) rollback(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.DeployRollback(), nil)
}

// configHistory lists the configs deployments applied, newest first,
// secrets redacted.
func (s *server) configHistory(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ConfigHistory(), nil)
}

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

var planIDRe = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

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
