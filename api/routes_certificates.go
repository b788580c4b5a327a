package api

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
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

// certificateRotate answers POST /certificates/{cert}/rotate: the process
// holding the certificate issues it again and serves it from its next
// handshake (202 with the new one). The agents' CA is replaced by a new
// one, through a transition in which agents trust both (see the engine's
// caRotation).
func (s *server) certificateRotate(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "cert")
	switch name {
	case contract.CertAPI, contract.CertAgentsListener, contract.CertAgentsCA:
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no certificate %q: the engine rotates %s, %s and %s", contract.Clip(name),
			contract.CertAPI, contract.CertAgentsListener, contract.CertAgentsCA))
		return
	}
	if s.js == nil {
		writeError(w, http.StatusServiceUnavailable, "not connected to the bus")
		return
	}
	// The summary says whether a process of this engine holds it: no
	// rotation is asked of a certificate nobody serves.
	certs, err := s.loadCertificates(r)
	if err != nil {
		s.log.Error("read the certificates", "err", err)
		writeError(w, http.StatusInternalServerError, "read the certificates: "+err.Error())
		return
	}
	i := slices.IndexFunc(certs.Certificates, func(c contract.Certificate) bool { return c.Name == name })
	switch {
	case i < 0:
		writeError(w, http.StatusConflict, fmt.Sprintf("the engine serves no certificate %s: TLS is off (api), or the agents' NATS is not the engine's "+
			"(agents-listener, agents-ca; the agents pin a --tls-cert that is no CA)", name))
		return
	case certs.Certificates[i].Source == contract.CertGiven:
		writeError(w, http.StatusConflict, fmt.Sprintf("certificate %s was given by --tls-cert, not made by the engine: replace its files and restart the engine", name))
		return
	}
	s.call(w, r, subject.CertificateRotate(name), contract.CertificateRotate{V: contract.Version, Name: name, Actor: actorOf(r.Context())})
}
