package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

func (s *server) listDeployments(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.DeployList(), nil)
}

func deploymentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if len(id) > 64 || !subject.ValidToken(id) || !strings.HasPrefix(id, "d-") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no deployment %q", contract.Clip(id)))
		return "", false
	}
	return id, true
}

func (s *server) getDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployGet(), contract.DeployGet{ID: id})
}

// cancelDeployment ends a running deployment: 202 with the deployment as
// it ended, 404 for an unknown id, 409 when it has already ended.
func (s *server) cancelDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployCancel(), contract.DeployCancel{V: contract.Version, ID: id})
}

// deploymentReport answers a deployment's timings.
func (s *server) deploymentReport(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployReport(), contract.DeployGet{ID: id})
}
