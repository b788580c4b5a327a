package e2e

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
)

// With a node frozen (its processes stopped, its network up, as a hung
// machine is), the work that waits on it — a scale onto it, a rolling
// restart across it, a rollback that changes it — holds up no one: while
// each waits, every route that needs no node answers at once, round after
// round, and each of them ends with an answer (refused, or a deployment
// that ended) instead of hanging. (Auto-heal's re-apply, waiting on a
// planner that does not answer, holds up no heartbeat: monitor/heal's
// tests.)
func TestFrozenNodeHoldsUpNoOne(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	n := bed.Nodes[1]
	setSleep(t, 0, bed.Nodes[0], n)
	// Two deployments, so that a rollback has a config to go back to, one
	// that installs beta on the node again.
	for _, comps := range []map[string][]string{{"alpha": ips(0, 1), "beta": ips(1)}, {"alpha": ips(0, 1)}} {
		storeE2E(t, e, comps)
		if d := wait(t, e, deploy(t, e), 3*time.Minute); d.State != "succeeded" {
			t.Fatalf("deployment of %v: %s\n%s", comps, d.State, failures(d))
		}
	}
	signalNode(t, n, syscall.SIGSTOP)
	t.Cleanup(func() { signalNode(t, n, syscall.SIGCONT) })
	for _, op := range []struct {
		name, method, path string
		body               any
	}{
		{"scale onto the frozen node", "POST", "/deployment-engine/scale", map[string]string{"Comp": "beta", "Ip": n.IP}},
		{"rolling restart across it", "PUT", "/deployment-engine/restart", map[string]any{"name": "alpha", "ip": "0.0.0.0", "max_in_flight": 1}},
		{"rollback onto it", "POST", "/deployment-engine/rollback", nil},
	} {
		t.Run(op.name, func(t *testing.T) {
			var done atomic.Bool
			var outcome string
			began := time.Now()
			go func() {
				defer done.Store(true)
				outcome = ended(e, op.method, op.path, op.body, 4*time.Minute)
			}()
			time.Sleep(300 * time.Millisecond) // under way
			fastWhile(t, e, n, nil, func() bool { return !done.Load() }, 4*time.Minute)
			for !done.Load() {
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%s %s with %s frozen: %s after %s", op.method, op.path, n.IP, outcome, time.Since(began).Round(100*time.Millisecond))
			if outcome == "" {
				t.Fatalf("%s %s did not end within 4 minutes of the node freezing", op.method, op.path)
			}
		})
	}
}

// ended sends a request and, when it starts a deployment, follows it to
// its end; it says how it ended, "" for not within the time.
func ended(e *harness.Engine, method, path string, body any, within time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	code, b, err := e.DoErr(ctx, method, path, body)
	if err != nil {
		return ""
	}
	var r struct{ ID string }
	if code != 202 || json.Unmarshal(b, &r) != nil || r.ID == "" {
		return string(b) // refused, with its reason
	}
	d, err := harness.Wait(ctx, e.Client(), r.ID, 300*time.Millisecond)
	if err != nil {
		return ""
	}
	return "deployment " + d.State + ": " + d.Error
}
