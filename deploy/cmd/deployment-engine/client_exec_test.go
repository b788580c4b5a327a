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

// exec posts the component or the nodes, the command after "--" untouched
// by the client's flags, and its options; follows the deployment; prints
// a row per node; exits 1 when a node failed; --json prints the steps.
func TestCLIExec(t *testing.T) {
	var mu sync.Mutex
	var posted []map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/exec", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"id":"d-x","command":%q}`, b["command"])
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-x/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: deployment\ndata: {\"id\":\"d-x\",\"state\":\"running\",\"total\":2,\"counts\":{\"pending\":2}}\n\n")
		fmt.Fprint(w, "event: finished\ndata: {\"id\":\"d-x\",\"state\":\"failed\",\"changed\":1,\"error\":\"1 of 2 step(s) failed\"}\n\n")
	})
	steps := `[{"id":"127.0.0.2/web/exec","node":"127.0.0.2","component":"web","action":"exec","state":"succeeded","attempt":1,
		"started":"2026-11-24T22:39:05Z","finished":"2026-11-24T22:39:06.5Z","exit_code":0,"error":"","output":"first\nactive <redacted>"},
		{"id":"127.0.0.3/web/exec","node":"127.0.0.3","component":"web","action":"exec","state":"failed","attempt":1,
		"started":"2026-11-24T22:39:05Z","finished":"2026-11-24T22:39:07Z","exit_code":3,"error":"exited with status 3","output":""}]`
	mux.HandleFunc("GET /deployment-engine/deployments/d-x", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("steps") == "0" {
			fmt.Fprint(w, `{"id":"d-x","state":"failed","kind":"exec","error":"1 of 2 step(s) failed","total":2,"counts":{"succeeded":1,"failed":1}}`)
			return
		}
		fmt.Fprintf(w, `{"id":"d-x","state":"failed","kind":"exec","total":2,"counts":{"succeeded":1,"failed":1},"matched":2,"steps":%s}`, steps)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)

	r := cli(t, "exec", "web", "--max-in-flight", "2", "--timeout", "5", "--", "ls", "-la", "--json", "/tmp")
	if r.code != exitFailed {
		t.Fatalf("exec with a failed node: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NODE") || !strings.Contains(lines[1], "127.0.0.2  0     1.5s") ||
		!strings.HasSuffix(lines[1], "active <redacted>") || !strings.Contains(lines[2], "127.0.0.3  3") || !strings.HasSuffix(lines[2], "exited with status 3") {
		t.Errorf("table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "1 of 2 step(s) failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
	r = cli(t, "exec", "127.0.0.2,127.0.0.3", "--halt-on-failure", "--json", "--", "uptime")
	var got []map[string]any
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 2 || got[1]["exit_code"] != 3.0 {
		t.Errorf("exec --json: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`{"command":"ls -la --json /tmp","component":"web","max_in_flight":"2","timeout":5}`,
		`{"command":"uptime","halt_on_failure":true,"nodes":["127.0.0.2","127.0.0.3"]}`,
	}
	for i, b := range posted {
		if s, _ := json.Marshal(b); i >= len(want) || string(s) != want[i] {
			t.Errorf("posted %s", s)
		}
	}
	for _, args := range [][]string{{"exec", "web"}, {"exec", "--", "uptime"}, {"exec", "web", "--"}, {"exec", "a", "b", "--", "x"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
}
