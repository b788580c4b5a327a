package api

import (
	"encoding/json"
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

// POST /errands/{name}/run: the deploy role runs an errand, operate is
// refused; the planner gets the name, the token's name as actor,
// when_changed and timeout from the query; a malformed query is a 400
// that never reaches it; an unknown errand's 404 names those there are;
// the audit records the errand's name. GET /errands lists them to read.
// Every answer is held to the OpenAPI document (checked).
func TestErrandRoutes(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	var mu sync.Mutex
	var seen []contract.ErrandRun
	_, err := b.NC.Subscribe(subject.DeployErrand(), func(m *nats.Msg) {
		var in contract.ErrandRun
		_ = json.Unmarshal(m.Data, &in)
		mu.Lock()
		seen = append(seen, in)
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		if in.Name != "smoke" {
			r.Header.Set("De-Code", "404")
			r.Data = []byte(`{"error": "no errand \"` + in.Name + `\" in the config: it has smoke"}`)
		} else {
			r.Header.Set("De-Code", "202")
			r.Data = []byte(`{"id": "d-20261124-223905-1a2b", "name": "smoke", "nodes": ["10.0.0.1", "10.0.0.2"]}`)
		}
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.NC.Subscribe(subject.DeployErrands(), func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "200")
		r.Data = []byte(`{"errands": [{"name": "smoke", "component": "smoke", "release": "app/1", "nodes": ["10.0.0.1"]}]}`)
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{writeTok: {Name: "alice", Role: RoleDeploy}, operateTok: {Name: "olga", Role: RoleOperate},
		readTok: {Name: "grafana", Role: RoleRead}}}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	run := func(tok, name, query string) (int, string) {
		resp, out := do(t, "POST", ts.URL+prefix+"/errands/"+name+"/run"+query, "", "Authorization", "Bearer "+tok)
		return resp.StatusCode, string(out)
	}

	if code, body := run(writeTok, "smoke", ""); code != 202 || !strings.Contains(body, "d-20261124-223905-1a2b") {
		t.Fatalf("run: %d %s", code, body)
	}
	if code, body := run(writeTok, "smoke", "?when_changed=1&timeout=30"); code != 202 {
		t.Fatalf("run when changed: %d %s", code, body)
	}
	if code, body := run(writeTok, "nope", ""); code != 404 || !strings.Contains(body, "it has smoke") {
		t.Errorf("unknown errand: %d %s", code, body)
	}
	for _, q := range []string{"?when_changed=yes", "?timeout=soon"} {
		if code, body := run(writeTok, "smoke", q); code != 400 {
			t.Errorf("%s: %d %s, want 400", q, code, body)
		}
	}
	if code, body := run(operateTok, "smoke", ""); code != 403 || !strings.Contains(body, "needs the deploy role") {
		t.Errorf("as operate: %d %s", code, body)
	}
	mu.Lock()
	if len(seen) != 3 || seen[0].Actor != "alice" || seen[0].V != contract.Version || seen[0].Name != "smoke" || seen[0].WhenChanged ||
		seen[0].Timeout != nil || !seen[1].WhenChanged || seen[1].TimeoutS() != 30 || seen[2].Name != "nope" {
		t.Errorf("the planner got %+v", seen)
	}
	mu.Unlock()

	resp, out := do(t, "GET", ts.URL+prefix+"/errands", "", "Authorization", "Bearer "+readTok)
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"release": "app/1"`) && !strings.Contains(string(out), `"release":"app/1"`) {
		t.Errorf("list: %d %s", resp.StatusCode, out)
	}

	var ran int
	for _, e := range auditOfActor(t, ts, "alice", 5) {
		if e.Action != contract.AuditErrand {
			t.Errorf("entry: %+v", e)
		}
		if e.Code == 202 {
			ran++
			if e.Object != "smoke" || e.Deployment != "d-20261124-223905-1a2b" || e.Result != "ok" {
				t.Errorf("run entry: %+v", e)
			}
		}
	}
	if ran != 2 {
		t.Errorf("%d runs audited, want 2", ran)
	}
	if e := auditOfActor(t, ts, "olga", 1); e[0].Code != http.StatusForbidden || e[0].Action != contract.AuditErrand {
		t.Errorf("olga's entry: %+v", e[0])
	}
}
