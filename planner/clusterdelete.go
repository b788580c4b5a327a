package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// kindDelete is the deployment that takes a cluster off its nodes.
const kindDelete = "delete"

// clusterDelete answers de.cmd.cluster.delete: a deployment of kind
// delete that removes every instance the cluster placed (its stops and
// drains as any removal's), half-installed ones too, then the node agent
// from every node it used. The cluster's config stays until the engine
// asks clusterLeave, once the deployment succeeded.
func (p *Planner) clusterDelete(ctx context.Context, _ micro.Request) (int, any, error) {
	if p.o.Cluster == "" || p.o.Cluster == contract.DefaultCluster {
		return 0, nil, kit.Errorf(400, "the default cluster is not deleted: post it a config without the nodes to free them")
	}
	cfg, ok, err := p.loadConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	previous, partial, err := p.leftovers(ctx)
	if err != nil {
		return 0, nil, err
	}
	if !ok || len(nodesWith(contract.Config{}, previous, partial)) == 0 {
		// Nothing placed: nothing to remove from any node, and the
		// config goes at once.
		if err := p.forgetConfig(ctx); err != nil {
			return 0, nil, err
		}
		return 200, contract.ClusterDeleted{V: contract.Version}, nil
	}
	empty := cfg
	empty.Components = map[string][]string{}
	rec, err := p.prepare(ctx, empty, contract.UpdateSettings{}, func(b steps.Builder, planned []*steps.Step, nodes []string) []*steps.Step {
		after := map[string][]string{}
		for _, s := range planned {
			after[s.Spec.Node] = append(after[s.Spec.Node], s.Spec.ID)
		}
		return b.LeaveSteps(nodes, after)
	})
	if err != nil {
		return 0, nil, err
	}
	rec.Kind = kindDelete
	p.mu.Lock()
	defer p.mu.Unlock()
	id, err := p.beginLocked(ctx, rec, nil)
	if err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, "cluster", fmt.Sprintf("cluster %s is being deleted: deployment %s removes its instances and agents from %d nodes", p.o.Cluster, id, len(rec.Steps)))
	return 202, contract.ClusterDeleted{V: contract.Version, ID: id}, nil
}

// clusterLeave answers de.cmd.cluster.leave: once a delete's deployment
// succeeded, the engine's state goes from every node it touched (over
// SSH: no step runs there any more), then the cluster's config, which
// frees its nodes for another cluster. Done twice, it finds nothing left
// to do.
func (p *Planner) clusterLeave(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ClusterLeave
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	d, err := p.deployment(ctx, contract.DeployGet{ID: in.Deployment})
	if err != nil {
		return 0, nil, err
	}
	if d.Kind != kindDelete || d.State != contract.DeploySucceeded {
		return 0, nil, kit.Errorf(409, "deployment %s is no delete that succeeded (kind %q, %s)", d.ID, d.Kind, d.State)
	}
	out := contract.ClusterLeft{V: contract.Version, Nodes: []string{}}
	cfg, ok, err := p.loadConfig(ctx)
	if err != nil || !ok {
		return 200, out, err
	}
	out.Nodes = append(out.Nodes, stepNodes(d.Steps)...)
	slices.Sort(out.Nodes)
	results, err := p.probeWith(ctx, cfg, contract.Probe{Nodes: out.Nodes, Leave: p.o.EngineID})
	if err != nil {
		return 0, nil, err
	}
	var failed []string
	for _, r := range results {
		if !r.Reachable {
			failed = append(failed, r.IP+": "+r.Error)
		} else if !r.Left && r.Owner != "" {
			failed = append(failed, fmt.Sprintf("%s is owned by engine %s", r.IP, r.Owner))
		}
	}
	if len(failed) > 0 {
		return 0, nil, kit.Errorf(502, "could not leave every node: %s", strings.Join(failed, "; "))
	}
	if err := p.forgetConfig(ctx); err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, "cluster", fmt.Sprintf("cluster %s left its %d nodes", p.o.Cluster, len(out.Nodes)))
	return 200, out, nil
}

// forgetConfig forgets the cluster's stored config, which frees its nodes.
func (p *Planner) forgetConfig(ctx context.Context) error {
	if err := p.o.Res.Config.Purge(ctx, bus.KeyConfig); err != nil && !bus.IsNotFound(err) {
		return fmt.Errorf("forget the config: %w", err)
	}
	return nil
}
