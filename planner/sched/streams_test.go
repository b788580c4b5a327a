package sched

import (
	"encoding/json"
	"testing"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// TestStepStreamsCarried: a step's final event's exit code, stdout and
// stderr reach the record, and a copy of the record that reads its stored
// changes has them too (an errand's result).
func TestStepStreamsCarried(t *testing.T) {
	plan := []*steps.Step{{Spec: contract.Step{ID: "10.0.0.1/smoke/run", Node: "10.0.0.1", Component: "smoke", Action: "run"}},
		{Spec: contract.Step{ID: "10.0.0.2/smoke/run", Node: "10.0.0.2", Component: "smoke", Action: "run"}}}
	rec, mirror := NewRecord("d-1", nil, plan), NewRecord("d-1", nil, plan)
	rec.stored = rec.snapshotStored()
	zero, three := 0, 3
	for _, ev := range []contract.StepEvent{
		{ID: "10.0.0.1/smoke/run", State: contract.StateSucceeded, Final: true, ExitCode: &zero, Stdout: "ok\n"},
		{ID: "10.0.0.2/smoke/run", State: contract.StateFailed, Final: true, ExitCode: &three, Stdout: "out\n", Stderr: "boom\n"},
	} {
		if !rec.apply(ev) {
			t.Fatalf("%s: not applied", ev.ID)
		}
	}
	c, changed := rec.diff()
	if !changed {
		t.Fatal("no change to store")
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back change
	if err := json.Unmarshal(b, &back); err != nil || !mirror.applyChange(back) {
		t.Fatalf("change not applied to the copy: %v", err)
	}
	for _, r := range []*Record{rec, mirror} {
		a, b := r.Steps[0], r.Steps[1]
		if *a.ExitCode != 0 || a.Stdout != "ok\n" || a.Stderr != "" || a.State != contract.StateSucceeded {
			t.Errorf("first: %+v", a)
		}
		if *b.ExitCode != 3 || b.Stdout != "out\n" || b.Stderr != "boom\n" || b.State != contract.StateFailed {
			t.Errorf("second: %+v", b)
		}
	}
}
