package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// BenchmarkStepsThroughBus measures how fast the scheduler dispatches
// no-op steps and records their results through the bus, on the embedded
// server and on a 3-server cluster (every stream and bucket on 3
// replicas): "flat" is 400 steps on 400 nodes, all ready at once (the
// dispatch rate), "chains" 100 nodes of 4 steps each, one after the other
// (a result must be stored before the next step goes). The worker at the
// queue reports each step done at once; nodes and SSH are not involved.
//
//	go test -run '^$' -bench StepsThroughBus -benchtime 1x ./planner/
func BenchmarkStepsThroughBus(b *testing.B) {
	for _, where := range []string{"embedded", "cluster3"} {
		for _, shape := range []struct {
			name         string
			nodes, chain int
		}{{"flat", 400, 1}, {"chains", 100, 4}} {
			b.Run(where+"/"+shape.name, func(b *testing.B) {
				nc, res := benchBus(b, where)
				for i := 0; i < b.N; i++ {
					benchDeploy(b, nc, res, fmt.Sprintf("d-bench-%d", i), shape.nodes, shape.chain)
				}
			})
		}
	}
}

func benchBus(b *testing.B, where string) (*nats.Conn, *bus.Resources) {
	ctx := context.Background()
	var nc *nats.Conn
	var err error
	if where == "embedded" {
		srv, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Stop)
		if nc, err = srv.Connect("bench"); err != nil {
			b.Fatal(err)
		}
	} else {
		c := bustest.StartCluster(b, 3)
		if nc, err = bus.Dial(c.URL(), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(nc.Close)
	res, err := bus.Declare(ctx, nc)
	if err != nil {
		b.Fatal(err)
	}
	return nc, res
}

func benchDeploy(b *testing.B, nc *nats.Conn, res *bus.Resources, id string, nodes, chain int) {
	ctx := context.Background()
	rec := &Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: contract.DeployPending, Created: time.Now()}}, specs: map[string]contract.Step{}, prios: map[string]int{}}
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("10.1.%d.%d", n/250, n%250+1)
		prev := ""
		for c := 0; c < chain; c++ {
			sid := steps.ID(node, fmt.Sprintf("c%d", c), "install")
			var after []string
			if prev != "" {
				after = []string{prev}
			}
			rec.Steps = append(rec.Steps, contract.StepStatus{ID: sid, Node: node, Component: fmt.Sprintf("c%d", c), Action: "install", State: contract.StatePending, After: after})
			rec.specs[sid] = contract.Step{V: 1, Deployment: id, ID: sid, Node: node, Component: fmt.Sprintf("c%d", c), Action: "install", Attempt: 1}
			rec.prios[sid] = len(rec.prios)
			prev = sid
		}
	}
	rec.reindex()
	total := len(rec.Steps)

	// The no-op worker: every step it takes, and those chained after it,
	// are reported succeeded at once, in order.
	var mu sync.Mutex
	var lastTaken time.Time
	taken := 0
	stop := workSteps(b, res, "bench", 1000, func(chain []contract.Step) bool {
		mu.Lock()
		taken += len(chain)
		lastTaken = time.Now()
		mu.Unlock()
		for _, s := range chain {
			now := time.Now()
			if publishEvent(ctx, res, contract.StepEvent{V: 1, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component, Action: s.Action,
				State: contract.StateSucceeded, Attempt: s.Attempt, Started: &now, Finished: &now, Final: true}) != nil {
				return false
			}
		}
		return true
	})
	defer stop()
	s := benchScheduler(b, nc, res)
	defer s.Stop()

	b.ResetTimer()
	start := time.Now()
	if err := s.Begin(ctx, rec); err != nil {
		b.Fatal(err)
	}
	for {
		d, err := s.Snapshot(ctx, id)
		if err == nil && (d.State == contract.DeploySucceeded || d.State == contract.DeployFailed) {
			if d.State != contract.DeploySucceeded {
				b.Fatalf("%s: %s: %s", id, d.State, d.Error)
			}
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%s not finished in 5m", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	mu.Lock()
	dispatched := lastTaken.Sub(start)
	mu.Unlock()
	if taken != total {
		b.Errorf("the worker took %d steps of %d", taken, total)
	}
	b.ReportMetric(float64(total)/dispatched.Seconds(), "dispatched/s")
	b.ReportMetric(float64(total)/took.Seconds(), "completed/s")
	b.Logf("%s: %d steps on %d nodes: all dispatched in %s, all completed in %s", id, total, nodes, dispatched.Round(time.Millisecond), took.Round(time.Millisecond))
}

// workSteps takes the steps' work queue as durable, at most pending
// unacknowledged, and hands each message's chain to work in a goroutine of
// its own: the message is acknowledged when work returns true, until stop.
func workSteps(b *testing.B, res *bus.Resources, durable string, pending int, work func(chain []contract.Step) bool) (stop func()) {
	cons, err := res.JS.CreateOrUpdateConsumer(context.Background(), bus.StreamSteps,
		jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: pending})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var head contract.Step
		if json.Unmarshal(m.Data(), &head) != nil {
			return
		}
		go func() {
			if work(append([]contract.Step{head}, head.Chain...)) {
				_ = m.Ack()
			}
		}()
	})
	if err != nil {
		b.Fatal(err)
	}
	return cc.Stop
}

// publishEvent publishes ev as an installer does.
func publishEvent(ctx context.Context, res *bus.Resources, ev contract.StepEvent) error {
	data, _ := json.Marshal(ev)
	_, err := res.JS.Publish(ctx, subject.DeployEvent(ev.Deployment, subject.DeployStep), data)
	return err
}

// benchScheduler is a scheduler on nc that logs nothing and is told of no
// end.
func benchScheduler(b *testing.B, nc *nats.Conn, res *bus.Resources) *Scheduler {
	s, err := New(context.Background(), Options{NC: nc, Res: res, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Hooks: noHooks{}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
