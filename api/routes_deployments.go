package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// deploymentID is the deployment the path names; a malformed id is
// answered 404 here.
func deploymentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if len(id) > 64 || !subject.ValidToken(id) || !strings.HasPrefix(id, "d-") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no deployment %q", contract.Clip(id)))
		return "", false
	}
	return id, true
}

// aboutDeployment is a route that sends a command on subj about the
// deployment its path names, with body(id), and answers its reply.
func (s *server) aboutDeployment(subj string, body func(id string) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id, ok := deploymentID(w, r); ok {
			s.call(w, r, subj, body(id))
		}
	}
}
