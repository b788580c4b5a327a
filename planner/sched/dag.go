// Package sched runs a deployment's DAG of steps through the installers'
// work queue, resuming where a stopped or replaced planner left it.
package sched

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// Record is a deployment as the scheduler keeps it: its steps form a DAG
// (each step runs after the steps it names in After, one step at a time on
// a node). The methods in this file are the DAG's rules: what an event
// changes, which steps may run, which never will, how the deployment ends.
// They touch no bus; the scheduler stores and publishes what they decide.
type Record struct {
	contract.Deployment
	Placement map[string][]string `json:"placement"`
	// Dispatches counts the times each step was put in the work queue (the
	// message id of each copy), Queued the stream sequence of its last copy,
	// so that a copy given up on is taken out of the queue.
	Dispatches map[string]int    `json:"dispatches,omitempty"`
	Queued     map[string]uint64 `json:"queued,omitempty"`
	// Revert names the components whose halted rollout re-applies the
	// last good config (auto_revert), with its max_in_flight.
	Revert *RevertPlan `json:"revert,omitempty"`
	// Writer names the scheduler that stored the record last (see
	// storeRecord).
	Writer string `json:"writer,omitempty"`
	// Changes marks a base whose changes follow it under <id>.<n>
	// (records.go); a whole record has none.
	Changes bool `json:"changes,omitempty"`
	// Through makes After an order and nothing more: a step runs once the
	// steps it names have ended, whatever their end, and a failure skips
	// nothing (an exec that does not halt on a failure).
	Through bool `json:"through,omitempty"`
	// rev is the revision its base was read or last written at, seq the
	// number of its last change read or written: its next write is
	// refused if another scheduler wrote it since. stored is what of it
	// the store holds, to which the next change is the difference.
	rev    uint64
	seq    int
	stored *stored
	prios  map[string]int
	specs  map[string]contract.Step
	index  map[string]int
	// about is, for a new record, the node each step run for another's
	// instance is for (steps.Step.For): hold reads it.
	about map[string]string
}

// RevertPlan is what a halted rollout's auto_revert re-applies with: the
// components whose settings ask for it and their max_in_flight. The
// scheduler keeps it with the record; the service decides (Hooks.Ended).
type RevertPlan struct {
	Components  []string `json:"components"`
	MaxInFlight string   `json:"max_in_flight"`
}

// NewRecord is a pending deployment of the planned steps.
func NewRecord(id string, placement map[string][]string, planned []*steps.Step) *Record {
	rec := &Record{
		Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: contract.DeployPending, Created: time.Now().UTC()}},
		Placement:  placement,
		specs:      map[string]contract.Step{},
		prios:      map[string]int{},
		about:      map[string]string{},
	}
	for _, s := range planned {
		rec.Steps = append(rec.Steps, contract.StepStatus{ID: s.Spec.ID, Node: s.Spec.Node, Component: s.Spec.Component,
			Action: s.Spec.Action, State: contract.StatePending, After: s.After})
		rec.specs[s.Spec.ID] = s.Spec
		rec.prios[s.Spec.ID] = s.Prio
		if s.For != "" {
			rec.about[s.Spec.ID] = s.For
		}
	}
	rec.reindex()
	return rec
}

// stateQueued marks a step waiting in the work queue for an installer.
const stateQueued = "queued"

func active(state string) bool { return state == contract.StateRunning || state == stateQueued }

// stepDone tells whether a step did what it was for on its node.
func stepDone(state string) bool {
	return state == contract.StateSucceeded || state == contract.StateUnchanged
}

// settled tells whether what waits on a step in that state may go: it is
// done, or held (its node is in maintenance, and the rest of the
// deployment goes on without it).
func settled(state string) bool {
	return stepDone(state) || state == contract.StateHeld
}

// settles is settled for r's steps: in a Through record, any end will do.
func (r *Record) settles(state string) bool {
	if r.Through {
		return contract.Final(state)
	}
	return settled(state)
}

// hold marks held every pending step of a node in maintenance, and every
// step another node runs for an instance of one (a balancer's drain and
// ready of it), and names the nodes it held in the deployment. A held step
// never runs; what waits on it goes on (settled); the deployment's
// placement does not count what it held (see placementAfter), so the next
// deployment after the maintenance ends runs it.
func (r *Record) hold(m contract.Maintenances) {
	held := map[string]bool{}
	for i := range r.Steps {
		st := &r.Steps[i]
		ip := st.Node
		if !m.Holds(ip) {
			ip = r.about[st.ID]
		}
		if st.State != contract.StatePending || ip == "" || !m.Holds(ip) {
			continue
		}
		st.State, st.Error = contract.StateHeld, "held: node "+ip+" is in "+m.Nodes[ip].Describe()
		held[ip] = true
	}
	for _, ip := range contract.SortedKeys(held) {
		r.Held = append(r.Held, contract.HeldNode{IP: ip, Reason: m.Nodes[ip].Describe()})
	}
}

func (r *Record) reindex() {
	r.index = make(map[string]int, len(r.Steps))
	for i, st := range r.Steps {
		r.index[st.ID] = i
	}
}

// live tells whether the deployment still runs or waits to.
func (r *Record) live() bool {
	return r.State == contract.DeployRunning || r.State == contract.DeployPending
}

// apply records what a step event says and tells whether it changed
// anything. An event for a step already final changes nothing: events may
// come twice.
func (r *Record) apply(ev contract.StepEvent) bool {
	i, ok := r.index[ev.ID]
	if !ok {
		return false
	}
	st := &r.Steps[i]
	if contract.Final(st.State) {
		return false
	}
	st.Attempt = max(st.Attempt, ev.Attempt)
	if ev.Started != nil && st.Started == nil {
		st.Started = ev.Started
	}
	st.Error = ev.Error
	switch ev.State {
	case contract.StateRunning:
		st.State = contract.StateRunning
	case contract.StateSucceeded, contract.StateUnchanged:
		st.State, st.Finished, st.ExitCode, st.Error, st.Output = ev.State, ev.Finished, ev.ExitCode, "", ev.Output
		st.Stdout, st.Stderr = ev.Stdout, ev.Stderr
		if ev.State == contract.StateSucceeded {
			r.Changed++
		}
	case contract.StateFailed:
		if ev.Final {
			st.State, st.Finished, st.ExitCode, st.Output = contract.StateFailed, ev.Finished, ev.ExitCode, ev.Output
			st.Stdout, st.Stderr = ev.Stdout, ev.Stderr
			r.unchain(st.Node)
		}
	}
	return true
}

// skipBlocked marks skipped every pending step that can never run because
// a step before it, directly or not, failed or was skipped. It tells
// whether it marked any.
func (r *Record) skipBlocked() bool {
	skipped := false
	for changed := true; changed; {
		changed = false
		for i := range r.Steps {
			st := &r.Steps[i]
			if st.State != contract.StatePending || r.Through {
				continue
			}
			for _, a := range st.After {
				as := r.Steps[r.index[a]].State
				if as == contract.StateFailed || as == contract.StateSkipped {
					st.State, st.Error = contract.StateSkipped, "not run: "+a+" did not succeed"
					changed, skipped = true, true
					break
				}
			}
		}
	}
	return skipped
}

// ready lists the steps to dispatch now: pending, every step before them
// done, their node running nothing; at most one a node, the first by
// priority, in the order of priority.
func (r *Record) ready() []string {
	busy := map[string]bool{}
	for _, st := range r.Steps {
		if active(st.State) {
			busy[st.Node] = true
		}
	}
	var ready []int
	for i, st := range r.Steps {
		if st.State != contract.StatePending || busy[st.Node] {
			continue
		}
		ok := true
		for _, a := range st.After {
			if !r.settles(r.Steps[r.index[a]].State) {
				ok = false
				break
			}
		}
		if ok {
			ready = append(ready, i)
		}
	}
	sort.SliceStable(ready, func(a, b int) bool {
		return r.prios[r.Steps[ready[a]].ID] < r.prios[r.Steps[ready[b]].ID]
	})
	var out []string
	for _, i := range ready {
		st := r.Steps[i]
		if !busy[st.Node] {
			busy[st.Node] = true
			out = append(out, st.ID)
		}
	}
	return out
}

// maxChain bounds the steps that travel to a node in one message.
const maxChain = 64

// chain is head and the steps of its node that may follow it in the same
// SSH session, in order: each waits only for steps already done or before
// it in the chain, and is the one the node would run next once those
// succeeded (the first by priority). Steps still queued on the node count
// as candidates too: a node has at most one chain in flight, so they are
// the rest of the chain head belongs to (a step dispatched again takes
// them along).
func (r *Record) chain(head string) []string {
	node := r.step(head).Node
	out := []string{head}
	in := map[string]bool{head: true}
	var cands []int
	for i, st := range r.Steps {
		if st.Node == node && !in[st.ID] && (st.State == contract.StatePending || st.State == stateQueued) {
			cands = append(cands, i)
		}
	}
	for len(out) < maxChain {
		next := -1
		for _, i := range cands {
			st := r.Steps[i]
			if in[st.ID] || (next >= 0 && r.prios[st.ID] >= r.prios[r.Steps[next].ID]) {
				continue
			}
			ok := true
			for _, a := range st.After {
				if !in[a] && !r.settles(r.Steps[r.index[a]].State) {
					ok = false
					break
				}
			}
			if ok {
				next = i
			}
		}
		if next < 0 {
			break
		}
		out = append(out, r.Steps[next].ID)
		in[r.Steps[next].ID] = true
	}
	return out
}

// behind tells whether st is queued behind a step of its chain not yet
// done: it waits for that step, not for an installer.
func (r *Record) behind(st *contract.StepStatus) bool {
	if st.State != stateQueued {
		return false
	}
	for _, a := range st.After {
		if !r.settles(r.Steps[r.index[a]].State) {
			return true
		}
	}
	return false
}

// unchain puts back to pending the steps queued on node behind one that
// failed there: the installer stops a chain at its first failure, so they
// did not run, and the scheduler decides again (skipBlocked skips those
// that waited for the failed step).
func (r *Record) unchain(node string) {
	for i := range r.Steps {
		if st := &r.Steps[i]; st.Node == node && st.State == stateQueued {
			st.State = contract.StatePending
		}
	}
}

// pendingWork tells whether any step is still to run, waits in the queue
// or runs.
func (r *Record) pendingWork() bool {
	for _, st := range r.Steps {
		if st.State == contract.StatePending || active(st.State) {
			return true
		}
	}
	return false
}

// activeOn names the step that runs on node, else the first queued there.
func (r *Record) activeOn(node string) string {
	queued := ""
	for _, st := range r.Steps {
		switch {
		case st.Node != node:
		case st.State == contract.StateRunning:
			return st.ID
		case st.State == stateQueued && queued == "":
			queued = st.ID
		}
	}
	return queued
}

// step is the status of step id, which must be one of r's.
func (r *Record) step(id string) *contract.StepStatus { return &r.Steps[r.index[id]] }

// abort ends every step not yet final for reason: what waits is skipped,
// what is queued or runs fails.
func (r *Record) abort(reason string, now time.Time) {
	for i := range r.Steps {
		st := &r.Steps[i]
		switch {
		case st.State == contract.StatePending:
			st.State, st.Error = contract.StateSkipped, "not run: "+reason
		case active(st.State):
			st.State, st.Finished, st.Error = contract.StateFailed, &now, reason
		}
	}
}

// conclude sets the deployment's final state: failed with reason when one
// is given, failed when a step failed, succeeded otherwise. It returns how
// many steps failed.
func (r *Record) conclude(reason string, now time.Time) int {
	r.Finished = &now
	r.State = contract.DeploySucceeded
	failed := 0
	for _, st := range r.Steps {
		if st.State == contract.StateFailed {
			failed++
		}
	}
	switch {
	case reason != "":
		r.State, r.Error = contract.DeployFailed, reason
	case failed > 0 && r.Through:
		r.State = contract.DeployFailed
		r.Error = fmt.Sprintf("%d of %d step(s) failed", failed, len(r.Steps))
	case failed > 0:
		r.State = contract.DeployFailed
		r.Error = fmt.Sprintf("%d step(s) failed; fix the cause and deploy again: only what failed or never ran will run", failed)
	}
	return failed
}

// placementAfter is where each component runs once the deployment ended:
// what it started, plus what prev held and it did not remove.
func (r *Record) placementAfter(prev map[string][]string) map[string][]string {
	out := map[string][]string{}
	removed := r.instances(func(st contract.StepStatus) bool { return st.Action == "remove" && stepDone(st.State) })
	for ip, comps := range prev {
		for _, c := range comps {
			if !removed[ip+"/"+c] {
				out[ip] = appendOnce(out[ip], c)
			}
		}
	}
	for ip, comps := range r.Placement {
		for _, c := range comps {
			if r.started(ip, c) {
				out[ip] = appendOnce(out[ip], c)
			}
		}
	}
	return out
}

// partialAfter is what the deployment leaves on nodes half installed: the
// instances of its placement whose steps reached the node (ran, whatever
// their end) but which did not start, plus those of prev (the partial
// ones before it) that it neither started nor removed. Removable from the
// moment any of its steps touched the node, as placed ones are.
func (r *Record) partialAfter(prev map[string][]string) map[string][]string {
	out := map[string][]string{}
	removed := r.instances(func(st contract.StepStatus) bool { return st.Action == "remove" && stepDone(st.State) })
	touched := r.instances(func(st contract.StepStatus) bool {
		return st.Action != "remove" && (stepDone(st.State) || st.State == contract.StateFailed || st.State == contract.StateRunning)
	})
	keep := func(ip, c string) {
		if !removed[ip+"/"+c] && !r.started(ip, c) {
			out[ip] = appendOnce(out[ip], c)
		}
	}
	for ip, comps := range prev {
		for _, c := range comps {
			keep(ip, c)
		}
	}
	for ip, comps := range r.Placement {
		for _, c := range comps {
			if touched[ip+"/"+c] {
				keep(ip, c)
			}
		}
	}
	return out
}

// instances are the node/component pairs of the steps that match.
func (r *Record) instances(match func(contract.StepStatus) bool) map[string]bool {
	out := map[string]bool{}
	for _, st := range r.Steps {
		if st.Component != "" && match(st) {
			out[st.Node+"/"+st.Component] = true
		}
	}
	return out
}

// started tells whether the deployment started component c on ip.
func (r *Record) started(ip, c string) bool {
	i, ok := r.index[steps.ID(ip, c, "start")]
	return ok && stepDone(r.Steps[i].State)
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
