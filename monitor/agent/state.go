package agent

import "github.com/deployment-engine/engine/services/contract"

// procState is one monit process of a component as the agent read it.
type procState struct {
	name, monit, reason string
	running             bool
}

// componentState is what a heartbeat says of component c from its
// processes' states: running only when every process runs, and else
// monit's word for the first one down, after its name when c has several
// (the process a user must look at).
func componentState(c contract.AgentComponent, procs []procState) contract.ComponentState {
	st := contract.ComponentState{Name: c.Name, Process: c.Process, Monit: "unknown"}
	if len(c.Processes) > 1 {
		st.Processes = c.Processes
	}
	if len(procs) == 0 {
		st.Monit, st.Running = "configured (no process)", true
		return st
	}
	for _, p := range procs {
		st.Procs = append(st.Procs, contract.ProcessState{Name: p.name, State: p.monit, Running: p.running})
	}
	st.Running = true
	for _, p := range procs {
		if !p.running {
			st.Running, st.Monit = false, p.monit
			if len(procs) > 1 {
				st.Monit = p.name + ": " + p.monit
			}
			return st
		}
	}
	// Every process runs: monit's word is the first one's, and a reason
	// is that of a process running unsupervised.
	st.Monit = procs[0].monit
	for _, p := range procs {
		if p.reason != "" {
			st.Reason = p.reason
			if len(procs) > 1 {
				st.Reason = p.name + ": " + p.reason
			}
			break
		}
	}
	return st
}
