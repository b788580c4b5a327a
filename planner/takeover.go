package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// takeover clears the claim an engine that no longer runs left on the
// stored config's nodes (de.cmd.deploy.takeover): a node whose owner file
// names that engine loses it, so that this engine's next deploy claims it;
// a node another engine owns is left alone. Nothing else on the node
// changes. It refuses while a deployment runs.
func (p *Planner) takeover(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.Takeover
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.From == "":
		return 0, nil, kit.Errorf(400, `takeover: name the engine whose claim to clear: {"from": "e-…"} (a 409 of a deploy names it)`)
	case !contract.ValidEngineID(in.From):
		return 0, nil, kit.Errorf(400, "takeover: %q is not an engine id (e- and lowercase letters or digits)", contract.Clip(in.From))
	case in.From == p.o.EngineID:
		return 0, nil, kit.Errorf(400, "takeover: %s is this engine: its nodes are its own already", in.From)
	}
	if err := p.noneRunning(); err != nil {
		return 0, nil, err
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	nodes := cfg.Nodes()
	if len(in.Nodes) > 0 {
		for _, ip := range in.Nodes {
			if !slices.Contains(nodes, ip) {
				return 0, nil, kit.Errorf(400, "takeover: %s is not a node of the stored config", contract.Clip(ip))
			}
		}
		nodes = in.Nodes
	}
	results, err := p.probeWith(ctx, cfg, contract.Probe{Nodes: nodes, Unclaim: in.From})
	if err != nil {
		return 0, nil, err
	}
	out := contract.TakeoverReply{V: contract.Version, From: in.From, Nodes: make([]contract.TakeoverResult, len(results))}
	var cleared []string
	for i, r := range results {
		t := contract.TakeoverResult{IP: r.IP, Owner: r.Owner, Error: r.Error}
		if r.Unclaimed == in.From {
			t.Owner, t.Cleared = in.From, true
			cleared = append(cleared, r.IP)
		} else if !r.Reachable {
			t.Error = "not reached: " + r.Error
		}
		out.Nodes[i] = t
	}
	out.Cleared = len(cleared)
	if len(cleared) > 0 {
		p.engineEvent(ctx, "takeover", fmt.Sprintf("the claim of engine %s was cleared on %s: this engine's next deploy claims them", in.From, strings.Join(cleared, ", ")))
	}
	return 200, out, nil
}
