package planner

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// POST /config, checked or not, and the precheck say it too.
func TestListenWarningAnswered(t *testing.T) {
	g := startGoldenWith(t, func(o *Options) { o.ListenHost = "127.0.0.1" })
	cfg := contract.Config{Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: "starter"}}
	body, _ := json.Marshal(cfg)
	var put contract.ConfigPutReply
	g.ask(t, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: body}, 201, &put)
	if !strings.Contains(strings.Join(put.Warnings, "\n"), "127.0.0.1:50000 (--listen), a loopback address") {
		t.Errorf("config put warnings %q", put.Warnings)
	}
	var pre contract.PrecheckReply
	g.ask(t, subject.ConfigPrecheck(), struct{}{}, 200, &pre)
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
	var put contract.ConfigPutReply
	g.ask(t, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: body}, 201, &put)
	want := "properties.jobs.dummy_with_properties.dummy_with_properties.echo_value: ((echo))"
	if !strings.Contains(strings.Join(put.Warnings, "\n"), want) {
		t.Errorf("warnings %q lack %q", put.Warnings, want)
	}
}
