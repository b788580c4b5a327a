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

// errand run NAME posts the run with --when-changed and --timeout in the
// query, follows the deployment, prints each instance's exit code, stdout
// and stderr (a skipped one says so), and exits 1 when any failed;
// errands lists them.
func TestCLIErrand(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/errands/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.PathValue("name")+"?"+r.URL.RawQuery)
		mu.Unlock()
		if r.PathValue("name") != "smoke" {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":"no errand \"nope\" in the config: it has smoke"}`)
			return
		}
		w.WriteHeader(202)
		fmt.Fprint(w, `{"id":"d-e","name":"smoke","nodes":["127.0.0.2","127.0.0.3","127.0.0.4"]}`)
	})
	mux.HandleFunc("GET /deployment-engine/errands", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"errands":[{"name":"smoke","component":"smoke","release":"app/1","nodes":["127.0.0.2","127.0.0.3"]}]}`)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-e/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: finished\ndata: {\"id\":\"d-e\",\"state\":\"failed\",\"changed\":3,\"error\":\"1 of 5 step(s) failed\"}\n\n")
	})
	steps := `[{"id":"127.0.0.2/smoke/forget","node":"127.0.0.2","component":"smoke","action":"forget","state":"succeeded","attempt":1,"exit_code":0},
		{"id":"127.0.0.2/smoke/run","node":"127.0.0.2","component":"smoke","action":"run","state":"succeeded","attempt":1,"exit_code":0,"stdout":"all good\n"},
		{"id":"127.0.0.3/smoke/forget","node":"127.0.0.3","component":"smoke","action":"forget","state":"succeeded","attempt":1,"exit_code":0},
		{"id":"127.0.0.3/smoke/run","node":"127.0.0.3","component":"smoke","action":"run","state":"failed","attempt":1,"exit_code":3,
		 "error":"exited with status 3","stdout":"checking\n","stderr":"boom"},
		{"id":"127.0.0.4/smoke/run","node":"127.0.0.4","component":"smoke","action":"run","state":"unchanged","attempt":1,"exit_code":0}]`
	mux.HandleFunc("GET /deployment-engine/deployments/d-e", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("steps") == "0" {
			fmt.Fprint(w, `{"id":"d-e","state":"failed","kind":"errand","error":"1 of 5 step(s) failed","total":5,"counts":{"succeeded":3,"failed":1,"unchanged":1}}`)
			return
		}
		fmt.Fprintf(w, `{"id":"d-e","state":"failed","kind":"errand","total":5,"counts":{"succeeded":3,"failed":1,"unchanged":1},"matched":5,"steps":%s}`, steps)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)

	r := cli(t, "errand", "run", "smoke", "--when-changed", "--timeout", "30")
	if r.code != exitFailed {
		t.Fatalf("errand with a failed instance: %+v", r)
	}
	want := "== smoke 127.0.0.2: exit 0\n-- stdout\nall good\n\n" +
		"== smoke 127.0.0.3: exit 3\n-- stdout\nchecking\n-- stderr\nboom\n\n" +
		"== smoke 127.0.0.4: skipped: unchanged since its last successful run\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "deployment d-e") || !strings.Contains(r.stderr, "1 of 5 step(s) failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
	r = cli(t, "errand", "run", "smoke", "--json")
	var got []map[string]any
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 3 || got[1]["stderr"] != "boom" {
		t.Errorf("errand --json: %+v", r)
	}
	if r := cli(t, "errand", "run", "nope"); r.code != exitFailed || !strings.Contains(r.stderr, "it has smoke") {
		t.Errorf("unknown errand: %+v", r)
	}
	mu.Lock()
	if strings.Join(queries, " ") != "smoke?timeout=30&when_changed=1 smoke? nope?" {
		t.Errorf("posted %q", queries)
	}
	mu.Unlock()
	if r := cli(t, "errands"); r.code != exitOK || !strings.Contains(r.stdout, "smoke  smoke      app/1    127.0.0.2,127.0.0.3") {
		t.Errorf("errands: %+v", r)
	}
	for _, args := range [][]string{{"errand"}, {"errand", "run"}, {"errand", "go", "smoke"}, {"errands", "x"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
}
