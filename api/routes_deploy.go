package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

func (s *server) deploy(w http.ResponseWriter, r *http.Request) {
	in, ok := deployRequest(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployStart(), in)
}

func (s *server) scale(w http.ResponseWriter, r *http.Request) {
	if body, ok := readScale(w, r); ok {
		s.call(w, r, subject.DeployScale(), body)
	}
}

// readScale reads a scale's body, for the planner to decode, and records
// the instances it adds.
func readScale(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, ok := readBody(w, r)
	if ok {
		recordOf(r).named(scaleObject(body))
	}
	return body, ok
}

// scaleObject names the instances a scale request adds.
func scaleObject(body []byte) string {
	var raw any
	if json.Unmarshal(body, &raw) != nil {
		return "scale"
	}
	list, ok := raw.([]any)
	if !ok {
		list = []any{raw}
	}
	var out []string
	for _, x := range list {
		m, _ := x.(map[string]any)
		var comp, ip string
		for k, v := range m {
			str, _ := v.(string)
			switch strings.ToLower(k) {
			case "comp", "component", "name":
				comp = str
			case "ip":
				ip = str
			}
		}
		out = append(out, comp+"@"+ip)
	}
	return strings.Join(out, ",")
}

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
