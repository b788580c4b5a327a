package contract

import "time"

// Report is a deployment's timings, as GET
// /deployment-engine/deployments/{id}/report answers it: the total, the
// time spent per node, component and action, the critical path through the
// step graph and the slowest steps. Durations are in seconds. Only steps
// that ran (with a start and an end) count.
//
//	{"v": 1, "id": "d-1", "state": "succeeded", "total_s": 41.2, "steps_timed": 26,
//	 "nodes": [{"name": "10.0.0.1", "steps": 13, "busy_s": 20.1, "max_s": 6.2}],
//	 "critical_path_s": 40.8, "critical_path": [{"id": "10.0.0.1/_node/prepare", ..., "duration_s": 1.2, "wait_s": 0}],
//	 "slowest": [...], "steps": [...]}
type Report struct {
	V        int        `json:"v"`
	ID       string     `json:"id"`
	State    string     `json:"state"`
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	// TotalS is from the deployment's creation to its end (to now while
	// it runs).
	TotalS float64 `json:"total_s"`
	// StepsTimed counts the steps that ran; StepsTotal every step.
	StepsTimed int           `json:"steps_timed"`
	StepsTotal int           `json:"steps_total"`
	Nodes      []TimingGroup `json:"nodes"`
	Components []TimingGroup `json:"components"`
	Actions    []TimingGroup `json:"actions"`
	// CriticalPath is the chain of steps that decided when the deployment
	// ended: from the step that finished last, back through whichever of
	// its prerequisites (or the step before it on its node) finished last.
	// Each step starts after the one before it ends; WaitS is the gap.
	CriticalPath  []StepTiming `json:"critical_path"`
	CriticalPathS float64      `json:"critical_path_s"`
	// Slowest are the 20 longest steps, longest first.
	Slowest []StepTiming `json:"slowest"`
	// Steps are every step that ran, by start: the data of a Gantt chart.
	Steps []StepTiming `json:"steps"`
}

// TimingGroup is the time spent by the steps of one node, component or
// action: BusyS is the sum of their durations, MaxS the longest one.
type TimingGroup struct {
	Name  string  `json:"name"`
	Steps int     `json:"steps"`
	BusyS float64 `json:"busy_s"`
	MaxS  float64 `json:"max_s"`
}

// StepTiming is one step that ran, with its duration.
type StepTiming struct {
	ID        string    `json:"id"`
	Node      string    `json:"node"`
	Component string    `json:"component"`
	Action    string    `json:"action"`
	State     string    `json:"state"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	DurationS float64   `json:"duration_s"`
	// WaitS, on the critical path, is the time between the end of the
	// step before and this one's start (dispatch and queueing).
	WaitS float64 `json:"wait_s,omitempty"`
}
