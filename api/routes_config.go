package api

import (
	"net/http"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

func (s *server) getConfig(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ConfigGet(), nil)
}

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

// precheck runs every pre-check again on the stored config: 200 with the
// problems and warnings it finds, 403 before any config.
func (s *server) precheck(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ConfigPrecheck(), nil)
}

// configSchema is the config's JSON Schema, for editors that check a
// config as it is typed.
func (s *server) configSchema(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ConfigSchema(), nil)
}

// configHistory lists the configs deployments applied, newest first,
// secrets redacted.
func (s *server) configHistory(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ConfigHistory(), nil)
}
