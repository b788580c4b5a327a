package planner

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// The engine warns when the nodes cannot reach its HTTP address, naming
// both addresses and what to do, and stays silent when they can.
func TestListenWarning(t *testing.T) {
	far := map[string][]string{"web": {"10.0.0.5", "10.0.0.6"}}
	near := map[string][]string{"web": {"127.0.0.2"}}
	for _, tc := range []struct {
		name, listen, home string
		comps              map[string][]string
		want               []string // "" when no warning
	}{
		{"every address", "", "10.0.0.1", far, nil},
		{"0.0.0.0", "0.0.0.0", "10.0.0.1", far, nil},
		{"::", "::", "10.0.0.1", far, nil},
		{"home itself", "10.0.0.1", "10.0.0.1", far, nil},
		{"loopback, nodes on this machine", "127.0.0.1", "127.0.0.1", near, nil},
		{"a host name", "engine.example", "10.0.0.1", far, nil},
		{"loopback, nodes elsewhere", "127.0.0.1", "10.0.0.1", far,
			[]string{"127.0.0.1:50000", "loopback", "10.0.0.5, 10.0.0.6", "10.0.0.1:50000", "curl: (7)", "--listen 10.0.0.1:50000", "0.0.0.0:50000"}},
		{"localhost", "localhost", "10.0.0.1", far, []string{"localhost:50000", "loopback"}},
		{"another address than home", "10.0.0.9", "10.0.0.1", far,
			[]string{"10.0.0.9:50000", "home is 10.0.0.1", "--listen 10.0.0.1:50000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := contract.Config{Components: tc.comps, Properties: contract.Properties{Home: tc.home}}
			got := listenWarning(tc.listen, 50000, cfg)
			if (got == "") != (tc.want == nil) {
				t.Fatalf("warning %q, want one: %v", got, tc.want != nil)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q lacks %q", got, w)
				}
			}
		})
	}
}

// POST /config, checked or not, and the precheck say it too.
func TestListenWarningAnswered(t *testing.T) {
	g := startGoldenWith(t, func(o *Options) { o.ListenHost = "127.0.0.1" })
	cfg := contract.Config{Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: "starter"}}
	body, _ := json.Marshal(cfg)
	rep, err := kit.Request(context.Background(), g.b.NC, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: body})
	if err != nil {
		t.Fatal(err)
	}
	var put contract.ConfigPutReply
	if err := json.Unmarshal(rep.Body, &put); err != nil || rep.Code != 201 {
		t.Fatalf("config put: %d %s", rep.Code, rep.Body)
	}
	if !strings.Contains(strings.Join(put.Warnings, "\n"), "127.0.0.1:50000 (--listen), a loopback address") {
		t.Errorf("config put warnings %q", put.Warnings)
	}
	rep, err = kit.Request(context.Background(), g.b.NC, subject.ConfigPrecheck(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	var pre contract.PrecheckReply
	if err := json.Unmarshal(rep.Body, &pre); err != nil || rep.Code != 200 {
		t.Fatalf("precheck: %d %s", rep.Code, rep.Body)
	}
	if !strings.Contains(strings.Join(pre.Warnings, "\n"), "nodes 10.9.0.2, 10.9.0.3 cannot reach") {
		t.Errorf("precheck warnings %q", pre.Warnings)
	}
}

// A BOSH variable in a job's properties is named in a warning: the
// engine stores the config but interpolates nothing.
func TestVariablesWarned(t *testing.T) {
	needRuby(t)
	g := startGolden(t)
	cfg := contract.Config{Components: map[string][]string{"dummy_with_properties": {"10.9.0.2"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: BoshCatalog, Release: "dummy",
			Jobs: map[string]any{"dummy_with_properties": map[string]any{"dummy_with_properties": map[string]any{"echo_value": "((echo))"}}}}}
	body, _ := json.Marshal(cfg)
	rep, err := kit.Request(context.Background(), g.b.NC, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: body})
	if err != nil {
		t.Fatal(err)
	}
	var put contract.ConfigPutReply
	if err := json.Unmarshal(rep.Body, &put); err != nil || rep.Code != 201 {
		t.Fatalf("config put: %d %s", rep.Code, rep.Body)
	}
	want := "properties.jobs.dummy_with_properties.dummy_with_properties.echo_value: ((echo))"
	if !strings.Contains(strings.Join(put.Warnings, "\n"), want) {
		t.Errorf("warnings %q lack %q", put.Warnings, want)
	}
}
