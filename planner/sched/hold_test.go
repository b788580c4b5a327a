package sched

import (
	"context"
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// inMaintenance is a record of ips in maintenance.
func inMaintenance(ips ...string) contract.Maintenances {
	m := contract.Maintenances{Nodes: map[string]contract.NodeMaintenance{}}
	for _, ip := range ips {
		m.Nodes[ip] = contract.NodeMaintenance{IP: ip, On: true, Reason: "disk swap", Actor: "alice"}
	}
	return m
}

// A node in maintenance has its steps held, and those another node runs
// for its instances; what waits on them goes on, the deployment succeeds
// and says which nodes it held, and its placement does not count what it
// held.
func TestDAGHold(t *testing.T) {
	rec := diamond("d")
	drain := "10.0.0.3/lb/drain-a-10.0.0.1"
	rec.Steps = append(rec.Steps, contract.StepStatus{ID: drain, Node: "10.0.0.3", Component: "lb", Action: "drain-a-10.0.0.1", State: contract.StatePending})
	rec.about = map[string]string{drain: "10.0.0.1"}
	rec.Placement = map[string][]string{"10.0.0.1": {"a", "b", "f"}, "10.0.0.2": {"c", "d"}}
	rec.reindex()
	rec.hold(inMaintenance("10.0.0.1"))
	for _, id := range []string{dA, dB, dF, drain} {
		if st := rec.step(id); st.State != contract.StateHeld || st.Error != "held: node 10.0.0.1 is in maintenance: disk swap (by alice)" {
			t.Errorf("%s: %s %q, want held", id, st.State, st.Error)
		}
	}
	if want := []contract.HeldNode{{IP: "10.0.0.1", Reason: "maintenance: disk swap (by alice)"}}; !reflect.DeepEqual(rec.Held, want) {
		t.Errorf("held %+v, want %+v", rec.Held, want)
	}
	// c waits on a, held: it goes; d on b, held, and c.
	if got := rec.ready(); !reflect.DeepEqual(got, []string{dC, dE}) {
		t.Fatalf("ready %v", got)
	}
	rec.step(dC).State, rec.step(dE).State = contract.StateSucceeded, contract.StateSucceeded
	if got := rec.ready(); !reflect.DeepEqual(got, []string{dD}) {
		t.Fatalf("ready after c and e %v", got)
	}
	rec.step(dD).State = contract.StateSucceeded
	if rec.pendingWork() {
		t.Fatal("work left with only held steps")
	}
	if rec.conclude("", rec.Created); rec.State != contract.DeploySucceeded {
		t.Fatalf("deployment %s %q", rec.State, rec.Error)
	}
	if got := rec.placementAfter(nil); !reflect.DeepEqual(got, map[string][]string{}) {
		// diamond's steps are installs: nothing started, nothing placed.
		t.Fatalf("placement %v", got)
	}
	if got := rec.partialAfter(nil); !reflect.DeepEqual(got, map[string][]string{"10.0.0.2": {"c", "d"}}) {
		t.Fatalf("partial %v: a held node's instances are not reached", got)
	}
}

// A batch whose steps are all held is skipped, one partly held is healthy
// once the rest is done.
func TestBatchHeld(t *testing.T) {
	rec := withStates(map[string]string{dA: contract.StateHeld, dB: contract.StateHeld, dC: contract.StateSucceeded})
	for _, tc := range []struct {
		steps []string
		state string
	}{
		{[]string{dA, dB}, contract.BatchSkipped},
		{[]string{dA, dC}, contract.BatchHealthy},
		{[]string{dA, dD}, contract.BatchPending},
	} {
		if got, _ := rec.batchState(contract.Batch{Steps: tc.steps}); got != tc.state {
			t.Errorf("%v: %s, want %s", tc.steps, got, tc.state)
		}
	}
}

// Begin holds the steps of the nodes the store has in maintenance: they
// never reach an installer, and the deployment succeeds with the rest.
func TestSchedulerHoldsNodesInMaintenance(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	if _, err := bus.UpdateMaintenance(context.Background(), b.Res.Engine, func(m *contract.Maintenances) error {
		*m = inMaintenance("10.0.0.2")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	s := testScheduler(t, b)
	defer s.Stop()
	if err := s.Begin(context.Background(), diamond("d-h")); err != nil {
		t.Fatal(err)
	}
	d := waitFinished(t, s, "d-h")
	if d.State != contract.DeploySucceeded || d.Changed != 4 || len(d.Held) != 1 || d.Held[0].IP != "10.0.0.2" {
		t.Fatalf("deployment %s changed=%d held=%+v %q", d.State, d.Changed, d.Held, d.Error)
	}
	for _, st := range d.Steps {
		want := contract.StateSucceeded
		if st.Node == "10.0.0.2" {
			want = contract.StateHeld
		}
		if st.State != want || (want == contract.StateHeld) != (w.ran[st.ID] == 0) {
			t.Errorf("%s: %s, ran %d times", st.ID, st.State, w.ran[st.ID])
		}
	}
}
