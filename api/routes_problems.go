package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// problemResolve answers POST /problems/{id}/resolve {"fix": "restart"}:
// the planner scans again, finds the problem and starts the fix's
// deployment (202 {"id"}).
func (s *server) problemResolve(w http.ResponseWriter, r *http.Request) {
	in, ok := readResolve(w, r)
	if !ok {
		return
	}
	// A fix that deploys the stored config changes what runs as POST
	// /deploy does, and needs what it needs.
	if id, ok := identityOf(r.Context()); ok && deploysConfig(in.Fix) && id.Role < RoleDeploy {
		writeError(w, http.StatusForbidden, fmt.Sprintf("fix %s deploys the stored config: it needs the deploy role; token %s has %s", in.Fix, id.Name, id.Role))
		return
	}
	in.V, in.Actor = contract.Version, actorOf(r.Context())
	s.call(w, r, subject.ProblemsResolve(), in)
}

// deploysConfig tells whether fix deploys the whole stored config.
func deploysConfig(fix string) bool {
	return fix == contract.FixDeploy || fix == contract.FixRemove || fix == contract.FixForgetHostKey
}

// resolveBody is POST /problems/{id}/resolve's body.
type resolveBody struct {
	Fix string `json:"fix"`
}

// readResolve reads the problem from the path and the fix from the body,
// and records both for the audit; on a bad one it answers itself and
// returns false.
func readResolve(w http.ResponseWriter, r *http.Request) (contract.ProblemResolve, bool) {
	id := chi.URLParam(r, "id")
	if !contract.ValidProblemID(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no problem %q: a problem's id is pb- and 12 hex digits (GET /problems lists them)", contract.Clip(id)))
		return contract.ProblemResolve{}, false
	}
	body, ok := readBody(w, r)
	if !ok {
		return contract.ProblemResolve{}, false
	}
	var in resolveBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Fix == "" {
		writeError(w, http.StatusBadRequest, `want {"fix": "name"}, a fix GET /problems lists for the problem`)
		return contract.ProblemResolve{}, false
	}
	recordOf(r).note("fix: " + contract.Clip(in.Fix))
	return contract.ProblemResolve{ID: id, Fix: in.Fix}, true
}

func init() { maps.Copy(routeDocs, problemDocs) }

// problemDocs describe the problems' routes for the OpenAPI document.
var problemDocs = map[string]opDoc{
	"GET /problems": {id: "listProblems", summary: "What is wrong in the cluster, and the fixes that apply", bus: true,
		desc: "A scan of what the engine already has: the monitor's status, the agents' last heartbeats, the stored config's plan " +
			"(which reads every node: drift, removals, nodes not reached), the certificates, and the config's pre-check (an SSH login " +
			"to each node, which shows a changed host key where an agent answers the plan). Kinds: node-unreachable, host-key-changed, " +
			"process-not-running, monit-check-missing, monit-unmonitored, agent-not-reporting, agent-version, drift, disk-full (over 90 %), " +
			"orphan (an instance the config no longer places), certificate-expiring (within 30 days). A node in maintenance shows no problem " +
			"of its instances. Each problem has the same id in every scan; fixes name what POST /problems/{id}/resolve can apply, " +
			"at most one recommended, none for what a person must do. unread names the facts the scan could not read.",
		ok: []reply{ok[contract.ProblemList](200, "the problems, most urgent first")}, errs: []reply{noConfig}},
	"POST /problems/{id}/resolve": {id: "resolveProblem", summary: "Apply one fix of a problem, as a deployment", bus: true,
		desc: "The cluster is scanned again and the fix applied through the operation it names: restart (a rolling restart of the " +
			"instance), reapply (the instance applied again), deploy and remove (the stored config deployed), restart-agent (an exec " +
			"deployment on the node), forget-host-key (the pinned key forgotten, then the stored config deployed; never recommended).",
		body: body[resolveBody](`{"fix": "name"}, one of the problem's fixes`),
		ok:   []reply{deployStarted},
		errs: []reply{fails(http.StatusBadRequest, "the problem has no such fix: the error names those it has"),
			fails(http.StatusNotFound, "no problem has this id now: fixed already, or never found"), noConfig, conflict, nodesFail}},
}
