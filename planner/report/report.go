// Package report derives a deployment's timings from its steps: totals per
// node, component or action, the slowest steps, the critical path.
package report

import (
	"math"
	"sort"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// slowestN is how many of the slowest steps a report lists.
const slowestN = 20

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// Build derives a deployment's timings from its steps.
func Build(d contract.Deployment, now time.Time) contract.Report {
	r := contract.Report{V: contract.Version, ID: d.ID, State: d.State, Created: d.Created, Finished: d.Finished,
		StepsTotal: len(d.Steps), Nodes: []contract.TimingGroup{}, Components: []contract.TimingGroup{},
		Actions: []contract.TimingGroup{}, CriticalPath: []contract.StepTiming{}, Slowest: []contract.StepTiming{},
		Steps: []contract.StepTiming{}}
	end := now
	if d.Finished != nil {
		end = *d.Finished
	}
	r.TotalS = secs(end.Sub(d.Created))

	byID := map[string]int{}
	for _, st := range d.Steps {
		if st.Started == nil || st.Finished == nil || st.Finished.Before(*st.Started) {
			continue
		}
		byID[st.ID] = len(r.Steps)
		r.Steps = append(r.Steps, contract.StepTiming{ID: st.ID, Node: st.Node, Component: st.Component, Action: st.Action,
			State: st.State, Started: *st.Started, Finished: *st.Finished, DurationS: secs(st.Finished.Sub(*st.Started))})
	}
	r.StepsTimed = len(r.Steps)
	r.Nodes = group(r.Steps, func(s contract.StepTiming) string { return s.Node })
	r.Components = group(r.Steps, func(s contract.StepTiming) string { return s.Component })
	r.Actions = group(r.Steps, func(s contract.StepTiming) string { return s.Action })

	r.CriticalPath = criticalPath(d.Steps, r.Steps, byID)
	for _, s := range r.CriticalPath {
		r.CriticalPathS += s.DurationS + s.WaitS
	}
	r.CriticalPathS = math.Round(r.CriticalPathS*1000) / 1000

	slow := append([]contract.StepTiming(nil), r.Steps...)
	sort.SliceStable(slow, func(a, b int) bool { return slow[a].DurationS > slow[b].DurationS })
	r.Slowest = slow[:min(slowestN, len(slow))]

	// Steps by start, for a Gantt chart (the index above is no longer used).
	sort.SliceStable(r.Steps, func(a, b int) bool { return r.Steps[a].Started.Before(r.Steps[b].Started) })
	return r
}

// group sums the steps' durations by key, largest total first.
func group(steps []contract.StepTiming, key func(contract.StepTiming) string) []contract.TimingGroup {
	m := map[string]*contract.TimingGroup{}
	var order []string
	for _, s := range steps {
		k := key(s)
		g := m[k]
		if g == nil {
			g = &contract.TimingGroup{Name: k}
			m[k] = g
			order = append(order, k)
		}
		g.Steps++
		g.BusyS += s.DurationS
		g.MaxS = max(g.MaxS, s.DurationS)
	}
	out := make([]contract.TimingGroup, 0, len(order))
	for _, k := range order {
		g := *m[k]
		g.BusyS = math.Round(g.BusyS*1000) / 1000
		out = append(out, g)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].BusyS != out[b].BusyS {
			return out[a].BusyS > out[b].BusyS
		}
		return out[a].Name < out[b].Name
	})
	return out
}

// criticalPath walks back from the step that finished last. A step could
// start once every prerequisite had finished and its node was free, so
// what held it back is whichever of those finished last: its prerequisites
// in the plan and the step that ran before it on the same node.
func criticalPath(all []contract.StepStatus, timed []contract.StepTiming, byID map[string]int) []contract.StepTiming {
	if len(timed) == 0 {
		return []contract.StepTiming{}
	}
	after := map[string][]string{}
	for _, st := range all {
		after[st.ID] = st.After
	}
	last := 0
	for i, s := range timed {
		if s.Finished.After(timed[last].Finished) {
			last = i
		}
	}
	var path []contract.StepTiming
	seen := map[int]bool{}
	for cur := last; cur >= 0 && !seen[cur]; {
		seen[cur] = true
		s := timed[cur]
		prev := -1
		consider := func(j int) {
			c := timed[j]
			// Only a step that ended by the time this one started can
			// have held it back.
			if j == cur || c.Finished.After(s.Started) {
				return
			}
			if prev < 0 || c.Finished.After(timed[prev].Finished) {
				prev = j
			}
		}
		for _, a := range after[s.ID] {
			if j, ok := byID[a]; ok {
				consider(j)
			}
		}
		for j, c := range timed {
			if c.Node == s.Node {
				consider(j)
			}
		}
		if prev >= 0 {
			s.WaitS = secs(s.Started.Sub(timed[prev].Finished))
		}
		path = append(path, s)
		cur = prev
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}
