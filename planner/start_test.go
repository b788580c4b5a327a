package planner

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// A deployment checked against one config begins only while that config
// is still the stored one and nothing else began while its nodes were
// being checked (start holds no lock meanwhile).
// testPlanner is a planner on b with its scheduler, and nothing else.
func testPlanner(t *testing.T, b *bustest.Bus) *Planner {
	t.Helper()
	p := &Planner{o: Options{NC: b.NC, Res: b.Res}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := sched.New(context.Background(), sched.Options{NC: b.NC, Res: b.Res, Log: p.log, Hooks: ends{p}})
	if err != nil {
		t.Fatal(err)
	}
	p.sched = s
	return p
}

func TestStillCurrent(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := testPlanner(t, b)
	defer p.sched.Stop()
	ctx := context.Background()
	checked := contract.Config{Components: map[string][]string{"web": {"10.0.0.1"}}}
	checked.Properties.Domain = "a.example"
	if err := bus.StoreConfig(ctx, b.Res.Config, checked); err != nil {
		t.Fatal(err)
	}
	if err := p.stillCurrent(ctx, checked); err != nil {
		t.Fatalf("unchanged config: %v", err)
	}
	changed := checked
	changed.Properties.Domain = "b.example"
	if err := bus.StoreConfig(ctx, b.Res.Config, changed); err != nil {
		t.Fatal(err)
	}
	if err := p.stillCurrent(ctx, checked); err == nil || !strings.Contains(err.Error(), "the config changed while its nodes were being checked") {
		t.Fatalf("config stored during the check: %v", err)
	}
	if err := p.sched.Begin(ctx, sched.NewRecord("d-meanwhile", nil, []*steps.Step{{Spec: contract.Step{V: 1, Deployment: "d-meanwhile", ID: "10.0.0.1/a/install", Node: "10.0.0.1", Component: "a", Action: "install", Attempt: 1}}})); err != nil {
		t.Fatal(err)
	}
	if err := p.stillCurrent(ctx, changed); err == nil || !strings.Contains(err.Error(), "deployment d-meanwhile is still running") {
		t.Fatalf("a deployment begun during the check: %v", err)
	}
}
