package api

import (
	"net/http"

	"github.com/deployment-engine/engine/services/subject"
)

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
