package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// answer makes a stand-in planner answer subj with code and body, and
// hands each request it gets to got.
func answer(t *testing.T, nc *nats.Conn, subj string, code string, body any, got chan<- []byte) {
	t.Helper()
	_, err := nc.Subscribe(subj, func(m *nats.Msg) {
		got <- m.Data
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", code)
		r.Data, _ = json.Marshal(body)
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The cloud config's body goes to the planner as it came, YAML or JSON;
// the manifest's body is read strictly, nothing refused reaches the
// planner, ?check=0 reaches it, and every answer is the document's. The
// audit names the manifest, never a variable's value.
func TestManifestRoutes(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	cc := contract.CloudConfig{Home: "10.0.0.1", SSH: contract.CloudSSH{User: "root", Key: "/etc/de/keys/root"},
		AZs: []contract.CloudAZ{{Name: "z1", Machines: []contract.CloudMachine{{IP: "10.0.0.5"}}}}}
	puts, gets, deploys := make(chan []byte, 10), make(chan []byte, 10), make(chan []byte, 10)
	answer(t, b.NC, subject.CloudConfigPut(), "200", cc, puts)
	answer(t, b.NC, subject.CloudConfigGet(), "200", cc, gets)
	answer(t, b.NC, subject.ManifestDeploy(), "202", contract.ManifestDeployed{ID: "d-20261206-010000-0a0b", Name: "simple",
		Placement: map[string][]string{"db": {"10.0.0.5"}}, Warnings: []string{}}, deploys)
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: names{writeTok: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := checkedServer(t, h)
	do := caller(t, srv.URL)

	const yaml = "home: 10.0.0.1\nazs:\n- {name: z1, machines: [10.0.0.5]}\n"
	if code, body := do(http.MethodPut, "/cloud-config", writeTok, yaml); code != 200 || !strings.Contains(body, `"10.0.0.5"`) {
		t.Fatalf("put: %d %s", code, body)
	}
	var put contract.CloudConfigPut
	if err := json.Unmarshal(<-puts, &put); err != nil || string(put.Body) != yaml || put.V != contract.Version {
		t.Fatalf("the planner got %+v %v", put, err)
	}
	if code, body := do(http.MethodGet, "/cloud-config", writeTok, ""); code != 200 || !strings.Contains(body, `"z1"`) {
		t.Fatalf("get: %d %s", code, body)
	}
	<-gets

	const secret = "GivenSecret-4f9"
	for _, tc := range []struct{ name, body string }{
		{"not JSON", "name: simple"},
		{"unknown field", `{"manifest": "name: simple", "vars_store": "x"}`},
		{"no manifest", `{"ops": []}`},
		{"ops not strings", `{"manifest": "name: simple", "ops": [{"type": "replace"}]}`},
		{"a duplicate key", `{"manifest": "name: simple", "manifest": "name: other"}`},
	} {
		if code, body := do(http.MethodPost, "/manifest", writeTok, tc.body); code != 400 {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	select {
	case in := <-deploys:
		t.Fatalf("a refused manifest reached the planner: %s", in)
	default:
	}
	body := `{"manifest": "---\nname: simple\ninstance_groups: []\n", "ops": ["- type: remove\n  path: /x?\n"], "vars": {"pw": "` + secret + `"}}`
	code, out := do(http.MethodPost, "/manifest?check=0", writeTok, body)
	if code != 202 || !strings.Contains(out, `"placement":{"db":["10.0.0.5"]}`) {
		t.Fatalf("deploy: %d %s", code, out)
	}
	var cmd contract.ManifestDeployCmd
	if err := json.Unmarshal(<-deploys, &cmd); err != nil || cmd.Check || cmd.Deploy.Vars["pw"] != secret || len(cmd.Deploy.Ops) != 1 {
		t.Fatalf("the planner got %+v %v", cmd, err)
	}

	var entries []contract.AuditEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		entries = nil
		for _, action := range []string{contract.AuditManifest, contract.AuditCloudConfig} {
			_, all := do(http.MethodGet, "/audit?action="+action, adminTok, "")
			var some []contract.AuditEntry
			_ = json.Unmarshal([]byte(all), &some)
			entries = append(entries, some...)
		}
		if len(entries) >= 7 {
			break
		}
	}
	raw, _ := json.Marshal(entries)
	if strings.Contains(string(raw), secret) {
		t.Fatalf("the audit holds a variable's value: %s", raw)
	}
	var named bool
	for _, e := range entries {
		named = named || (e.Action == contract.AuditManifest && e.Object == "manifest simple" && e.Result == "ok" && e.Deployment == "d-20261206-010000-0a0b")
	}
	if len(entries) != 7 || !named {
		t.Fatalf("audit: %d entries (want 1 cloud-config, 6 manifest): %s", len(entries), raw)
	}
}
