package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// nodeIP is the node the path names; one not written as an IP is answered
// 404 here, as no node of any config.
func nodeIP(w http.ResponseWriter, r *http.Request) (string, bool) {
	ip := chi.URLParam(r, "ip")
	if err := contract.CheckNodeIP(ip); err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no node %q: %v", contract.Clip(ip), err))
		return "", false
	}
	return ip, true
}

// maintenanceGet answers GET /nodes/{ip}/maintenance.
func (s *server) maintenanceGet(w http.ResponseWriter, r *http.Request) {
	if ip, ok := nodeIP(w, r); ok {
		s.call(w, r, subject.MaintenanceGet(), contract.MaintenanceGet{IP: ip})
	}
}

// maintenanceSet answers PUT /nodes/{ip}/maintenance {"on": true,
// "reason": "..."}: the node is held out of automatic work, or put back.
func (s *server) maintenanceSet(w http.ResponseWriter, r *http.Request) {
	in, ok := readMaintenance(w, r)
	if !ok {
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	s.call(w, r, subject.MaintenanceSet(), in)
}

// readMaintenance reads the node from the path and {"on", "reason"} from
// the body, and records both for the audit; on a bad one it answers
// itself and returns false.
func readMaintenance(w http.ResponseWriter, r *http.Request) (contract.MaintenanceSet, bool) {
	ip, ok := nodeIP(w, r)
	if !ok {
		return contract.MaintenanceSet{}, false
	}
	a := recordOf(r)
	if a != nil {
		a.object, a.ip = "node "+ip, ip
	}
	body, ok := readBody(w, r)
	if !ok {
		return contract.MaintenanceSet{}, false
	}
	var in struct {
		On     *bool  `json:"on"`
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.On == nil {
		writeError(w, http.StatusBadRequest, `want {"on": true, "reason": "why"} or {"on": false}`)
		return contract.MaintenanceSet{}, false
	}
	if err := contract.CheckMaintenanceReason(in.Reason); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return contract.MaintenanceSet{}, false
	}
	if *in.On {
		a.note(fmt.Sprintf("on: %q", in.Reason))
	} else {
		a.note("off")
	}
	return contract.MaintenanceSet{IP: ip, On: *in.On, Reason: in.Reason}, true
}
