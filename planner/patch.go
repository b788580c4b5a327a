package planner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/fleet"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// patch answers de.cmd.deploy.patch: a deployment of kind patch that
// upgrades the packages of the config's nodes (or those named) from the
// engine's mirror, max_in_flight nodes at a time, each batch after the
// whole of the one before (steps.PatchSteps): the node's balanced
// instances drained, its packages upgraded, the node rebooted when the
// policy says so, waited for until every process monit watches runs, its
// instances watched healthy and put back. A failed batch halts it, the
// nodes not reached left as they were. Nodes in maintenance are left out
// and named. Like a deploy, it checks the nodes first.
func (p *Planner) patch(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.Patch
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if ps := in.Problems(); len(ps) > 0 {
		return 0, nil, fleet.Refused("patch", ps)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	nodes := cfg.Nodes()
	if len(in.Nodes) > 0 {
		var ps []contract.Problem
		if _, nodes, ps = fleet.Targets(cfg, "", in.Nodes); len(ps) > 0 {
			return 0, nil, fleet.Refused("patch", ps)
		}
	}
	m, _, err := bus.LoadMaintenance(ctx, p.o.Res.Engine)
	if err != nil {
		return 0, nil, err
	}
	var held []string
	nodes = slices.DeleteFunc(slices.Clone(nodes), func(ip string) bool {
		_, out := m.Nodes[ip]
		if out {
			held = append(held, ip)
		}
		return out
	})
	if len(nodes) == 0 {
		return 0, nil, kit.Errorf(409, "every node to patch is in maintenance (%s): take them out first", strings.Join(held, ", "))
	}
	if err := p.noneRunning(); err != nil {
		return 0, nil, err
	}
	previous, err := sched.LoadPlacement(ctx, p.o.Res)
	if err != nil {
		return 0, nil, err
	}
	// Every balancer that a drain runs on must answer too.
	reach := slices.Clone(nodes)
	cat := p.o.Catalogs[cfg.CatalogName()]
	if cat != nil {
		for _, comp := range cat.Order {
			for _, lb := range cat.Balancers(comp) {
				for _, ip := range cfg.Components[lb] {
					if !slices.Contains(reach, ip) {
						reach = append(reach, ip)
					}
				}
			}
		}
	}
	results, err := p.probe(ctx, cfg, reach)
	if err != nil {
		return 0, nil, err
	}
	for _, r := range results {
		if !r.Reachable {
			return 0, nil, kit.Errorf(502, "cannot reach %s: %s", r.IP, r.Error)
		}
	}
	groups, err := steps.ExecGroups(nodes, in.InFlightOr())
	if err != nil {
		return 0, nil, fleet.Refused("patch", []contract.Problem{{Path: "max_in_flight", Reason: err.Error()}})
	}
	id := newID()
	planned, batches, err := p.builderFor(cfg, cat, id, previous, nil).PatchSteps(groups, in.RebootOr())
	if err != nil {
		return 0, nil, kit.Errorf(500, "could not plan the patch: %v", err)
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind = batches, contract.KindPatch
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return 0, nil, err
	}
	if _, err := p.beginLocked(ctx, rec, nil); err != nil {
		return 0, nil, err
	}
	msg := fmt.Sprintf("%s patches %s from the mirror, %s at a time, reboot %s: deployment %s",
		cmp.Or(in.Actor, "someone"), strings.Join(nodes, ", "), in.InFlightOr(), in.RebootOr(), id)
	if len(held) > 0 {
		msg += "; left out, in maintenance: " + strings.Join(held, ", ")
	}
	p.engineEvent(ctx, contract.KindPatch, msg)
	return 202, contract.PatchStarted{ID: id, Nodes: nodes, Batches: len(batches), Held: held}, nil
}
