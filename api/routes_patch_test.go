package api

import (
	"encoding/json"
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

// POST /patch: the deploy role patches, operate is refused; an empty body
// is every node, one at a time; the body reaches the planner with the
// token's name as its actor; a field the route does not take is a 400
// naming it, before the planner; the audit records what was asked.
func TestPatchRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	var mu sync.Mutex
	var seen []contract.Patch
	_, err := b.NC.Subscribe(subject.DeployPatch(), func(m *nats.Msg) {
		var in contract.Patch
		_ = json.Unmarshal(m.Data, &in)
		mu.Lock()
		seen = append(seen, in)
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "202")
		r.Data = []byte(`{"id": "d-20261206-081500-1a2b", "nodes": ["10.0.0.2"], "batches": 1}`)
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{operateTok: {Name: "olga", Role: RoleOperate}, "dora-token-0123456789": {Name: "dora", Role: RoleDeploy}}}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	post := func(tok, body string) (int, string) {
		resp, out := do(t, "POST", ts.URL+prefix+"/patch", body, "Authorization", "Bearer "+tok)
		return resp.StatusCode, string(out)
	}
	for _, body := range []string{``, `{"nodes": ["10.0.0.2"], "max_in_flight": 2, "reboot": "never"}`} {
		if code, out := post("dora-token-0123456789", body); code != 202 || !strings.Contains(out, "d-20261206-081500-1a2b") {
			t.Fatalf("patch %q: %d %s", body, code, out)
		}
	}
	for _, tc := range []struct{ body, field string }{
		{`{"actor": "mallory"}`, "actor"},
		{`{"max_in_flight": true}`, "max_in_flight"},
		{`{"reboot": 1}`, "reboot"},
		{`{"nodes": "10.0.0.2"}`, "nodes"},
		{`[]`, "patch"},
	} {
		if code, out := post("dora-token-0123456789", tc.body); code != 400 || !strings.Contains(out, tc.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, code, out, tc.field)
		}
	}
	if code, out := post(operateTok, `{}`); code != 403 || !strings.Contains(out, "needs the deploy role") {
		t.Errorf("as operate: %d %s", code, out)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0].Actor != "dora" || seen[0].V != contract.Version || seen[0].InFlightOr() != "1" || seen[0].RebootOr() != contract.PatchRebootIfRequired ||
		seen[1].MaxInFlight != "2" || seen[1].Reboot != "never" || len(seen[1].Nodes) != 1 {
		t.Errorf("the planner got %+v", seen)
	}
	mu.Unlock()
	entries := auditOfActor(t, ts, "dora", 7)
	var ok int
	for _, e := range entries {
		if e.Action != contract.AuditPatch {
			t.Errorf("entry: %+v", e)
		}
		if e.Code == 202 {
			ok++
			if e.Deployment != "d-20261206-081500-1a2b" || !strings.Contains(e.Detail, "at a time") {
				t.Errorf("patch entry: %+v", e)
			}
		}
	}
	if ok != 2 {
		t.Errorf("%d patch entries that started one, want 2: %+v", ok, entries)
	}
}
