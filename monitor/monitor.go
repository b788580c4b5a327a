// Package monitor is the monitor service: it answers every command on the
// nodes and their components (status, hardware, Prometheus targets, monit
// restart and stop) from what the nodes' agents report, or over SSH where
// no agent reports.
//
// To answer, it keeps the latest heartbeat of every node; from the same
// heartbeats it publishes an event when a component goes down or comes
// back, and exports per-node series.
package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/subject"
)

// Options configure the monitor.
type Options struct {
	NC     *nats.Conn
	Res    *bus.Resources
	Logger *slog.Logger
	// Cluster is the cluster this monitor watches ("": the default), as
	// its Prometheus targets are labelled.
	Cluster string
	// Process names a component's monit process in a catalog, for nodes
	// whose agent does not answer.
	Process func(catalog, component string) (string, bool)
	// Missed is how many heartbeat intervals a node may miss before it is
	// reported unreachable (default 3).
	Missed int
	// ControlWait bounds how long a node may take to finish a restart or
	// stop (default: monit.Wait of the action).
	ControlWait time.Duration
	// StatusWait bounds how long status waits for nodes read over SSH
	// (default 1.5 s): a node that has not answered by then is shown from
	// its last read, or as unreachable once that is too old.
	StatusWait time.Duration
}

// Monitor is the running service.
type Monitor struct {
	o        Options
	log      *slog.Logger
	svc      *kit.Service
	sub      *nats.Subscription
	stop     chan struct{}
	stopOnce sync.Once
	// ctx ends at Stop: the writes the monitor makes end with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// kept are the heartbeats to write to DE_NODES, by IP token, the
	// latest of each node: the heartbeat callback only notes them, and
	// keep writes them (a slow store delays no heartbeat).
	keptMu sync.Mutex
	kept   map[string][]byte
	keepUp chan struct{}

	pre preStarts

	mu    sync.RWMutex
	nodes map[string]*node

	ssh sshCache
	cfg configCache // status's
}

// node is what the monitor knows of one node.
type node struct {
	hb     contract.Heartbeat
	seen   time.Time
	silent bool // reported unreachable, not yet heard from again
	// entries are hb's status entries of the components it shows up,
	// encoded (renderEntries); read-only once the node is stored.
	entries map[string][]byte
}

// fresh tells whether the node reported within its allowed silence.
func (m *Monitor) fresh(n *node, now time.Time) bool {
	return nodeclient.Reporting(n.hb, n.seen, now, m.o.Missed)
}

// Start subscribes to heartbeats and registers the monitor's commands.
func Start(ctx context.Context, o Options) (*Monitor, error) {
	kit.Default(&o.Missed, 3)
	kit.Default(&o.StatusWait, 1500*time.Millisecond)
	if o.Process == nil {
		o.Process = func(_, c string) (string, bool) { return c, true }
	}
	mctx, cancel := context.WithCancel(context.Background())
	svc := kit.NewService(o.Logger, "monitor")
	m := &Monitor{o: o, log: svc.Log(), svc: svc, nodes: map[string]*node{}, stop: make(chan struct{}),
		ctx: mctx, cancel: cancel, kept: map[string][]byte{}, keepUp: make(chan struct{}, 1),
		ssh: sshCache{nodes: map[string]*sshNode{}}}
	m.load(ctx)
	fail := func(err error) (*Monitor, error) {
		m.Stop()
		return nil, err
	}
	if err := m.pre.follow(ctx, o.Res.Events, m.log.Warn); err != nil {
		return fail(fmt.Errorf("monitor: %w", err))
	}
	var err error
	if m.sub, err = o.NC.Subscribe(subject.AllHeartbeats, m.heartbeat); err != nil {
		return fail(fmt.Errorf("monitor: subscribe to heartbeats: %w", err))
	}
	eps := map[string]kit.Handler{subject.MonitorStatus(): m.status, subject.MonitorHardware(): m.hardware, subject.MonitorControl(): m.control, subject.MonitorTargets(): m.targets,
		subject.MonitorInstances(): m.instanceList}
	if err := svc.Serve(o.NC, "node and component state, restart and stop", eps); err != nil {
		return fail(err)
	}
	m.wg.Add(2)
	go m.watch()
	go m.keep()
	return m, nil
}

// stopWait bounds how long Stop waits for the requests in flight (a
// restart waiting on its node) once their ctx ended.
const stopWait = 5 * time.Second

// Stop stops the monitor: requests in flight are cancelled and waited for
// up to stopWait.
func (m *Monitor) Stop() {
	// Once, whoever calls: a failed start and its caller may both stop it.
	first := false
	m.stopOnce.Do(func() { first = true; close(m.stop) })
	if !first {
		return
	}
	m.svc.Stop(stopWait)
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
	}
	m.pre.stop()
	m.cancel()
	m.wg.Wait()
}

// load reads the last heartbeats a previous run kept, so that hardware is
// known at once; they count as old until the nodes report again.
func (m *Monitor) load(ctx context.Context) {
	keys, err := m.o.Res.Nodes.Keys(ctx)
	if err != nil {
		return
	}
	for _, k := range keys {
		e, err := m.o.Res.Nodes.Get(ctx, k)
		if err != nil {
			continue
		}
		var hb contract.Heartbeat
		if json.Unmarshal(e.Value(), &hb) == nil && hb.IP != "" {
			m.nodes[hb.IP] = &node{hb: hb, seen: e.Created(), silent: true, entries: renderEntries(hb)}
		}
	}
}

// heartbeat takes one agent's report. The subject, not the body, says
// which node it is: an agent can only publish under its own node.
func (m *Monitor) heartbeat(msg *nats.Msg) {
	var hb contract.Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil || hb.V > contract.Version {
		m.log.Warn("unreadable heartbeat", "subject", msg.Subject, "err", err)
		return
	}
	ns, err := subject.ParseNode(msg.Subject)
	ip := ns.IP
	if err != nil || hb.IP != ip {
		m.log.Warn("heartbeat from the wrong node", "subject", msg.Subject, "ip", hb.IP)
		return
	}
	hb.IntervalS = min(max(hb.IntervalS, 1), 3600)
	entries := renderEntries(hb)
	now := time.Now()
	m.mu.Lock()
	prev := m.nodes[ip]
	m.nodes[ip] = &node{hb: hb, seen: now, entries: entries}
	m.mu.Unlock()

	// An event marks a change: a component that went up or down, any
	// state of a node heard from again after its silence, and a component
	// first seen down. A first sight of a running one changes nothing.
	cameBack := prev != nil && prev.silent
	was := map[string]bool{}
	if prev != nil && !cameBack {
		for _, c := range prev.hb.Components {
			was[c.Name] = c.Running
		}
	}
	for _, c := range hb.Components {
		up, known := was[c.Name]
		switch {
		case known && up == c.Running:
			continue
		case !known && !cameBack && c.Running:
			continue
		}
		reason := c.Monit
		if hb.MonitError != "" {
			reason = hb.MonitError
		}
		m.componentEvent(c.Name, ip, c.Running, reason)
	}
	tok, _ := subject.IPToken(ip)
	m.keptMu.Lock()
	m.kept[tok] = msg.Data
	m.keptMu.Unlock()
	select {
	case m.keepUp <- struct{}{}:
	default:
	}
}

// keep writes the heartbeats noted to DE_NODES, where the next run's load
// finds them, and says when it cannot.
func (m *Monitor) keep() {
	defer m.wg.Done()
	failing := map[string]bool{} // nodes whose last write failed
	for {
		select {
		case <-m.stop:
			return
		case <-m.keepUp:
		}
		m.keptMu.Lock()
		batch := m.kept
		m.kept = map[string][]byte{}
		m.keptMu.Unlock()
		for tok, data := range batch {
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			_, err := m.o.Res.Nodes.Put(ctx, tok, data)
			cancel()
			switch {
			case err != nil && !failing[tok]:
				failing[tok] = true
				m.log.Warn("a node's heartbeat is not kept: after a restart the engine shows its hardware only once it reports again", "node", tok, "err", err)
			case err == nil && failing[tok]:
				delete(failing, tok)
				m.log.Info("a node's heartbeat is kept again", "node", tok)
			}
		}
	}
}

// watch reports nodes that went silent, once each.
func (m *Monitor) watch() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			var gone []*node
			m.mu.Lock()
			for _, n := range m.nodes {
				if !n.silent && !m.fresh(n, now) {
					n.silent = true
					gone = append(gone, n)
				}
			}
			m.mu.Unlock()
			for _, n := range gone {
				why := fmt.Sprintf("the node has not reported for %s: unreachable or its agent stopped", now.Sub(n.seen).Round(time.Second))
				m.log.Warn("node silent", "node", n.hb.IP, "last", n.seen)
				for _, c := range n.hb.Components {
					if c.Running {
						m.componentEvent(c.Name, n.hb.IP, false, why)
					}
				}
			}
		}
	}
}

func (m *Monitor) componentEvent(comp, ip string, up bool, reason string) {
	ev := contract.ComponentEvent{V: contract.Version, Component: comp, IP: ip, Up: up, Time: time.Now().UTC(), Reason: reason}
	b, _ := json.Marshal(ev)
	if _, err := m.o.Res.JS.Publish(context.Background(), subject.ComponentEvent(comp, ip, up), b); err != nil {
		m.log.Warn("publish component event", "err", err)
	}
}

// config reads the stored config; a missing one is the clients' 403.
func (m *Monitor) config(ctx context.Context) (contract.Config, error) {
	cfg, err := bus.LoadConfig(ctx, m.o.Res.Config)
	if bus.IsNotFound(err) {
		return cfg, kit.Errorf(403, "no config was submitted: POST /deployment-engine/config first")
	}
	return cfg, err
}

// snapshot copies the node table.
func (m *Monitor) snapshot() map[string]node {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]node, len(m.nodes))
	for ip, n := range m.nodes {
		out[ip] = *n
	}
	return out
}

// pct formats a percentage as the manual does: "1.18958%".
func pct(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) + "%" }

// Collectors export per-node series on the engine's /metrics.
func (m *Monitor) Collectors() []prometheus.Collector { return []prometheus.Collector{collector{m}} }
