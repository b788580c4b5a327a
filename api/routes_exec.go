package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// fleetExec runs an operator's command on nodes: 202 {"id", "command"},
// a deployment of kind exec, followed and cancelled as any. The planner
// checks every field (400 naming it). The audit's object is the command
// as the planner shows it, the config's secrets taken out; a refused one
// is recorded as "exec" alone, its text never checked for secrets.
func (s *server) fleetExec(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	in, err := contract.DecodeFleetExec(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("exec: "+strings.TrimPrefix(err.Error(), "json: ")+
			`; want {"component": "web" or "nodes": ["IP", ...], "command": "...", "max_in_flight": 1, "timeout": 60, "halt_on_failure": false}`))
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	if a := recordOf(r); a != nil {
		a.component = contract.Clip(in.Component)
	}
	rep, ok := s.request(w, r, subject.DeployExec(), in)
	if !ok {
		return
	}
	var started contract.FleetExecStarted
	if rep.Code == http.StatusAccepted && json.Unmarshal(rep.Body, &started) == nil && started.Command != "" {
		recordOf(r).named(started.Command)
	}
	writeReply(w, rep)
}
