package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// maxCopyBody bounds POST /copy's body: a file of contract.MaxCopyBytes
// as base64 (5.33 MiB) and the rest of the request. It is the one route
// that reads more than MaxBody.
const maxCopyBody = 6 << 20

// copyRequest is POST /copy's body as a client sends it (contract.FleetCopy
// without what the API sets): a component or nodes, the file's path on
// them, its content and mode, and how many nodes at once; or, with "from"
// instead, the path of the file to read back from them.
type copyRequest struct {
	Component   string          `json:"component,omitempty"`
	Nodes       []string        `json:"nodes,omitempty"`
	To          string          `json:"to,omitempty"`
	From        string          `json:"from,omitempty"`
	Content     []byte          `json:"content_base64,omitempty"`
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
			`; want {"component": "web" or "nodes": ["IP", ...], "to": "/abs/path", "content_base64": "...", "mode": "0644", "max_in_flight": 1}, or "from": "/abs/path" instead of "to" and the content`))
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
	if rep.Code == http.StatusAccepted && json.Unmarshal(rep.Body, &started) == nil {
		switch a := recordOf(r); {
		case started.To != "":
			a.named("to " + started.To)
			a.note(contract.Clip(fmt.Sprintf("on %s (%d bytes, sha256 %s)", strings.Join(started.Nodes, ", "), started.Size, started.SHA256)))
		case started.From != "":
			a.named("from " + started.From)
			a.note(contract.Clip("on " + strings.Join(started.Nodes, ", ")))
		}
	}
	writeReply(w, rep)
}

// copiedFile serves the file a copy from the nodes read back from one
// node, as the node had it (application/octet-stream, its SHA-256 in the
// X-Content-SHA256 header): 404 when the deployment read none from it, or it is past the
// hour the bus keeps it.
func (s *server) copiedFile(w http.ResponseWriter, r *http.Request) {
	id, ip := chi.URLParam(r, "id"), chi.URLParam(r, "ip")
	if !subject.ValidToken(id) || net.ParseIP(ip).To4() == nil {
		writeError(w, http.StatusNotFound, contract.Clip(fmt.Sprintf("no file read back by %q from %q", id, ip)))
		return
	}
	if s.js == nil {
		writeError(w, http.StatusServiceUnavailable, "no bus")
		return
	}
	store, err := s.js.ObjectStore(r.Context(), bus.ObjCopies)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the copies store: "+err.Error())
		return
	}
	b, err := store.GetBytes(r.Context(), bus.CopyObject(id, ip))
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no file read back by %s from %s (kept %s)", id, ip, bus.CopiesTTL))
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "the copies store: "+err.Error())
		return
	}
	sum := sha256.Sum256(b)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-SHA256", hex.EncodeToString(sum[:]))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
