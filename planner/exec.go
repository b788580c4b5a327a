package planner

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/fleet"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// fleetExec answers de.cmd.deploy.exec: a deployment of kind exec that runs
// an operator's command on the nodes of a component, or on nodes named,
// max_in_flight at a time, one step a node (fleet.Exec). The installer runs
// each step as it runs any (through the node's agent when one answers, its
// deadline kept on the node, its process group killed at it) and keeps the
// end of its output, redacted. The deployment ends failed when any node did.
func (p *Planner) fleetExec(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.FleetExec
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	started, err := p.startExec(ctx, in)
	if err != nil {
		return 0, nil, err
	}
	return 202, started, nil
}

// startExec begins the deployment of an exec, as asked through the API or
// by a schedule.
func (p *Planner) startExec(ctx context.Context, in contract.FleetExec) (contract.FleetExecStarted, error) {
	if ps := in.Problems(); len(ps) > 0 {
		return contract.FleetExecStarted{}, fleet.Refused("exec", ps)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return contract.FleetExecStarted{}, err
	}
	id := newID()
	rec, nodes, shown, err := fleet.Exec(cfg, in, id, p.o.EngineID, p.agentPasswords(cfg)...)
	if err != nil {
		return contract.FleetExecStarted{}, err
	}
	if err := p.beginFleet(ctx, cfg, rec); err != nil {
		return contract.FleetExecStarted{}, err
	}
	p.engineEvent(ctx, contract.KindExec, fmt.Sprintf("%s runs %q on %s, %s at a time, %d s each: deployment %s",
		cmp.Or(in.Actor, "someone"), shown, strings.Join(nodes, ", "), in.InFlightOr(), in.TimeoutS(), id))
	return contract.FleetExecStarted{ID: id, Command: shown}, nil
}

// fleetCopy answers de.cmd.deploy.copy: a deployment of kind copy that
// puts an operator's file on the nodes of a component, or on nodes named
// (fleet.Copy), or with from reads one back from them; each step reports
// the SHA-256 and size the node then has. The content is never logged: the
// operations log names the path, the nodes and the file's size and
// checksum.
func (p *Planner) fleetCopy(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.FleetCopy
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if ps := in.Problems(); len(ps) > 0 {
		return 0, nil, fleet.Refused("copy", ps)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	rec, started, err := fleet.Copy(cfg, in, newID(), p.o.EngineID, p.agentPasswords(cfg)...)
	if err != nil {
		return 0, nil, err
	}
	if err := p.beginFleet(ctx, cfg, rec); err != nil {
		return 0, nil, err
	}
	what := fmt.Sprintf("copies %d bytes (sha256 %s) to %s on", started.Size, started.SHA256, started.To)
	if started.From != "" {
		what = "reads " + started.From + " back from"
	}
	p.engineEvent(ctx, contract.KindCopy, fmt.Sprintf("%s %s %s, %s at a time: deployment %s",
		cmp.Or(in.Actor, "someone"), what, strings.Join(started.Nodes, ", "), in.InFlightOr(), started.ID))
	return 202, started, nil
}

// beginFleet begins a fleet command's deployment, unless another runs or
// the config changed meanwhile.
func (p *Planner) beginFleet(ctx context.Context, cfg contract.Config, rec *sched.Record) error {
	if err := p.noneRunning(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return err
	}
	_, err := p.beginLocked(ctx, rec, nil)
	return err
}
