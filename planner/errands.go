package planner

import (
	"github.com/deployment-engine/engine/planner/errand"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// errandEndpoints run and list the config's errands (package errand).
func (p *Planner) errandEndpoints() map[string]kit.Handler {
	h := errand.Host{Config: p.storedConfig, Release: p.releaseFor, Place: p.deploymentFor, Begin: p.beginFleet,
		Event: p.engineEvent, NewID: newID, Engine: p.o.EngineID}
	return map[string]kit.Handler{subject.DeployErrand(): h.RunEndpoint, subject.DeployErrands(): h.ListEndpoint}
}
