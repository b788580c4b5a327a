// Package heal is auto-heal: it watches the agents' heartbeats and brings
// back component instances that are down although they should run — first
// a restart through monit, then the component applied again on its node
// (a deployment of that instance, asked of the planner) — with attempts that
// back off and stop at a limit (the instance is then "failing"). A meltdown
// guard, as BOSH's, stops all healing when many instances fail at once.
// Healing never fights the operator: an instance stopped through the API, a
// running deployment, or auto-heal switched off hold it back.
package heal

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Defaults of the heal property.
const (
	DefaultBackoff       = 15 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultMaxAttempts   = 5
	DefaultGrace         = 8 * time.Second
	DefaultTimeThreshold = 600 * time.Second
	DefaultPercent       = 20
)

// stateKey is where auto-heal keeps its state in the DE_ENGINE bucket.
const stateKey = "heal"

// Options configure the healer.
type Options struct {
	NC     *nats.Conn
	Res    *bus.Resources
	Logger *slog.Logger
	// Tick is how often instances are judged (default 1s).
	Tick time.Duration
	// Missed is how many heartbeat intervals a node may miss before it
	// counts as silent (default 3, as the monitor's).
	Missed int
}

// Healer is the running service.
type Healer struct {
	o    Options
	log  *slog.Logger
	svc  micro.Service
	subs []*nats.Subscription
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	nodes map[string]seen
	st    persisted
	busy  bool
	// deploying holds the deployments that run now: while one does,
	// instances come and go on purpose and nothing is judged.
	deploying map[string]bool
	// settled is when the last deployment ended: reports from before say
	// nothing of what it started.
	settled time.Time

	attempts *prometheus.CounterVec
}

type seen struct {
	hb contract.Heartbeat
	at time.Time
}

// persisted is what auto-heal keeps across restarts.
type persisted struct {
	Enabled  bool              `json:"enabled"`
	Meltdown contract.Meltdown `json:"meltdown"`
	// Held are the instances stopped through the API, since when.
	Held      map[string]time.Time `json:"held,omitempty"`
	Instances map[string]*instance `json:"instances,omitempty"`
}

// instance is one instance auto-heal is working on.
type instance struct {
	Component string    `json:"component"`
	IP        string    `json:"ip"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	DownSince time.Time `json:"down_since"`
	Next      time.Time `json:"next"`
	Reason    string    `json:"reason,omitempty"`
	// Acked marks an instance that was down when the operator switched
	// auto-heal on again: the meltdown guard counts only new failures.
	Acked bool `json:"acked,omitempty"`
}

func key(comp, ip string) string { return comp + "@" + ip }

// Start subscribes to heartbeats and to the API's stop and restart, and
// registers de.cmd.heal.get and de.cmd.heal.set.
func Start(ctx context.Context, o Options) (*Healer, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Missed <= 0 {
		o.Missed = 3
	}
	h := &Healer{o: o, log: o.Logger.With("service", "heal"), nodes: map[string]seen{}, stop: make(chan struct{}), deploying: map[string]bool{},
		st: persisted{Enabled: true, Instances: map[string]*instance{}},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_heal_attempts_total",
			Help: "Auto-heal's actions by kind (restart, reapply) and result (ok, failed)."}, []string{"kind", "result"})}
	if e, err := o.Res.Engine.Get(ctx, stateKey); err == nil {
		if err := json.Unmarshal(e.Value(), &h.st); err != nil {
			h.log.Warn("auto-heal's kept state does not decode; starting afresh", "err", err)
			h.st = persisted{Enabled: true}
		}
	}
	if h.st.Instances == nil {
		h.st.Instances = map[string]*instance{}
	}
	if h.st.Held == nil {
		h.st.Held = map[string]time.Time{}
	}
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
	if id, ok := h.deploymentRunning(ctx); ok && id != "" {
		h.deploying[id] = true
	}
	svc, err := micro.AddService(o.NC, micro.Config{Name: "heal", Version: "1.0.0", Description: "auto-heal and its meltdown guard"})
	if err != nil {
		h.Stop()
		return nil, fmt.Errorf("heal: add service: %w", err)
	}
	h.svc = svc
	for subj, fn := range map[string]kit.Handler{subject.HealGet(): h.get, subject.HealSet(): h.set} {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(64, kit.Endpoint(h.log, fn)), micro.WithEndpointSubject(subj)); err != nil {
			h.Stop()
			return nil, fmt.Errorf("heal: endpoint %s: %w", subj, err)
		}
	}
	h.wg.Add(1)
	go h.loop()
	return h, nil
}

// Stop stops the healer; an attempt under way is left to finish on its own.
func (h *Healer) Stop() {
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	h.wg.Wait()
	for _, s := range h.subs {
		_ = s.Unsubscribe()
	}
	if h.svc != nil {
		_ = h.svc.Stop()
	}
}

// Collectors export auto-heal's counters.
func (h *Healer) Collectors() []prometheus.Collector { return []prometheus.Collector{h.attempts} }

func (h *Healer) heartbeat(msg *nats.Msg) {
	var hb contract.Heartbeat
	ns, err := subject.ParseNode(msg.Subject)
	if err != nil || json.Unmarshal(msg.Data, &hb) != nil || hb.IP != ns.IP {
		return
	}
	hb.IntervalS = min(max(hb.IntervalS, 1), 3600)
	h.mu.Lock()
	h.nodes[ns.IP] = seen{hb: hb, at: time.Now()}
	h.mu.Unlock()
}

// deployment follows deployments' starts and ends. A deployment that
// starts makes what was seen down so far moot: it installs and starts
// things, and what it leaves down is judged afresh once it has ended.
func (h *Healer) deployment(msg *nats.Msg) {
	var ev contract.DeploymentEvent
	if json.Unmarshal(msg.Data, &ev) != nil || ev.ID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasSuffix(msg.Subject, "."+string(subject.DeployStarted)) {
		h.deploying[ev.ID] = true
		for k, in := range h.st.Instances {
			if in.State == contract.HealDown && in.Attempts == 0 {
				delete(h.st.Instances, k)
			}
		}
		return
	}
	delete(h.deploying, ev.ID)
	h.settled = time.Now()
}

// operator follows the API's stop and restart: a stopped instance is held
// (left down) until it is restarted or runs again.
func (h *Healer) operator(msg *nats.Msg) {
	var e contract.AuditEntry
	if json.Unmarshal(msg.Data, &e) != nil || e.Result != "ok" || e.Component == "" {
		return
	}
	cfg, err := bus.LoadConfig(context.Background(), h.o.Res.Config)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range targets(cfg, e.Component, e.IP) {
		k := key(t[0], t[1])
		if e.Action == contract.AuditStop {
			h.st.Held[k] = time.Now()
		} else {
			delete(h.st.Held, k)
		}
		delete(h.st.Instances, k)
	}
	h.saveLocked()
}

// targets resolves a component and IP, or all and 0.0.0.0, against cfg.
func targets(cfg contract.Config, comp, ip string) [][2]string {
	var out [][2]string
	all := strings.EqualFold(comp, "all") && ip == "0.0.0.0"
	for _, c := range contract.SortedKeys(cfg.Components) {
		for _, i := range cfg.Components[c] {
			if all || (c == comp && i == ip) {
				out = append(out, [2]string{c, i})
			}
		}
	}
	return out
}

// rules are the heal property with defaults filled in.
type rules struct {
	enabled                         bool
	off                             []string
	backoff, maxBackoff, grace, ttl time.Duration
	maxAttempts, percent, minDown   int
}

func rulesOf(cfg contract.Config) rules {
	r := rules{enabled: true, backoff: DefaultBackoff, maxBackoff: DefaultMaxBackoff, grace: DefaultGrace,
		ttl: DefaultTimeThreshold, maxAttempts: DefaultMaxAttempts, percent: DefaultPercent, minDown: 1}
	if len(cfg.Nodes()) >= 10 {
		r.minDown = 5
	}
	hc := cfg.Properties.Heal
	if hc == nil {
		return r
	}
	if hc.Enabled != nil {
		r.enabled = *hc.Enabled
	}
	r.off = hc.Off
	sec := func(dst *time.Duration, s int) {
		if s > 0 {
			*dst = time.Duration(s) * time.Second
		}
	}
	sec(&r.backoff, hc.BackoffS)
	sec(&r.maxBackoff, hc.MaxBackoffS)
	sec(&r.grace, hc.GraceS)
	sec(&r.ttl, hc.Meltdown.TimeThresholdS)
	if hc.MaxAttempts > 0 {
		r.maxAttempts = hc.MaxAttempts
	}
	if hc.Meltdown.PercentThreshold > 0 {
		r.percent = hc.Meltdown.PercentThreshold
	}
	if hc.Meltdown.MinimumDown != nil {
		r.minDown = *hc.Meltdown.MinimumDown
	}
	return r
}

// backoff is the wait after the n-th failed attempt: base doubling each
// time, ±20% jitter, capped.
func (r rules) wait(n int) time.Duration {
	d := r.backoff
	for i := 1; i < n && d < r.maxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, r.maxBackoff)
}

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

// observation is what the heartbeats say of one instance.
type observation int

const (
	unknown observation = iota // no agent, not deployed there, monit unreadable
	up
	down
	silent // its node stopped reporting
)

func (h *Healer) observe(comp, ip string, now time.Time) (observation, string) {
	n, ok := h.nodes[ip]
	if !ok {
		return unknown, ""
	}
	if now.Sub(n.at) > time.Duration(h.o.Missed*n.hb.IntervalS)*time.Second+time.Second {
		return silent, fmt.Sprintf("its node has not reported for %s", now.Sub(n.at).Round(time.Second))
	}
	if n.hb.MonitError != "" || n.at.Before(h.settled) {
		return unknown, ""
	}
	for _, c := range n.hb.Components {
		if c.Name == comp {
			if c.Running {
				return up, ""
			}
			return down, "monit: " + c.Monit
		}
	}
	return unknown, ""
}

// judge looks at every instance once: records what went down or came
// back, applies the meltdown guard, and starts at most one attempt.
func (h *Healer) judge(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil {
		return
	}
	r := rulesOf(cfg)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.deploying) > 0 {
		return
	}
	total := 0
	changed := false
	watched := map[string]bool{}
	for _, t := range targets(cfg, "all", "0.0.0.0") {
		comp, ip := t[0], t[1]
		if slices.Contains(r.off, comp) {
			continue
		}
		total++
		k := key(comp, ip)
		watched[k] = true
		obs, why := h.observe(comp, ip, now)
		in := h.st.Instances[k]
		heldSince, held := h.st.Held[k]
		switch obs {
		case up:
			// Started again by someone (a deploy, by hand): no longer held.
			// Heartbeats lag the stop by up to a few intervals, so a
			// "running" seen soon after it says nothing.
			if held && now.Sub(heldSince) > time.Duration(h.o.Missed*h.nodes[ip].hb.IntervalS)*time.Second+time.Second {
				delete(h.st.Held, k)
				changed = true
			}
			if in != nil && in.State != contract.HealHealing {
				if in.Attempts > 0 || in.State == contract.HealFailing {
					h.event("recovered", comp, ip, in.Attempts, "ok", fmt.Sprintf("%s on %s runs again", comp, ip))
				}
				delete(h.st.Instances, k)
				changed = true
			}
		case down, silent:
			if held {
				continue
			}
			if in == nil {
				in = &instance{Component: comp, IP: ip, State: contract.HealDown, DownSince: now}
				h.st.Instances[k] = in
				changed = true
			}
			if in.State == contract.HealDown {
				in.Reason = why
			}
		}
	}
	for k := range h.st.Instances {
		if !watched[k] {
			delete(h.st.Instances, k)
			changed = true
		}
	}
	// The meltdown guard: within the time threshold, heal whenever at
	// most minimum_down instances are down; beyond that, heal nothing once
	// more than percent_threshold of them are.
	recent := 0
	for _, in := range h.st.Instances {
		if !in.Acked && now.Sub(in.DownSince) <= r.ttl {
			recent++
		}
	}
	if !h.st.Meltdown.Active && r.enabled && h.st.Enabled && recent > r.minDown && recent*100 > r.percent*total {
		since := now.UTC()
		h.st.Meltdown = contract.Meltdown{Active: true, Since: &since, Down: recent, Instances: total,
			Reason: fmt.Sprintf("%d of %d instances went down within %s (more than %d%%, more than %d): auto-heal holds until PUT /deployment-engine/heal {\"enabled\": true}",
				recent, total, r.ttl, r.percent, r.minDown)}
		h.log.Error("meltdown guard holds auto-heal", "down", recent, "instances", total)
		h.event("meltdown", "", "", 0, "held", h.st.Meltdown.Reason)
		h.audit(contract.AuditEntry{Action: contract.AuditHealMeltdown, Object: "cluster", Result: "held", Detail: h.st.Meltdown.Reason})
		changed = true
	}
	if h.st.Meltdown.Active {
		h.st.Meltdown.Down = recent
	}
	if changed {
		h.saveLocked()
	}
	if !r.enabled || !h.st.Enabled || h.st.Meltdown.Active || h.busy {
		return
	}
	// The next instance to heal: the one down longest whose grace and
	// back-off have passed, on a node that reports.
	var ready []*instance
	for _, in := range h.st.Instances {
		if in.State != contract.HealDown || now.Sub(in.DownSince) < r.grace || now.Before(in.Next) {
			continue
		}
		if obs, _ := h.observe(in.Component, in.IP, now); obs != down {
			continue
		}
		ready = append(ready, in)
	}
	if len(ready) == 0 {
		return
	}
	sort.Slice(ready, func(a, b int) bool { return ready[a].DownSince.Before(ready[b].DownSince) })
	in := ready[0]
	if id, ok := h.deploymentRunning(ctx); ok {
		in.Reason = "waiting: deployment " + id + " runs"
		return
	}
	in.State = contract.HealHealing
	h.busy = true
	h.saveLocked()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.attempt(in.Component, in.IP, r)
	}()
}

// deploymentRunning asks the planner whether a deployment runs.
func (h *Healer) deploymentRunning(ctx context.Context) (string, bool) {
	rep, err := kit.Request(ctx, h.o.NC, subject.DeployList(), nil)
	if err != nil || rep.Code != 200 {
		return "(unknown: the planner does not answer)", true
	}
	var list []struct{ ID, State string }
	_ = json.Unmarshal(rep.Body, &list)
	for _, d := range list {
		if d.State == contract.DeployRunning || d.State == contract.DeployPending {
			return d.ID, true
		}
	}
	return "", false
}

// attempt is one try to bring an instance back: a restart through monit,
// then, if it stays down, its component applied again on its node.
func (h *Healer) attempt(comp, ip string, r rules) {
	ctx := context.Background()
	h.mu.Lock()
	in := h.st.Instances[key(comp, ip)]
	n := 1
	if in != nil {
		n = in.Attempts + 1
	}
	h.mu.Unlock()
	finish := func(ok bool, reason string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.busy = false
		in := h.st.Instances[key(comp, ip)]
		if in == nil {
			return
		}
		if ok {
			h.event("recovered", comp, ip, n, "ok", fmt.Sprintf("%s on %s runs again after attempt %d", comp, ip, n))
			delete(h.st.Instances, key(comp, ip))
			h.saveLocked()
			return
		}
		in.Attempts, in.Reason = n, reason
		if n >= r.maxAttempts {
			in.State = contract.HealFailing
			in.Reason = fmt.Sprintf("failing after %d attempts: %s", n, reason)
			h.event("failing", comp, ip, n, "failed", in.Reason)
			h.audit(contract.AuditEntry{Action: contract.AuditHealFailing, Object: key(comp, ip), Component: comp, IP: ip, Result: "failed", Detail: in.Reason})
		} else {
			in.State = contract.HealDown
			wait := r.wait(n)
			in.Next = time.Now().Add(wait)
			h.event("backoff", comp, ip, n, "failed", fmt.Sprintf("attempt %d of %d failed (%s); next in %s", n, r.maxAttempts, reason, wait.Round(time.Second)))
		}
		h.saveLocked()
	}
	started := time.Now()
	h.event("restart", comp, ip, n, "started", fmt.Sprintf("attempt %d: restart %s on %s through monit", n, comp, ip))
	cctx, ccancel := context.WithTimeout(ctx, 6*time.Minute) // the monitor waits for monit's outcome
	rep, err := kit.Request(cctx, h.o.NC, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: comp, IP: ip}, Action: "restart"})
	ccancel()
	detail := "monit restart sent"
	if err != nil || rep.Code != 200 {
		detail = fmt.Sprintf("monit restart failed: %s", replyError(rep, err))
	}
	back := h.waitRunning(comp, ip, started)
	res := map[bool]string{true: "ok", false: "failed"}[back]
	h.attempts.WithLabelValues("restart", res).Inc()
	h.audit(contract.AuditEntry{Action: contract.AuditHealRestart, Object: key(comp, ip), Component: comp, IP: ip, Result: res,
		Detail: fmt.Sprintf("attempt %d: %s; running again: %v", n, detail, back)})
	if back {
		finish(true, "")
		return
	}
	// Applied again: the same steps as a deploy of this instance.
	h.event("reapply", comp, ip, n, "started", fmt.Sprintf("attempt %d: restart did not bring %s on %s back; applying it again", n, comp, ip))
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	rep, err = kit.Request(rctx, h.o.NC, subject.DeployReapply(), contract.Reapply{V: contract.Version, Component: comp, IP: ip, Reason: fmt.Sprintf("auto-heal attempt %d", n)})
	cancel()
	var started2 struct{ ID string }
	if err != nil || rep.Code != 202 || json.Unmarshal(rep.Body, &started2) != nil {
		why := "re-apply refused: " + replyError(rep, err)
		h.attempts.WithLabelValues("reapply", "failed").Inc()
		h.audit(contract.AuditEntry{Action: contract.AuditHealReapply, Object: key(comp, ip), Component: comp, IP: ip, Result: "failed", Code: rep.Code, Detail: why})
		finish(false, why)
		return
	}
	state := h.waitDeployment(started2.ID)
	back = state == contract.DeploySucceeded && h.waitRunning(comp, ip, time.Now())
	res = map[bool]string{true: "ok", false: "failed"}[back]
	h.attempts.WithLabelValues("reapply", res).Inc()
	h.audit(contract.AuditEntry{Action: contract.AuditHealReapply, Object: key(comp, ip), Component: comp, IP: ip, Result: res,
		Deployment: started2.ID, Detail: fmt.Sprintf("attempt %d: deployment %s %s; running again: %v", n, started2.ID, state, back)})
	finish(back, fmt.Sprintf("restart and re-apply (deployment %s %s) did not bring it back", started2.ID, state))
}

func replyError(rep kit.Reply, err error) string {
	if err != nil {
		return err.Error()
	}
	var eb contract.ErrorBody
	if json.Unmarshal(rep.Body, &eb) == nil && eb.Error != "" {
		return eb.Error
	}
	return fmt.Sprintf("answer %d", rep.Code)
}

// waitRunning waits for a heartbeat sent after since that shows the
// instance running: at most three heartbeat intervals.
func (h *Healer) waitRunning(comp, ip string, since time.Time) bool {
	h.mu.Lock()
	iv := 5 * time.Second
	if n, ok := h.nodes[ip]; ok {
		iv = time.Duration(n.hb.IntervalS) * time.Second
	}
	h.mu.Unlock()
	deadline := time.Now().Add(3*iv + time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		n, ok := h.nodes[ip]
		obs, _ := h.observe(comp, ip, time.Now())
		h.mu.Unlock()
		if ok && n.at.After(since) && obs == up {
			return true
		}
		select {
		case <-h.stop:
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
	return false
}

// waitDeployment waits for a deployment to end and returns its state.
func (h *Healer) waitDeployment(id string) string {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rep, err := kit.Request(ctx, h.o.NC, subject.DeployGet(), contract.DeployGet{ID: id})
		cancel()
		var d contract.Deployment
		if err == nil && rep.Code == 200 && json.Unmarshal(rep.Body, &d) == nil &&
			contract.Final(d.State) {
			return d.State
		}
		select {
		case <-h.stop:
			return "unknown (the engine stopped)"
		case <-time.After(time.Second):
		}
	}
	return "unfinished after 30m"
}

func (h *Healer) saveLocked() {
	b, err := json.Marshal(h.st)
	if err != nil {
		return
	}
	if _, err := h.o.Res.Engine.Put(context.Background(), stateKey, b); err != nil {
		h.log.Warn("keep auto-heal's state", "err", err)
	}
}

func (h *Healer) event(kind, comp, ip string, attempt int, result, msg string) {
	ev := contract.HealEvent{V: contract.Version, Kind: kind, Time: time.Now().UTC(), Component: comp, IP: ip, Attempt: attempt, Result: result, Message: msg}
	b, _ := json.Marshal(ev)
	if _, err := h.o.Res.JS.Publish(context.Background(), subject.HealEvent(kind), b); err != nil {
		h.log.Warn("publish heal event", "err", err)
	}
	if err := bus.PublishEngineEvent(context.Background(), h.o.Res.JS, "heal", msg); err != nil {
		h.log.Warn("engine event", "err", err)
	}
	h.log.Info("heal", "kind", kind, "component", comp, "node", ip, "attempt", attempt, "result", result, "message", msg)
}

func (h *Healer) audit(e contract.AuditEntry) {
	e.Actor = contract.ActorEngine
	if err := bus.PublishAudit(context.Background(), h.o.Res.JS, e); err != nil {
		h.log.Error("audit entry lost", "action", e.Action, "err", err)
	}
}

// get answers GET /heal.
func (h *Healer) get(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil && !bus.IsNotFound(err) {
		return 0, nil, err
	}
	r := rulesOf(cfg)
	h.mu.Lock()
	defer h.mu.Unlock()
	out := contract.HealState{Enabled: h.st.Enabled, ConfigEnabled: r.enabled, Meltdown: h.st.Meltdown, Instances: []contract.HealedInstance{}}
	for _, k := range contract.SortedKeys(h.st.Held) {
		comp, ip, _ := strings.Cut(k, "@")
		out.Instances = append(out.Instances, contract.HealedInstance{Component: comp, IP: ip, State: contract.HealHeld, Reason: "stopped through the API"})
	}
	for _, k := range contract.SortedKeys(h.st.Instances) {
		in := h.st.Instances[k]
		hi := contract.HealedInstance{Component: in.Component, IP: in.IP, State: in.State, Attempts: in.Attempts, Reason: in.Reason}
		ds := in.DownSince.UTC()
		hi.DownSince = &ds
		if in.State == contract.HealDown && !in.Next.IsZero() {
			nx := in.Next.UTC()
			hi.Next = &nx
		}
		out.Instances = append(out.Instances, hi)
	}
	return 200, out, nil
}

// set answers PUT /heal: on lifts the meltdown guard and gives failing
// instances a new start; off holds every attempt.
func (h *Healer) set(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.HealSet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	h.mu.Lock()
	h.st.Enabled = in.Enabled
	msg := "auto-heal switched off by " + in.Actor
	kind := "disabled"
	if in.Enabled {
		kind = "enabled"
		msg = "auto-heal switched on by " + in.Actor
		if h.st.Meltdown.Active {
			msg += "; the meltdown guard is lifted"
		}
		h.st.Meltdown = contract.Meltdown{}
		for k, i := range h.st.Instances {
			if i.State == contract.HealFailing || i.State == contract.HealDown {
				// A new start: the grace counts from now.
				h.st.Instances[k] = &instance{Component: i.Component, IP: i.IP, State: contract.HealDown, DownSince: time.Now(), Acked: true}
			}
		}
	}
	h.saveLocked()
	h.mu.Unlock()
	h.event(kind, "", "", 0, "ok", msg)
	return 200, map[string]any{"enabled": in.Enabled, "message": msg}, nil
}
