package contract

import (
	"fmt"
	"slices"
	"strings"
)

// StepQuery asks GET /deployments/{id} for a summary and a page of steps
// instead of every step (de.cmd.deploy.get's "page"): the query's
// ?steps=0 or ?summary=1 (the summary alone), ?steps=failed,running (steps
// in those states) and ?offset=&limit= (the page, in the deployment's
// order). A deployment's steps and their order never change, so pages of
// every step see each exactly once; pages of steps in some states do once
// it ended (while it runs, a step may change state between two pages).
//
//	{"states": ["failed"], "offset": 0, "limit": 100}
type StepQuery struct {
	// None asks for the summary alone (steps=0).
	None   bool     `json:"none,omitempty"`
	States []string `json:"states,omitempty"`
	Offset int      `json:"offset,omitempty"`
	Limit  int      `json:"limit,omitempty"`
}

// Bounds of a page of steps.
const (
	DefaultStepPage = 100
	MaxStepPage     = 1000
	MaxStepOffset   = 1 << 20
	// MaxSummaryFailed bounds the failed steps a summary lists; the
	// others are paged with ?steps=failed.
	MaxSummaryFailed = 20
)

// StepStates are the states a step can be in, as ?steps= names them.
var StepStates = []string{StatePending, "queued", StateRunning, StateSucceeded, StateUnchanged, StateFailed, StateSkipped, StateHeld}

// Check tells what is wrong with q, in a sentence for a 400.
func (q StepQuery) Check() error {
	for _, s := range q.States {
		if !slices.Contains(StepStates, s) {
			return fmt.Errorf("steps: unknown step state %q: 0, or states among %s, comma-separated", Clip(s), strings.Join(StepStates, ", "))
		}
	}
	switch {
	case q.None && (len(q.States) > 0 || q.Offset != 0 || q.Limit != 0):
		return fmt.Errorf("steps=0 (summary=1) asks for no step: it takes no state, offset or limit")
	case q.Offset < 0 || q.Offset > MaxStepOffset:
		return fmt.Errorf("offset: %d is not between 0 and %d", q.Offset, MaxStepOffset)
	case q.Limit < 0 || q.Limit > MaxStepPage:
		return fmt.Errorf("limit: %d is not between 1 and %d", q.Limit, MaxStepPage)
	}
	return nil
}

// DeploymentPage is a deployment's summary and, unless the summary alone
// was asked for, one page of its steps.
//
//	{"id": "d-…", "state": "running", "changed": 12, "total": 4200,
//	 "counts": {"succeeded": 12, "running": 600, "failed": 1, "pending": 3587},
//	 "components": {"web": {"succeeded": 12, "running": 600, "failed": 1, "pending": 587}, ...},
//	 "failed": [{"id": "10.0.0.7/web/start", ...}],
//	 "batch": {"component": "web", "index": 1, ...}, "matched": 600, "offset": 0, "limit": 100, "steps": [...]}
type DeploymentPage struct {
	DeploymentSummary
	Error string `json:"error,omitempty"`
	// Total counts its steps, Counts them per state, Components per
	// component and then per state.
	Total      int                       `json:"total"`
	Counts     map[string]int            `json:"counts"`
	Components map[string]map[string]int `json:"components"`
	// Failed are its first failed steps, in its order, at most
	// MaxSummaryFailed of the Counts["failed"] there are.
	Failed []StepStatus `json:"failed,omitempty"`
	// Batch is its rollout's current batch (the first running, else the
	// first pending), without its steps' ids; Batches counts its batches.
	Batch   *Batch `json:"batch,omitempty"`
	Batches int    `json:"batches,omitempty"`
	// Matched counts the steps the query's states match; Steps are those
	// from Offset, at most Limit. Absent with the summary alone.
	Matched *int         `json:"matched,omitempty"`
	Offset  int          `json:"offset,omitempty"`
	Limit   int          `json:"limit,omitempty"`
	Steps   []StepStatus `json:"steps,omitempty"`
}

// PageOf is d summarised, with the page of steps q asks for.
func PageOf(d Deployment, q StepQuery) DeploymentPage {
	p := DeploymentPage{DeploymentSummary: d.DeploymentSummary, Error: d.Error, Total: len(d.Steps),
		Counts: map[string]int{}, Components: map[string]map[string]int{}, Batches: len(d.Batches)}
	for _, st := range d.Steps {
		p.Counts[st.State]++
		c := p.Components[st.Component]
		if c == nil {
			c = map[string]int{}
			p.Components[st.Component] = c
		}
		c[st.State]++
		if st.State == StateFailed && len(p.Failed) < MaxSummaryFailed {
			p.Failed = append(p.Failed, st)
		}
	}
	p.Batch = currentBatch(d.Batches)
	if q.None {
		return p
	}
	p.Offset, p.Limit = q.Offset, q.Limit
	if p.Limit == 0 {
		p.Limit = DefaultStepPage
	}
	matched := 0
	for _, st := range d.Steps {
		if len(q.States) > 0 && !slices.Contains(q.States, st.State) {
			continue
		}
		if matched >= p.Offset && len(p.Steps) < p.Limit {
			p.Steps = append(p.Steps, st)
		}
		matched++
	}
	p.Matched = &matched
	return p
}

func currentBatch(bs []Batch) *Batch {
	pick := -1
	for i, b := range bs {
		if b.State == BatchRunning {
			pick = i
			break
		}
		if b.State == BatchPending && pick < 0 {
			pick = i
		}
	}
	if pick < 0 {
		return nil
	}
	b := bs[pick]
	b.Steps = nil
	return &b
}
