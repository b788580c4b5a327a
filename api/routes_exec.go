package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// execRequest is POST /exec's body as a client sends it (contract.FleetExec
// without what the API sets): a component or nodes, the command, and how
// it runs.
type execRequest struct {
	Component     string          `json:"component,omitempty"`
	Nodes         []string        `json:"nodes,omitempty"`
	Command       string          `json:"command"`
	MaxInFlight   json.RawMessage `json:"max_in_flight,omitempty"`
	Timeout       *int            `json:"timeout,omitempty"`
	HaltOnFailure bool            `json:"halt_on_failure,omitempty"`
}

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
	var shape execRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("exec: "+strings.TrimPrefix(err.Error(), "json: ")+
			`; want {"component": "web" or "nodes": ["IP", ...], "command": "...", "max_in_flight": 1, "timeout": 60, "halt_on_failure": false}`))
		return
	}
	var in contract.FleetExec
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("exec: "+err.Error()))
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
