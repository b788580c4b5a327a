package planner

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Stop ends what the planner started and returns within stopWait, its
// goroutines gone: with a deployment running (its steps in the work queue,
// no installer taking them) and with an auto-revert waiting on the nodes'
// check (an installer that does not answer).
func TestStopEndsWorkInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, s *stopBed)
	}{
		{"mid-deploy", func(t *testing.T, s *stopBed) {
			s.answer()
			rep, err := kit.Request(context.Background(), s.b.NC, subject.DeployStart(), contract.DeployStart{V: contract.Version})
			if err != nil || rep.Code != 202 {
				t.Fatalf("deploy: %v %+v", err, rep)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if id, ok := s.p.sched.Running(); ok && id != "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the deployment is not running")
				}
			}
		}},
		{"mid-auto-revert", func(t *testing.T, s *stopBed) {
			s.lastGood(t)
			halted := &sched.Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-20000101-000002-000002", State: contract.DeployFailed},
				Batches: []contract.Batch{{Component: "web", State: contract.BatchFailed}}},
				Revert: &sched.RevertPlan{Components: []string{"web"}, MaxInFlight: "1"}}
			ends{s.p}.Ended(halted)
			select {
			case <-s.probed:
			case <-time.After(10 * time.Second):
				t.Fatal("the auto-revert did not check the nodes")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStopBed(t)
			base := ours()
			s.startPlanner(t)
			tc.start(t, s)
			began := time.Now()
			s.p.Stop()
			if took := time.Since(began); took > stopWait {
				t.Errorf("Stop took %s (bound %s)", took, stopWait)
			}
			// The installer has still not answered: what waited on it
			// ended with Stop.
			for deadline := time.Now().Add(5 * time.Second); len(ours()) > len(base); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of the engine's goroutines after Stop, %d before Start:\n%s", len(ours()), len(base), strings.Join(ours(), "\n\n"))
				}
			}
		})
	}
}

// ours are the stacks of the goroutines running the engine's code, but
// the tests' and the fake installer's: the in-process NATS server's own
// come and go with its streams and consumers.
func ours() []string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "deployment-engine/engine/") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "planner.startStopBed") {
			out = append(out, g)
		}
	}
	return out
}

// stopBed is a bus with an installer whose probe answers every node once
// answer was called, and until then waits for release.
type stopBed struct {
	b       *bustest.Bus
	p       *Planner
	open    chan struct{}
	release chan struct{}
	probed  chan struct{}
}

func startStopBed(t *testing.T) *stopBed {
	b := bustest.Start(t, bus.ServerOptions{})
	s := &stopBed{b: b, open: make(chan struct{}), release: make(chan struct{}), probed: make(chan struct{}, 16)}
	t.Cleanup(func() { close(s.release) })
	probe := func(ctx context.Context, req micro.Request) (int, any, error) {
		var q contract.Probe
		if err := kit.Decode(req, &q); err != nil {
			return 0, nil, err
		}
		s.probed <- struct{}{}
		select {
		case <-s.open:
		case <-s.release:
			return 503, nil, kit.Errorf(503, "released")
		}
		out := contract.ProbeReply{V: contract.Version}
		for _, ip := range q.Nodes {
			out.Nodes = append(out.Nodes, contract.ProbeResult{IP: ip, Reachable: true, Monit: "5.33.0", OS: contract.NodeOS{ID: "debian", VersionID: "12"}})
		}
		return 200, out, nil
	}
	exec := func(context.Context, micro.Request) (int, any, error) {
		return 200, contract.ExecReply{V: contract.Version, Error: "not read in this test", ExitCode: 1}, nil
	}
	fakeInstaller(t, b.NC, map[string]kit.Handler{subject.InstallerProbe(): probe, subject.InstallerExec(): exec})
	if err := bus.StoreConfig(context.Background(), b.Res.Config, goldenStarter()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stopBed) answer() { close(s.open) }

func (s *stopBed) startPlanner(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	s.p, err = Start(context.Background(), Options{NC: s.b.NC, Res: s.b.Res, Catalogs: map[string]*catalog.Catalog{"starter": cat},
		EngineID: "e-1", Port: 50000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeTimeout: time.Minute, PlannerID: "p-1",
		SecretKey: []byte("stop-key")})
	if err != nil {
		t.Fatal(err)
	}
}

// lastGood stores a deployment that succeeded with the stored config: what
// an auto-revert goes back to.
func (s *stopBed) lastGood(t *testing.T) {
	ctx := context.Background()
	id := "d-20000101-000001-000001"
	rec, _ := json.Marshal(sched.Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: contract.DeploySucceeded, Created: time.Now()}}})
	if _, err := s.b.Res.Deployments.Put(ctx, id, rec); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(goldenStarter())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.Res.Scheduler.Put(ctx, configKey(id), cfg); err != nil {
		t.Fatal(err)
	}
}
