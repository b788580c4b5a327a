package planner

import (
	"context"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// reapply applies one component on one node again: a deployment of just
// that instance's steps (upload, install, register, start), which run even
// where the node records them as done, because a first step forgets that
// record. Auto-heal sends it when a restart through monit was not enough.
// Like a deploy, it checks the node without the planner's lock (see start).
func (p *Planner) reapply(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.Reapply
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	if !slices.Contains(cfg.Components[in.Component], in.IP) {
		return 0, nil, kit.Errorf(400, "the config has no %s on %s", in.Component, in.IP)
	}
	if id, ok := p.sched.Running(); ok {
		return 0, nil, kit.Errorf(409, "deployment %s is still running; re-apply when it has finished", id)
	}
	cat, ok := p.o.Catalogs[cfg.CatalogName()]
	if !ok {
		return 0, nil, kit.Errorf(500, "catalog %q is not loaded in this engine", cfg.CatalogName())
	}
	if err := cat.Verify(); err != nil {
		return 0, nil, kit.Errorf(500, "catalog %s failed its integrity check (%v)", cat.Name, err)
	}
	results, err := p.probe(ctx, cfg, []string{in.IP})
	if err != nil {
		return 0, nil, err
	}
	for _, r := range results {
		switch {
		case !r.Reachable:
			return 0, nil, kit.Errorf(502, "cannot reach %s: %s", r.IP, r.Error)
		case nodefs.OwnedElsewhere(r.Owner, p.o.EngineID):
			return 0, nil, kit.Errorf(409, "%s is owned by engine %s", r.IP, r.Owner)
		}
	}
	previous, err := sched.LoadPlacement(ctx, p.o.Res)
	if err != nil {
		return 0, nil, err
	}
	id := newID()
	// The nodes without monit (noMonit) change only the mirror step, which
	// a re-apply does not run.
	planned, err := p.builderFor(cfg, cat, id, previous, nil).ReapplySteps(in.Component, in.IP)
	if err != nil {
		return 0, nil, kit.Errorf(500, "could not plan the re-apply: %v", err)
	}
	if len(planned) < 2 {
		return 0, nil, kit.Errorf(500, "the plan has no steps for %s on %s", in.Component, in.IP)
	}
	rec := sched.NewRecord(id, map[string][]string{in.IP: {in.Component}}, planned)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return 0, nil, err
	}
	if err := p.sched.Begin(ctx, rec); err != nil {
		return 0, nil, err
	}
	p.log.Info("re-apply started", "id", id, "component", in.Component, "node", in.IP, "reason", in.Reason)
	p.engineEvent(ctx, "reapply", fmt.Sprintf("re-apply %s on %s: deployment %s (%s)", in.Component, in.IP, id, in.Reason))
	return 202, contract.DeployStarted{ID: id}, nil
}
