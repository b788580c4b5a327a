package contract

import (
	"fmt"
	"reflect"
	"slices"
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

// bigDeployment is a deployment of n steps over 7 components, in every
// state, a few failed.
func bigDeployment(n int) Deployment {
	d := Deployment{DeploymentSummary: DeploymentSummary{ID: "d-big", State: DeployRunning}}
	for i := 0; i < n; i++ {
		st := StepStates[(i*7+i/13)%len(StepStates)]
		d.Steps = append(d.Steps, StepStatus{ID: fmt.Sprintf("10.0.%d.%d/c%d/install", i/250, i%250, i%7),
			Component: fmt.Sprintf("c%d", i%7), State: st})
	}
	return d
}

// The summary's counts, per state and per component, and its failed
// steps are those the whole deployment shows.
func TestSummaryMatchesTheDeployment(t *testing.T) {
	d := bigDeployment(4200)
	p := PageOf(d, StepQuery{None: true})
	counts, comps := map[string]int{}, map[string]map[string]int{}
	var failed []string
	for _, st := range d.Steps {
		counts[st.State]++
		if comps[st.Component] == nil {
			comps[st.Component] = map[string]int{}
		}
		comps[st.Component][st.State]++
		if st.State == StateFailed {
			failed = append(failed, st.ID)
		}
	}
	if !reflect.DeepEqual(p.Counts, counts) || !reflect.DeepEqual(p.Components, comps) {
		t.Errorf("counts %v per component %v, want %v and %v", p.Counts, p.Components, counts, comps)
	}
	if len(failed) <= MaxSummaryFailed || len(p.Failed) != MaxSummaryFailed {
		t.Fatalf("%d failed steps, %d in the summary: want more than %d, and %d listed", len(failed), len(p.Failed), MaxSummaryFailed, MaxSummaryFailed)
	}
	for i, st := range p.Failed {
		if st.ID != failed[i] {
			t.Errorf("failed step %d: %s, want %s", i, st.ID, failed[i])
		}
	}
	if p.Total != len(d.Steps) || p.Steps != nil || p.Matched != nil {
		t.Errorf("total %d, %d steps, matched %v", p.Total, len(p.Steps), p.Matched)
	}
}

// Paging through a deployment, every step or those in some states, sees
// each step it asks for exactly once, in the deployment's order.
func TestPagesCoverEveryStepOnce(t *testing.T) {
	d := bigDeployment(4200)
	for _, tc := range []struct {
		states []string
		limit  int
	}{
		{nil, 0}, {nil, 1000}, {nil, 7}, {[]string{StateFailed}, 13}, {[]string{StateRunning, StatePending}, 1000},
	} {
		var want []string
		for _, st := range d.Steps {
			if len(tc.states) == 0 || slices.Contains(tc.states, st.State) {
				want = append(want, st.ID)
			}
		}
		var got []string
		for pages := 0; ; pages++ {
			p := PageOf(d, StepQuery{States: tc.states, Offset: len(got), Limit: tc.limit})
			if p.Matched == nil || *p.Matched != len(want) || pages > len(want) {
				t.Fatalf("%v/%d: matched %v, want %d (page %d)", tc.states, tc.limit, p.Matched, len(want), pages)
			}
			if len(p.Steps) == 0 {
				break
			}
			if tc.limit > 0 && len(p.Steps) > tc.limit || tc.limit == 0 && len(p.Steps) > DefaultStepPage {
				t.Fatalf("%v/%d: a page of %d", tc.states, tc.limit, len(p.Steps))
			}
			for _, st := range p.Steps {
				got = append(got, st.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%v/%d: %d steps paged, want %d, each once in order", tc.states, tc.limit, len(got), len(want))
		}
	}
}
