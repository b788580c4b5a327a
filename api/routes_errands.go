package api

import (
	"maps"
	"net/http"
	"strconv"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// errandRun runs errand {name} of the config's release on its instances:
// 202 {"id", "name", "nodes"}, a deployment of kind errand, followed and
// cancelled as any; its steps carry each instance's exit code, stdout and
// stderr. ?when_changed=1 skips the instances whose errand inputs did not
// change since its last successful run there; ?timeout=S bounds each run.
// An unknown errand is a 404 naming those there are.
func (s *server) errandRun(w http.ResponseWriter, r *http.Request) {
	in := contract.ErrandRun{V: contract.Version, Name: r.PathValue("name"), Actor: actorOf(r.Context())}
	q := r.URL.Query()
	switch q.Get("when_changed") {
	case "", "0", "false":
	case "1", "true":
		in.WhenChanged = true
	default:
		writeError(w, http.StatusBadRequest, `errand: when_changed: want 1 or 0`)
		return
	}
	if v := q.Get("timeout"); v != "" {
		t, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, contract.Clip("errand: timeout "+v+": want seconds"))
			return
		}
		in.Timeout = &t
	}
	rep, ok := s.request(w, r, subject.DeployErrand(), in)
	if !ok {
		return
	}
	writeReply(w, rep)
}

// errandDocs are the errand routes' OpenAPI entries (routeDocs).
var errandDocs = map[string]opDoc{
	"GET /errands": {id: "listErrands", summary: "The errands of the config's release: jobs with bin/run, where the config places them", bus: true,
		ok:   []reply{ok[contract.ErrandList](200, "every errand, by name, with its component, release and instances' nodes in index order")},
		errs: []reply{noConfig, fails(http.StatusConflict, "the config deploys no BOSH release, or its release does not place")}},
	"POST /errands/{name}/run": {id: "runErrand", summary: "Run an errand on every instance of it: a deployment of kind errand", bus: true,
		desc: "One step an instance, all at once, each running the job's rendered bin/run as root within timeout seconds (default 600, at most 21600). " +
			"A deployment places an errand's instances and never starts them: a node that does not hold the errand as the config renders it now fails its step with exit code 125, saying so. " +
			"Each run step (action run) keeps its exit code, stdout and stderr, the config's secrets redacted, each up to 64 KiB, 4 MiB for all instances together (the end of a longer one, after a line saying how much was cut). " +
			"Every instance runs whatever another's exit code; the deployment ends failed when any failed. Followed and cancelled as any deployment.",
		query: []param{{"when_changed", "1 (or true) skips an instance whose inputs (its rendered templates, its packages' fingerprints) are those of its last successful run: its step is unchanged; 0 (or false), the default, runs every instance", schemaObj{"type": "string", "pattern": "^(0|1|true|false)$"}},
			{"timeout", "seconds each instance's run may take (default 600)", schemaObj{"type": "integer"}}},
		ok: []reply{ok[contract.ErrandStarted](202, "the errand started: follow its deployment at /deployments/{id}")},
		errs: []reply{fails(http.StatusBadRequest, "a query parameter or the name is at fault"), noConfig,
			fails(http.StatusNotFound, "no such errand: the error names those there are"), conflict}},
}

func init() { maps.Copy(routeDocs, errandDocs) }
