package sched

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func watchedScheduler(t *testing.T, b *bustest.Bus, holder string, silent time.Duration) *Scheduler {
	return startScheduler(t, Options{NC: b.NC, Res: b.Res, SilentAfter: silent, LeaseTTL: 3 * time.Second, Holder: holder})
}

func withDeadline(rec *Record, secs int) *Record {
	for id, sp := range rec.specs {
		sp.TimeoutS = secs
		rec.specs[id] = sp
	}
	return rec
}

// sink takes steps from the queue and does what its hook says with each
// step of a message's chain, in order, going on while the hook says the
// step succeeded (as the installer does).
type sink struct {
	mu   sync.Mutex
	got  map[string]int
	hook func(n int, m jetstream.Msg, s contract.Step) bool
	cc   jetstream.ConsumeContext
}

func startSink(t *testing.T, b *bustest.Bus, hook func(n int, m jetstream.Msg, s contract.Step) bool) *sink {
	t.Helper()
	k := &sink{got: map[string]int{}, hook: hook}
	cons, err := b.Res.JS.CreateOrUpdateConsumer(context.Background(), bus.StreamSteps, jetstream.ConsumerConfig{Durable: "sink", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100})
	if err != nil {
		t.Fatal(err)
	}
	k.cc, err = cons.Consume(func(m jetstream.Msg) {
		var head contract.Step
		_ = json.Unmarshal(m.Data(), &head)
		go func() {
			for _, s := range append([]contract.Step{head}, head.Chain...) {
				k.mu.Lock()
				k.got[s.ID]++
				n := k.got[s.ID]
				k.mu.Unlock()
				if !k.hook(n, m, s) {
					return
				}
			}
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.cc.Stop)
	return k
}

func publishStep(t *testing.T, b *bustest.Bus, s contract.Step, state string, final bool) {
	now := time.Now()
	ev := contract.StepEvent{V: 1, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component, Action: s.Action, State: state, Attempt: s.Attempt, Started: &now, Final: final}
	d, _ := json.Marshal(ev)
	if _, err := b.Res.JS.Publish(context.Background(), subject.DeployEvent(s.Deployment, subject.DeployStep), d); err != nil {
		t.Errorf("publish: %v", err)
	}
}

func lockHeld(t *testing.T, b *bustest.Bus) bool {
	_, err := b.Res.Scheduler.Get(context.Background(), keyLease)
	if err != nil && !bus.IsNotFound(err) {
		t.Fatal(err)
	}
	_, cerr := b.Res.Scheduler.Get(context.Background(), keyCurrent)
	return err == nil || cerr == nil
}

// A step whose result is never published (the installer took it and went
// silent) does not keep the deployment running: it is dispatched again a
// bounded number of times, then failed; the deployment fails with a reason
// and the deploy lock is released.
func TestStuckDeploymentFails(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	startSink(t, b, func(_ int, m jetstream.Msg, _ contract.Step) bool { _ = m.Ack(); return false }) // takes it, never answers
	s := watchedScheduler(t, b, "p1", 300*time.Millisecond)
	defer s.Stop()
	start := time.Now()
	if err := s.Begin(context.Background(), withDeadline(diamond("d-stuck"), 1)); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-stuck")
	took := time.Since(start)
	if d.State != contract.DeployFailed || d.Error == "" {
		t.Fatalf("stuck deployment: %s %q", d.State, d.Error)
	}
	// Longest deadline 1s + silence 0.3s, checked every 100ms.
	if took > 5*time.Second {
		t.Errorf("the stuck deployment took %s to fail", took)
	}
	for _, st := range d.Steps {
		if st.State == contract.StateRunning || st.State == stateQueued || st.State == contract.StatePending {
			t.Errorf("step %s left %s", st.ID, st.State)
		}
	}
	if lockHeld(t, b) {
		t.Fatal("the deploy lock outlived the failed deployment")
	}
	if _, ok := s.Running(); ok {
		t.Fatal("the scheduler still reports a running deployment")
	}
	// The next deployment may start.
	if err := s.Begin(context.Background(), diamond("d-next")); err != nil {
		t.Fatalf("deploy after the stuck one: %v", err)
	}
}

// A running step that falls silent (its beats and result lost) is
// dispatched again, and the deployment finishes.
func TestSilentStepDispatchedAgain(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	silentID := "10.0.0.2/c/install"
	var mu sync.Mutex
	var attempts []int // of the silent step's copies
	k := startSink(t, b, func(n int, m jetstream.Msg, s contract.Step) bool {
		if s.ID == silentID {
			mu.Lock()
			attempts = append(attempts, s.Attempt)
			mu.Unlock()
		}
		publishStep(t, b, s, contract.StateRunning, false)
		_ = m.Ack()
		if s.ID == silentID && n == 1 {
			return false // goes silent
		}
		time.Sleep(10 * time.Millisecond)
		publishStep(t, b, s, contract.StateSucceeded, true)
		return true
	})
	s := watchedScheduler(t, b, "p1", 500*time.Millisecond)
	defer s.Stop()
	if err := s.Begin(context.Background(), withDeadline(diamond("d-silent"), 30)); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-silent")
	if d.State != contract.DeploySucceeded {
		t.Fatalf("deployment: %s %q", d.State, d.Error)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.got[silentID] != 2 {
		t.Errorf("the silent step was dispatched %d times, want 2", k.got[silentID])
	}
	// The copy sent again goes on from the try the first one reported.
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, []int{1, 2}) {
		t.Errorf("the silent step's copies say attempts %v, want [1 2]", attempts)
	}
	for _, st := range d.Steps {
		if want := map[bool]int{true: 2, false: 1}[st.ID == silentID]; st.Attempt != want {
			t.Errorf("%s: attempt %d, want %d", st.ID, st.Attempt, want)
		}
	}
}

// Beats keep a long step alive: it is not dispatched again.
func TestBeatingStepNotDispatchedAgain(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	k := startSink(t, b, func(_ int, m jetstream.Msg, s contract.Step) bool {
		publishStep(t, b, s, contract.StateRunning, false)
		beat, _ := json.Marshal(contract.StepBeat{V: 1, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Attempt: 1})
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			_ = b.NC.Publish(subject.StepBeat(s.Deployment), beat)
		}
		_ = m.Ack()
		publishStep(t, b, s, contract.StateSucceeded, true)
		return true
	})
	s := watchedScheduler(t, b, "p1", 400*time.Millisecond)
	defer s.Stop()
	if err := s.Begin(context.Background(), withDeadline(diamond("d-beat"), 30)); err != nil {
		t.Fatal(err)
	}
	if d := waitFinished(t, s, "d-beat"); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment: %s %q", d.State, d.Error)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, n := range k.got {
		if n != 1 {
			t.Errorf("%s dispatched %d times while it beat", id, n)
		}
	}
}

// Cancel ends a running deployment: 202 with it failed, its queued steps
// out of the queue, the installers told, the lock released; 409 once it
// has ended; 404 for an unknown id.
func TestCancel(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	told := make(chan contract.StepCancel, 4)
	sub, err := b.NC.Subscribe(subject.InstallerCancel(), func(m *nats.Msg) {
		var c contract.StepCancel
		_ = json.Unmarshal(m.Data, &c)
		told <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s := watchedScheduler(t, b, "p1", time.Minute)
	defer s.Stop()
	ctx := context.Background()
	if err := s.Begin(ctx, diamond("d-c")); err != nil { // nothing takes its steps
		t.Fatal(err)
	}
	d, err := s.Cancel(ctx, "d-c", "cancelled by request")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != contract.DeployFailed || !strings.Contains(d.Error, "cancelled") {
		t.Fatalf("cancelled deployment: %s %q", d.State, d.Error)
	}
	select {
	case c := <-told:
		if c.Deployment != "d-c" {
			t.Fatalf("installers told to cancel %q", c.Deployment)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the installers were not told")
	}
	info, err := b.Res.Steps.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("steps left in the queue: %+v %v", info, err)
	}
	if lockHeld(t, b) {
		t.Fatal("the deploy lock outlived the cancelled deployment")
	}
	stored, err := s.Snapshot(ctx, "d-c")
	if err != nil || stored.State != contract.DeployFailed {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	var ke *kit.Error
	if _, err := s.Cancel(ctx, "d-c", "again"); !errors.As(err, &ke) || ke.Code != 409 {
		t.Fatalf("cancel of an ended deployment: %v", err)
	}
	if _, err := s.Cancel(ctx, "d-nope", "x"); !errors.As(err, &ke) || ke.Code != 404 {
		t.Fatalf("cancel of an unknown deployment: %v", err)
	}
}

// While one scheduler holds the deploy lock, another cannot start a
// deployment; once the holder dies without a word, the lock expires and
// the other resumes the deployment.
func TestLockExpiresAndIsTakenOver(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	// a runs on a connection of its own, as in another process.
	anc, err := b.Srv.Connect("planner-a")
	if err != nil {
		t.Fatal(err)
	}
	ares, err := bus.Declare(ctx, anc)
	if err != nil {
		t.Fatal(err)
	}
	a := watchedScheduler(t, &bustest.Bus{Srv: b.Srv, NC: anc, Res: ares}, "planner-a", time.Minute)
	if err := a.Begin(ctx, diamond("d-a")); err != nil {
		t.Fatal(err)
	}
	other := watchedScheduler(t, b, "planner-b", time.Minute)
	defer other.Stop()
	var ke *kit.Error
	if err := other.Begin(ctx, diamond("d-b")); !errors.As(err, &ke) || ke.Code != 409 {
		t.Fatalf("begin while another holds the lock: %v", err)
	}
	// a dies: its connection goes, nothing renews or releases the lock.
	close(a.done)
	a.wg.Wait()
	anc.Close()
	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	start := time.Now()
	d := waitFinished(t, other, "d-a")
	if d.State != contract.DeploySucceeded {
		t.Fatalf("taken-over deployment: %s %q", d.State, d.Error)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("take-over took %s with a 3s lock", took)
	}
}

// A failed step event that names no known step (the installer could not
// read the step message) fails the step active on its node.
func TestUnreadableStepEventFailsNodeStep(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	startSink(t, b, func(_ int, m jetstream.Msg, s contract.Step) bool {
		_ = m.Ack()
		if s.Node == "10.0.0.3" {
			publishStep(t, b, contract.Step{Deployment: s.Deployment, Node: s.Node}, contract.StateFailed, true)
			return false
		}
		publishStep(t, b, s, contract.StateSucceeded, true)
		return true
	})
	s := watchedScheduler(t, b, "p1", time.Minute)
	defer s.Stop()
	if err := s.Begin(context.Background(), diamond("d-u")); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-u")
	for _, st := range d.Steps {
		if st.Node == "10.0.0.3" && st.State != contract.StateFailed {
			t.Errorf("%s: %s, want failed", st.ID, st.State)
		}
	}
	if d.State != contract.DeployFailed {
		t.Fatalf("deployment: %s", d.State)
	}
}

// A queued step that waits while the rest of the deployment moves (its
// installers busy elsewhere) is not dispatched again; once nothing moves
// for its deadline, it is.
func TestQueuedStepWaitsWhileDeploymentMoves(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	held := "10.0.0.3/e/install"
	var mu sync.Mutex
	var lastDone time.Time
	var again []time.Time
	startSink(t, b, func(n int, m jetstream.Msg, s contract.Step) bool {
		_ = m.Ack()
		if s.ID == held {
			mu.Lock()
			if n > 1 {
				again = append(again, time.Now())
			}
			mu.Unlock()
			return false // never taken up
		}
		publishStep(t, b, s, contract.StateRunning, false)
		time.Sleep(400 * time.Millisecond)
		publishStep(t, b, s, contract.StateSucceeded, true)
		mu.Lock()
		lastDone = time.Now()
		mu.Unlock()
		return true
	})
	s := watchedScheduler(t, b, "p1", 300*time.Millisecond)
	defer s.Stop()
	// The others take about 1.6 s in all, longer than the held step's 1 s.
	if err := s.Begin(context.Background(), withDeadline(diamond("d-q"), 1)); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-q")
	mu.Lock()
	defer mu.Unlock()
	if len(again) == 0 {
		t.Fatalf("the held step was never dispatched again; deployment %s", d.State)
	}
	if again[0].Before(lastDone) {
		t.Errorf("the held step was dispatched again %s before the deployment stopped moving", lastDone.Sub(again[0]))
	}
	for _, st := range d.Steps {
		if st.ID == held && st.State != contract.StateFailed {
			t.Errorf("held step: %s", st.State)
		}
	}
}
