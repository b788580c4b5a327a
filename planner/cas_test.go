package planner

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
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
	a := watchedPlanner(t, &bustest.Bus{Srv: b.Srv, NC: anc, Res: ares}, "planner-a", time.Minute)
	if err := a.sched.begin(ctx, diamond("d-x")); err != nil {
		t.Fatal(err)
	}
	// a stands still: nothing renews its lock, which then expires.
	close(a.sched.done)
	a.sched.wg.Wait()
	expired, _ := json.Marshal(lease{Deployment: "d-x", Holder: "planner-a", Expires: time.Now().Add(-time.Second).UTC()})
	if _, err := b.Res.Scheduler.Put(ctx, keyLease, expired); err != nil {
		t.Fatal(err)
	}
	other := watchedPlanner(t, b, "planner-b", time.Minute)
	defer other.sched.stop()
	if err := other.sched.resume(ctx); err != nil {
		t.Fatal(err)
	}
	if id, ok := other.sched.running(); !ok || id != "d-x" {
		t.Fatalf("b does not drive d-x: %q %v", id, ok)
	}

	// a wakes up, still driving d-x as far as it knows, and stores a step
	// result, then ends the deployment.
	a.sched.mu.Lock()
	a.sched.cur.Steps[0].State, a.sched.cur.Steps[0].Error = contract.StateFailed, "a's stale view"
	a.sched.dirty = true
	a.sched.flushLocked(ctx)
	driving := a.sched.cur != nil
	if driving {
		a.sched.abortLocked(ctx, "a's stale end")
	}
	a.sched.mu.Unlock()
	if driving {
		t.Error("a still drives d-x after its write was refused")
	}
	rec, err := loadRecord(ctx, b.Res, "d-x")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Steps[0].Error == "a's stale view" || rec.State != contract.DeployRunning || rec.Writer != other.sched.writer {
		t.Fatalf("the stored record is not b's: %s, written by %s, step %+v", rec.State, rec.Writer, rec.Steps[0])
	}
	if _, err := b.Res.Scheduler.Get(ctx, keyPlacement); !bus.IsNotFound(err) {
		t.Errorf("a placement was stored by the stale driver: %v", err)
	}
	if cur, _ := currentID(ctx, b.Res); cur != "d-x" {
		t.Errorf("current mark: %q", cur)
	}
	if own, _, err := other.sched.ownLease(ctx, "d-x"); !own || err != nil {
		t.Errorf("b's lock: %v %v", own, err)
	}

	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	if d := waitFinished(t, other, "d-x"); d.State != contract.DeploySucceeded {
		t.Fatalf("b's deployment: %s %q", d.State, d.Error)
	}
}

// hookedGet runs hook once, after the first read of key: a write of
// another process lands between a reader's read and its write.
type hookedGet struct {
	jetstream.KeyValue
	key  string
	hook func()
}

func (h *hookedGet) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := h.KeyValue.Get(ctx, key)
	if key == h.key && h.hook != nil {
		hook := h.hook
		h.hook = nil
		hook()
	}
	return e, err
}

type rawRequest struct {
	micro.Request
	data []byte
}

func (r rawRequest) Data() []byte { return r.data }

// Two config writes computed from the same stored config, by two planners
// (a split engine's two api,planner processes, whose locks are their
// own): the one that stores second gets a 409, and the stored config is
// the first's; neither write is lost without its writer being told.
func TestConfigWritesDoNotCross(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	first := startStarter(t, b)
	defer first.Stop()
	put := func(p *Planner, domain string) (int, error) {
		cfg := starterConfig()
		cfg.Properties.Domain = domain
		raw, _ := json.Marshal(cfg)
		in, _ := json.Marshal(contract.ConfigPut{V: contract.Version, Config: raw})
		code, _, err := p.configPut(ctx, rawRequest{data: in})
		return code, err
	}
	res := *b.Res
	kv := &hookedGet{KeyValue: b.Res.Config, key: bus.KeyConfig}
	res.Config = kv
	second := &Planner{o: first.o, log: first.log, secretKey: first.secretKey}
	second.o.Res = &res
	var firstCode int
	var firstErr error
	kv.hook = func() { firstCode, firstErr = put(first, "first.local") }
	code, err := put(second, "second.local")
	if firstErr != nil || firstCode != 201 {
		t.Fatalf("the first write: %d %v", firstCode, firstErr)
	}
	var ke *kit.Error
	if !errors.As(err, &ke) || ke.Code != 409 {
		t.Fatalf("the write computed from the config the first replaced: %d %v", code, err)
	}
	stored, err := bus.LoadConfig(ctx, b.Res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Properties.Domain != "first.local" {
		t.Errorf("stored: %q", stored.Properties.Domain)
	}
}
