package api

import "net/http"

// BuildInfo says which engine answers: GET /version (no token).
//
//	{"version": "v1.4.0", "commit": "1da08ac", "built": "2026-11-26T16:20:00Z"}
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Built   string `json:"built"`
}

func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Build)
}
