package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// deploymentsEngine answers the deployments' routes for d-2, a failed
// deployment of 42 steps, 21 of them failed: its summary lists 20 of them,
// and the whole deployment is never to be read.
func deploymentsEngine(t *testing.T) {
	t.Helper()
	var failed []contract.StepStatus
	for i := 0; i < 21; i++ {
		failed = append(failed, contract.StepStatus{ID: fmt.Sprintf("10.0.0.%d/web/start", i+1), Node: fmt.Sprintf("10.0.0.%d", i+1),
			Component: "web", Action: "start", State: contract.StateFailed, Attempt: 1, Error: "monit: \x1b[31mweb\x1b[0m not running"})
	}
	page := contract.DeploymentPage{DeploymentSummary: contract.DeploymentSummary{ID: "d-2", State: contract.DeployFailed, Changed: 21},
		Error: "21 step(s) failed", Total: 42, Counts: map[string]int{"succeeded": 21, "failed": 21},
		Components: map[string]map[string]int{"nats": {"succeeded": 21}, "web": {"failed": 21}}, Failed: failed[:20]}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /deployment-engine/deployments", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id":"d-1","state":"succeeded","changed":3,"created":"2026-01-01T10:00:00Z","finished":"2026-01-01T10:00:42Z"},
		                {"id":"d-2","state":"failed","changed":21,"created":"2026-01-02T10:00:00Z","kind":"restart"}]`)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-2", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("steps") == "0":
		case q.Get("steps") == "failed" && q.Get("offset") == "0":
			p := page
			p.Steps, p.Matched = failed, new(int)
			*p.Matched = len(failed)
			page = p
		default:
			t.Errorf("the deployment read whole, or with an unexpected query: %s", r.URL)
			http.Error(w, "{}", 400)
			return
		}
		_ = json.NewEncoder(w).Encode(page)
		page.Steps, page.Matched = nil, nil
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)
}

func TestCLIDeployments(t *testing.T) {
	deploymentsEngine(t)
	r := cli(t, "deployments")
	if r.code != exitOK || strings.Index(r.stdout, "d-2") > strings.Index(r.stdout, "d-1") || !strings.Contains(r.stdout, "restart") || !strings.Contains(r.stdout, "42s") {
		t.Fatalf("deployments, newest first: %+v", r)
	}
	r = cli(t, "deployments", "d-2")
	for _, want := range []string{"d-2 failed", "failed: 10.0.0.1 web start, attempt 1: monit: [31mweb[0m not running", "… and 1 more failed: deployments d-2 --steps failed",
		"42 step(s): 21 succeeded, 21 failed", "COMPONENT  STEPS  SUCCEEDED  FAILED", "web        21     0          21"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != exitFailed || strings.Count(r.stdout, "failed: 10.0.0.") != 20 || strings.Contains(r.stdout, "\x1b") {
		t.Errorf("the summary of a failed deployment: exit %d, %d failed steps, control characters: %v", r.code, strings.Count(r.stdout, "failed: 10.0.0."), strings.Contains(r.stdout, "\x1b"))
	}
	r = cli(t, "deployments", "d-2", "--steps", "failed")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != exitOK || len(lines) != 22 || !strings.HasPrefix(lines[0], "NODE") || !strings.Contains(lines[21], "10.0.0.21 ") {
		t.Errorf("deployments d-2 --steps failed: %+v", r)
	}
	r = cli(t, "deployments", "d-2", "--steps", "failed", "--json")
	var steps []contract.StepStatus
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &steps) != nil || len(steps) != 21 {
		t.Errorf("deployments d-2 --steps failed --json: %+v", r)
	}
	if r := cli(t, "deployments", "--steps", "failed"); r.code != exitUsage {
		t.Errorf("--steps without an ID: %+v", r)
	}
	if r := cli(t, "deployments", "d-1", "d-2"); r.code != exitUsage {
		t.Errorf("two IDs: %+v", r)
	}
}
