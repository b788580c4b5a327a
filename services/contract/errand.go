package contract

import (
	"fmt"
)

// KindErrand is the kind of a deployment that runs a release's errand on
// its instances (ErrandRun).
const KindErrand = "errand"

// ErrandAction is the action of an errand's run steps: each carries its
// instance's exit code, stdout and stderr (StepStatus.Stdout, .Stderr).
const ErrandAction = "run"

// DefaultErrandTimeout and MaxErrandTimeout bound an errand's run on each
// instance, in seconds.
const (
	DefaultErrandTimeout = 600
	MaxErrandTimeout     = 6 * 3600
)

// errandNameRe is a job's name as a release may spell it.
var errandNameRe = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ErrandRun runs an errand of the stored config's release
// (de.cmd.deploy.errand): the job's rendered bin/run on every instance of
// it the config places, all at once, each within Timeout seconds (default
// 600). With WhenChanged, an instance whose errand inputs (its rendered
// templates and its packages' fingerprints) are those of its last
// successful run is skipped (its step unchanged).
//
//	{"v": 1, "name": "smoke-tests", "when_changed": true, "actor": "alice"}
type ErrandRun struct {
	V           int    `json:"v,omitempty"`
	Name        string `json:"name"`
	WhenChanged bool   `json:"when_changed,omitempty"`
	Timeout     *int   `json:"timeout,omitempty"`
	// Actor is who asked, as the API's token names them (the API sets it).
	Actor string `json:"actor,omitempty"`
}

// TimeoutS is the errand's deadline on each instance, in seconds.
func (x ErrandRun) TimeoutS() int {
	if x.Timeout == nil {
		return DefaultErrandTimeout
	}
	return *x.Timeout
}

// Problems names what is wrong with x on its own; whether the config has
// that errand is the planner's to say (404).
func (x ErrandRun) Problems() []Problem {
	var out []Problem
	if !errandNameRe().MatchString(x.Name) {
		out = append(out, Problem{Path: "name", Reason: "not a job's name: letters, digits, '_', '.', '-', at most 128"})
	}
	if t := x.TimeoutS(); t < 1 || t > MaxErrandTimeout {
		out = append(out, Problem{Path: "timeout", Reason: fmt.Sprintf("%d: want seconds from 1 to %d", t, MaxErrandTimeout)})
	}
	return out
}

// ErrandStarted answers an ErrandRun: the deployment that runs it and the
// instances it runs on.
//
//	{"id": "d-20261124-223905-1a2b", "name": "smoke-tests", "nodes": ["10.0.0.5", "10.0.0.6"]}
type ErrandStarted struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Nodes []string `json:"nodes"`
}

// Errand is an errand of the stored config: a job of its release with
// bin/run, the component that places it and its instances' nodes, in
// index order.
type Errand struct {
	Name      string   `json:"name"`
	Component string   `json:"component"`
	Release   string   `json:"release"`
	Nodes     []string `json:"nodes"`
}

// ErrandList answers de.cmd.deploy.errands: the stored config's errands,
// by name.
//
//	{"errands": [{"name": "smoke-tests", "component": "smoke-tests", "release": "cf/194", "nodes": ["10.0.0.5"]}]}
type ErrandList struct {
	Errands []Errand `json:"errands"`
}
