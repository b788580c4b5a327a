package planner

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func intp(n int) *int { return &n }

// Every client mistake in an exec is a 400 that names its field, before
// anything runs.
func TestExecRefusals(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	for _, tc := range []struct {
		name  string
		in    any
		field string
	}{
		{"empty command", contract.FleetExec{Component: "web"}, "command"},
		{"command over 4 KiB", contract.FleetExec{Component: "web", Command: strings.Repeat("x", contract.MaxExecCommand+1)}, "command"},
		{"both component and nodes", contract.FleetExec{Component: "web", Nodes: []string{"10.9.0.3"}, Command: "true"}, "component"},
		{"neither component nor nodes", contract.FleetExec{Command: "true"}, "component"},
		{"unknown component", contract.FleetExec{Component: "nope", Command: "true"}, "component"},
		{"a node not in the config", contract.FleetExec{Nodes: []string{"10.9.0.3", "10.9.9.9"}, Command: "true"}, "nodes[1]"},
		{"a node that is no IP", contract.FleetExec{Nodes: []string{"web"}, Command: "true"}, "nodes[0]"},
		{"max_in_flight 0", contract.FleetExec{Component: "web", Command: "true", MaxInFlight: "0"}, "max_in_flight"},
		{"max_in_flight a word", map[string]any{"component": "web", "command": "true", "max_in_flight": "lots"}, "max_in_flight"},
		{"max_in_flight 150%", contract.FleetExec{Component: "web", Command: "true", MaxInFlight: "150%"}, "max_in_flight"},
		{"timeout 0", contract.FleetExec{Component: "web", Command: "true", Timeout: intp(0)}, "timeout"},
		{"timeout over an hour", contract.FleetExec{Component: "web", Command: "true", Timeout: intp(contract.MaxExecTimeout + 1)}, "timeout"},
		{"max_in_flight an object", map[string]any{"component": "web", "command": "true", "max_in_flight": map[string]any{}}, "max_in_flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := kit.Request(context.Background(), b.NC, subject.DeployExec(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Code != 400 || !strings.Contains(string(rep.Body), tc.field) {
				t.Fatalf("%d %s: want 400 naming %s", rep.Code, rep.Body, tc.field)
			}
		})
	}
	if id, ok := p.sched.Running(); ok {
		t.Fatalf("a refused exec started deployment %s", id)
	}
}

// An exec is a deployment of kind exec: one step a node, in batches of
// max_in_flight, each batch after the one before; its steps keep their
// output; a failure halts it only when asked; the command the reply and
// the operations log show has the config's secrets taken out.
func TestExecPlan(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		in      contract.FleetExec
		comp    string
		batches [][]string
		halt    bool
	}{
		{"a component's nodes, 1 at a time", contract.FleetExec{Component: "web", Command: "echo secret-pw"}, "web",
			[][]string{{"10.9.0.3"}, {"10.9.0.4"}}, false},
		{"nodes named, 2 at a time, halting", contract.FleetExec{Nodes: []string{"10.9.0.4", "10.9.0.2", "10.9.0.3", "10.9.0.4"}, Command: "echo secret-pw",
			MaxInFlight: "2", HaltOnFailure: true, Timeout: intp(5)}, "exec", [][]string{{"10.9.0.4", "10.9.0.2"}, {"10.9.0.3"}}, true},
		{"50% of three nodes is one", contract.FleetExec{Nodes: []string{"10.9.0.2", "10.9.0.3", "10.9.0.4"}, Command: "echo secret-pw", MaxInFlight: "50%"}, "exec",
			[][]string{{"10.9.0.2"}, {"10.9.0.3"}, {"10.9.0.4"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := kit.Request(ctx, b.NC, subject.DeployExec(), tc.in)
			if err != nil || rep.Code != 202 {
				t.Fatalf("exec: %v %d %s", err, rep.Code, rep.Body)
			}
			var started contract.FleetExecStarted
			_ = json.Unmarshal(rep.Body, &started)
			if started.Command != "echo "+contract.Redacted {
				t.Errorf("command shown: %q", started.Command)
			}
			d, err := p.sched.Snapshot(ctx, started.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != contract.KindExec || len(d.Batches) != len(tc.batches) {
				t.Fatalf("deployment: kind %q, batches %+v", d.Kind, d.Batches)
			}
			var prev []string
			for k, group := range tc.batches {
				bt := d.Batches[k]
				if !slices.Equal(bt.Nodes, group) || len(bt.Steps) != len(group) {
					t.Errorf("batch %d: %+v, want nodes %v", k, bt, group)
				}
				for _, id := range bt.Steps {
					st := d.Steps[slices.IndexFunc(d.Steps, func(s contract.StepStatus) bool { return s.ID == id })]
					if st.Component != tc.comp || st.Action != "exec" || !slices.Equal(st.After, prev) {
						t.Errorf("step %s: %s/%s after %v, want %s/exec after %v", id, st.Component, st.Action, st.After, tc.comp, prev)
					}
				}
				prev = bt.Steps
			}
			e, err := b.Res.Deployments.Get(ctx, started.ID)
			if err != nil {
				t.Fatal(err)
			}
			var rec sched.Record
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Through == tc.halt {
				t.Errorf("through %v with halt_on_failure %v", rec.Through, tc.halt)
			}
			first := d.Batches[0].Nodes[0]
			var spec contract.Step
			for deadline := time.Now().Add(10 * time.Second); spec.ID == ""; time.Sleep(20 * time.Millisecond) {
				if m, err := b.Res.JS.Stream(ctx, bus.StreamSteps); err == nil {
					if msg, err := m.GetLastMsgForSubject(ctx, subject.Step(started.ID, first)); err == nil {
						_ = json.Unmarshal(msg.Data, &spec)
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the first step was not queued")
				}
			}
			if spec.Script != tc.in.Command || !spec.KeepOutput || spec.TimeoutS != tc.in.TimeoutS() || spec.Action != "exec" {
				t.Errorf("step queued: %+v", spec)
			}
			cancelled, err := kit.Request(ctx, b.NC, subject.DeployCancel(), contract.DeployCancel{V: 1, ID: started.ID})
			if err != nil || cancelled.Code != 202 {
				t.Fatalf("cancel: %v %+v", err, cancelled)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, ok := p.sched.Running(); !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("still running after its cancel")
				}
			}
		})
	}
}
