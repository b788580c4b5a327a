package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

func TestDiffJSON(t *testing.T) {
	dec := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name, a, b string
		want       []string
	}{
		{"nothing before", `{}`, `{"components": {"web": ["10.0.0.1"]}}`, []string{`+ components.web[0]: "10.0.0.1"`}},
		{"an instance added, a property changed", `{"components": {"web": ["10.0.0.1"]}, "properties": {"domain": "a"}}`,
			`{"components": {"web": ["10.0.0.1", "10.0.0.2"]}, "properties": {"domain": "b"}}`,
			[]string{`+ components.web[1]: "10.0.0.2"`, `~ properties.domain: "a" → "b"`}},
		{"a component removed", `{"components": {"web": ["10.0.0.1"], "db": ["10.0.0.2"]}}`, `{"components": {"web": ["10.0.0.1"]}}`,
			[]string{`- components.db[0]: "10.0.0.2"`}},
		{"secrets never show", `{"properties": {"root": "hunter2hunter2"}}`, `{"properties": {"root": "swordfish", "notify": {"webhooks": [{"secret": "s3cret"}]}}}`,
			[]string{`+ properties.notify.webhooks[0].secret: "<redacted>"`}},
		{"same", `{"properties": {"disksize": 15}}`, `{"properties": {"disksize": 15}}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := diffJSON(dec(tc.a), dec(tc.b))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestAuditAction(t *testing.T) {
	cases := map[string]string{
		"POST /deployment-engine/config":                 contract.AuditConfig,
		"GET /deployment-engine/config":                  "",
		"GET /deployment-engine/deploy":                  contract.AuditDeploy,
		"PUT /deployment-engine/stop":                    contract.AuditStop,
		"PUT /deployment-engine/download":                "",
		"POST /deployment-engine/deployments/d-1/cancel": contract.AuditCancel,
		"POST /deployment-engine/rollback":               contract.AuditRollback,
		"PUT /deployment-engine/heal":                    contract.AuditHeal,
		"GET /deployment-engine/heal":                    "",
		"POST /deployment-engine/plan":                   contract.AuditPlan,
	}
	tab := newTable((&server{}).routes())
	for in, want := range cases {
		m, p, _ := strings.Cut(in, " ")
		var got, object string
		tab.resolve(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			spec, params := auditOf(r)
			got, object = spec.action, spec.object
			if spec.param != "" {
				object = params.URLParam(spec.param)
			}
		})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, p, nil))
		if got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
		if want == contract.AuditCancel && object != "d-1" {
			t.Errorf("%s: object %q, want the deployment's id", in, object)
		}
	}
}

// names is a token lookup for the test: token → name, "" when revoked;
// every name has the deploy role on every cluster.
type names map[string]string

func (n names) Lookup(tok string) (Grant, bool) {
	name, ok := n[tok]
	return Grant{Name: name, Role: RoleDeploy}, ok && name != ""
}

// TestAuditTrail sends changes through the API with a named token against
// the real bus (the planner's and monitor's answers are stand-ins) and reads
// them back from the audit stream.
func TestAuditTrail(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	var stored atomic.Value
	stored.Store(configJSON("10.0.0.1"))
	reply := func(subj string, code int, body func() string) {
		_, err := b.NC.Subscribe(subj, func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set("De-Code", fmt.Sprint(code))
			r.Data = []byte(body())
			_ = m.RespondMsg(r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	reply(subject.ConfigGet(), 200, func() string { return stored.Load().(string) })
	reply(subject.ConfigPut(), 201, func() string {
		stored.Store(configJSON("10.0.0.1", "10.0.0.2"))
		return `{"v": 1, "stored": true, "checked": false}`
	})
	reply(subject.MonitorControl(), 200, func() string {
		return `{"status": "ok", "results": [{"Comp": "web", "Ip": "10.0.0.1", "ok": true, "via": "agent"}]}`
	})

	tokens := names{"alice-token-0123456789": "alice", "old-token-0123456789": ""}
	h, err := New(Options{NC: b.NC, Token: "admin-token-0123456789", Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checked(t, h))
	defer srv.Close()
	do := func(tok, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, body := do("old-token-0123456789", "PUT", "/deployment-engine/stop", `{"name": "web", "ip": "10.0.0.1"}`); code != 401 {
		t.Fatalf("revoked token: %d %s", code, body)
	}
	if code, body := do("alice-token-0123456789", "PUT", "/deployment-engine/stop", `{"name": "web", "ip": "10.0.0.1"}`); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if code, body := do("admin-token-0123456789", "POST", "/deployment-engine/config", `{}`); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	if code, body := do("alice-token-0123456789", "GET", "/deployment-engine/status", ``); code == 401 {
		t.Fatalf("a read with a named token: %d %s", code, body)
	}

	var got []contract.AuditEntry
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, body := do("alice-token-0123456789", "GET", "/deployment-engine/audit", "")
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("audit: %s", body)
		}
		if len(got) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Fatalf("audit holds %d entries, want 2 (the refused request and the read are not changes): %+v", len(got), got)
	}
	stop, cfg := got[0], got[1]
	if stop.Actor != "alice" || stop.Action != "stop" || stop.Object != "web@10.0.0.1" || stop.Component != "web" || stop.Result != "ok" || stop.Code != 200 {
		t.Errorf("stop entry: %+v", stop)
	}
	if cfg.Actor != "admin" || cfg.Action != "config" || fmt.Sprint(cfg.Diff) != `[+ components.web[1]: "10.0.0.2"]` {
		t.Errorf("config entry: %+v", cfg)
	}
	_, body := do("alice-token-0123456789", "GET", "/deployment-engine/audit?actor=admin&since=1h", "")
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got[0].Action != "config" {
		t.Errorf("audit?actor=admin: %s", body)
	}
	_, body = do("alice-token-0123456789", "GET", "/deployment-engine/audit?action=stop", "")
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got[0].Action != "stop" {
		t.Errorf("audit?action=stop: %s", body)
	}
	for _, q := range []string{"since=yesterday", "action=a.b", "limit=0"} {
		if code, body := do("alice-token-0123456789", "GET", "/deployment-engine/audit?"+q, ""); code != 400 {
			t.Errorf("audit?%s: %d %s", q, code, body)
		}
	}
}

// Plans and config checks render a release's templates: each is recorded,
// with the plan's id, and nothing of the config the body held.
func TestAuditPlanAndCheck(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	reply := func(subj string, code int, body string) {
		_, err := b.NC.Subscribe(subj, func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set("De-Code", fmt.Sprint(code))
			r.Data = []byte(body)
			_ = m.RespondMsg(r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	reply(subject.DeployPlan(), 200, `{"v": 1, "id": "0a1b2c3d4e5f", "config": "posted", "changes": 0, "drifted": 0, "nodes": []}`)
	reply(subject.ConfigPut(), 400, `{"error": "config rejected: 1 problem", "problems": [{"path": "properties.jobs.db", "reason": "x"}]}`)
	reply(subject.ConfigGet(), 200, configJSON("10.0.0.1"))
	h, err := New(Options{NC: b.NC, Token: "admin-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checked(t, h))
	defer srv.Close()
	const secret = "JobSecret-Q7w"
	body := `{"components": {"db": ["10.0.0.1"]}, "properties": {"catalog": "bosh", "jobs": {"db": {"password": "` + secret + `"}}}}`
	do := func(method, path, body string) string {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return string(out)
	}
	do("POST", "/deployment-engine/plan", body)
	do("POST", "/deployment-engine/config?check=0", body)
	var got []contract.AuditEntry
	for deadline := time.Now().Add(10 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out := do("GET", "/deployment-engine/audit", ""); json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("audit: %s", out)
		}
	}
	if len(got) != 2 {
		t.Fatalf("audit holds %d entries, want 2: %+v", len(got), got)
	}
	plan, check := got[0], got[1]
	if plan.Action != contract.AuditPlan || plan.Object != "0a1b2c3d4e5f" || plan.Deployment != "" || plan.Result != "ok" || plan.Actor != "admin" {
		t.Errorf("plan entry: %+v", plan)
	}
	if check.Action != contract.AuditConfig || check.Result != "failed" || check.Code != 400 {
		t.Errorf("config check entry: %+v", check)
	}
	if out, _ := json.Marshal(got); strings.Contains(string(out), secret) {
		t.Errorf("the audit holds the secret: %s", out)
	}
}

// configJSON is a stored config as the planner answers it, redacted, with
// web on ips.
func configJSON(ips ...string) string {
	b, err := json.Marshal(contract.Config{Components: map[string][]string{"web": ips},
		Properties: contract.Properties{Domain: "a.local", Root: contract.Redacted}})
	if err != nil {
		panic(err)
	}
	return string(b)
}
