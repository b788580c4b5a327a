package planner

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// fleetCopy answers de.cmd.deploy.copy: a deployment of kind copy that
// puts an operator's file on the nodes of a component, or on nodes named,
// max_in_flight at a time, one step a node. The installer sends the file
// as any step's (its size and SHA-256 checked on the node, moved into
// place), and the step reports the SHA-256 and size the node then has. A
// node that fails halts nothing: the deployment ends failed when any did.
// The content is never logged: the operations log names the path, the
// nodes and the file's size and checksum.
func (p *Planner) fleetCopy(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.FleetCopy
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if ps := in.Problems(); len(ps) > 0 {
		return 0, nil, fleetRefused("copy", ps)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	comp, nodes, ps := execTargets(cfg, contract.FleetExec{Component: in.Component, Nodes: in.Nodes})
	if len(ps) > 0 {
		return 0, nil, fleetRefused("copy", ps)
	}
	if comp == steps.ExecAction {
		comp = steps.CopyAction
	}
	if err := p.noneRunning(); err != nil {
		return 0, nil, err
	}
	groups, err := steps.ExecGroups(nodes, in.InFlightOr())
	if err != nil {
		return 0, nil, fleetRefused("copy", []contract.Problem{{Path: "max_in_flight", Reason: err.Error()}})
	}
	mode, _ := in.FileMode()
	id := newID()
	planned, batches := steps.Builder{ID: id, Engine: p.o.EngineID}.CopySteps(comp, groups, in.To, mode, in.Content)
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind, rec.Through = batches, contract.KindCopy, true
	sum := sha256.Sum256(in.Content)
	started := contract.FleetCopyStarted{ID: id, Nodes: nodes, Size: len(in.Content), SHA256: hex.EncodeToString(sum[:]),
		// The path as the audit and the operations log show it.
		To: contract.Clip(cfg.OutputRedactor(p.agentPasswords(cfg)...).Redact(in.To))}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return 0, nil, err
	}
	if _, err := p.beginLocked(ctx, rec, nil); err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, contract.KindCopy, fmt.Sprintf("%s copies %d bytes (sha256 %s) to %s on %s, %s at a time: deployment %s",
		cmp.Or(in.Actor, "someone"), started.Size, started.SHA256, started.To, strings.Join(nodes, ", "), in.InFlightOr(), id))
	return 202, started, nil
}
