// Package repair runs auto-heal's attempts to bring a down instance back.
package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/monitor/heal/observe"
	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Repairer acts on instances through the monitor and the planner. It keeps
// no state of auto-heal's: what an attempt found is the caller's to judge.
type Repairer struct {
	nc       *nats.Conn
	nodes    *observe.Nodes
	notify   func(policy.Note)
	attempts *prometheus.CounterVec
}

// New returns a Repairer that asks over nc, sees instances come back in
// nodes and tells notify what it does.
func New(nc *nats.Conn, nodes *observe.Nodes, notify func(policy.Note)) *Repairer {
	return &Repairer{nc: nc, nodes: nodes, notify: notify,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_heal_attempts_total",
			Help: "Auto-heal's actions by kind (restart, reapply) and result (ok, failed)."}, []string{"kind", "result"})}
}

// Collectors export the attempts' counters.
func (r *Repairer) Collectors() []prometheus.Collector { return []prometheus.Collector{r.attempts} }

// Attempt is try n to bring comp on ip back: a restart through monit,
// then, if it stays down, its component applied again on its node. It
// tells whether the instance runs again, and why not. An end of ctx stops
// it wherever it is; what it returns then says nothing.
func (r *Repairer) Attempt(ctx context.Context, comp, ip string, n int) (bool, string) {
	if back := r.restart(ctx, comp, ip, n); back || ctx.Err() != nil {
		return back, ""
	}
	return r.reapply(ctx, comp, ip, n)
}

func (r *Repairer) restart(ctx context.Context, comp, ip string, n int) bool {
	started := time.Now()
	r.notify(policy.Note{Kind: "restart", Component: comp, IP: ip, Attempt: n, Result: "started",
		Message: fmt.Sprintf("attempt %d: restart %s on %s through monit", n, comp, ip)})
	cctx, cancel := context.WithTimeout(ctx, 6*time.Minute) // the monitor waits for monit's outcome
	rep, err := kit.Request(cctx, r.nc, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: comp, IP: ip}, Action: "restart"})
	cancel()
	if ctx.Err() != nil {
		return false
	}
	detail := "monit restart sent"
	if err != nil || rep.Code != 200 {
		detail = fmt.Sprintf("monit restart failed: %s", replyError(rep, err))
	}
	back := r.waitRunning(ctx, comp, ip, started)
	if ctx.Err() != nil {
		return false
	}
	r.record("restart", back, contract.AuditEntry{Action: contract.AuditHealRestart, Component: comp, IP: ip,
		Detail: fmt.Sprintf("attempt %d: %s; running again: %v", n, detail, back)})
	return back
}

// reapply asks the planner for the same steps as a deploy of the instance.
func (r *Repairer) reapply(ctx context.Context, comp, ip string, n int) (bool, string) {
	r.notify(policy.Note{Kind: "reapply", Component: comp, IP: ip, Attempt: n, Result: "started",
		Message: fmt.Sprintf("attempt %d: restart did not bring %s on %s back; applying it again", n, comp, ip)})
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	rep, err := kit.Request(rctx, r.nc, subject.DeployReapply(), contract.Reapply{V: contract.Version, Component: comp, IP: ip, Reason: fmt.Sprintf("auto-heal attempt %d", n)})
	cancel()
	if ctx.Err() != nil {
		return false, ""
	}
	var started struct{ ID string }
	if err != nil || rep.Code != 202 || json.Unmarshal(rep.Body, &started) != nil {
		why := "re-apply refused: " + replyError(rep, err)
		r.record("reapply", false, contract.AuditEntry{Action: contract.AuditHealReapply, Component: comp, IP: ip, Code: rep.Code, Detail: why})
		return false, why
	}
	state := r.waitDeployment(ctx, started.ID)
	back := state == contract.DeploySucceeded && r.waitRunning(ctx, comp, ip, time.Now())
	if ctx.Err() != nil {
		return false, ""
	}
	r.record("reapply", back, contract.AuditEntry{Action: contract.AuditHealReapply, Component: comp, IP: ip, Deployment: started.ID,
		Detail: fmt.Sprintf("attempt %d: deployment %s %s; running again: %v", n, started.ID, state, back)})
	return back, fmt.Sprintf("restart and re-apply (deployment %s %s) did not bring it back", started.ID, state)
}

// record counts an action of kind and audits it as e.
func (r *Repairer) record(kind string, ok bool, e contract.AuditEntry) {
	e.Result = map[bool]string{true: "ok", false: "failed"}[ok]
	e.Object = policy.Key(e.Component, e.IP)
	r.attempts.WithLabelValues(kind, e.Result).Inc()
	r.notify(policy.Note{Audit: &e})
}

// waitRunning waits for a report received after since that shows the
// instance running: as long as the node's reports may lag.
func (r *Repairer) waitRunning(ctx context.Context, comp, ip string, since time.Time) bool {
	deadline := time.Now().Add(r.nodes.Settling(ip))
	for time.Now().Before(deadline) {
		if _, at, ok := r.nodes.Last(ip); ok && at.After(since) {
			if o, _ := r.nodes.Of(comp, ip, time.Now()); o == observe.Up {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
	return false
}
