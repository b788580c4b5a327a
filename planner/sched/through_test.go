package sched

import (
	"slices"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// In a Through record (an exec that does not halt) After orders the steps
// and nothing more: a failed step skips nothing, what waits on it runs,
// and the deployment ends failed for the steps that failed, not halted.
func TestDAGThrough(t *testing.T) {
	code := 3
	for _, through := range []bool{false, true} {
		rec := withStates(map[string]string{dA: contract.StateFailed, dE: contract.StateSucceeded})
		rec.Through = through
		rec.Batches = []contract.Batch{{Component: "a", Nodes: []string{"10.0.0.1"}, Steps: []string{dA}},
			{Component: "a", Index: 1, Nodes: []string{"10.0.0.1", "10.0.0.2"}, Steps: []string{dB, dC}}}
		rec.step(dA).ExitCode = &code
		skipped := rec.skipBlocked()
		ready := rec.ready()
		rec.batchChanges()
		if !through {
			if !skipped || rec.step(dB).State != contract.StateSkipped || slices.Contains(ready, dB) || rec.haltReason() == "" {
				t.Errorf("a record that halts: skipped %v, ready %v, halt %q", skipped, ready, rec.haltReason())
			}
			continue
		}
		if skipped || !slices.Equal(ready, []string{dB, dC}) || rec.haltReason() != "" {
			t.Errorf("through: skipped %v, ready %v (want b and c), halt %q", skipped, ready, rec.haltReason())
		}
		for _, id := range []string{dB, dC, dD, dF} {
			rec.step(id).State = contract.StateSucceeded
		}
		if rec.pendingWork() {
			t.Fatal("work left")
		}
		if failed := rec.conclude("", time.Now()); failed != 1 || rec.State != contract.DeployFailed || rec.Error != "1 of 6 step(s) failed" {
			t.Errorf("conclude: %d failed, %s %q", failed, rec.State, rec.Error)
		}
	}
}

// A step's kept output is applied from its final event and survives the
// record's changes as stored.
func TestOutputKeptInChanges(t *testing.T) {
	rec := diamond("d-out")
	rec.stored = rec.snapshotStored()
	code := 0
	now := time.Now()
	rec.apply(contract.StepEvent{ID: dA, State: contract.StateSucceeded, Attempt: 1, Finished: &now, ExitCode: &code, Output: "hello\nworld", Final: true})
	c, changed := rec.diff()
	if !changed || len(c.Steps) != 1 || c.Steps[0].Output != "hello\nworld" {
		t.Fatalf("change: %+v", c)
	}
	back := diamond("d-out")
	if !back.applyChange(c) || back.step(dA).Output != "hello\nworld" {
		t.Fatalf("applied: %+v", back.step(dA))
	}
}
