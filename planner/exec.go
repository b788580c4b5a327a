package planner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// fleetExec answers de.cmd.deploy.exec: a deployment of kind exec that runs
// an operator's command on the nodes of a component, or on nodes named,
// max_in_flight at a time, one step a node. The installer runs each step
// as it runs any (through the node's agent when one answers, its deadline
// kept on the node, its process group killed at it) and keeps the end of
// its output, redacted. A failure halts nothing unless asked: every node
// runs the command, and the deployment ends failed when any did.
func (p *Planner) fleetExec(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.FleetExec
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if ps := in.Problems(); len(ps) > 0 {
		return 0, nil, fleetRefused("exec", ps)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	comp, nodes, ps := execTargets(cfg, in)
	if len(ps) > 0 {
		return 0, nil, fleetRefused("exec", ps)
	}
	if err := p.noneRunning(); err != nil {
		return 0, nil, err
	}
	groups, err := steps.ExecGroups(nodes, in.InFlightOr())
	if err != nil {
		return 0, nil, fleetRefused("exec", []contract.Problem{{Path: "max_in_flight", Reason: err.Error()}})
	}
	id := newID()
	planned, batches, err := steps.Builder{ID: id, Engine: p.o.EngineID}.ExecSteps(comp, groups, in.Command, in.TimeoutS())
	if err != nil {
		return 0, nil, fleetRefused("exec", []contract.Problem{{Path: "timeout", Reason: err.Error()}})
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind, rec.Through = batches, contract.KindExec, !in.HaltOnFailure
	// What the audit and the operations log show of the command: the
	// config's secrets taken out, as from its output.
	shown := contract.Clip(cfg.OutputRedactor(p.agentPasswords(cfg)...).Redact(in.Command))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return 0, nil, err
	}
	if _, err := p.beginLocked(ctx, rec, nil); err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, contract.KindExec, fmt.Sprintf("%s runs %q on %s, %s at a time, %d s each: deployment %s",
		cmp.Or(in.Actor, "someone"), shown, strings.Join(nodes, ", "), in.InFlightOr(), in.TimeoutS(), id))
	return 202, contract.FleetExecStarted{ID: id, Command: shown}, nil
}

// execTargets are the nodes an exec runs on, in order, and the component
// its steps are of: the config's nodes with an instance of the component,
// or the nodes named, each of which must be the config's.
func execTargets(cfg contract.Config, in contract.FleetExec) (string, []string, []contract.Problem) {
	if in.Component != "" {
		ips, ok := cfg.Components[in.Component]
		if !ok {
			return "", nil, []contract.Problem{{Path: "component", Component: contract.Clip(in.Component),
				Reason: "not a component of the config (it has " + strings.Join(contract.SortedKeys(cfg.Components), ", ") + ")"}}
		}
		var nodes []string
		for _, ip := range ips {
			if !slices.Contains(nodes, ip) {
				nodes = append(nodes, ip)
			}
		}
		if len(nodes) == 0 {
			return "", nil, []contract.Problem{{Path: "component", Component: in.Component, Reason: "has no instance in the config"}}
		}
		return in.Component, nodes, nil
	}
	known := cfg.Nodes()
	var nodes []string
	var ps []contract.Problem
	for i, ip := range in.Nodes {
		switch {
		case !slices.Contains(known, ip):
			ps = append(ps, contract.Problem{Path: fmt.Sprintf("nodes[%d]", i), IP: ip, Reason: "not a node of the config"})
		case !slices.Contains(nodes, ip):
			nodes = append(nodes, ip)
		}
	}
	return steps.ExecAction, nodes, ps
}

// fleetRefused is an exec's or a copy's 400: its message names each
// field at fault.
func fleetRefused(what string, ps []contract.Problem) *kit.Error {
	var why []string
	for _, p := range ps {
		why = append(why, p.Path+": "+p.Reason)
	}
	return &kit.Error{Code: 400, Msg: contract.Clip(what + " refused: " + strings.Join(why, "; ")), Problems: ps}
}
