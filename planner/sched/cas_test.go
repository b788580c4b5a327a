package sched

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// Two schedulers that both believe they drive one deployment never both
// store it: a, whose lock expired while it stood still (a pause, a cut
// link: it never noticed), writes after b took the deployment over, and
// its write is refused; the record keeps b's, a lets go of it, and nothing
// of a's end (placement, mark, lock) is written. b then finishes it.
func TestStaleDriverWriteRefused(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	anc, err := b.Srv.Connect("planner-a")
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ares, err := bus.Declare(ctx, anc)
	if err != nil {
		t.Fatal(err)
	}
	a := watchedScheduler(t, &bustest.Bus{Srv: b.Srv, NC: anc, Res: ares}, "planner-a", time.Minute)
	if err := a.Begin(ctx, diamond("d-x")); err != nil {
		t.Fatal(err)
	}
	// a stands still: nothing renews its lock, which then expires.
	close(a.done)
	a.wg.Wait()
	expired, _ := json.Marshal(lease{Deployment: "d-x", Holder: "planner-a", Expires: time.Now().Add(-time.Second).UTC()})
	if _, err := b.Res.Scheduler.Put(ctx, keyLease, expired); err != nil {
		t.Fatal(err)
	}
	other := watchedScheduler(t, b, "planner-b", time.Minute)
	defer other.Stop()
	if err := other.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if id, ok := other.Running(); !ok || id != "d-x" {
		t.Fatalf("b does not drive d-x: %q %v", id, ok)
	}

	// a wakes up, still driving d-x as far as it knows, and stores a step
	// result, then ends the deployment.
	a.mu.Lock()
	a.cur.Steps[0].State, a.cur.Steps[0].Error = contract.StateFailed, "a's stale view"
	a.dirty = true
	a.flushLocked(ctx)
	driving := a.cur != nil
	if driving {
		a.abortLocked(ctx, "a's stale end")
	}
	a.mu.Unlock()
	if driving {
		t.Error("a still drives d-x after its write was refused")
	}
	rec, err := loadRecord(ctx, b.Res, "d-x")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Steps[0].Error == "a's stale view" || rec.State != contract.DeployRunning || rec.Writer != other.writer {
		t.Fatalf("the stored record is not b's: %s, written by %s, step %+v", rec.State, rec.Writer, rec.Steps[0])
	}
	if _, err := b.Res.Scheduler.Get(ctx, keyPlacement); !bus.IsNotFound(err) {
		t.Errorf("a placement was stored by the stale driver: %v", err)
	}
	if cur, _ := currentID(ctx, b.Res); cur != "d-x" {
		t.Errorf("current mark: %q", cur)
	}
	if own, _, err := other.ownLease(ctx, "d-x"); !own || err != nil {
		t.Errorf("b's lock: %v %v", own, err)
	}

	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	if d := waitFinished(t, other, "d-x"); d.State != contract.DeploySucceeded {
		t.Fatalf("b's deployment: %s %q", d.State, d.Error)
	}
}

// A scheduler that finds its deploy lock taken by another lets go of the
// deployment as it does when a write of it is refused: the events it holds
// go back to the queue, and nothing of its end is left to write.
func TestLeaseLostLetsGo(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	a := watchedScheduler(t, b, "planner-a", time.Minute)
	if err := a.Begin(ctx, diamond("d-y")); err != nil {
		t.Fatal(err)
	}
	close(a.done) // its watchdog is driven by hand below
	a.wg.Wait()
	taken, _ := json.Marshal(lease{Deployment: "d-y", Holder: "planner-b", Expires: time.Now().Add(time.Minute).UTC()})
	if _, err := b.Res.Scheduler.Put(ctx, keyLease, taken); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unfinished = &unfinished{mark: true, lock: true, event: &contract.DeploymentEvent{ID: "d-y"}}
	a.dirty = true
	a.renewed, a.renewTried = time.Time{}, time.Time{}
	a.watchLocked(ctx, time.Now())
	if a.cur != nil || a.dirty || a.pending != nil {
		t.Errorf("a still drives d-y after its lock was taken: cur %v dirty %v pending %d", a.cur != nil, a.dirty, len(a.pending))
	}
	if a.unfinished != nil {
		t.Errorf("a would still write d-y's end: %+v", *a.unfinished)
	}
}
