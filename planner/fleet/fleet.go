// Package fleet plans the commands an operator runs across nodes (exec,
// copy): each a deployment of one step a node, max_in_flight at a time, a
// node that fails halting nothing unless asked.
package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Exec is the record of an exec deployment id of cfg, and the command as
// the audit and the operations log show it: the config's secrets (and
// also's) taken out, as from its output. A client's mistake is a 400
// naming each field at fault.
func Exec(cfg contract.Config, in contract.FleetExec, id, engine string, also ...string) (rec *sched.Record, nodes []string, shown string, err error) {
	if ps := in.Problems(); len(ps) > 0 {
		return nil, nil, "", Refused("exec", ps)
	}
	comp, nodes, ps := Targets(cfg, in.Component, in.Nodes)
	if len(ps) > 0 {
		return nil, nil, "", Refused("exec", ps)
	}
	groups, err := steps.ExecGroups(nodes, in.InFlightOr())
	if err != nil {
		return nil, nil, "", Refused("exec", []contract.Problem{{Path: "max_in_flight", Reason: err.Error()}})
	}
	planned, batches, err := steps.Builder{ID: id, Engine: engine}.ExecSteps(comp, groups, in.Command, in.TimeoutS())
	if err != nil {
		return nil, nil, "", Refused("exec", []contract.Problem{{Path: "timeout", Reason: err.Error()}})
	}
	rec = sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind, rec.Through = batches, contract.KindExec, !in.HaltOnFailure
	return rec, nodes, contract.Clip(cfg.OutputRedactor(also...).Redact(in.Command)), nil
}

// Copy is the record of a copy deployment id of cfg, and what its start
// answers: the nodes, the file's size and SHA-256, and its path as the
// audit shows it; with From, the steps read the file back from each node
// and the size and SHA-256 are theirs to report. The content itself is
// never shown.
func Copy(cfg contract.Config, in contract.FleetCopy, id, engine string, also ...string) (*sched.Record, contract.FleetCopyStarted, error) {
	if ps := in.Problems(); len(ps) > 0 {
		return nil, contract.FleetCopyStarted{}, Refused("copy", ps)
	}
	comp, nodes, ps := Targets(cfg, in.Component, in.Nodes)
	if len(ps) > 0 {
		return nil, contract.FleetCopyStarted{}, Refused("copy", ps)
	}
	if comp == steps.ExecAction {
		comp = steps.CopyAction
	}
	groups, err := steps.ExecGroups(nodes, in.InFlightOr())
	if err != nil {
		return nil, contract.FleetCopyStarted{}, Refused("copy", []contract.Problem{{Path: "max_in_flight", Reason: err.Error()}})
	}
	b := steps.Builder{ID: id, Engine: engine}
	red := cfg.OutputRedactor(also...)
	started := contract.FleetCopyStarted{ID: id, Nodes: nodes}
	var planned []*steps.Step
	var batches []contract.Batch
	if in.From != "" {
		// Each node's step reads the file back (steps.CopyFromSteps).
		planned, batches = b.CopyFromSteps(comp, groups, in.From)
		started.From = contract.Clip(red.Redact(in.From))
	} else {
		mode, _ := in.FileMode()
		planned, batches = b.CopySteps(comp, groups, in.To, mode, in.Content)
		sum := sha256.Sum256(in.Content)
		started.Size, started.SHA256 = len(in.Content), hex.EncodeToString(sum[:])
		started.To = contract.Clip(red.Redact(in.To))
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind, rec.Through = batches, contract.KindCopy, true
	return rec, started, nil
}

// Targets are the nodes a fleet command runs on, in order, and the
// component its steps are of: the config's nodes with an instance of
// component, or the nodes named, each of which must be the config's.
func Targets(cfg contract.Config, component string, named []string) (string, []string, []contract.Problem) {
	if component != "" {
		ips, ok := cfg.Components[component]
		if !ok {
			return "", nil, []contract.Problem{{Path: "component", Component: contract.Clip(component),
				Reason: "not a component of the config (it has " + strings.Join(contract.SortedKeys(cfg.Components), ", ") + ")"}}
		}
		var nodes []string
		for _, ip := range ips {
			if !slices.Contains(nodes, ip) {
				nodes = append(nodes, ip)
			}
		}
		if len(nodes) == 0 {
			return "", nil, []contract.Problem{{Path: "component", Component: component, Reason: "has no instance in the config"}}
		}
		return component, nodes, nil
	}
	known := cfg.Nodes()
	var nodes []string
	var ps []contract.Problem
	for i, ip := range named {
		switch {
		case !slices.Contains(known, ip):
			ps = append(ps, contract.Problem{Path: fmt.Sprintf("nodes[%d]", i), IP: ip, Reason: "not a node of the config"})
		case !slices.Contains(nodes, ip):
			nodes = append(nodes, ip)
		}
	}
	return steps.ExecAction, nodes, ps
}

// Refused is a fleet command's 400: its message names each field at
// fault.
func Refused(what string, ps []contract.Problem) *kit.Error {
	var why []string
	for _, p := range ps {
		why = append(why, p.Path+": "+p.Reason)
	}
	return &kit.Error{Code: 400, Msg: contract.Clip(what + " refused: " + strings.Join(why, "; ")), Problems: ps}
}
