package steps

import (
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// ExecAction is the action of an exec's steps.
const ExecAction = "exec"

// ExecGroups splits nodes into the batches of an exec: max_in_flight (a
// number, or a percentage of the nodes) at a time, in order.
func ExecGroups(nodes []string, maxInFlight string) ([][]string, error) {
	n, err := contract.InFlight(maxInFlight, len(nodes))
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rest := nodes; len(rest) > 0; {
		k := min(n, len(rest))
		out = append(out, rest[:k])
		rest = rest[k:]
	}
	return out, nil
}

// ExecSteps run command on every node of groups, one step a node, one
// batch a group, each batch after the whole of the one before. comp names
// the steps' component: the one the nodes were chosen by, or "exec". Each
// step keeps its output for the result, and has a hash of its deployment
// and node: an exec runs once in each deployment, never found done.
func (in Builder) ExecSteps(comp string, groups [][]string, command string, timeoutS int) ([]*Step, []contract.Batch, error) {
	if timeoutS < 1 {
		return nil, nil, fmt.Errorf("exec timeout %d s: want at least 1", timeoutS)
	}
	out, batches := in.fleetSteps(comp, groups, func(ip string) contract.Step {
		return contract.Step{Node: ip, Component: comp, Action: ExecAction, Script: command,
			TimeoutS: timeoutS, KeepOutput: true, Hash: Hash(ExecAction, in.ID, ip)}
	})
	return out, batches, nil
}

// fleetSteps are the steps of a fleet command (an exec, a copy): spec's
// step on every node of groups, one batch a group, each batch after the
// whole of the one before.
func (in Builder) fleetSteps(comp string, groups [][]string, spec func(ip string) contract.Step) ([]*Step, []contract.Batch) {
	var out []*Step
	var batches []contract.Batch
	var gate []string
	for k, group := range groups {
		b := contract.Batch{Component: comp, Index: k, Nodes: group, State: contract.BatchPending}
		for _, ip := range group {
			s := in.stamp(&Step{Spec: spec(ip), After: gate, Prio: k})
			out = append(out, s)
			b.Steps = append(b.Steps, s.Spec.ID)
		}
		gate = b.Steps
		batches = append(batches, b)
	}
	return out, batches
}
