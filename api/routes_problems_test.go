package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// GET /problems answers the planner's scan; POST /problems/{id}/resolve
// sends the planner the problem and the fix with who asked, refuses a bad
// id or body before anything reaches it, and a fix that deploys the
// config to a token below the deploy role. Every answer is held to the
// OpenAPI document.
func TestProblemRoutes(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	scan := contract.ProblemList{V: 1, Unread: []string{}, Problems: []contract.ClusterProblem{{
		ID: "pb-0123456789ab", Kind: contract.ProblemNotRunning, Node: "10.0.0.2", Component: "web", Detail: "monit: Does not exist",
		Fixes: []contract.ProblemFix{{Name: "restart", Description: "restart web on 10.0.0.2", Recommended: true}}}}}
	reply := func(subj string, code string, body any) {
		data, _ := json.Marshal(body)
		if _, err := b.NC.Subscribe(subj, func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set("De-Code", code)
			r.Data = data
			_ = m.RespondMsg(r)
		}); err != nil {
			t.Fatal(err)
		}
	}
	reply(subject.ProblemsList(), "200", scan)
	got := make(chan contract.ProblemResolve, 10)
	if _, err := b.NC.Subscribe(subject.ProblemsResolve(), func(m *nats.Msg) {
		var in contract.ProblemResolve
		_ = json.Unmarshal(m.Data, &in)
		got <- in
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "202")
		r.Data = []byte(`{"id":"d-42"}`)
		_ = m.RespondMsg(r)
	}); err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{}}
	for _, rt := range roleTokens[1:] {
		tokens.m[rt.tok] = rt.grant
	}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := checkedServer(t, h)
	do := caller(t, ts.URL)

	code, body := do(http.MethodGet, "/problems", readTok, "")
	var list contract.ProblemList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Problems) != 1 || list.Problems[0].ID != "pb-0123456789ab" {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, path, tok, body string
		code                  int
	}{
		{"read token", "/problems/pb-0123456789ab/resolve", readTok, `{"fix": "restart"}`, 403},
		{"not an id", "/problems/web/resolve", operateTok, `{"fix": "restart"}`, 404},
		{"no fix", "/problems/pb-0123456789ab/resolve", operateTok, `{}`, 400},
		{"unknown field", "/problems/pb-0123456789ab/resolve", operateTok, `{"fix": "restart", "force": true}`, 400},
		{"deploys, operate token", "/problems/pb-0123456789ab/resolve", operateTok, `{"fix": "deploy"}`, 403},
		{"host key, operate token", "/problems/pb-0123456789ab/resolve", operateTok, `{"fix": "forget-host-key"}`, 403},
	} {
		if code, body := do(http.MethodPost, tc.path, tc.tok, tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
	}
	select {
	case in := <-got:
		t.Fatalf("a refused request reached the planner: %+v", in)
	default:
	}
	for _, tc := range []struct {
		tok, fix, actor string
	}{{operateTok, "restart", "olga"}, {writeTok, "deploy", "alice"}} {
		code, body := do(http.MethodPost, "/problems/pb-0123456789ab/resolve", tc.tok, `{"fix": "`+tc.fix+`"}`)
		if code != 202 || !strings.Contains(body, `"d-42"`) {
			t.Fatalf("resolve %s: %d %s", tc.fix, code, body)
		}
		in := <-got
		if in.ID != "pb-0123456789ab" || in.Fix != tc.fix || in.Actor != tc.actor || in.V != contract.Version {
			t.Errorf("the planner got %+v", in)
		}
	}
}
