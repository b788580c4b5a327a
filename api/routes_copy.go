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

// maxCopyBody bounds POST /copy's body: a file of contract.MaxCopyBytes
// as base64 (5.33 MiB) and the rest of the request. It is the one route
// that reads more than MaxBody.
const maxCopyBody = 6 << 20

// copyRequest is POST /copy's body as a client sends it (contract.FleetCopy
// without what the API sets): a component or nodes, the file's path on
// them, its content and mode, and how many nodes at once.
type copyRequest struct {
	Component   string          `json:"component,omitempty"`
	Nodes       []string        `json:"nodes,omitempty"`
	To          string          `json:"to"`
	Content     []byte          `json:"content_base64"`
	Mode        string          `json:"mode,omitempty"`
	MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
}

// fleetCopy puts a file on nodes: 202 {"id", "to", "nodes", "size",
// "sha256"}, a deployment of kind copy, followed and cancelled as any. The
// planner checks every field (400 naming it). The audit's object is the
// direction and the path as the planner shows it ("to /etc/motd"), its
// detail the nodes and the file's size and checksum, never its content; a
// refused one is recorded as "copy" alone.
func (s *server) fleetCopy(w http.ResponseWriter, r *http.Request) {
	body, ok := readBodyUpTo(w, r, maxCopyBody)
	if !ok {
		return
	}
	var shape copyRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("copy: "+strings.TrimPrefix(err.Error(), "json: ")+
			`; want {"component": "web" or "nodes": ["IP", ...], "to": "/abs/path", "content_base64": "...", "mode": "0644", "max_in_flight": 1}`))
		return
	}
	var in contract.FleetCopy
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, contract.Clip("copy: "+err.Error()))
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	if a := recordOf(r); a != nil {
		a.component = contract.Clip(in.Component)
	}
	rep, ok := s.request(w, r, subject.DeployCopy(), in)
	if !ok {
		return
	}
	var started contract.FleetCopyStarted
	if rep.Code == http.StatusAccepted && json.Unmarshal(rep.Body, &started) == nil && started.To != "" {
		a := recordOf(r)
		a.named("to " + started.To)
		a.note(contract.Clip(fmt.Sprintf("on %s (%d bytes, sha256 %s)", strings.Join(started.Nodes, ", "), started.Size, started.SHA256)))
	}
	writeReply(w, rep)
}
