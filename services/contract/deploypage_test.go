package contract

import (
	"fmt"
	"testing"
)

func TestPageOf(t *testing.T) {
	d := Deployment{DeploymentSummary: DeploymentSummary{ID: "d-1", State: DeployRunning}}
	states := []string{StateSucceeded, StateRunning, StateFailed, StatePending}
	for i := 0; i < 10; i++ {
		d.Steps = append(d.Steps, StepStatus{ID: fmt.Sprintf("s%d", i), State: states[i%4]})
	}
	d.Batches = []Batch{{Component: "web", Index: 0, State: BatchHealthy, Steps: []string{"s0"}},
		{Component: "web", Index: 1, State: BatchPending, Steps: []string{"s1"}},
		{Component: "web", Index: 2, State: BatchRunning, Steps: []string{"s2"}}}
	for _, tc := range []struct {
		name    string
		q       StepQuery
		ids     []string
		matched int
	}{
		{"summary", StepQuery{None: true}, nil, -1},
		{"all", StepQuery{}, []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"}, 10},
		{"failed", StepQuery{States: []string{StateFailed}}, []string{"s2", "s6"}, 2},
		{"two states, paged", StepQuery{States: []string{StateFailed, StateRunning}, Offset: 1, Limit: 2}, []string{"s2", "s5"}, 5},
		{"past the end", StepQuery{Offset: 20}, nil, 10},
	} {
		p := PageOf(d, tc.q)
		var ids []string
		for _, st := range p.Steps {
			ids = append(ids, st.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("%s: steps %v, want %v", tc.name, ids, tc.ids)
		}
		if (tc.matched < 0) != (p.Matched == nil) || p.Matched != nil && *p.Matched != tc.matched {
			t.Errorf("%s: matched %v, want %d", tc.name, p.Matched, tc.matched)
		}
		if p.Total != 10 || p.Counts[StateSucceeded] != 3 || p.Counts[StatePending] != 2 || p.Batches != 3 {
			t.Errorf("%s: total %d counts %v batches %d", tc.name, p.Total, p.Counts, p.Batches)
		}
		if p.Batch == nil || p.Batch.Index != 2 || p.Batch.Steps != nil {
			t.Errorf("%s: current batch %+v", tc.name, p.Batch)
		}
	}
}
