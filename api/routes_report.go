package api

import (
	"net/http"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// deploymentReport answers a deployment's timings.
func (s *server) deploymentReport(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployReport(), contract.DeployGet{ID: id})
}
