package api

import (
	"net/http"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// certificates answers GET /certificates: every certificate the engine
// made or serves, from the summary its holders keep in the store (the
// API process of a split engine holds none of the agents'), with the
// seconds each has left now. The summary never holds a key.
func (s *server) certificates(w http.ResponseWriter, r *http.Request) {
	if s.js == nil {
		writeError(w, http.StatusServiceUnavailable, "not connected to the bus")
		return
	}
	certs, err := s.loadCertificates(r)
	if err != nil {
		s.log.Error("read the certificates", "err", err)
		writeError(w, http.StatusInternalServerError, "read the certificates: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, certs)
}

func (s *server) loadCertificates(r *http.Request) (contract.Certificates, error) {
	kv, err := s.js.KeyValue(r.Context(), bus.KVEngine)
	if err != nil {
		return contract.Certificates{}, err
	}
	return bus.LoadCertificates(r.Context(), kv, time.Now())
}
