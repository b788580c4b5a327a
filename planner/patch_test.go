package planner

import (
	"context"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Every client mistake in a patch is a 400 that names its field, and a
// patch of nodes all in maintenance a 409 naming them, before anything
// runs or any node is contacted.
func TestPatchRefusals(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		in   any
		code int
		says string
	}{
		{"a node not in the config", contract.Patch{Nodes: []string{"10.9.0.3", "10.9.9.9"}}, 400, "nodes[1]"},
		{"a node that is no IP", contract.Patch{Nodes: []string{"web"}}, 400, "nodes[0]"},
		{"max_in_flight 0", contract.Patch{MaxInFlight: "0"}, 400, "max_in_flight"},
		{"max_in_flight a word", map[string]any{"max_in_flight": "lots"}, 400, "max_in_flight"},
		{"an unknown reboot policy", contract.Patch{Reboot: "sometimes"}, 400, "reboot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := kit.Request(ctx, b.NC, subject.DeployPatch(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Code != tc.code || !strings.Contains(string(rep.Body), tc.says) {
				t.Fatalf("%d %s: want %d naming %s", rep.Code, rep.Body, tc.code, tc.says)
			}
		})
	}
	if _, err := bus.UpdateMaintenance(ctx, b.Res.Engine, func(m *contract.Maintenances) error {
		m.Nodes["10.9.0.3"] = contract.NodeMaintenance{IP: "10.9.0.3", On: true, Reason: "disk swap", Actor: "alice"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := kit.Request(ctx, b.NC, subject.DeployPatch(), contract.Patch{Nodes: []string{"10.9.0.3"}})
	if err != nil || rep.Code != 409 || !strings.Contains(string(rep.Body), "10.9.0.3") || !strings.Contains(string(rep.Body), "maintenance") {
		t.Fatalf("a patch of a node in maintenance: %v %d %s", err, rep.Code, rep.Body)
	}
	if id, ok := p.sched.Running(); ok {
		t.Fatalf("a refused patch started deployment %s", id)
	}
}
