package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// patch posts the nodes and its options, follows the deployment, prints a
// row per node with each of its steps' states and what the node said, and
// exits 1 when the patch failed; a node list that is no list of IPs is a
// usage error, and nothing is posted.
func TestCLIPatch(t *testing.T) {
	var mu sync.Mutex
	var posted []map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/patch", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
		w.WriteHeader(202)
		fmt.Fprint(w, `{"id":"d-p","nodes":["127.0.0.2","127.0.0.3"],"batches":2,"held":["127.0.0.4"]}`)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-p/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: finished\ndata: {\"id\":\"d-p\",\"state\":\"failed\",\"error\":\"1 of 6 step(s) failed\"}\n\n")
	})
	steps := `[{"id":"127.0.0.2/_node/patch-upgrade","node":"127.0.0.2","component":"_node","action":"patch-upgrade","state":"succeeded","output":"upgrading 1 package(s)\nupgraded; the node asks for a reboot"},
		{"id":"127.0.0.2/_node/patch-reboot","node":"127.0.0.2","component":"_node","action":"patch-reboot","state":"succeeded","output":"rebooting in 2 s: the node asks for it"},
		{"id":"127.0.0.2/_node/patch-back","node":"127.0.0.2","component":"_node","action":"patch-back","state":"succeeded"},
		{"id":"127.0.0.2/web/watch","node":"127.0.0.2","component":"web","action":"watch","state":"succeeded"},
		{"id":"127.0.0.3/_node/patch-upgrade","node":"127.0.0.3","component":"_node","action":"patch-upgrade","state":"failed","error":"exited with status 100: E: broken"},
		{"id":"127.0.0.3/_node/patch-reboot","node":"127.0.0.3","component":"_node","action":"patch-reboot","state":"skipped"}]`
	mux.HandleFunc("GET /deployment-engine/deployments/d-p", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("steps") == "0" {
			fmt.Fprint(w, `{"id":"d-p","state":"failed","kind":"patch","error":"1 of 6 step(s) failed","total":6}`)
			return
		}
		fmt.Fprintf(w, `{"id":"d-p","state":"failed","kind":"patch","total":6,"matched":6,"steps":%s}`, steps)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)

	r := cli(t, "patch", "127.0.0.2,127.0.0.3", "--max-in-flight", "50%", "--reboot", "never")
	if r.code != exitFailed {
		t.Fatalf("a failed patch: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NODE") ||
		!strings.Contains(lines[1], "succeeded") || !strings.HasSuffix(lines[1], "rebooting in 2 s: the node asks for it") ||
		!strings.Contains(lines[2], "failed") || !strings.Contains(lines[2], "skipped") || !strings.HasSuffix(lines[2], "E: broken") {
		t.Errorf("table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "left out, in maintenance: 127.0.0.4") || !strings.Contains(r.stderr, "1 of 6 step(s) failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if r := cli(t, "patch", "web"); r.code != exitUsage || !strings.Contains(r.stderr, "web is not a list of IP addresses") {
		t.Errorf("patch web: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 1 || posted[0]["max_in_flight"] != "50%" || posted[0]["reboot"] != "never" || len(posted[0]["nodes"].([]any)) != 2 {
		t.Errorf("posted %+v", posted)
	}
}
