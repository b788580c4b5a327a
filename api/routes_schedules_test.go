package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// POST /schedules reads the args as the action's own route reads its
// request and answers 400 naming the field at fault before anything
// reaches the planner; what it sends names the token's holder and holds
// the args as the planner runs them, with the defaults filled in.
func TestScheduleRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	got := make(chan contract.Schedule, 10)
	_, err := b.NC.Subscribe(subject.ScheduleAdd(), func(m *nats.Msg) {
		var in contract.Schedule
		_ = json.Unmarshal(m.Data, &in)
		got <- in
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "201")
		r.Data = m.Data
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
	post := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/deployment-engine/schedules", strings.NewReader(body))
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
		name, body, field string
	}{
		{"unknown field", `{"name": "n", "cron": "@daily", "action": "rollback", "every": "day"}`, ""},
		{"bad name", `{"name": "Nightly Web", "cron": "@daily", "action": "rollback"}`, "name"},
		{"no cron", `{"name": "n", "action": "rollback"}`, "cron"},
		{"unknown action", `{"name": "n", "cron": "@daily", "action": "reboot"}`, "action"},
		{"missed", `{"name": "n", "cron": "@daily", "action": "rollback", "missed": "all"}`, "missed"},
		{"restart without args", `{"name": "n", "cron": "@daily", "action": "restart"}`, "args"},
		{"restart, unknown field", `{"name": "n", "cron": "@daily", "action": "restart", "args": {"name": "web", "ip": "0.0.0.0", "batch": 1}}`, "args"},
		{"restart, max_in_flight", `{"name": "n", "cron": "@daily", "action": "restart", "args": {"name": "web", "ip": "0.0.0.0", "max_in_flight": true}}`, "args"},
		{"restart, not an IP", `{"name": "n", "cron": "@daily", "action": "restart", "args": {"name": "web", "ip": "node-1"}}`, "args"},
		{"deploy, a plan", `{"name": "n", "cron": "@daily", "action": "deploy", "args": {"plan": "9f"}}`, "args"},
		{"deploy, canaries", `{"name": "n", "cron": "@daily", "action": "deploy", "args": {"canaries": -1}}`, "args"},
		{"deploy, canaries 1.5", `{"name": "n", "cron": "@daily", "action": "deploy", "args": {"canaries": 1.5}}`, "args"},
		{"deploy, auto_revert", `{"name": "n", "cron": "@daily", "action": "deploy", "args": {"auto_revert": "maybe"}}`, "args"},
		{"rollback with args", `{"name": "n", "cron": "@daily", "action": "rollback", "args": {"to": "d-1"}}`, "args"},
	} {
		code, body := post(tc.body)
		if code != 400 || tc.field != "" && !strings.Contains(body, `"path":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.name, code, body, tc.field)
		}
	}
	select {
	case in := <-got:
		t.Fatalf("a refused request reached the planner: %+v", in)
	default:
	}
	for _, tc := range []struct {
		body string
		want contract.Schedule
	}{
		{`{"name": "weekly-web", "cron": "0 3 * * 0", "time_zone": "Europe/Paris", "action": "restart",
		   "args": {"name": "web", "ip": "0.0.0.0", "max_in_flight": 1}}`,
			contract.Schedule{Name: "weekly-web", Cron: "0 3 * * 0", TimeZone: "Europe/Paris", Action: "restart",
				Args: json.RawMessage(`{"comp":"web","ip":"0.0.0.0","max_in_flight":"1"}`), ProhibitOverlap: true, Missed: "skip"}},
		{`{"name": "nightly", "cron": "@daily", "action": "deploy", "args": {"canaries": "1", "max_in_flight": "50%"},
		   "prohibit_overlap": false, "missed": "run_once"}`,
			contract.Schedule{Name: "nightly", Cron: "@daily", Action: "deploy",
				Args: json.RawMessage(`{"canaries":1,"max_in_flight":"50%"}`), Missed: "run_once"}},
	} {
		if code, body := post(tc.body); code != 201 {
			t.Fatalf("%d %s", code, body)
		}
		in := <-got
		if in.Actor != "alice" || in.V != contract.Version || in.Name != tc.want.Name || in.TimeZone != tc.want.TimeZone ||
			string(in.Args) != string(tc.want.Args) || in.ProhibitOverlap != tc.want.ProhibitOverlap || in.Missed != tc.want.Missed {
			t.Errorf("the planner got %+v (args %s), want %+v (args %s)", in, in.Args, tc.want, tc.want.Args)
		}
	}
}
