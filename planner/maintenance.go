package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Node maintenance is kept in the engine's store (bus.KeyMaintenance), so
// that every planner, monitor and auto-heal of a split engine reads the
// same nodes held out. The planner answers its commands: it knows the
// config's nodes, and a deployment's plan holds the steps of the nodes in
// maintenance (see heldBy).

// maintenanceEndpoints are the planner's maintenance commands.
func (p *Planner) maintenanceEndpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.MaintenanceSet():  p.maintenanceSet,
		subject.MaintenanceGet():  p.maintenanceGet,
		subject.MaintenanceList(): p.maintenanceList,
	}
}

// errNoChange ends a maintenance update that would write nothing.
var errNoChange = errors.New("no change")

// maintenanceSet puts a node of the config in maintenance, or takes a
// node out. Put in again, a node keeps its start and takes the new reason
// and actor.
func (p *Planner) maintenanceSet(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.MaintenanceSet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if err := contract.CheckNodeIP(in.IP); err != nil {
		return 0, nil, &kit.Error{Code: 400, Msg: err.Error()}
	}
	if err := contract.CheckMaintenanceReason(in.Reason); err != nil {
		return 0, nil, &kit.Error{Code: 400, Msg: err.Error()}
	}
	cfg, _, err := p.loadConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	known := slices.Contains(cfg.Nodes(), in.IP)
	now := time.Now().UTC()
	var out contract.NodeMaintenance
	_, err = bus.UpdateMaintenance(ctx, p.o.Res.Engine, func(m *contract.Maintenances) error {
		cur, held := m.Nodes[in.IP]
		switch {
		case !known && !held:
			return &kit.Error{Code: 404, Msg: fmt.Sprintf("no node %s in the config", in.IP)}
		case !in.On && !held:
			out = contract.NodeMaintenance{IP: in.IP}
			return errNoChange
		case !in.On:
			delete(m.Nodes, in.IP)
			out = contract.NodeMaintenance{IP: in.IP}
			return nil
		}
		since := now
		if held && cur.Since != nil {
			since = *cur.Since
		}
		out = contract.NodeMaintenance{IP: in.IP, On: true, Reason: in.Reason, Actor: in.Actor, Since: &since}
		m.Nodes[in.IP] = out
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		return 200, out, nil
	case err != nil:
		return 0, nil, err
	}
	msg := fmt.Sprintf("node %s is back in service (by %s)", in.IP, in.Actor)
	if in.On {
		msg = fmt.Sprintf("node %s is in %s", in.IP, out.Describe())
	}
	out.Deployment, out.Warning = p.balance(ctx, cfg, in.IP, in.On)
	p.log.Info("maintenance", "node", in.IP, "on", in.On, "actor", in.Actor, "deployment", out.Deployment)
	p.engineEvent(ctx, "maintenance", msg)
	return 200, out, nil
}

// maintenanceGet answers whether a node is in maintenance: 404 for a node
// neither in the config nor in maintenance.
func (p *Planner) maintenanceGet(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.MaintenanceGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if err := contract.CheckNodeIP(in.IP); err != nil {
		return 0, nil, &kit.Error{Code: 400, Msg: err.Error()}
	}
	m, _, err := bus.LoadMaintenance(ctx, p.o.Res.Engine)
	if err != nil {
		return 0, nil, err
	}
	if n, ok := m.Nodes[in.IP]; ok {
		return 200, n, nil
	}
	cfg, _, err := p.loadConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	if !slices.Contains(cfg.Nodes(), in.IP) {
		return 0, nil, &kit.Error{Code: 404, Msg: fmt.Sprintf("no node %s in the config", in.IP)}
	}
	return 200, contract.NodeMaintenance{IP: in.IP}, nil
}

// maintenanceList lists every node in maintenance, by IP.
func (p *Planner) maintenanceList(ctx context.Context, _ micro.Request) (int, any, error) {
	m, _, err := bus.LoadMaintenance(ctx, p.o.Res.Engine)
	if err != nil {
		return 0, nil, err
	}
	return 200, m.List(), nil
}

// balance starts the deployment that takes ip's instances out of their
// balancers (out), or watches them healthy and puts them back, and
// answers its id; or why none runs when one was needed.
func (p *Planner) balance(ctx context.Context, cfg contract.Config, ip string, out bool) (string, string) {
	previous, err := sched.LoadPlacement(ctx, p.o.Res)
	cat := p.o.Catalogs[cfg.CatalogName()]
	if err != nil || cat == nil {
		return "", ""
	}
	id := newID()
	planned, err := p.builderFor(cfg, cat, id, previous, nil).MaintenanceSteps(ip, out)
	if err == nil && len(planned) == 0 {
		return "", ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		err = p.noneRunning()
	}
	if err == nil {
		rec := sched.NewRecord(id, map[string][]string{}, planned)
		rec.Kind = kindMaintenance
		_, err = p.beginLocked(ctx, rec, nil)
	}
	if err != nil && out {
		return "", "the node's instances stay in their balancers: " + err.Error() + "; put the node in maintenance again to retry"
	}
	if err != nil {
		return "", "the node's instances are not put back in their balancers: " + err.Error() + "; a rolling restart of them (PUT /restart with max_in_flight) puts them back"
	}
	return id, ""
}
