package heal

import (
	"context"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/monitor/heal/repair"
	"github.com/deployment-engine/engine/services/bus"
)

// judge looks at every instance once and starts at most one attempt. The
// config's read, the question to the planner, the state's write and the
// notes are made outside h.mu: GET /heal waits on it.
func (h *Healer) judge(now time.Time) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil {
		return
	}
	r := policy.RulesOf(cfg)
	// A node in maintenance is someone's to mend by hand: unsure which
	// are, auto-heal judges nothing this time.
	m, _, err := bus.LoadMaintenance(ctx, h.o.Res.Engine)
	if err != nil {
		h.log.Warn("nodes in maintenance not known: auto-heal waits", "err", err)
		return
	}
	r.Maintenance = make(map[string]bool, len(m.Nodes))
	for ip := range m.Nodes {
		r.Maintenance[ip] = true
	}
	if h.stillDeploying(ctx, now) {
		return
	}
	h.mu.Lock()
	v := h.st.Judge(now, targets(cfg, "all", "0.0.0.0"), r, h.nodes, h.busy)
	if v.Changed {
		h.markDirty()
	}
	h.mu.Unlock()
	for _, n := range v.Notes {
		h.notify(n)
	}
	if v.Next != "" {
		h.begin(ctx, v.Next, r)
	}
}

// begin starts the attempt on the instance k unless a deployment runs, as
// the planner says, or what changed while it was asked (a deployment, a
// stop, auto-heal switched off) holds it back.
func (h *Healer) begin(ctx context.Context, k string, r policy.Rules) {
	id, err := repair.DeploymentRunning(ctx, h.o.NC)
	waiting := ""
	switch {
	case err != nil:
		waiting = "waiting: whether a deployment runs is not known: " + err.Error()
	case id != "":
		waiting = "waiting: deployment " + id + " runs"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy || len(h.deploying) > 0 || !h.st.Begin(k, waiting) {
		return
	}
	h.busy = true
	h.markDirty()
	in, n := h.st.Instances[k], h.st.Attempt(k)
	h.wg.Add(1)
	go h.attempt(policy.Outcome{Component: in.Component, IP: in.IP, Attempt: n}, r)
}

// attempt runs one attempt (o names it) and records how it ended. Stop
// ends it wherever it is; the instance is then down again, the try not
// counted.
func (h *Healer) attempt(o policy.Outcome, r policy.Rules) {
	defer h.wg.Done()
	o.OK, o.Reason = h.repair.Attempt(h.ctx, o.Component, o.IP, o.Attempt)
	o.Interrupted = h.ctx.Err() != nil
	h.mu.Lock()
	h.busy = false
	changed, notes := h.st.Finish(o, r, time.Now())
	if changed {
		h.markDirty()
	}
	h.mu.Unlock()
	for _, n := range notes {
		h.notify(n)
	}
}
