package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// putCloudConfig stores the cloud config: the body, YAML or JSON, goes
// to the planner as it came; the planner reads and checks it, naming the
// field at fault.
func (s *server) putCloudConfig(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.CloudConfigPut(), contract.CloudConfigPut{V: contract.Version, Body: body})
}

// postManifest deploys a BOSH manifest: {"manifest", "ops", "vars"},
// checked on its nodes first unless ?check=0, as POST /config.
func (s *server) postManifest(w http.ResponseWriter, r *http.Request) {
	in, ok := readManifest(w, r)
	if !ok {
		return
	}
	check := r.URL.Query().Get("check") != "0"
	s.call(w, r, subject.ManifestDeploy(), contract.ManifestDeployCmd{V: contract.Version, Check: check, Deploy: in})
}

// regenerateVariable marks a variable the engine generated for the
// manifest, with the certificates it signs, to be generated anew at the
// next manifest deploy: 200, 404 naming those there are.
func (s *server) regenerateVariable(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.ManifestRegenerate(), contract.ManifestRegenerate{V: contract.Version, Name: r.PathValue("name")})
}

// readManifest reads a manifest deploy's body, unknown fields refused,
// and records the manifest's name for the audit (never its variables).
func readManifest(w http.ResponseWriter, r *http.Request) (contract.ManifestDeploy, bool) {
	var in contract.ManifestDeploy
	body, ok := readBody(w, r)
	if !ok {
		return in, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, `want {"manifest": "<YAML>", "ops": ["<YAML>", …], "vars": {"name": value}}: `+contract.Clip(err.Error()))
		return in, false
	}
	if strings.TrimSpace(in.Manifest) == "" {
		writeError(w, http.StatusBadRequest, "manifest: the manifest's YAML is needed")
		return in, false
	}
	recordOf(r).named("manifest " + contract.Clip(manifestName(in.Manifest)))
	return in, true
}

// manifestName is the value of a manifest's top-level name line, for the
// audit before the planner reads it whole; "" when it has none.
func manifestName(yaml string) string {
	for _, line := range strings.Split(yaml, "\n") {
		if v, ok := strings.CutPrefix(line, "name:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}
