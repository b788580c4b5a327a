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

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// frozenInstaller stands for an installer stuck on a node that accepts a
// connection and never speaks: it takes every probe and answers none.
// Each probe it takes is signalled on the channel.
func frozenInstaller(t *testing.T, nc *nats.Conn) <-chan struct{} {
	t.Helper()
	probed := make(chan struct{}, 16)
	sub, err := nc.Subscribe(subject.InstallerProbe(), func(*nats.Msg) {
		select {
		case probed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return probed
}

// starterConfig is the starter stack on three nodes, with a user.
func starterConfig() contract.Config {
	return contract.Config{
		Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3", "10.9.0.4"}, "redis": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: "starter", Adduser: contract.F(1), User: "vcap", Password: "secret-pw"},
	}
}

// startStarter starts a planner with the starter catalog whose probes
// wait long (30 s a node), with starterConfig stored and its secrets
// allowed on 10.9.0.5, the node a scale adds.
func startStarter(t *testing.T, b *bustest.Bus) *Planner {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.StoreConfig(ctx, b.Res.Config, starterConfig()); err != nil {
		t.Fatal(err)
	}
	ips := append(starterConfig().Nodes(), "10.9.0.5")
	hosts := contract.SecretHosts{V: contract.Version, Hosts: map[string][]string{"root": ips, "password": ips}}
	if err := bus.StoreSecretHosts(ctx, b.Res.Engine, hosts); err != nil {
		t.Fatal(err)
	}
	p, err := Start(ctx, Options{NC: b.NC, Res: b.Res, Catalogs: map[string]*catalog.Catalog{"starter": cat}, EngineID: "e-1", Port: 50000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeTimeout: 30 * time.Second, PlannerID: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// storeGood records d-20000101-000000-000001 as a deployment of cfg that
// succeeded: the config a rollback or an auto-revert goes back to.
func storeGood(t *testing.T, p *Planner, cfg contract.Config) {
	t.Helper()
	ctx := context.Background()
	rec := sched.NewRecord("d-20000101-000000-000001", steps.Placement(cfg), nil)
	rec.State = contract.DeploySucceeded
	b, _ := json.Marshal(rec)
	if _, err := p.o.Res.Deployments.Put(ctx, rec.ID, b); err != nil {
		t.Fatal(err)
	}
	p.recordConfig(ctx, rec, &cfg)
}

// engineGoroutines counts the goroutines outside the embedded NATS
// server (whose own come and go with its streams), with their stacks.
func engineGoroutines() (int, string) {
	buf := make([]byte, 1<<22)
	n, out := 0, ""
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "nats-server/v2/server.") {
			n++
			out += g + "\n\n"
		}
	}
	return n, out
}

// settled waits until no more goroutines run than before.
func settled(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	n, stacks := engineGoroutines()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n, stacks = engineGoroutines()
	}
	if n > before {
		t.Errorf("%d goroutines after Stop, %d before Start:\n%s", n, before, stacks)
	}
}

// stopWithin stops p, failing past the bound Stop promises.
func stopWithin(t *testing.T, p *Planner) {
	t.Helper()
	t0 := time.Now()
	p.Stop()
	if took := time.Since(t0); took > stopWait {
		t.Errorf("Stop took %s", took)
	}
}

// A command stuck probing a node that never answers holds up no config
// write: each checks its nodes without the planner's lock. Stopping the
// planner then ends the stuck command at once, leaving nothing running.
func TestNoProbeUnderThePlannerLock(t *testing.T) {
	older := starterConfig()
	older.Properties.Domain = "older.local"
	for _, c := range []struct {
		name  string
		subj  string
		body  any
		setup func(t *testing.T, p *Planner)
	}{
		{"scale", subject.DeployScale(), map[string]string{"Comp": "web", "Ip": "10.9.0.5"}, nil},
		{"rolling restart", subject.DeployRestart(), contract.RollingRestart{Component: "web", IP: "10.9.0.3", MaxInFlight: "1"}, func(t *testing.T, p *Planner) {
			b, _ := json.Marshal(steps.Placement(starterConfig()))
			if _, err := p.o.Res.Scheduler.Put(context.Background(), "placement", b); err != nil {
				t.Fatal(err)
			}
		}},
		{"rollback", subject.DeployRollback(), nil, func(t *testing.T, p *Planner) { storeGood(t, p, older) }},
		{"reapply", subject.DeployReapply(), contract.Reapply{Component: "web", IP: "10.9.0.3", Reason: "test"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bustest.Start(t, bus.ServerOptions{})
			probed := frozenInstaller(t, b.NC)
			before, _ := engineGoroutines()
			p := startStarter(t, b)
			stopped := false
			defer func() {
				if !stopped {
					p.Stop()
				}
			}()
			if c.setup != nil {
				c.setup(t, p)
			}
			stuck := make(chan kit.Reply, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				rep, _ := kit.Request(ctx, b.NC, c.subj, c.body)
				stuck <- rep
			}()
			select {
			case <-probed:
			case rep := <-stuck:
				t.Fatalf("answered before probing: %d %s", rep.Code, rep.Body)
			case <-time.After(10 * time.Second):
				t.Fatal("no probe")
			}

			cfg := starterConfig()
			cfg.Properties.Domain = "newer.local"
			raw, _ := json.Marshal(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			t0 := time.Now()
			rep, err := kit.Request(ctx, b.NC, subject.ConfigPut(), contract.ConfigPut{V: contract.Version, Config: raw})
			if err != nil || rep.Code != 201 {
				t.Fatalf("config write while %s probes: %+v %v", c.name, rep, err)
			}
			if took := time.Since(t0); took > 2*time.Second {
				t.Errorf("the config write waited %s behind the %s", took, c.name)
			}

			stopWithin(t, p)
			stopped = true
			select {
			case rep := <-stuck:
				if rep.Code < 500 {
					t.Errorf("the stuck %s answered %d %s", c.name, rep.Code, rep.Body)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("the stuck %s had no answer after Stop", c.name)
			}
			settled(t, before)
		})
	}
}

// A planner stopped while an auto-revert checks a node that never answers
// ends the revert and returns at once, leaving nothing running (the revert
// ran on a goroutine of its own for up to 2 minutes).
func TestStopMidAutoRevert(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	probed := frozenInstaller(t, b.NC)
	before, _ := engineGoroutines()
	p := startStarter(t, b)
	storeGood(t, p, starterConfig())
	halted := sched.NewRecord("d-20000101-000000-000002", nil, nil)
	halted.State = contract.DeployFailed
	halted.Revert = &sched.RevertPlan{Components: []string{"web"}, MaxInFlight: "1"}
	halted.Batches = []contract.Batch{{Component: "web", State: contract.BatchFailed}}
	ends{p}.Ended(halted)
	select {
	case <-probed:
	case <-time.After(10 * time.Second):
		t.Fatal("the auto-revert did not probe")
	}
	stopWithin(t, p)
	settled(t, before)
	if _, ok := p.sched.Running(); ok {
		t.Error("a revert began after Stop")
	}
}
