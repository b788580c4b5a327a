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

// problemsEngine answers GET /problems with a scan of four problems, a
// resolve of the first with deployment d-1 (which ends as final), of the
// drift with 404 (an earlier fix solved it), and records every resolve.
func problemsEngine(t *testing.T, final string) *[]string {
	t.Helper()
	var mu sync.Mutex
	resolved := &[]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /deployment-engine/problems", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"v":1,"unread":[],"problems":[
		 {"id":"pb-000000000001","kind":"process-not-running","node":"10.0.0.2","component":"web","detail":"monit: Does not exist",
		  "fixes":[{"name":"restart","description":"restart","recommended":true},{"name":"reapply","description":"again","recommended":false}]},
		 {"id":"pb-000000000002","kind":"host-key-changed","node":"10.0.0.3","detail":"host key changed",
		  "fixes":[{"name":"forget-host-key","description":"forget","recommended":false}]},
		 {"id":"pb-000000000003","kind":"drift","node":"10.0.0.2","component":"web","detail":"files changed: /etc/x",
		  "fixes":[{"name":"reapply","description":"again","recommended":true}]},
		 {"id":"pb-000000000004","kind":"disk-full","node":"10.0.0.4","detail":"the disk is 95% used","fixes":[]}]}`)
	})
	mux.HandleFunc("POST /deployment-engine/problems/{id}/resolve", func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Fix string }
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		*resolved = append(*resolved, r.PathValue("id")+" "+b.Fix)
		mu.Unlock()
		if r.PathValue("id") == "pb-000000000003" {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":"no problem pb-000000000003 now"}`)
			return
		}
		w.WriteHeader(202)
		fmt.Fprint(w, `{"id":"d-1"}`)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: finished\ndata: {\"id\":\"d-1\",\"state\":%q,\"changed\":1}\n\n", final)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":"d-1","state":%q,"changed":1,"total":1,"counts":{%q:1}}`, final, final)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)
	return resolved
}

func TestCLIProblems(t *testing.T) {
	resolved := problemsEngine(t, "succeeded")
	r := cli(t, "problems")
	if r.code != exitUnhealthy || !strings.Contains(r.stdout, "pb-000000000001") || !strings.Contains(r.stdout, "restart*,reapply") ||
		!strings.Contains(r.stdout, "web@10.0.0.2") || !strings.Contains(r.stdout, "forget-host-key ") {
		t.Fatalf("list: %+v", r)
	}
	if len(*resolved) != 0 {
		t.Fatalf("a list resolved %v", *resolved)
	}

	// --auto: the recommended fixes alone, in turn; the host key and the
	// disk are left to a person.
	r = cli(t, "problems", "--auto")
	if r.code != exitUnhealthy || strings.Join(*resolved, ";") != "pb-000000000001 restart;pb-000000000003 reapply" {
		t.Fatalf("auto: %+v, resolved %v", r, *resolved)
	}
	for _, want := range []string{
		"pb-000000000001 process-not-running web@10.0.0.2: restart, deployment d-1: succeeded",
		"pb-000000000002 host-key-changed 10.0.0.3: left to a person: a changed host key",
		"pb-000000000003 drift web@10.0.0.2: reapply: fixed already",
		"pb-000000000004 disk-full 10.0.0.4: left to a person: the disk is 95% used",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("auto output lacks %q:\n%s", want, r.stdout)
		}
	}
	*resolved = nil
	r = cli(t, "problems", "--auto", "--json")
	var out []autoResult
	if r.code != exitUnhealthy || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 4 || out[0].Result != "succeeded" {
		t.Fatalf("auto --json: %+v", r)
	}

	// The host key only by name.
	*resolved = nil
	if r := cli(t, "problems", "resolve", "pb-000000000002", "forget-host-key"); r.code != exitOK || !strings.Contains(r.stdout, "d-1") ||
		strings.Join(*resolved, ";") != "pb-000000000002 forget-host-key" {
		t.Fatalf("resolve: %+v, resolved %v", r, *resolved)
	}
	for _, args := range [][]string{{"problems", "extra"}, {"problems", "resolve", "pb-000000000002"}, {"problems", "resolve", "a", "b", "--auto"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

// A fix whose deployment fails makes --auto exit 1.
func TestCLIProblemsAutoFailed(t *testing.T) {
	problemsEngine(t, "failed")
	if r := cli(t, "problems", "--auto"); r.code != exitFailed || !strings.Contains(r.stdout, "restart, deployment d-1: failed: the deployment ended failed") {
		t.Fatalf("%+v", r)
	}
}
