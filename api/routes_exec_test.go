package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// POST /exec: the operate role runs a command, read is refused; the body
// reaches the planner with the token's name as its actor and max_in_flight
// as a number or a percentage; a field the route does not take, or of the
// wrong type, is a 400 naming it; the audit records the command as the
// planner showed it (secrets taken out) under its actor, and a refused one
// as "exec" alone.
func TestExecRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	var mu sync.Mutex
	var seen []contract.FleetExec
	_, err := b.NC.Subscribe(subject.DeployExec(), func(m *nats.Msg) {
		var in contract.FleetExec
		_ = json.Unmarshal(m.Data, &in)
		mu.Lock()
		seen = append(seen, in)
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		if in.Command == "exit 3" {
			r.Header.Set("De-Code", "400")
			r.Data = []byte(`{"error": "exec refused: component: not a component of the config", "problems": [{"path": "component", "reason": "not a component of the config"}]}`)
		} else {
			r.Header.Set("De-Code", "202")
			r.Data = []byte(`{"id": "d-20261124-223905-1a2b", "command": "echo <redacted>"}`)
		}
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{operateTok: {Name: "olga", Role: RoleOperate}, readTok: {Name: "grafana", Role: RoleRead}}}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	post := func(tok, body string) (int, string) {
		resp, out := do(t, "POST", ts.URL+prefix+"/exec", body, "Authorization", "Bearer "+tok)
		return resp.StatusCode, string(out)
	}

	if code, body := post(operateTok, `{"component": "web", "command": "echo pw-1234", "max_in_flight": 2, "timeout": 5}`); code != 202 ||
		!strings.Contains(body, `"id":"d-20261124-223905-1a2b"`) && !strings.Contains(body, `"id": "d-20261124-223905-1a2b"`) {
		t.Fatalf("exec: %d %s", code, body)
	}
	if code, body := post(operateTok, `{"nodes": ["10.0.0.1", "10.0.0.2"], "command": "uptime", "max_in_flight": "50%", "halt_on_failure": true}`); code != 202 {
		t.Fatalf("exec on nodes: %d %s", code, body)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0].Actor != "olga" || seen[0].V != contract.Version || seen[0].MaxInFlight != "2" || seen[0].TimeoutS() != 5 ||
		seen[1].MaxInFlight != "50%" || !seen[1].HaltOnFailure || len(seen[1].Nodes) != 2 || seen[1].TimeoutS() != contract.DefaultExecTimeout {
		t.Errorf("the planner got %+v", seen)
	}
	mu.Unlock()

	for _, tc := range []struct{ body, field string }{
		{`{"component": "web", "command": "true", "actor": "mallory"}`, "actor"},
		{`{"component": "web", "command": "true", "max_in_flight": true}`, "max_in_flight"},
		{`{"component": "web", "command": 5}`, "command"},
		{`{"component": "web", "command": "true", "timeout": "soon"}`, "timeout"},
		{`[]`, "exec"},
	} {
		if code, body := post(operateTok, tc.body); code != 400 || !strings.Contains(body, tc.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, code, body, tc.field)
		}
	}
	if code, body := post(operateTok, `{"component": "nope", "command": "exit 3"}`); code != 400 || !strings.Contains(body, "component") {
		t.Errorf("refused by the planner: %d %s", code, body)
	}
	if code, body := post(readTok, `{"component": "web", "command": "uptime"}`); code != 403 || !strings.Contains(body, "needs the operate role") {
		t.Errorf("as read: %d %s", code, body)
	}
	mu.Lock()
	if len(seen) != 3 {
		t.Errorf("%d requests reached the planner, want 3: %+v", len(seen), seen)
	}
	mu.Unlock()

	entries := auditOfActor(t, ts, "olga", 8)
	var ok, refused int
	for _, e := range entries {
		switch {
		case e.Action != contract.AuditExec:
			t.Errorf("entry: %+v", e)
		case e.Code == 202:
			ok++
			if e.Object != "echo <redacted>" || e.Deployment != "d-20261124-223905-1a2b" || e.Result != "ok" {
				t.Errorf("exec entry: %+v", e)
			}
		default:
			refused++
			if e.Object != "exec" || e.Result != "failed" || strings.Contains(fmt.Sprint(e), "exit 3") {
				t.Errorf("refused exec entry: %+v", e)
			}
		}
	}
	if ok != 2 || refused != 6 {
		t.Errorf("%d exec entries, %d refused; want 2 and 6: %+v", ok, refused, entries)
	}
	if e := auditOfActor(t, ts, "grafana", 1); e[0].Code != http.StatusForbidden || e[0].Action != contract.AuditExec {
		t.Errorf("grafana's entry: %+v", e[0])
	}
}
