package sched

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// failingGet is a bucket whose reads of one key fail while err is set: a
// fault at the KV boundary, the rest of the bucket real.
type failingGet struct {
	jetstream.KeyValue
	key string
	mu  sync.Mutex
	err error
}

func (f *failingGet) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if key == f.key && err != nil {
		return nil, err
	}
	return f.KeyValue.Get(ctx, key)
}

func (f *failingGet) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// A deployment that ends while the stored placement cannot be read does
// not write one computed from nothing over it: the instances it did not
// touch stay placed (and so are removed by a later scale-in). An
// unavailable store is tried again until it answers; a read that fails
// otherwise leaves the stored placement as it is.
func TestFinishKeepsPlacementOnReadError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		// after is the stored placement once the fault is gone.
		after map[string][]string
	}{
		{"unavailable", jetstream.ErrNoStreamResponse, map[string][]string{"10.0.0.9": {"z"}, "10.0.0.1": {"a"}}},
		{"other", jetstream.ErrBadRequest, map[string][]string{"10.0.0.9": {"z"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bustest.Start(t, bus.ServerOptions{})
			stored, _ := json.Marshal(map[string][]string{"10.0.0.9": {"z"}})
			if _, err := b.Res.Scheduler.Put(ctx, keyPlacement, stored); err != nil {
				t.Fatal(err)
			}
			kv := &failingGet{KeyValue: b.Res.Scheduler, key: keyPlacement}
			res := *b.Res
			res.Scheduler = kv
			s := startScheduler(t, Options{NC: b.NC, Res: &res})
			defer s.Stop()

			// A deployment that started a on 10.0.0.1 and left z alone.
			sid := steps.ID("10.0.0.1", "a", "start")
			rec := &Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-p", State: contract.DeployRunning, Created: time.Now()}},
				Placement: map[string][]string{"10.0.0.1": {"a"}}, specs: map[string]contract.Step{}, prios: map[string]int{}}
			rec.Steps = []contract.StepStatus{{ID: sid, Node: "10.0.0.1", Component: "a", Action: "start", State: contract.StateSucceeded}}
			rec.reindex()

			kv.fail(tc.err)
			s.mu.Lock()
			s.cur = rec
			s.concludeLocked(ctx, "")
			s.mu.Unlock()
			// The flush loop tries again meanwhile; nothing is written.
			time.Sleep(1500 * time.Millisecond)
			e, err := b.Res.Scheduler.Get(ctx, keyPlacement)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Value(), stored) {
				t.Fatalf("the stored placement while it cannot be read: %s, want %s", e.Value(), stored)
			}
			kv.fail(nil)
			var got map[string][]string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if got, err = LoadPlacement(ctx, b.Res); err != nil {
					t.Fatal(err)
				}
				if maps.EqualFunc(got, tc.after, slices.Equal) || time.Now().After(deadline) {
					break
				}
			}
			if !maps.EqualFunc(got, tc.after, slices.Equal) {
				t.Errorf("the stored placement once it reads again: %v, want %v", got, tc.after)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.unfinished != nil {
				t.Errorf("the end still has to write %+v", *s.unfinished)
			}
		})
	}
}

// A deployment's end stores, beside the placement, the instances it
// reached without starting them, so that a config that drops them has
// them removed.
func TestFinishStoresHalfInstalled(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	s := startScheduler(t, Options{NC: b.NC, Res: b.Res})
	defer s.Stop()
	rec := &Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-h", State: contract.DeployRunning, Created: time.Now()}},
		Placement: map[string][]string{"10.0.0.1": {"a"}, "10.0.0.2": {"b"}}, specs: map[string]contract.Step{}, prios: map[string]int{}}
	rec.Steps = []contract.StepStatus{
		{ID: steps.ID("10.0.0.1", "a", "start"), Node: "10.0.0.1", Component: "a", Action: "start", State: contract.StateSucceeded},
		{ID: steps.ID("10.0.0.2", "b", "install"), Node: "10.0.0.2", Component: "b", Action: "install", State: contract.StateSucceeded},
		{ID: steps.ID("10.0.0.2", "b", "start"), Node: "10.0.0.2", Component: "b", Action: "start", State: contract.StateFailed},
	}
	rec.reindex()
	s.mu.Lock()
	s.cur = rec
	s.concludeLocked(ctx, "")
	s.mu.Unlock()
	want := map[string][]string{"10.0.0.2": {"b"}}
	var got map[string][]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if got, err = LoadPartial(ctx, b.Res); err != nil {
			t.Fatal(err)
		}
		if maps.EqualFunc(got, want, slices.Equal) {
			break
		}
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("the stored half-installed instances: %v, want %v", got, want)
	}
	if pl, err := LoadPlacement(ctx, b.Res); err != nil || !maps.EqualFunc(pl, map[string][]string{"10.0.0.1": {"a"}}, slices.Equal) {
		t.Errorf("placement %v %v: only what started", pl, err)
	}
}

// A placement that is not stored is an empty one; one that does not decode
// is an error, never an empty placement.
func TestLoadPlacement(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	if pl, err := LoadPlacement(ctx, b.Res); err != nil || len(pl) != 0 {
		t.Errorf("none stored: %v %v", pl, err)
	}
	if _, err := b.Res.Scheduler.Put(ctx, keyPlacement, []byte(`{"10.0.0.1":`)); err != nil {
		t.Fatal(err)
	}
	if pl, err := LoadPlacement(ctx, b.Res); err == nil {
		t.Errorf("one that does not decode: %v, no error", pl)
	}
}
