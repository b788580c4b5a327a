// Package heal is the auto-heal service: it brings back component
// instances that are down although they should run.
//
// It follows the agents' heartbeats (observe), decides what to try and
// when, under the meltdown guard (policy), and tries it: a restart through
// monit, then the component applied again on its node (repair). Healing
// never fights the operator: an instance stopped through the API, a
// running deployment, or auto-heal switched off hold it back. What it
// keeps across restarts is written compare-and-set.
package heal

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/monitor/heal/observe"
	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/monitor/heal/repair"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Options configure the healer.
type Options struct {
	NC     *nats.Conn
	Res    *bus.Resources
	Logger *slog.Logger
	// Tick is how often instances are judged (default 1s).
	Tick time.Duration
	// Missed is how many heartbeat intervals a node may miss before it
	// counts as silent (default nodeclient.Missed, as everywhere else).
	Missed int
	// Recheck is how long a deployment may be taken for running on its
	// start's word alone: past it, auto-heal asks the planner, at most
	// once in that time, so that an end it never heard of (a dropped
	// event) does not hold it for ever. Default 30s.
	Recheck time.Duration
}

// Healer is the running service.
type Healer struct {
	o        Options
	log      *slog.Logger
	svc      *kit.Service
	subs     []*nats.Subscription
	stop     chan struct{}
	stopOnce sync.Once
	// ctx ends at Stop: every request and write the healer makes (an
	// attempt's restart and re-apply among them) ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// nodes has a lock of its own: heartbeats never wait on mu.
	nodes  *observe.Nodes
	repair *repair.Repairer
	// dirty asks the keeper to write the state: it is written outside mu.
	dirty chan struct{}
	// kept is the state as last read or written, the keeper's alone.
	kept kept

	mu   sync.Mutex
	st   policy.State
	busy bool
	// deploying holds the deployments that run now, each with when it was
	// seen to start: while one does, instances come and go on purpose and
	// nothing is judged. ended are the last deployments seen to end: a
	// start and an end arrive on subscriptions of their own, in either
	// order. checked is when the planner was last asked which runs.
	deploying map[string]time.Time
	ended     []string
	checked   time.Time
}

// Start subscribes to heartbeats and to the API's stop and restart, and
// registers de.cmd.heal.get and de.cmd.heal.set.
func Start(ctx context.Context, o Options) (*Healer, error) {
	kit.Default(&o.Tick, time.Second)
	kit.Default(&o.Recheck, 30*time.Second)
	hctx, cancel := context.WithCancel(context.Background())
	svc := kit.NewService(o.Logger, "heal")
	h := &Healer{o: o, log: svc.Log(), svc: svc, stop: make(chan struct{}), deploying: map[string]time.Time{},
		ctx: hctx, cancel: cancel, dirty: make(chan struct{}, 1), nodes: observe.New(o.Missed)}
	h.repair = repair.New(o.NC, h.nodes, h.notify)
	h.st, h.kept = h.load(ctx)
	for subj, fn := range map[string]nats.MsgHandler{
		subject.AllHeartbeats:                h.heartbeat,
		subject.Audit(contract.AuditStop):    h.operator,
		subject.Audit(contract.AuditRestart): h.operator,
		subject.AllDeployStarted:             h.deployment,
		subject.AllDeployFinished:            h.deployment,
	} {
		sub, err := o.NC.Subscribe(subj, fn)
		if err != nil {
			h.Stop()
			return nil, fmt.Errorf("heal: subscribe to %s: %w", subj, err)
		}
		h.subs = append(h.subs, sub)
	}
	if id, err := repair.DeploymentRunning(ctx, o.NC); err == nil && id != "" {
		h.deploying[id] = time.Now()
	}
	if err := svc.Serve(o.NC, "auto-heal and its meltdown guard", map[string]kit.Handler{subject.HealGet(): h.get, subject.HealSet(): h.set}); err != nil {
		h.Stop()
		return nil, err
	}
	h.wg.Add(2)
	go h.loop()
	go h.keep()
	return h, nil
}

// stopWait bounds how long Stop waits for what the healer started.
const stopWait = 5 * time.Second

// Stop stops the healer: it cancels an attempt under way (the instance is
// tried again by the next run), waits for it, and keeps the state.
func (h *Healer) Stop() {
	// Once, whoever calls: a failed start and its caller may both stop it.
	first := false
	h.stopOnce.Do(func() { first = true; close(h.stop) })
	if !first {
		return
	}
	h.svc.Stop(stopWait)
	for _, s := range h.subs {
		_ = s.Unsubscribe()
	}
	h.cancel()
	h.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h.save(ctx)
}

// Collectors export auto-heal's counters.
func (h *Healer) Collectors() []prometheus.Collector { return h.repair.Collectors() }

func (h *Healer) loop() {
	defer h.wg.Done()
	t := time.NewTicker(h.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			h.judge(now)
		}
	}
}

// notify publishes a note: its event, its audit entry.
func (h *Healer) notify(n policy.Note) {
	if n.Kind != "" {
		ev := contract.HealEvent{V: contract.Version, Kind: n.Kind, Time: time.Now().UTC(), Component: n.Component, IP: n.IP, Attempt: n.Attempt, Result: n.Result, Message: n.Message}
		b, _ := json.Marshal(ev)
		if _, err := h.o.Res.JS.Publish(context.Background(), subject.HealEvent(n.Kind), b); err != nil {
			h.log.Warn("publish heal event", "err", err)
		}
		if err := bus.PublishEngineEvent(context.Background(), h.o.Res.JS, "heal", n.Message); err != nil {
			h.log.Warn("engine event", "err", err)
		}
		h.log.Log(context.Background(), n.Level, "heal", "kind", n.Kind, "component", n.Component, "node", n.IP, "attempt", n.Attempt, "result", n.Result, "message", n.Message)
	}
	if n.Audit != nil {
		e := *n.Audit
		e.Actor = contract.ActorEngine
		if err := bus.PublishAudit(context.Background(), h.o.Res.JS, e); err != nil {
			h.log.Error("audit entry lost", "action", e.Action, "err", err)
		}
	}
}
