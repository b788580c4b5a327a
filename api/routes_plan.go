package api

import (
	"net/http"
	"regexp"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// planRoutes registers what a deployment would do, before it does it.
func (s *server) planRoutes(r chi.Router) {
	r.Post("/plan", s.plan)
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

// deployRequest is a deploy's options from its query: ?plan=ID.
func deployRequest(w http.ResponseWriter, r *http.Request) (contract.DeployStart, bool) {
	in := contract.DeployStart{V: contract.Version, Plan: r.URL.Query().Get("plan")}
	if in.Plan != "" && !planIDRe.MatchString(in.Plan) {
		writeError(w, http.StatusBadRequest, "plan must be the id a plan answered (hex digits)")
		return in, false
	}
	return in, true
}
