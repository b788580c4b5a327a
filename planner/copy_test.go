package planner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Every client mistake in a copy is a 400 that names its field, before
// anything runs: a path into the engine's own state on the node above all.
func TestCopyRefusals(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	file := []byte("hello\n")
	for _, tc := range []struct {
		name string
		in   any
		says string
	}{
		{"the engine's state", contract.FleetCopy{Component: "web", To: "/var/lib/deployment-engine/owner", Content: file}, "/var/lib/deployment-engine"},
		{"a relative path", contract.FleetCopy{Component: "web", To: "etc/motd", Content: file}, "to: not an absolute path"},
		{"dot-dot", contract.FleetCopy{Component: "web", To: "/tmp/../etc/shadow", Content: file}, `to: holds \"..\"`},
		{"over 4 MiB", contract.FleetCopy{Component: "web", To: "/etc/motd", Content: make([]byte, contract.MaxCopyBytes+1)}, "content_base64"},
		{"mode", contract.FleetCopy{Component: "web", To: "/etc/motd", Content: file, Mode: "rw"}, "mode"},
		{"unknown component", contract.FleetCopy{Component: "nope", To: "/etc/motd", Content: file}, "component: not a component"},
		{"a node not in the config", contract.FleetCopy{Nodes: []string{"10.9.0.3", "10.9.9.9"}, To: "/etc/motd", Content: file}, "nodes[1]"},
		{"max_in_flight 0", contract.FleetCopy{Component: "web", To: "/etc/motd", Content: file, MaxInFlight: "0"}, "max_in_flight"},
		{"content not base64", map[string]any{"component": "web", "to": "/etc/motd", "content_base64": "%%%"}, "illegal base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := kit.Request(context.Background(), b.NC, subject.DeployCopy(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Code != 400 || !strings.Contains(string(rep.Body), tc.says) {
				t.Fatalf("%d %s: want 400 saying %s", rep.Code, rep.Body, tc.says)
			}
		})
	}
	if id, ok := p.sched.Running(); ok {
		t.Fatalf("a refused copy started deployment %s", id)
	}
}

// A copy is a deployment of kind copy: one step a node in batches of
// max_in_flight, none halting the others; each step carries the file
// (content, checksum, mode) and prints what the node then has. A file of
// 4 MiB to every node is planned and queued (its steps stored once).
func TestCopyPlan(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	p := startStarter(t, b)
	defer p.Stop()
	ctx := context.Background()
	big := bytes.Repeat([]byte("copied "), contract.MaxCopyBytes/7)
	for _, tc := range []struct {
		name    string
		in      contract.FleetCopy
		comp    string
		mode    uint32
		batches [][]string
	}{
		{"a component's nodes, 1 at a time", contract.FleetCopy{Component: "web", To: "/etc/motd", Content: []byte("hello\n")}, "web",
			0o644, [][]string{{"10.9.0.3"}, {"10.9.0.4"}}},
		{"nodes named, 2 at a time, 4 MiB", contract.FleetCopy{Nodes: []string{"10.9.0.4", "10.9.0.2", "10.9.0.3"}, To: "/opt/big.bin", Content: big,
			Mode: "0640", MaxInFlight: "2"}, "copy", 0o640, [][]string{{"10.9.0.4", "10.9.0.2"}, {"10.9.0.3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := kit.Request(ctx, b.NC, subject.DeployCopy(), tc.in)
			if err != nil || rep.Code != 202 {
				t.Fatalf("copy: %v %d %.300s", err, rep.Code, rep.Body)
			}
			var started contract.FleetCopyStarted
			_ = json.Unmarshal(rep.Body, &started)
			sum := sha256.Sum256(tc.in.Content)
			if started.To != tc.in.To || started.Size != len(tc.in.Content) || started.SHA256 != hex.EncodeToString(sum[:]) ||
				!slices.Equal(started.Nodes, slices.Concat(tc.batches...)) {
				t.Errorf("started: %+v", started)
			}
			d, err := p.sched.Snapshot(ctx, started.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != contract.KindCopy || len(d.Batches) != len(tc.batches) {
				t.Fatalf("deployment: kind %q, batches %+v", d.Kind, d.Batches)
			}
			for k, group := range tc.batches {
				if bt := d.Batches[k]; !slices.Equal(bt.Nodes, group) {
					t.Errorf("batch %d: %+v, want nodes %v", k, bt, group)
				}
			}
			for _, st := range d.Steps {
				if st.Component != tc.comp || st.Action != "copy" {
					t.Errorf("step %s: %s/%s", st.ID, st.Component, st.Action)
				}
			}
			e, err := b.Res.Deployments.Get(ctx, started.ID)
			if err != nil {
				t.Fatal(err)
			}
			var rec sched.Record
			if err := json.Unmarshal(e.Value(), &rec); err != nil || !rec.Through {
				t.Errorf("a copy halts on a failure (through %v, %v)", rec.Through, err)
			}
			spec := queuedStep(t, b, started.ID, tc.batches[0][0])
			if err := bus.OpenStep(&spec); err != nil {
				t.Fatal(err)
			}
			if len(spec.Files) != 1 || !bytes.Equal(spec.Files[0].Content, tc.in.Content) || spec.Files[0].SHA256 != started.SHA256 ||
				spec.Files[0].Path != tc.in.To || spec.Files[0].Mode != tc.mode || !spec.KeepOutput || !strings.Contains(spec.Script, "sha256sum") {
				t.Errorf("step queued: %+v files %d", spec.Action, len(spec.Files))
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

// queuedStep is the step of deployment id queued for node ip.
func queuedStep(t *testing.T, b *bustest.Bus, id, ip string) contract.Step {
	t.Helper()
	ctx := context.Background()
	var spec contract.Step
	for deadline := time.Now().Add(10 * time.Second); spec.ID == ""; time.Sleep(20 * time.Millisecond) {
		if m, err := b.Res.JS.Stream(ctx, bus.StreamSteps); err == nil {
			if msg, err := m.GetLastMsgForSubject(ctx, subject.Step(id, ip)); err == nil {
				_ = json.Unmarshal(msg.Data, &spec)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the first step was not queued")
		}
	}
	return spec
}
