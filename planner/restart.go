package planner

import (
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

// rollingRestart answers de.cmd.deploy.restart: a deployment that restarts
// a component's instances max_in_flight at a time; each is taken out of
// its balancers, restarted, watched healthy and put back before the next
// batch starts. A batch that fails halts it, the rest untouched. Like a
// deploy, it checks the nodes without the planner's lock (see start).
func (p *Planner) rollingRestart(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.RollingRestart
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	id, err := p.restartWith(ctx, in)
	if err != nil {
		return 0, nil, err
	}
	return 202, contract.DeployStarted{ID: id}, nil
}

// restartWith starts the rolling restart in asks for and returns its
// deployment's id.
func (p *Planner) restartWith(ctx context.Context, in contract.RollingRestart) (string, error) {
	if _, err := contract.InFlight(in.MaxInFlight, 1); err != nil {
		return "", kit.Errorf(400, "max_in_flight %v", err)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return "", err
	}
	ips, err := cfg.InstancesOf(in.Component, in.IP)
	if err != nil {
		return "", &kit.Error{Code: 400, Msg: err.Error()}
	}
	cat, ok := p.o.Catalogs[cfg.CatalogName()]
	if !ok || cat.Components[in.Component] == nil {
		return "", kit.Errorf(400, "a rolling restart needs a catalog component; %s is none", in.Component)
	}
	if id, ok := p.sched.Running(); ok {
		return "", kit.Errorf(409, "deployment %s is still running; restart when it has finished", id)
	}
	previous, err := sched.LoadPlacement(ctx, p.o.Res)
	if err != nil {
		return "", err
	}
	var nodes []string
	for _, ip := range ips {
		if !slices.Contains(previous[ip], in.Component) {
			return "", kit.Errorf(409, "%s is not deployed on %s yet: deploy first", in.Component, ip)
		}
		if !slices.Contains(nodes, ip) {
			nodes = append(nodes, ip)
		}
	}
	for _, lb := range cat.Balancers(in.Component) {
		for _, ip := range cfg.Components[lb] {
			if !slices.Contains(nodes, ip) {
				nodes = append(nodes, ip)
			}
		}
	}
	results, err := p.probe(ctx, cfg, nodes)
	if err != nil {
		return "", err
	}
	for _, r := range results {
		if !r.Reachable {
			return "", kit.Errorf(502, "cannot reach %s: %s", r.IP, r.Error)
		}
	}
	id := newID()
	zero := 0
	set := steps.SettingsFor(cat, cfg, in.Component, contract.UpdateSettings{Canaries: &zero, MaxInFlight: in.MaxInFlight})
	groups, err := steps.BatchesOf(ips, set, len(cfg.Components[in.Component]))
	if err != nil {
		return "", kit.Errorf(400, "max_in_flight: %v", err)
	}
	proc := cat.Components[in.Component].Process
	script := steps.RestartScript(proc)
	if p.o.Control != nil {
		script = p.o.Control("restart", proc)
	}
	planned, batches, err := p.builderFor(cfg, cat, id, previous, nil).RestartSteps(in.Component, groups, set, script)
	if err != nil {
		return "", kit.Errorf(500, "could not plan the restart: %v", err)
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind = batches, kindRestart
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return "", err
	}
	if _, err := p.beginLocked(ctx, rec, nil); err != nil {
		return "", err
	}
	p.engineEvent(ctx, "restart", fmt.Sprintf("rolling restart of %s on %s, %s at a time: deployment %s", in.Component, strings.Join(ips, ", "), in.MaxInFlight, id))
	return id, nil
}
