package heal

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/monitor/heal/repair"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// heartbeat records a node's report; it takes only the nodes' own lock.
func (h *Healer) heartbeat(msg *nats.Msg) {
	var hb contract.Heartbeat
	ns, err := subject.ParseNode(msg.Subject)
	if err != nil || json.Unmarshal(msg.Data, &hb) != nil || hb.IP != ns.IP {
		return
	}
	h.nodes.Record(hb, time.Now())
}

// deployment follows deployments' starts and ends. A deployment that
// starts makes what was seen down so far moot: it installs and starts
// things, and what it leaves down is judged afresh once it has ended. The
// start and the end come on subscriptions of their own, each delivered
// on its own goroutine: a short deployment's end may be handled before
// its start, which must then not count it as running.
func (h *Healer) deployment(msg *nats.Msg) {
	var ev contract.DeploymentEvent
	if json.Unmarshal(msg.Data, &ev) != nil || ev.ID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasSuffix(msg.Subject, "."+string(subject.DeployStarted)) {
		if slices.Contains(h.ended, ev.ID) {
			return
		}
		h.deploying[ev.ID] = time.Now()
		h.st.DeploymentStarted()
		return
	}
	delete(h.deploying, ev.ID)
	if h.ended = append(h.ended, ev.ID); len(h.ended) > keptEnded {
		h.ended = h.ended[1:]
	}
	h.nodes.Settle(time.Now())
}

// keptEnded bounds the deployments remembered as ended.
const keptEnded = 64

// stillDeploying tells whether a deployment runs: from the events heard,
// checked against the planner's list once one has been taken for running
// longer than Options.Recheck. Called without h.mu.
func (h *Healer) stillDeploying(ctx context.Context, now time.Time) bool {
	h.mu.Lock()
	stale := false
	for _, since := range h.deploying {
		stale = stale || now.Sub(since) > h.o.Recheck
	}
	ask := stale && now.Sub(h.checked) > h.o.Recheck
	if ask {
		h.checked = now
	}
	running := len(h.deploying) > 0
	h.mu.Unlock()
	if !ask {
		return running
	}
	id, err := repair.DeploymentRunning(ctx, h.o.NC)
	if err != nil {
		return running // the planner does not answer: trust the events
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, since := range h.deploying {
		if k != id && now.Sub(since) > h.o.Recheck {
			h.log.Warn("a deployment's end was not heard: the planner says it no longer runs", "deployment", k)
			delete(h.deploying, k)
		}
	}
	return len(h.deploying) > 0
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
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range targets(cfg, e.Component, e.IP) {
		h.st.Operator(policy.Key(t[0], t[1]), e.Action == contract.AuditStop, now)
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
