package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// BenchmarkRecordStore measures what a 4,200-step deployment (600 nodes ×
// 7 chained steps; a worker reports each step running, then done 300ms
// later) writes to DE_DEPLOYMENTS: bytes per write (about one a flush)
// and per deployment, every message the bucket takes counted: the record
// written whole (at its start and once ended) apart from its changes (a
// flush's), and those per step they carry; and the size of the deployment as GET /deployments/{id}
// answers it once ended: whole, as its summary (?summary=1) and with a
// first page of steps (?limit=100).
//
//	go test -run '^$' -bench RecordStore -benchtime 1x ./sched/
func BenchmarkRecordStore(b *testing.B) {
	nc, res := benchBus(b, "embedded")
	// Writes of a record's changes (<id>.<n>) are counted apart from those
	// of the record whole (<id>); a purge's marker carries no bytes.
	// A change's steps are counted too: bytes per step change.
	var writes, bytes, changes, changeBytes, stepChanges atomic.Int64
	sub, err := nc.Subscribe("$KV."+bus.KVDeployments+".>", func(m *nats.Msg) {
		if len(m.Data) == 0 {
			return
		}
		writes.Add(1)
		bytes.Add(int64(len(m.Data)))
		if strings.Count(m.Subject, ".") > 2 {
			changes.Add(1)
			changeBytes.Add(int64(len(m.Data)))
			var c change
			if json.Unmarshal(m.Data, &c) == nil {
				stepChanges.Add(int64(len(c.Steps)))
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for i := 0; i < b.N; i++ {
		writes.Store(0)
		bytes.Store(0)
		changes.Store(0)
		changeBytes.Store(0)
		stepChanges.Store(0)
		id := fmt.Sprintf("d-store-%d", i)
		rec := bigRecord(id, 600, 7)
		pacedDeploy(b, nc, res, rec, 300*time.Millisecond)
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		w, n := writes.Load(), bytes.Load()
		b.ReportMetric(float64(n), "B/deployment")
		b.ReportMetric(float64(w), "writes/deployment")
		b.ReportMetric(float64(n-changeBytes.Load())/float64(max(w-changes.Load(), 1)), "B/whole-write")
		b.ReportMetric(float64(changeBytes.Load())/float64(max(changes.Load(), 1)), "B/change-write")
		b.ReportMetric(float64(changeBytes.Load())/float64(max(stepChanges.Load(), 1)), "B/step-change")
		d, err := (&Scheduler{res: res}).Snapshot(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		full, _ := json.Marshal(d)
		b.ReportMetric(float64(len(full)), "B/GET")
		summary, _ := json.Marshal(contract.PageOf(*d, contract.StepQuery{None: true}))
		b.ReportMetric(float64(len(summary)), "B/GET-summary")
		page, _ := json.Marshal(contract.PageOf(*d, contract.StepQuery{}))
		b.ReportMetric(float64(len(page)), "B/GET-page")
	}
}

// bigRecord is a pending deployment of nodes × chain steps, each node's
// steps one after the other.
func bigRecord(id string, nodes, chain int) *Record {
	var planned []*steps.Step
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("10.1.%d.%d", n/250, n%250+1)
		prev := ""
		for c := 0; c < chain; c++ {
			comp := fmt.Sprintf("component-%d", c)
			sid := steps.ID(node, comp, "install")
			var after []string
			if prev != "" {
				after = []string{prev}
			}
			planned = append(planned, &steps.Step{Spec: contract.Step{V: 1, Deployment: id, ID: sid, Node: node, Component: comp, Action: "install"}, After: after, Prio: len(planned)})
			prev = sid
		}
	}
	return NewRecord(id, map[string][]string{}, planned)
}

// pacedDeploy runs rec to its end with a worker that reports each step
// running, then succeeded after took.
func pacedDeploy(b *testing.B, nc *nats.Conn, res *bus.Resources, rec *Record, took time.Duration) {
	ctx := context.Background()
	stop := workSteps(b, res, "paced", 2000, func(chain []contract.Step) bool {
		for _, s := range chain {
			started := time.Now()
			for _, st := range []string{contract.StateRunning, contract.StateSucceeded} {
				ev := contract.StepEvent{V: 1, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component, Action: s.Action,
					State: st, Attempt: s.Attempt, Started: &started}
				if st == contract.StateSucceeded {
					time.Sleep(took)
					now := time.Now()
					ev.Finished, ev.Final, ev.ExitCode = &now, true, new(int)
				}
				if publishEvent(ctx, res, ev) != nil {
					return false
				}
			}
		}
		return true
	})
	defer stop()
	s := benchScheduler(b, nc, res)
	defer s.Stop()
	start := time.Now()
	if err := s.Begin(ctx, rec); err != nil {
		b.Fatal(err)
	}
	for {
		d, err := s.Snapshot(ctx, rec.ID)
		if err == nil && contract.Final(d.State) {
			if d.State != contract.DeploySucceeded {
				b.Fatalf("%s: %s: %s", rec.ID, d.State, d.Error)
			}
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%s not finished in 5m", rec.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Logf("%s: %d steps, ended in %s", rec.ID, len(rec.Steps), time.Since(start).Round(time.Millisecond))
}
