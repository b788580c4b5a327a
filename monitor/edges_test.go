package monitor_test

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
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/deployment-engine/engine/monitor"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// beat publishes one heartbeat of ip.
func beat(t *testing.T, nc *nats.Conn, ip string, cpu float64, comps ...contract.ComponentState) {
	t.Helper()
	raw, _ := json.Marshal(contract.Heartbeat{V: 1, IP: ip, Time: time.Now(), IntervalS: 1, CPUPct: cpu, Components: comps})
	if err := nc.Publish(subject.Node(ip, subject.VerbHeartbeat), raw); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
}

func putConfig(t *testing.T, res *bus.Resources, comps map[string][]string) {
	t.Helper()
	raw, _ := json.Marshal(contract.Config{Components: comps})
	if _, err := res.Config.Put(context.Background(), bus.KeyConfig, raw); err != nil {
		t.Fatal(err)
	}
}

// A BOSH job whose pre-start failed is DOWN with the step's reason, in
// status and in de_component_instance_up, though its agent reports it
// configured; after the monitor's restart too; until a pre-start passes.
func TestFailedPreStartIsDown(t *testing.T) {
	e := newEnv(t)
	const ip = "10.213.251.1"
	putConfig(t, e.res, map[string][]string{"cfgjob": {ip}})
	configured := contract.ComponentState{Name: "cfgjob", Monit: "configured (no process)", Running: true}
	step := func(state, msg string) {
		code := 1
		raw, _ := json.Marshal(contract.StepEvent{V: 1, Deployment: "d-1", ID: ip + "/cfgjob/pre-start", Node: ip, Component: "cfgjob",
			Action: "pre-start", State: state, Attempt: 1, ExitCode: &code, Error: msg, Final: true})
		if _, err := e.res.JS.Publish(context.Background(), subject.DeployEvent("d-1", subject.DeployStep), raw); err != nil {
			t.Fatal(err)
		}
	}
	upMetric := func() float64 {
		fams, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			byName[f.GetName()] = f
		}
		return value(byName, "de_component_instance_up", "component", "cfgjob", "node", ip)
	}
	want := func(what, status, reason string, up float64) {
		t.Helper()
		var got contract.StatusEntry
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			beat(t, e.nc, ip, 1, configured)
			got = e.statuses(t)["cfgjob@"+ip]
			if got.Status == status && strings.Contains(got.Reason, reason) && upMetric() == up {
				return
			}
		}
		t.Fatalf("%s: %+v, de_component_instance_up %v; want %s (%q), %v", what, got, upMetric(), status, reason, up)
	}
	want("configured", "CONFIGURED", "", 1)
	step(contract.StateFailed, "pre-start of cfgjob failed (exit 1)")
	want("pre-start failed", "DOWN", "pre-start failed (deployment d-1): pre-start of cfgjob failed (exit 1)", 0)

	e.mon.Stop()
	var err error
	if e.mon, err = monitor.Start(context.Background(), monitor.Options{NC: e.nc, Res: e.res, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	e.reg = prometheusRegistry(e.mon)
	want("after a restart of the monitor", "DOWN", "pre-start failed", 0)

	step(contract.StateSucceeded, "")
	want("pre-start passed", "CONFIGURED", "", 1)
}

func prometheusRegistry(m *monitor.Monitor) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(m.Collectors()...)
	return r
}

// slowNodes is a DE_NODES whose writes hang until their ctx ends, then fail.
type slowNodes struct {
	jetstream.KeyValue
}

func (s slowNodes) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(time.Minute):
		return 0, context.DeadlineExceeded
	}
}

// A store whose writes hang holds up no heartbeat: each is taken at once,
// and the write that fails is said in the log.
func TestHeartbeatsPassASlowStore(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	res := *b.Res
	res.Nodes = slowNodes{b.Res.Nodes}
	var log bustest.LogBuffer
	m, err := monitor.Start(context.Background(), monitor.Options{NC: b.NC, Res: &res, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	const ip = "10.213.251.2"
	putConfig(t, &res, map[string][]string{"web": {ip}})
	e := &env{nc: b.NC, res: &res}
	up := contract.ComponentState{Name: "web", Process: "web", Monit: "OK", Running: true}
	for i, cpu := range []float64{1, 2, 3} {
		beat(t, b.NC, ip, cpu, up)
		want := []string{"1%", "2%", "3%"}[i]
		var got contract.StatusEntry
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = e.statuses(t)["web@"+ip]; got.Cpu == want {
				break
			}
		}
		if got.Cpu != want {
			t.Fatalf("heartbeat %d not taken within 1 s while the store hangs: %+v", i+1, got)
		}
	}
	m.Stop()
	if !strings.Contains(log.String(), "heartbeat is not kept") {
		t.Fatalf("a failed write of a heartbeat is not in the log:\n%s", log.String())
	}
}

// Stop ends a restart that waits for a node's agent which never answers,
// within its bound, and leaves none of the monitor's goroutines.
func TestStopEndsARestartInFlight(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	const ip = "10.213.251.3"
	putConfig(t, b.Res, map[string][]string{"web": {ip}})
	asked := make(chan struct{}, 1)
	if _, err := b.NC.Subscribe(subject.Node(ip, subject.VerbControl), func(*nats.Msg) { asked <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	m, err := monitor.Start(context.Background(), monitor.Options{NC: b.NC, Res: b.Res, ControlWait: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	beat(t, b.NC, ip, 1, contract.ComponentState{Name: "web", Process: "web", Monit: "OK", Running: true})
	time.Sleep(200 * time.Millisecond)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, _ = kit.Request(ctx, b.NC, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "web", IP: ip}, Action: "restart"})
	}()
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart never reached the node's agent")
	}
	began := time.Now()
	done := make(chan struct{})
	go func() { m.Stop(); close(done) }()
	select {
	case <-done:
		t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10 s of a restart in flight")
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "monitor.(*Monitor)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the monitor's goroutines outlive its Stop:\n%s", stacks)
		}
	}
}
