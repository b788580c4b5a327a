package planner

import (
	"context"
	"net"
	"strconv"
	"sync"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// agentDoor remembers where the engine last tried to listen for agents and
// what came of it, so that a plan knows whether a deployment would install
// them without moving anything.
type agentDoor struct {
	mu   sync.Mutex
	home string
	err  error
}

// listenForAgents makes the engine listen for node agents at cfg's home;
// an error means deployments of cfg install no agent (its nodes are read
// over SSH).
// The engine listens even without an agent binary to serve: agents
// installed before still report.
func (p *Planner) listenForAgents(cfg contract.Config) error {
	a := p.o.Agent
	if a == nil {
		return nil
	}
	var err error
	if a.Listen != nil {
		err = a.Listen(cfg.Properties.Home)
		p.door.mu.Lock()
		p.door.home, p.door.err = cfg.Properties.Home, err
		p.door.mu.Unlock()
		if err != nil {
			p.log.Warn("no node agents", "home", cfg.Properties.Home, "err", err)
		}
	}
	if err == nil {
		err = a.Missing
	}
	return err
}

// agentPlanFor is how a deployment of cfg installs the node agent, or nil
// when it installs none: agents off, no agent binary to serve, or the
// engine could not listen at cfg's home. A home never tried (a plan of a
// config not stored) counts as one the engine will listen at.
func (p *Planner) agentPlanFor(cfg contract.Config) *steps.Agent {
	a := p.o.Agent
	if a == nil || a.Missing != nil {
		return nil
	}
	p.door.mu.Lock()
	failed := p.door.home == cfg.Properties.Home && p.door.err != nil
	p.door.mu.Unlock()
	if failed {
		return nil
	}
	ca := a.CA
	if a.CurrentCA != nil {
		ca = a.CurrentCA()
	}
	return &steps.Agent{SHA256: a.SHA256, URL: p.nodeURL(cfg) + a.Path, Password: a.Password, CA: ca,
		NATSURL: "nats://" + net.JoinHostPort(cfg.Properties.Home, strconv.Itoa(a.NATSPort))}
}

// listenAtStoredHome listens for agents at the stored config's home, so
// that agents installed before a restart find the engine again.
func (p *Planner) listenAtStoredHome(ctx context.Context) {
	if cfg, ok, err := p.loadConfig(ctx); err == nil && ok {
		_ = p.listenForAgents(cfg)
	}
}

func agentWarning(err error) string {
	return "node agents: " + err.Error() + "; deployments install none, and the nodes are read over SSH"
}
