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
	o        Options
	log      *slog.Logger
	svc      micro.Service
	hs       *kit.Handlers
	subs     []*nats.Subscription
	stop     chan struct{}
	stopOnce sync.Once
	// ctx ends at Stop: every request and write the healer makes (an
	// attempt's restart and re-apply among them) ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// dirty asks the keeper to write the state: it is written outside the
	// lock that heartbeats and requests wait on.
	dirty chan struct{}

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
	// Waiting says why its attempt, due, has not started.
	Waiting string `json:"waiting,omitempty"`
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
	hctx, cancel := context.WithCancel(context.Background())
	h := &Healer{o: o, log: o.Logger.With("service", "heal"), nodes: map[string]seen{}, stop: make(chan struct{}), deploying: map[string]bool{},
		ctx: hctx, cancel: cancel, dirty: make(chan struct{}, 1),
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
	for _, in := range h.st.Instances {
		if in.State == contract.HealHealing {
			// Its attempt ended with the process that ran it: try again.
			in.State = contract.HealDown
		}
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
	if id, err := h.deploymentRunning(ctx); err == nil && id != "" {
		h.deploying[id] = true
	}
	svc, err := micro.AddService(o.NC, micro.Config{Name: "heal", Version: "1.0.0", Description: "auto-heal and its meltdown guard"})
	if err != nil {
		h.Stop()
		return nil, fmt.Errorf("heal: add service: %w", err)
	}
	h.svc = svc
	h.hs = kit.NewHandlers(h.log)
	for subj, fn := range map[string]kit.Handler{subject.HealGet(): h.get, subject.HealSet(): h.set} {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(64, h.hs.Endpoint(fn)), micro.WithEndpointSubject(subj)); err != nil {
			h.Stop()
			return nil, fmt.Errorf("heal: endpoint %s: %w", subj, err)
		}
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
	if h.svc != nil {
		_ = h.svc.Stop()
	}
	if h.hs != nil && !h.hs.Stop(stopWait) {
		h.log.Warn("auto-heal's requests still run after its stop", "waited", stopWait)
	}
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
	if json.Unmarshal(msg.Data, &e) != nil || e.Component == "" {
		return
	}
	// A stop that failed on some instances (502) stopped the others: those
	// are held too, and one that still runs is let go as it is seen up.
	if e.Result != "ok" && (e.Action != contract.AuditStop || e.Code != 502) {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil {
		h.log.Warn("an operator's stop or restart could not be followed: the config does not read", "action", e.Action, "target", e.Component+"@"+e.IP, "err", err)
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
	h.markDirty()
}

// targets resolves a target against cfg as the monitor's stop and restart
// do: all and 0.0.0.0 is every instance, a component and 0.0.0.0 every
// instance of it, a component and an IP that one instance.
func targets(cfg contract.Config, comp, ip string) [][2]string {
	var out [][2]string
	all := strings.EqualFold(comp, "all") && ip == "0.0.0.0"
	for _, c := range contract.SortedKeys(cfg.Components) {
		for _, i := range cfg.Components[c] {
			if all || (c == comp && (i == ip || ip == "0.0.0.0")) {
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
// back, applies the meltdown guard, and starts at most one attempt. The
// config read, the question to the planner, the state's write and the
// events are made outside h.mu: heartbeats and GET /heal wait on it.
func (h *Healer) judge(now time.Time) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil {
		return
	}
	r := rulesOf(cfg)
	h.mu.Lock()
	next, notes := h.judgeLocked(now, cfg, r)
	h.mu.Unlock()
	for _, n := range notes {
		n()
	}
	if next == "" {
		return
	}
	id, err := h.deploymentRunning(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.st.Instances[next]
	// What changed while the planner was asked: a deployment, a stop,
	// auto-heal switched off.
	if in == nil || in.State != contract.HealDown || h.busy || len(h.deploying) > 0 || !h.st.Enabled || h.st.Meltdown.Active {
		return
	}
	switch {
	case err != nil:
		in.Waiting = "waiting: whether a deployment runs is not known: " + err.Error()
		return
	case id != "":
		in.Waiting = "waiting: deployment " + id + " runs"
		return
	}
	in.State, in.Waiting = contract.HealHealing, ""
	h.busy = true
	h.markDirty()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.attempt(in.Component, in.IP, r)
	}()
}

// judgeLocked is judge's part under h.mu: it returns the instance to try
// now, if any, and the events and audit entries to publish.
func (h *Healer) judgeLocked(now time.Time, cfg contract.Config, r rules) (next string, notes []func()) {
	if len(h.deploying) > 0 {
		return "", nil
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
					n := in.Attempts
					notes = append(notes, func() {
						h.event("recovered", comp, ip, n, "ok", fmt.Sprintf("%s on %s runs again", comp, ip))
					})
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
	// more than percent_threshold of them are. An instance counts once
	// its grace has passed: an operator's stop seen down before its audit
	// entry arrives is held by then, and counts for nothing. The guard
	// lifts itself as soon as its condition no longer holds.
	recent := 0
	for _, in := range h.st.Instances {
		if !in.Acked && now.Sub(in.DownSince) >= r.grace && now.Sub(in.DownSince) <= r.ttl {
			recent++
		}
	}
	melting := recent > r.minDown && recent*100 > r.percent*total
	switch {
	case !h.st.Meltdown.Active && melting && r.enabled && h.st.Enabled:
		since := now.UTC()
		h.st.Meltdown = contract.Meltdown{Active: true, Since: &since, Down: recent, Instances: total,
			Reason: fmt.Sprintf("%d of %d instances went down within %s (more than %d%%, more than %d): auto-heal holds until fewer are down or PUT /deployment-engine/heal {\"enabled\": true}",
				recent, total, r.ttl, r.percent, r.minDown)}
		m := h.st.Meltdown
		h.log.Error("meltdown guard holds auto-heal", "down", recent, "instances", total)
		notes = append(notes, func() {
			h.event("meltdown", "", "", 0, "held", m.Reason)
			h.audit(contract.AuditEntry{Action: contract.AuditHealMeltdown, Object: "cluster", Result: "held", Detail: m.Reason})
		})
		changed = true
	case h.st.Meltdown.Active && !melting:
		msg := fmt.Sprintf("the meltdown guard is lifted: %d of %d instances down within %s", recent, total, r.ttl)
		h.st.Meltdown = contract.Meltdown{}
		h.log.Info("meltdown guard lifted", "down", recent, "instances", total)
		notes = append(notes, func() {
			h.event("meltdown", "", "", 0, "lifted", msg)
			h.audit(contract.AuditEntry{Action: contract.AuditHealMeltdown, Object: "cluster", Result: "lifted", Detail: msg})
		})
		changed = true
	case h.st.Meltdown.Active && h.st.Meltdown.Down != recent:
		h.st.Meltdown.Down = recent
		changed = true
	}
	if changed {
		h.markDirty()
	}
	if !r.enabled || !h.st.Enabled || h.st.Meltdown.Active || h.busy {
		return "", notes
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
		return "", notes
	}
	sort.Slice(ready, func(a, b int) bool { return ready[a].DownSince.Before(ready[b].DownSince) })
	for _, in := range h.st.Instances {
		if in != ready[0] {
			in.Waiting = "" // only the next one waits on the planner
		}
	}
	return key(ready[0].Component, ready[0].IP), notes
}

// deploymentRunning asks the planner whether a deployment runs: the id of
// one that does, "" when none does, an error when the answer says neither
// (no answer, an error, one that does not decode).
func (h *Healer) deploymentRunning(ctx context.Context) (string, error) {
	rep, err := kit.Request(ctx, h.o.NC, subject.DeployList(), nil)
	if err != nil {
		return "", fmt.Errorf("the planner does not answer: %w", err)
	}
	if rep.Code != 200 {
		return "", fmt.Errorf("the planner answered %d: %s", rep.Code, replyError(rep, nil))
	}
	var list []contract.DeploymentSummary
	if err := json.Unmarshal(rep.Body, &list); err != nil {
		return "", fmt.Errorf("the planner's list of deployments does not decode: %w", err)
	}
	for _, d := range list {
		if d.State == contract.DeployRunning || d.State == contract.DeployPending {
			return d.ID, nil
		}
	}
	return "", nil
}

// attempt is one try to bring an instance back: a restart through monit,
// then, if it stays down, its component applied again on its node. Stop
// ends it wherever it is; the instance is then down again, the try not
// counted.
func (h *Healer) attempt(comp, ip string, r rules) {
	ctx := h.ctx
	h.mu.Lock()
	in := h.st.Instances[key(comp, ip)]
	n := 1
	if in != nil {
		n = in.Attempts + 1
	}
	h.mu.Unlock()
	finish := func(ok bool, reason string) {
		var notes []func()
		defer func() {
			for _, n := range notes {
				n()
			}
		}()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.busy = false
		in := h.st.Instances[key(comp, ip)]
		if in == nil {
			return
		}
		defer h.markDirty()
		switch {
		case ctx.Err() != nil:
			in.State, in.Reason = contract.HealDown, "attempt interrupted: auto-heal stopped"
		case ok:
			notes = append(notes, func() {
				h.event("recovered", comp, ip, n, "ok", fmt.Sprintf("%s on %s runs again after attempt %d", comp, ip, n))
			})
			delete(h.st.Instances, key(comp, ip))
		case n >= r.maxAttempts:
			in.Attempts = n
			in.State = contract.HealFailing
			in.Reason = fmt.Sprintf("failing after %d attempts: %s", n, reason)
			why := in.Reason
			notes = append(notes, func() {
				h.event("failing", comp, ip, n, "failed", why)
				h.audit(contract.AuditEntry{Action: contract.AuditHealFailing, Object: key(comp, ip), Component: comp, IP: ip, Result: "failed", Detail: why})
			})
		default:
			in.Attempts, in.Reason = n, reason
			in.State = contract.HealDown
			wait := r.wait(n)
			in.Next = time.Now().Add(wait)
			notes = append(notes, func() {
				h.event("backoff", comp, ip, n, "failed", fmt.Sprintf("attempt %d of %d failed (%s); next in %s", n, r.maxAttempts, reason, wait.Round(time.Second)))
			})
		}
	}
	started := time.Now()
	h.event("restart", comp, ip, n, "started", fmt.Sprintf("attempt %d: restart %s on %s through monit", n, comp, ip))
	cctx, ccancel := context.WithTimeout(ctx, 6*time.Minute) // the monitor waits for monit's outcome
	rep, err := kit.Request(cctx, h.o.NC, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: comp, IP: ip}, Action: "restart"})
	ccancel()
	if ctx.Err() != nil {
		finish(false, "")
		return
	}
	detail := "monit restart sent"
	if err != nil || rep.Code != 200 {
		detail = fmt.Sprintf("monit restart failed: %s", replyError(rep, err))
	}
	back := h.waitRunning(comp, ip, started)
	if ctx.Err() != nil {
		finish(false, "")
		return
	}
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
	if ctx.Err() != nil {
		finish(false, "")
		return
	}
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
	if ctx.Err() != nil {
		finish(false, "")
		return
	}
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
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
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

// markDirty asks the keeper to write the state; h.mu may be held.
func (h *Healer) markDirty() {
	select {
	case h.dirty <- struct{}{}:
	default: // a write is asked already: it takes this change too
	}
}

// keep writes the state each time it changed, one write at a time, the
// latest state each time, outside h.mu.
func (h *Healer) keep() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return // Stop writes the last state
		case <-h.dirty:
			ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
			h.save(ctx)
			cancel()
		}
	}
}

// save writes the state as it is now.
func (h *Healer) save(ctx context.Context) {
	h.mu.Lock()
	b, err := json.Marshal(h.st)
	h.mu.Unlock()
	if err != nil {
		h.log.Error("encode auto-heal's state", "err", err)
		return
	}
	if _, err := h.o.Res.Engine.Put(ctx, stateKey, b); err != nil {
		h.log.Warn("auto-heal's state not kept: a restart may forget what it held and counted", "err", err)
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
		if in.Waiting != "" {
			hi.Reason = in.Waiting + "; " + in.Reason
		}
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
	h.markDirty()
	h.mu.Unlock()
	h.event(kind, "", "", 0, "ok", msg)
	return 200, map[string]any{"enabled": in.Enabled, "message": msg}, nil
}
