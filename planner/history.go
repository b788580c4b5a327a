package planner

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// The config history: each deployment that applies a config keeps it, its
// secrets sealed, under config.<id> in DE_SCHEDULER. The last good config
// is that of the newest deployment that succeeded; a halted rollout with
// auto_revert re-applies it, and a rollback deploys it again.

// Kinds of deployment beside a deploy.
const (
	kindRevert   = "revert"
	kindRollback = "rollback"
	kindRestart  = "restart"
	// kindMaintenance takes a node's instances out of their balancers or
	// puts them back (see balance).
	kindMaintenance = "maintenance"
)

func configKey(id string) string { return "config." + id }

// appliedConfig is the config deployment id applied (a restart keeps none).
func (p *Planner) appliedConfig(ctx context.Context, id string) (contract.Config, error) {
	e, err := p.o.Res.Scheduler.Get(ctx, configKey(id))
	if err != nil {
		return contract.Config{}, err
	}
	return bus.DecodeConfig(e.Value())
}

// revertFor names the components of batches whose settings ask for
// auto_revert; nil when none does.
func revertFor(cat *catalog.Catalog, cfg contract.Config, q contract.UpdateSettings, batches []contract.Batch) *sched.RevertPlan {
	var out *sched.RevertPlan
	for _, b := range batches {
		if b.Index != 0 {
			continue
		}
		set := steps.SettingsFor(cat, cfg, b.Component, q)
		if !set.AutoRevert() {
			continue
		}
		if out == nil {
			out = &sched.RevertPlan{MaxInFlight: set.InFlight()}
		}
		out.Components = append(out.Components, b.Component)
	}
	return out
}

// recordConfig keeps the config a deployment applies.
func (p *Planner) recordConfig(ctx context.Context, rec *sched.Record, cfg *contract.Config) {
	if cfg == nil || rec.Kind == kindRestart {
		return
	}
	b, err := bus.EncodeConfig(*cfg)
	if err == nil {
		// Once a deployment: one stored under its id is not overwritten.
		_, err = p.o.Res.Scheduler.Create(ctx, configKey(rec.ID), b)
	}
	if err != nil {
		p.log.Error("keep the deployment's config", "id", rec.ID, "err", err)
	}
}

// history lists the configs the engine applied, newest first; with good,
// only those whose deployment succeeded (a restart applies none).
func (p *Planner) history(ctx context.Context, good bool) ([]contract.HistoryEntry, []contract.Config, error) {
	keys, err := sched.DeploymentIDs(ctx, p.o.Res)
	if err != nil {
		return nil, nil, fmt.Errorf("list deployments: %w", err)
	}
	var ids []string
	for _, k := range keys {
		if strings.HasPrefix(k, "d-") {
			ids = append(ids, k)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var out []contract.HistoryEntry
	var cfgs []contract.Config
	for _, id := range ids {
		d, err := p.sched.Snapshot(ctx, id)
		if err != nil || (good && d.State != contract.DeploySucceeded) {
			continue
		}
		cfg, err := p.appliedConfig(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, contract.HistoryEntry{Deployment: id, Kind: d.Kind, State: d.State, Created: d.Created, Finished: d.Finished, Config: cfg.Redact()})
		cfgs = append(cfgs, cfg)
	}
	return out, cfgs, nil
}

// configHistory answers de.cmd.config.history.
func (p *Planner) configHistory(ctx context.Context, _ micro.Request) (int, any, error) {
	out, _, err := p.history(ctx, false)
	if err != nil {
		return 0, nil, err
	}
	if out == nil {
		out = []contract.HistoryEntry{}
	}
	return 200, out, nil
}

// lastGood is the config of the newest deployment that succeeded and
// differs from not (a config digest; "" takes the newest).
func (p *Planner) lastGood(ctx context.Context, not string) (contract.Config, string, bool, error) {
	entries, cfgs, err := p.history(ctx, true)
	if err != nil {
		return contract.Config{}, "", false, err
	}
	for i, cfg := range cfgs {
		if not == "" || p.configDigest(cfg) != not {
			return cfg, entries[i].Deployment, true, nil
		}
	}
	return contract.Config{}, "", false, nil
}

// rollback answers de.cmd.deploy.rollback: the last config whose
// deployment succeeded is stored again and deployed. When the stored config
// is that one, the one before it is. Like a deploy, it checks the nodes
// without the planner's lock (see start).
func (p *Planner) rollback(ctx context.Context, _ micro.Request) (int, any, error) {
	id, err := p.rollbackNow(ctx)
	if err != nil {
		return 0, nil, err
	}
	return 202, contract.DeployStarted{ID: id}, nil
}

// rollbackNow starts a rollback and returns its deployment's id.
func (p *Planner) rollbackNow(ctx context.Context) (string, error) {
	stored, err := p.storedConfig(ctx)
	if err != nil {
		return "", err
	}
	if id, ok := p.sched.Running(); ok {
		return "", kit.Errorf(409, "deployment %s is still running; roll back when it has finished", id)
	}
	cfg, from, found, err := p.lastGood(ctx, p.configDigest(stored))
	if err != nil {
		return "", err
	}
	if !found {
		return "", kit.Errorf(409, "no earlier config deployed successfully: nothing to roll back to")
	}
	rec, err := p.prepareWith(ctx, cfg, contract.UpdateSettings{})
	if err != nil {
		p.noteRefusal(ctx, err)
		return "", err
	}
	rec.Kind = kindRollback
	// Written on the revision checked, without the planner's lock (see
	// scale).
	rev, err := p.currentRev(ctx, stored)
	if err == nil {
		rev, err = p.storeConfigAt(ctx, cfg, rev)
	}
	if err != nil {
		p.noteRefusal(ctx, err)
		return "", err
	}
	p.mu.Lock()
	id, err := p.beginLocked(ctx, rec, &cfg)
	p.mu.Unlock()
	if err != nil {
		// The config rolled back stays only with its deployment.
		p.putBack(ctx, stored, rev, "rollback")
		return "", err
	}
	p.engineEvent(ctx, "rollback", fmt.Sprintf("rollback: deployment %s applies again the config of deployment %s", id, from))
	return id, nil
}

// ends is the service's side of the scheduler (sched.Hooks).
type ends struct{ p *Planner }

// Ended is told of every deployment that ends: one that succeeded keeps
// the disk records (disksAfter); a rollout halted on a component with
// auto_revert starts the revert. Both are work of the planner that Stop
// ends.
func (e ends) Ended(rec *sched.Record) {
	p := e.p
	if rec.State == contract.DeploySucceeded {
		id, kind, nodes := rec.ID, rec.Kind, stepNodes(rec.Steps)
		if !p.svc.Go(func(ctx context.Context) { p.disksAfter(ctx, id, kind, nodes) }) {
			p.log.Warn("disk records not kept: the planner stops", "deployment", rec.ID)
		}
		return
	}
	if rec.State != contract.DeployFailed || rec.Revert == nil || rec.Kind == kindRevert {
		return
	}
	halted := ""
	for _, b := range rec.Batches {
		if b.State == contract.BatchFailed && slices.Contains(rec.Revert.Components, b.Component) {
			halted = b.Component
		}
	}
	if halted == "" {
		return
	}
	id, inFlight := rec.ID, rec.Revert.MaxInFlight
	if !p.svc.Go(func(ctx context.Context) { p.autoRevert(ctx, id, halted, inFlight) }) {
		p.log.Warn("auto-revert not started: the planner stops", "deployment", id)
	}
}

// autoRevert re-applies the last good config, without canaries: what the
// halted deployment changed goes back, the rest is unchanged already. The
// nodes are checked without the planner's lock (see start).
func (p *Planner) autoRevert(ctx context.Context, halted, comp, inFlight string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	fail := func(why string) {
		p.log.Error("auto-revert", "deployment", halted, "why", why)
		p.engineEvent(ctx, "revert", fmt.Sprintf("auto-revert after deployment %s did not start: %s", halted, why))
	}
	cfg, from, found, err := p.lastGood(ctx, "")
	switch {
	case err != nil:
		fail(err.Error())
		return
	case !found:
		fail("no config deployed successfully before")
		return
	}
	zero := 0
	rec, err := p.prepareWith(ctx, cfg, contract.UpdateSettings{Canaries: &zero, MaxInFlight: inFlight})
	if err != nil {
		fail(err.Error())
		return
	}
	rec.Kind = kindRevert
	rec.Revert = nil
	var id string
	p.mu.Lock()
	if err = p.noneRunning(); err == nil {
		id, err = p.beginLocked(ctx, rec, &cfg)
	}
	p.mu.Unlock()
	if err != nil {
		fail(err.Error())
		return
	}
	p.engineEvent(ctx, "revert", fmt.Sprintf("auto-revert: %s halted in deployment %s; deployment %s re-applies the config of deployment %s to what it changed", comp, halted, id, from))
}
