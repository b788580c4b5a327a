package engine

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/planner"
	"github.com/deployment-engine/engine/services/bus"
)

// engineBus is the bus the engine's services share once it is declared.
type engineBus struct {
	nc       *nats.Conn
	res      *bus.Resources
	engineID string
	// agent is the node agent deploy installs; nil where nodes cannot
	// reach the bus.
	agent *planner.AgentSpec
	// agentPass is the agents' NATS passwords, when this engine holds the
	// agent secret.
	agentPass func(ip string) string
	// certs is the agents' NATS listener's TLS, and srv the embedded
	// server, where this process runs it.
	certs *agentCerts
	srv   *bus.Server
}

// startBus connects to the bus (an external cluster or the embedded
// server), declares its streams and buckets and settles the engine's id.
func startBus(ctx context.Context, o Options, key engineKey, stops *[]func()) (*engineBus, error) {
	log := o.Logger
	// A process started with its NATS servers, as at boot, waits for them
	// (and for their JetStream leader and peers, see Declare), within a
	// bound: one that never comes up is an error naming what to check.
	startCtx, started := context.WithTimeout(ctx, cmp.Or(o.StartTimeout, bus.DefaultStartTimeout))
	defer started()
	b := &engineBus{}
	var err error
	if o.NATSURL != "" {
		b.nc, err = dialBus(startCtx, o.NATSURL, log)
	} else {
		err = startEmbeddedBus(ctx, o, key, b, stops)
	}
	if err != nil {
		return nil, err
	}
	nc := b.nc
	*stops = append(*stops, func() { _ = nc.Drain() })
	if b.res, err = bus.Declare(startCtx, nc, bus.WithReplicas(o.Replicas), bus.WithLogger(log)); err != nil {
		return nil, err
	}
	log.Info("bus declared", "replicas", b.res.Replicas, "cluster_size", bus.ClusterSize(nc), "cluster", nc.ConnectedClusterName())
	if err := bus.Await(startCtx, log, "kv "+bus.KVEngine, func(ctx context.Context) (err error) {
		b.engineID, err = identity(ctx, b.res, o.DataDir, o.EngineID)
		return err
	}); err != nil {
		return nil, fmt.Errorf("bus: kv %s: %w", bus.KVEngine, err)
	}
	return b, nil
}

// dialBus connects to an external NATS cluster, waiting for it within
// ctx.
func dialBus(ctx context.Context, url string, log *slog.Logger) (*nats.Conn, error) {
	var nc *nats.Conn
	if err := bus.Await(ctx, log, "the NATS servers", func(context.Context) (err error) {
		nc, err = bus.Dial(url, "deployment-engine")
		return err
	}); err != nil {
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	// A lost server is followed by a reconnect to another member of
	// the cluster; subscriptions and consumers carry on over it.
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("bus disconnected; reconnecting", "err", err) })
	nc.SetReconnectHandler(func(c *nats.Conn) { log.Info("bus reconnected", "server", c.ConnectedUrlRedacted()) })
	return nc, nil
}

// startEmbeddedBus runs the NATS server in this process, with the door
// and the certificates node agents reach it by, and connects b to it.
func startEmbeddedBus(ctx context.Context, o Options, key engineKey, b *engineBus, stops *[]func()) error {
	log := o.Logger
	so := bus.ServerOptions{DataDir: o.DataDir, Logger: log.With("service", "nats"), EncryptionKey: key.storeKey()}
	host, agentPort, err := agentListenFlag(o.NATSListen)
	if err != nil {
		return err
	}
	var certs *agentCerts
	if host != "" || !o.NoAgents {
		// Agents (and observers) reach NATS over TLS only, trusting
		// the certificate the engine gives them.
		if certs, err = natsCerts(o, host); err != nil {
			return err
		}
		so.TLS = certs.Config()
		so.Host, so.Port = host, agentPort
		if host == "" {
			// Following home: the server listens on loopback and a
			// door at home forwards to it.
			so.Host, so.Port = "127.0.0.1", -1
		}
	}
	srv, err := bus.StartServer(ctx, so)
	if err != nil {
		return err
	}
	*stops = append(*stops, srv.Stop)
	b.srv = srv
	observer, err := secretFile(filepath.Join(o.DataDir, "nats-observer"))
	if err != nil {
		return err
	}
	srv.SetObserverPassword(observer)
	agentSecret, err := secretFile(filepath.Join(o.DataDir, "agent-secret"))
	if err != nil {
		return err
	}
	srv.SetAgentSecret([]byte(agentSecret))
	b.agentPass = func(ip string) string { return bus.AgentPassword([]byte(agentSecret), ip) }
	if certs != nil {
		b.certs = certs
		target := ""
		if host == "" {
			target = srv.Addr().String()
		}
		door := newAgentDoor(certs, target, agentPort, log.With("service", "agents"))
		*stops = append(*stops, door.Close)
		if !o.NoAgents {
			b.agent = &planner.AgentSpec{NATSPort: agentPort, Listen: door.Listen, Password: b.agentPass, CA: certs.CAPEM(), CurrentCA: certs.Trust,
				Missing: o.agentErr}
			if o.agent != nil {
				b.agent.SHA256, b.agent.Path = o.agent.SHA256, api.AgentPath(o.agent.SHA256)
			}
		}
	}
	b.nc, err = srv.Connect("deployment-engine")
	return err
}
