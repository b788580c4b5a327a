package nodeclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/subject"
)

func TestReporting(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		interval int
		ago      time.Duration
		missed   int
		want     bool
	}{
		{"just reported", 5, time.Second, 3, true},
		{"missed three beats", 5, 15 * time.Second, 3, true},
		{"missed four", 5, 16 * time.Second, 3, false},
		{"no interval counts as 1 s", 0, 3 * time.Second, 3, true},
		{"no interval, silent", 0, 4 * time.Second, 3, false},
		{"default missed", 5, 15 * time.Second, 0, true},
		{"default missed, silent", 5, 16 * time.Second, 0, false},
	}
	for _, tt := range tests {
		hb := contract.Heartbeat{IntervalS: tt.interval}
		if got := nodeclient.Reporting(hb, now.Add(-tt.ago), now, tt.missed); got != tt.want {
			t.Errorf("%s: Reporting = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// Exec and Probe through a stand-in installer on the real bus: the reply,
// the installer's refusal as *AnswerError, no installer as the bus's error.
func TestExecAndProbe(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	if _, err := nodeclient.Exec(ctx, b.NC, "10.0.0.1", "true", time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("no installer: %v", err)
	}
	svc, err := micro.AddService(b.NC, micro.Config{Name: "installer", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var got contract.Exec
	handlers := map[string]kit.Handler{
		subject.InstallerExec(): func(_ context.Context, req micro.Request) (int, any, error) {
			if err := kit.Decode(req, &got); err != nil {
				return 0, nil, err
			}
			if got.Node == "10.0.0.9" {
				return 0, nil, kit.Errorf(400, "node %s is not in the config", got.Node)
			}
			return 200, contract.ExecReply{V: 1, ExitCode: 3, Output: "out"}, nil
		},
		subject.InstallerProbe(): func(_ context.Context, req micro.Request) (int, any, error) {
			var p contract.Probe
			if err := kit.Decode(req, &p); err != nil {
				return 0, nil, err
			}
			return 200, contract.ProbeReply{V: 1, Nodes: []contract.ProbeResult{{IP: p.Nodes[0], Reachable: p.V == contract.Version}}}, nil
		},
	}
	for subj, h := range handlers {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(quiet, h), micro.WithEndpointSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := nodeclient.Exec(ctx, b.NC, "10.0.0.1", "echo out; exit 3", 7*time.Second)
	if err != nil || r.ExitCode != 3 || r.Output != "out" || got.TimeoutS != 7 || got.Script != "echo out; exit 3" || got.V != contract.Version {
		t.Fatalf("exec: %+v %v (sent %+v)", r, err, got)
	}
	var ae *nodeclient.AnswerError
	if _, err := nodeclient.Exec(ctx, b.NC, "10.0.0.9", "true", time.Second); !errors.As(err, &ae) || ae.Code != 400 || ae.Msg != "node 10.0.0.9 is not in the config" {
		t.Fatalf("refused exec: %v", err)
	}
	res, err := nodeclient.Probe(ctx, b.NC, contract.Probe{Nodes: []string{"10.0.0.2"}})
	if err != nil || len(res) != 1 || res[0].IP != "10.0.0.2" || !res[0].Reachable {
		t.Fatalf("probe: %+v %v", res, err)
	}
}
