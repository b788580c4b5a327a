package api

import (
	"net/http"
	"slices"
	"testing"

	"github.com/deployment-engine/engine/services/subject"
)

// Every route that may change something declares the role it needs and
// its audit action (or why it changes nothing): a route added without them
// fails here, before a read token may use it or a change goes unrecorded.
func TestEveryChangeDeclaresRoleAndAudit(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range (&server{}).routes() {
		key := rt.method + " " + prefix + rt.pattern
		if seen[key] {
			t.Errorf("%s: declared twice", key)
		}
		seen[key] = true
		if rt.handler == nil {
			t.Errorf("%s: no handler", key)
		}
		if !slices.Contains(Roles, rt.role) {
			t.Errorf("%s: declares no role", key)
		}
		switch rt.method {
		case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
			if rt.audit.action == "" && rt.audit.readOnly == "" {
				t.Errorf("%s: declares no audit action, nor why it changes nothing", key)
			}
			if rt.audit.action != "" && rt.role <= RoleRead {
				t.Errorf("%s: a change a read token may make", key)
			}
		}
	}
}

// Every event of a deployment's stream is named by its kind: a batch's
// was named "" (an unnamed SSE event, which clients read as "message").
func TestEventKindNamesEveryDeploymentEvent(t *testing.T) {
	for _, tc := range []struct{ subj, want string }{
		{subject.DeployEvent("d-1", subject.DeployStarted), "started"},
		{subject.DeployEvent("d-1", subject.DeployStep), "step"},
		{subject.DeployEvent("d-1", subject.DeployBatch), "batch"},
		{subject.DeployEvent("d-1", subject.DeployFinished), "finished"},
		{subject.Log("d-1", "10.0.0.1", "web"), "log"},
	} {
		if got := eventKind(tc.subj); got != tc.want {
			t.Errorf("eventKind(%q) = %q, want %q", tc.subj, got, tc.want)
		}
	}
}
