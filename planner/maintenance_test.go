package planner

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A node of the config goes in maintenance and out; one that is not is
// 404; the store keeps what every process reads. Going in, its web
// instance is taken out of the running haproxy by a deployment of kind
// maintenance, whose drain its maintenance does not hold; set again while
// that deployment runs, the answer says the instance stays in.
func TestMaintenanceCommands(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ask := func(subj string, body any) (int, contract.NodeMaintenance, string) {
		t.Helper()
		rep, err := kit.Request(ctx, b.NC, subj, body)
		if err != nil {
			t.Fatal(err)
		}
		var out contract.NodeMaintenance
		_ = json.Unmarshal(rep.Body, &out)
		return rep.Code, out, string(rep.Body)
	}
	set := func(ip string, on bool, reason string) (int, contract.NodeMaintenance, string) {
		return ask(subject.MaintenanceSet(), contract.MaintenanceSet{V: 1, IP: ip, On: on, Reason: reason, Actor: "alice"})
	}
	placed, _ := json.Marshal(map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"web", "redis"}, "10.9.0.4": {"web"}})
	if _, err := b.Res.Scheduler.Put(ctx, "placement", placed); err != nil {
		t.Fatal(err)
	}
	code, got, body := set("10.9.0.3", true, "disk swap")
	if code != 200 || !got.On || got.Actor != "alice" || got.Reason != "disk swap" || got.Since == nil || got.Deployment == "" || got.Warning != "" {
		t.Fatalf("on: %d %s", code, body)
	}
	rep, err := kit.Request(ctx, b.NC, subject.DeployGet(), contract.DeployGet{ID: got.Deployment})
	var d contract.Deployment
	if err != nil || json.Unmarshal(rep.Body, &d) != nil || d.Kind != "maintenance" || len(d.Steps) != 1 ||
		d.Steps[0].ID != "10.9.0.2/haproxy/drain-web-10.9.0.3" || d.Steps[0].State == contract.StateHeld {
		t.Fatalf("the maintenance's deployment: %v %s", err, rep.Body)
	}
	since := *got.Since
	if code, got, body = set("10.9.0.3", true, "disk swap, then RAM"); code != 200 || got.Reason != "disk swap, then RAM" || !got.Since.Equal(since) ||
		!strings.Contains(got.Warning, "stay in their balancers: deployment "+d.ID+" is still running") {
		t.Fatalf("on again: %d %s: the reason is new, the start kept, the instances left in", code, body)
	}
	for _, tc := range []struct {
		name   string
		ip     string
		on     bool
		reason string
		code   int
	}{
		{"a node not in the config", "10.9.9.9", true, "", 404},
		{"out, a node neither in the config nor in maintenance", "10.9.9.9", false, "", 404},
		{"not an IP", "web", true, "", 400},
		{"a control character", "10.9.0.2", true, "a\tb", 400},
		{"too long", "10.9.0.2", true, strings.Repeat("x", contract.MaxMaintenanceReason+1), 400},
		{"out, a node in service", "10.9.0.2", false, "", 200},
	} {
		if code, _, body := set(tc.ip, tc.on, tc.reason); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
	}
	if code, got, body := ask(subject.MaintenanceGet(), contract.MaintenanceGet{IP: "10.9.0.2"}); code != 200 || got.On {
		t.Errorf("get a node in service: %d %s", code, body)
	}
	if code, _, body := ask(subject.MaintenanceGet(), contract.MaintenanceGet{IP: "10.9.9.9"}); code != 404 {
		t.Errorf("get a node not in the config: %d %s", code, body)
	}
	if code, got, body := ask(subject.MaintenanceGet(), contract.MaintenanceGet{IP: "10.9.0.3"}); code != 200 || !got.On || got.Actor != "alice" {
		t.Errorf("get the node in maintenance: %d %s", code, body)
	}
	rep, err = kit.Request(ctx, b.NC, subject.MaintenanceList(), nil)
	var list []contract.NodeMaintenance
	if err != nil || json.Unmarshal(rep.Body, &list) != nil || len(list) != 1 || list[0].IP != "10.9.0.3" {
		t.Fatalf("list: %v %s", err, rep.Body)
	}
	if code, got, body := set("10.9.0.3", false, ""); code != 200 || got.On {
		t.Fatalf("off: %d %s", code, body)
	}
	if m, _, err := bus.LoadMaintenance(ctx, b.Res.Engine); err != nil || len(m.Nodes) != 0 {
		t.Fatalf("store after off: %+v %v", m, err)
	}
}
