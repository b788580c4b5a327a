package sched

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// fakeWorker stands in for the installer at the work queue's boundary: it
// runs every step by sleeping and reports it, and checks that no node ever
// runs two steps at once. The real installer is tested on real nodes.
type fakeWorker struct {
	t       *testing.T
	mu      sync.Mutex
	running map[string]string
	ran     map[string]int
	order   []string
	fail    map[string]bool
	cc      jetstream.ConsumeContext
}

func startWorker(t *testing.T, b *bustest.Bus, fail map[string]bool) *fakeWorker {
	w := &fakeWorker{t: t, running: map[string]string{}, ran: map[string]int{}, fail: fail}
	ctx := context.Background()
	cons, err := b.Res.JS.CreateOrUpdateConsumer(ctx, bus.StreamSteps, jetstream.ConsumerConfig{Durable: "fake", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100})
	if err != nil {
		t.Fatal(err)
	}
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		var s contract.Step
		if err := json.Unmarshal(m.Data(), &s); err != nil {
			t.Errorf("bad step: %v", err)
			return
		}
		go w.run(b, m, s)
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs a step and the steps chained after it, in order, stopping at
// the first that fails, as the installer does.
func (w *fakeWorker) run(b *bustest.Bus, m jetstream.Msg, head contract.Step) {
	w.mu.Lock()
	if other := w.running[head.Node]; other != "" {
		w.t.Errorf("node %s runs %s and %s at once", head.Node, other, head.ID)
	}
	w.running[head.Node] = head.ID
	w.mu.Unlock()
	steps := append([]contract.Step{head}, head.Chain...)
	for i, s := range steps {
		pub := func(state string, final bool) {
			now := time.Now()
			ev := contract.StepEvent{V: 1, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component, Action: s.Action, State: state, Attempt: s.Attempt, Started: &now, Final: final}
			d, _ := json.Marshal(ev)
			if _, err := b.Res.JS.Publish(context.Background(), subject.DeployEvent(s.Deployment, subject.DeployStep), d); err != nil {
				w.t.Errorf("publish: %v", err)
			}
		}
		pub(contract.StateRunning, false)
		time.Sleep(20 * time.Millisecond)
		w.mu.Lock()
		w.ran[s.ID]++
		w.order = append(w.order, s.ID)
		// The node is free once its last step ends, before that step's
		// final event, which lets the scheduler send the node's next:
		// freed after it, a next step sent at once looked like two at once.
		if i == len(steps)-1 || w.fail[s.ID] {
			w.running[head.Node] = ""
		}
		w.mu.Unlock()
		if w.fail[s.ID] {
			pub(contract.StateFailed, true)
			_ = m.Term()
			return
		}
		pub(contract.StateSucceeded, true)
	}
	_ = m.Ack()
}

type noHooks struct{}

func (noHooks) Ended(*Record) {}

// startScheduler starts a scheduler with o, logging only with -v.
func startScheduler(t *testing.T, o Options) *Scheduler {
	t.Helper()
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(out, nil)).With("holder", o.Holder)
	}
	if o.Hooks == nil {
		o.Hooks = noHooks{}
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testScheduler(t *testing.T, b *bustest.Bus) *Scheduler {
	return startScheduler(t, Options{NC: b.NC, Res: b.Res})
}

// diamond: n1 a → n1 b; n2 c after n1 a; n2 d after c and b; n3 e alone.
func diamond(id string) *Record {
	planned := []struct {
		node, comp string
		after      []string
	}{
		{"10.0.0.1", "a", nil},
		{"10.0.0.1", "b", []string{"10.0.0.1/a/install"}},
		{"10.0.0.2", "c", []string{"10.0.0.1/a/install"}},
		{"10.0.0.2", "d", []string{"10.0.0.2/c/install", "10.0.0.1/b/install"}},
		{"10.0.0.3", "e", nil},
		{"10.0.0.1", "f", nil},
	}
	rec := &Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: contract.DeployPending, Created: time.Now()}}, specs: map[string]contract.Step{}, prios: map[string]int{}}
	for i, s := range planned {
		sid := steps.ID(s.node, s.comp, "install")
		rec.Steps = append(rec.Steps, contract.StepStatus{ID: sid, Node: s.node, Component: s.comp, Action: "install", State: contract.StatePending, After: s.after})
		rec.specs[sid] = contract.Step{V: 1, Deployment: id, ID: sid, Node: s.node, Component: s.comp, Action: "install", Attempt: 1}
		rec.prios[sid] = i
	}
	rec.reindex()
	return rec
}

func waitFinished(t *testing.T, s *Scheduler, id string) *contract.Deployment {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		d, err := s.Snapshot(context.Background(), id)
		if err == nil && (d.State == contract.DeploySucceeded || d.State == contract.DeployFailed) {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	d, _ := s.Snapshot(context.Background(), id)
	t.Fatalf("deployment %s did not finish: %+v", id, d)
	return nil
}

func TestSchedulerOrderAndOneStepPerNode(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	s := testScheduler(t, b)
	defer s.Stop()
	if err := s.Begin(context.Background(), diamond("d-1")); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-1")
	if d.State != contract.DeploySucceeded || d.Changed != 6 {
		t.Fatalf("got %s changed=%d", d.State, d.Changed)
	}
	pos := map[string]int{}
	for i, id := range w.order {
		pos[id] = i
	}
	for _, st := range d.Steps {
		for _, a := range st.After {
			if pos[a] > pos[st.ID] {
				t.Errorf("%s ran before its prerequisite %s", st.ID, a)
			}
		}
		if w.ran[st.ID] != 1 {
			t.Errorf("%s ran %d times", st.ID, w.ran[st.ID])
		}
	}
}

func TestSchedulerFailureSkipsDependentsOnly(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	w := startWorker(t, b, map[string]bool{"10.0.0.1/b/install": true})
	defer w.cc.Stop()
	s := testScheduler(t, b)
	defer s.Stop()
	if err := s.Begin(context.Background(), diamond("d-2")); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-2")
	want := map[string]string{"10.0.0.1/a/install": "succeeded", "10.0.0.1/b/install": "failed", "10.0.0.2/c/install": "succeeded",
		"10.0.0.2/d/install": "skipped", "10.0.0.3/e/install": "succeeded", "10.0.0.1/f/install": "succeeded"}
	for _, st := range d.Steps {
		if st.State != want[st.ID] {
			t.Errorf("%s: %s, want %s", st.ID, st.State, want[st.ID])
		}
	}
	if d.State != contract.DeployFailed || d.Error == "" {
		t.Fatalf("deployment %s %q", d.State, d.Error)
	}
}

// A scheduler stopped mid-deployment and started again on the same bus
// finishes it, and no step runs twice.
func TestSchedulerResumes(t *testing.T) {
	dir := t.TempDir()
	b := bustest.Start(t, bus.ServerOptions{DataDir: dir})
	s := testScheduler(t, b)
	if err := s.Begin(context.Background(), diamond("d-3")); err != nil {
		t.Fatal(err)
	}
	// Nothing runs the steps yet: the first ones wait in the queue.
	time.Sleep(200 * time.Millisecond)
	s.Stop()
	b.NC.Close()
	b.Srv.Stop()

	b = bustest.Start(t, bus.ServerOptions{DataDir: dir})
	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	s = testScheduler(t, b)
	defer s.Stop()
	if err := s.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-3")
	if d.State != contract.DeploySucceeded {
		t.Fatalf("resumed deployment: %s", d.State)
	}
	for id, n := range w.ran {
		if n != 1 {
			t.Errorf("%s ran %d times", id, n)
		}
	}
	if len(w.ran) != 6 {
		t.Errorf("%d steps ran, want 6", len(w.ran))
	}
}

// A chain fits in a message of the bus: the steps that would not go in
// the next one.
func TestChainFitsAMessage(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	s := testScheduler(t, b)
	defer s.Stop()
	rec := diamond("d-big")
	// a, b and f run on one node; each carries a file of a sixth of a
	// message (its JSON a third larger).
	big := make([]byte, b.NC.MaxPayload()/6)
	for _, id := range []string{"10.0.0.1/a/install", "10.0.0.1/b/install", "10.0.0.1/f/install"} {
		sp := rec.specs[id]
		sp.Files = []contract.StepFile{{Path: "/etc/big", Content: big}}
		rec.specs[id] = sp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = rec
	msg, ids, _, _, err := s.stepMsg("10.0.0.1/a/install")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || int64(len(msg.Data)) > b.NC.MaxPayload()/2 {
		t.Fatalf("chain %v in %d bytes (limit %d): want a and b", ids, len(msg.Data), b.NC.MaxPayload()/2)
	}
	if n := len(rec.chain("10.0.0.1/a/install")); n != 3 {
		t.Fatal("the test's chain is not three steps long before it is cut")
	}
}
