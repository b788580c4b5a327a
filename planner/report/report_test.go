package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

func timedStep(id, node string, start, end float64, after ...string) contract.StepStatus {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := t0.Add(time.Duration(start * float64(time.Second)))
	e := t0.Add(time.Duration(end * float64(time.Second)))
	comp, action := "c", id
	return contract.StepStatus{ID: node + "/" + comp + "/" + action, Node: node, Component: comp, Action: action,
		State: contract.StateSucceeded, Started: &s, Finished: &e, After: after}
}

func TestReportCriticalPath(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	fin := t0.Add(20 * time.Second)
	cases := []struct {
		name  string
		steps []contract.StepStatus
		path  []string
	}{
		{"a chain across nodes", []contract.StepStatus{
			timedStep("a", "n1", 0, 2),
			timedStep("b", "n2", 2.5, 6, "n1/c/a"),
			timedStep("x", "n1", 2.1, 3),
			timedStep("c", "n1", 6.2, 9, "n2/c/b"),
		}, []string{"n1/c/a", "n2/c/b", "n1/c/c"}},
		{"held back by its node, not its prerequisite", []contract.StepStatus{
			timedStep("a", "n1", 0, 1),
			timedStep("long", "n2", 0, 8),
			timedStep("b", "n2", 8.1, 10, "n1/c/a"),
		}, []string{"n2/c/long", "n2/c/b"}},
		{"a step that did not run is left out", []contract.StepStatus{
			timedStep("a", "n1", 0, 4),
			{ID: "n1/c/never", Node: "n1", Component: "c", Action: "never", State: contract.StateSkipped, After: []string{"n1/c/a"}},
		}, []string{"n1/c/a"}},
		{"nothing ran", []contract.StepStatus{
			{ID: "n1/c/never", Node: "n1", Component: "c", Action: "never", State: contract.StatePending},
		}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Build(contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-1", State: contract.DeploySucceeded, Created: t0, Finished: &fin}, Steps: tc.steps}, fin)
			var got []string
			for _, s := range r.CriticalPath {
				got = append(got, s.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.path) {
				t.Fatalf("critical path %v, want %v", got, tc.path)
			}
			checkPath(t, r)
			if r.TotalS != 20 {
				t.Errorf("total %v, want 20", r.TotalS)
			}
		})
	}
}

// checkPath holds what any critical path must: each step starts once the
// one before it ended, the path ends with the last step to finish, and its
// length is its steps' durations plus the waits between them.
func checkPath(t *testing.T, r contract.Report) {
	t.Helper()
	p := r.CriticalPath
	if len(p) == 0 {
		return
	}
	var sum float64
	for i, s := range p {
		sum += s.DurationS + s.WaitS
		if i == 0 {
			continue
		}
		if s.Started.Before(p[i-1].Finished) {
			t.Errorf("%s starts before %s ends", s.ID, p[i-1].ID)
		}
		if w := s.Started.Sub(p[i-1].Finished).Seconds(); fmt.Sprintf("%.3f", w) != fmt.Sprintf("%.3f", s.WaitS) {
			t.Errorf("%s waits %.3f, reported %.3f", s.ID, w, s.WaitS)
		}
	}
	for _, s := range r.Steps {
		if s.Finished.After(p[len(p)-1].Finished) {
			t.Errorf("%s ends after the critical path's end", s.ID)
		}
	}
	span := p[len(p)-1].Finished.Sub(p[0].Started).Seconds()
	if fmt.Sprintf("%.2f", span) != fmt.Sprintf("%.2f", r.CriticalPathS) {
		t.Errorf("critical path %.3f s, its span %.3f s", r.CriticalPathS, span)
	}
}

func TestReportGroupsAndSlowest(t *testing.T) {
	var steps []contract.StepStatus
	for i := range 25 {
		steps = append(steps, timedStep(fmt.Sprintf("s%02d", i), fmt.Sprintf("n%d", i%2), float64(i*10), float64(i*10+i+1)))
	}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := Build(contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-1", State: contract.DeployRunning, Created: t0}, Steps: steps}, t0.Add(300*time.Second))
	if len(r.Slowest) != 20 || r.Slowest[0].DurationS != 25 || r.Slowest[19].DurationS != 6 {
		t.Fatalf("slowest: %d, first %v, last %v", len(r.Slowest), r.Slowest[0].DurationS, r.Slowest[len(r.Slowest)-1].DurationS)
	}
	// n0 ran the even steps: 1+3+...+25 = 169 s; n1 the odd: 2+4+...+24 = 156 s.
	if len(r.Nodes) != 2 || r.Nodes[0].Name != "n0" || r.Nodes[0].BusyS != 169 || r.Nodes[1].BusyS != 156 || r.Nodes[0].Steps != 13 {
		t.Fatalf("nodes: %+v", r.Nodes)
	}
	if len(r.Components) != 1 || r.Components[0].BusyS != 325 || r.Components[0].MaxS != 25 {
		t.Fatalf("components: %+v", r.Components)
	}
	if r.TotalS != 300 || r.StepsTimed != 25 {
		t.Fatalf("total %v, timed %d", r.TotalS, r.StepsTimed)
	}
	checkPath(t, r)
}
