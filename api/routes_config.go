package api

import (
	"net/http"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// postConfig stores a config, checked on its nodes first unless ?check=0.
func (s *server) postConfig(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	check := r.URL.Query().Get("check") != "0"
	// The body goes to the planner as it came: it is the one that decodes
	// and validates it, so every problem is named in one place.
	s.call(w, r, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: body, Check: check})
}
