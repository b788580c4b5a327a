package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// patchRequest is POST /patch's body as a client sends it (contract.Patch
// without what the API sets); every field may be left out.
type patchRequest struct {
	Nodes       []string        `json:"nodes,omitempty"`
	MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
	Reboot      string          `json:"reboot,omitempty"`
}

// patch upgrades the nodes' packages from the engine's mirror, batch by
// batch: 202 {"id", "nodes", "batches"}, a deployment of kind patch,
// followed and cancelled as any. The planner checks every field (400
// naming it); an empty body patches every node, one at a time.
func (s *server) patch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var shape patchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("patch: "+strings.TrimPrefix(err.Error(), "json: ")+
			`; want {"nodes": ["IP", ...], "max_in_flight": 1, "reboot": "if-required" | "always" | "never"}, every field optional`))
		return
	}
	var in contract.Patch
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("patch: "+err.Error()))
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	if a := recordOf(r); a != nil {
		what := "every node"
		if len(in.Nodes) > 0 {
			what = contract.Clip(strings.Join(in.Nodes, ", "))
		}
		a.note(fmt.Sprintf("%s, %s at a time, reboot %s", what, contract.Clip(in.InFlightOr()), contract.Clip(in.RebootOr())))
	}
	s.call(w, r, subject.DeployPatch(), in)
}
