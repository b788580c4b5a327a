package heal

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Stop ends an attempt whose restart is never answered (a 6-minute
// request) within its bound, and leaves no goroutine of its own behind.
func TestStopEndsAnAttempt(t *testing.T) {
	base := 0
	_, c, h := startWith(t, fast, func(*bustest.Bus) { base = runtime.NumGoroutine() })
	c.mu.Lock()
	c.hang = true
	c.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	c.kill("10.9.0.2")
	eventually(t, 10*time.Second, "a restart asked", func() bool { return c.count(c.restarts, "10.9.0.2") == 1 })
	done := make(chan struct{})
	began := time.Now()
	go func() {
		h.Stop()
		close(done)
	}()
	select {
	case <-done:
		t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10 s of a restart in flight")
	}
	// None of the healer's own is left; the count may be a few above the
	// one before Start: the connection's request mux and the server's
	// consumers for the audit stream start with their first use, and stay.
	eventually(t, 3*time.Second, "goroutines back to baseline", func() bool {
		return len(healGoroutines()) == 0 && runtime.NumGoroutine() <= base+4
	})
}

// healGoroutines are the stacks of the goroutines that run auto-heal's own
// code (its service, observe, policy, repair), not the tests'.
func healGoroutines() []string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "testing.tRunner") {
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			if f := strings.TrimSpace(line); strings.Contains(f, "/monitor/heal/") && strings.Contains(f, ".go:") && !strings.Contains(f, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// While judge waits for the planner, heartbeats and GET /heal are not
// held up: the question is asked outside the lock they wait on.
func TestJudgeAsksThePlannerOutsideItsLock(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	c.list = "hang"
	c.mu.Unlock()
	c.kill("10.9.0.1")
	time.Sleep(1500 * time.Millisecond) // past the grace: judge asks the planner
	for i := 0; i < 10; i++ {
		began := time.Now()
		state(t, b)
		if d := time.Since(began); d > time.Second {
			t.Fatalf("GET /heal took %s while judge waited for the planner", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A list of deployments that does not decode says nothing of whether one
// runs: nothing is healed on it.
func TestHealWaitsOnAnAnswerItCannotRead(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	c.list = `{"deployments": "not a list"}`
	c.mu.Unlock()
	c.kill("10.9.0.1")
	time.Sleep(3 * time.Second)
	if n := c.count(c.restarts, "10.9.0.1"); n != 0 {
		t.Fatalf("healed %d times on an answer that did not decode", n)
	}
	if s := state(t, b); len(s.Instances) != 1 || !strings.Contains(s.Instances[0].Reason, "does not decode") {
		t.Fatalf("state %+v", s)
	}
	c.mu.Lock()
	c.list = ""
	c.mu.Unlock()
	eventually(t, 10*time.Second, "healed once the planner answers", func() bool { return c.count(c.restarts, "10.9.0.1") == 1 })
}

// An operator's stop is honoured in every form the API takes, whether its
// audit entry comes before the instances are seen down or just after:
// nothing stopped is restarted or counted by the meltdown guard.
func TestEveryFormOfStopIsHeld(t *testing.T) {
	for _, tc := range []struct {
		name, comp, ip string
		stopped        []string
		auditAfter     bool // the heartbeats show them down first
		partial        bool // a 502: the stop failed on some instance
	}{
		{"component on 0.0.0.0", "web", "0.0.0.0", nodes, false, false},
		{"all on 0.0.0.0", "all", "0.0.0.0", nodes, false, false},
		{"one instance", "web", "10.9.0.3", []string{"10.9.0.3"}, false, false},
		{"component on 0.0.0.0, seen down first", "web", "0.0.0.0", nodes, true, false},
		{"all on 0.0.0.0, seen down first", "all", "0.0.0.0", nodes, true, false},
		{"component on 0.0.0.0, failed on some", "web", "0.0.0.0", nodes[:2], false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, c, _ := start(t, `{"grace_s": 3, "backoff_s": 1, "max_backoff_s": 2, "max_attempts": 3}`)
			time.Sleep(500 * time.Millisecond)
			stop := func() {
				entry := contract.AuditEntry{V: 1, Actor: "alice", Action: contract.AuditStop, Component: tc.comp, IP: tc.ip, Result: "ok", Code: 200}
				if tc.partial {
					entry.Result, entry.Code = "failed", 502
				}
				e, _ := json.Marshal(entry)
				if _, err := b.Res.JS.Publish(context.Background(), subject.Audit(contract.AuditStop), e); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.auditAfter {
				stop()
			}
			c.kill(tc.stopped...)
			if tc.auditAfter {
				time.Sleep(500 * time.Millisecond)
				stop()
			}
			time.Sleep(4 * time.Second) // past the grace
			for _, ip := range tc.stopped {
				if n := c.count(c.restarts, ip); n != 0 {
					t.Fatalf("%s stopped by the operator was restarted %d times", ip, n)
				}
			}
			s := state(t, b)
			if s.Meltdown.Active {
				t.Fatalf("the meltdown guard counted stopped instances: %+v", s.Meltdown)
			}
			held := heldCount(s)
			want := len(tc.stopped)
			if tc.partial {
				want = len(nodes) // held all; the two still running are let go a few heartbeats on
			}
			if held < len(tc.stopped) || held > want || len(s.Instances) != held {
				t.Fatalf("%d held of %d stopped: %+v", held, len(tc.stopped), s.Instances)
			}
		})
	}
}

// The meltdown guard lifts itself once its condition no longer holds: one
// kept by an earlier run with nothing down, one whose instances were
// started again by hand. Auto-heal then heals again.
func TestMeltdownGuardLiftsWithItsCondition(t *testing.T) {
	t.Run("kept by an earlier run", func(t *testing.T) {
		since := time.Now().Add(-time.Hour).UTC()
		kept, _ := json.Marshal(policy.State{Enabled: true, Meltdown: policy.Guard{Meltdown: contract.Meltdown{Active: true, Since: &since, Down: 3, Instances: 4, Reason: "3 of 4"}}})
		b, c, _ := startWith(t, fast, func(b *bustest.Bus) {
			if _, err := b.Res.Engine.Put(context.Background(), stateKey, kept); err != nil {
				t.Fatal(err)
			}
		})
		eventually(t, 5*time.Second, "lifted", func() bool { return !state(t, b).Meltdown.Active })
		c.kill("10.9.0.2")
		eventually(t, 10*time.Second, "healed", func() bool { return c.count(c.restarts, "10.9.0.2") == 1 })
	})
	t.Run("instances started again", func(t *testing.T) {
		b, c, _ := start(t, fast)
		time.Sleep(500 * time.Millisecond)
		c.kill("10.9.0.1", "10.9.0.2", "10.9.0.3")
		eventually(t, 5*time.Second, "meltdown", func() bool { return state(t, b).Meltdown.Active })
		c.mu.Lock()
		c.running["10.9.0.1"], c.running["10.9.0.2"], c.running["10.9.0.3"] = true, true, true
		c.mu.Unlock()
		eventually(t, 5*time.Second, "lifted", func() bool { return !state(t, b).Meltdown.Active })
		c.kill("10.9.0.4")
		eventually(t, 10*time.Second, "healed", func() bool { return c.count(c.restarts, "10.9.0.4") == 1 })
	})
}

// While judge waits for a slow planner, a heartbeat is recorded at once:
// the heartbeat handler does not wait on what judge holds.
func TestHeartbeatNotHeldByASlowPlanner(t *testing.T) {
	_, c, h := start(t, fast)
	gate, asked := make(chan struct{}), make(chan struct{}, 1)
	defer close(gate)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	c.listGate, c.listAsked = gate, asked
	c.mu.Unlock()
	c.kill("10.9.0.1")
	select {
	case <-asked: // past the grace: judge waits for the planner's answer
	case <-time.After(10 * time.Second):
		t.Fatal("judge never asked the planner")
	}
	asking := time.Now()
	// The cluster reports every 200 ms: one received after the question
	// is recorded well before the planner answers (it does not, until the
	// test ends).
	eventually(t, 2*time.Second, "a heartbeat recorded while judge waits for the planner", func() bool {
		_, at, ok := h.nodes.Last("10.9.0.1")
		return ok && at.After(asking)
	})
}
