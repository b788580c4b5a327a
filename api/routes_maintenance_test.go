package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The maintenance route checks the node and the reason before anything
// reaches the planner, names the token's holder as the actor, and is in
// the audit trail with what it asked.
func TestMaintenanceRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	got := make(chan contract.MaintenanceSet, 10)
	_, err := b.NC.Subscribe(subject.MaintenanceSet(), func(m *nats.Msg) {
		var in contract.MaintenanceSet
		_ = json.Unmarshal(m.Data, &in)
		got <- in
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "200")
		r.Data, _ = json.Marshal(contract.NodeMaintenance{IP: in.IP, On: in.On, Reason: in.Reason, Actor: in.Actor})
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: names{writeTok: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	put := func(ip, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/deployment-engine/nodes/"+ip+"/maintenance", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+writeTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	for _, tc := range []struct {
		name, ip, body string
		code           int
	}{
		{"not an IP", "node-1", `{"on": true}`, 404},
		{"an IP with a port", "10.0.0.1:22", `{"on": true}`, 404},
		{"no on", "10.0.0.1", `{"reason": "x"}`, 400},
		{"on not a bool", "10.0.0.1", `{"on": "yes"}`, 400},
		{"unknown field", "10.0.0.1", `{"on": true, "until": "monday"}`, 400},
		{"a control character", "10.0.0.1", `{"on": true, "reason": "a\u001b[31mred"}`, 400},
		{"a newline", "10.0.0.1", `{"on": true, "reason": "two\nlines"}`, 400},
		{"too long", "10.0.0.1", fmt.Sprintf(`{"on": true, "reason": %q}`, strings.Repeat("x", contract.MaxMaintenanceReason+1)), 400},
	} {
		if code, body := put(tc.ip, tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
	}
	select {
	case in := <-got:
		t.Fatalf("a refused request reached the planner: %+v", in)
	default:
	}
	if code, body := put("10.0.0.1", `{"on": true, "reason": "disk replaced"}`); code != 200 {
		t.Fatalf("on: %d %s", code, body)
	}
	if in := <-got; in.IP != "10.0.0.1" || !in.On || in.Reason != "disk replaced" || in.Actor != "alice" || in.V != contract.Version {
		t.Fatalf("the planner got %+v", in)
	}
	var entries []contract.AuditEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/deployment-engine/audit?action=maintenance", nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&entries)
		resp.Body.Close()
		if len(entries) >= 9 {
			break
		}
	}
	var ok *contract.AuditEntry
	for i, e := range entries {
		if e.Result == "ok" {
			ok = &entries[i]
		}
	}
	if len(entries) != 9 || ok == nil {
		t.Fatalf("audit: %d entries (want 9: 8 refused, 1 ok): %+v", len(entries), entries)
	}
	if ok.Actor != "alice" || ok.IP != "10.0.0.1" || ok.Object != "node 10.0.0.1" || !strings.Contains(ok.Detail, `on: "disk replaced"`) {
		t.Fatalf("the entry: %+v", *ok)
	}
}
