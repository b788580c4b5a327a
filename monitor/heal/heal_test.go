package heal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// cluster stands in for the agents, the monitor and the planner at the
// bus: heartbeats from 4 nodes running "web", restarts that work unless the
// instance is broken, re-applies whose deployments fail.
type cluster struct {
	mu       sync.Mutex
	running  map[string]bool
	broken   map[string]bool
	restarts map[string]int
	reapply  map[string]int
	silent   map[string]bool // nodes whose agent does not report
	// list is the planner's answer to de.cmd.deploy.list ("[]" when
	// empty); hang makes a restart never answered.
	list string
	hang bool
	// listGate, when set, holds the planner's answer to de.cmd.deploy.list
	// until it closes; listAsked hears of each such question.
	listGate  chan struct{}
	listAsked chan struct{}
}

var nodes = []string{"10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"}

func start(t *testing.T, heal string) (*bustest.Bus, *cluster, *Healer) {
	t.Helper()
	return startWith(t, heal, nil)
}

// startWith is start with before run on the bus just before auto-heal
// starts: a state kept by an earlier run, a count of goroutines.
func startWith(t *testing.T, heal string, before func(*bustest.Bus)) (*bustest.Bus, *cluster, *Healer) {
	t.Helper()
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	cfg := fmt.Sprintf(`{"components": {"web": ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"]}, "properties": {"heal": %s}}`, heal)
	if _, err := b.Res.Config.Put(ctx, bus.KeyConfig, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	c := &cluster{running: map[string]bool{}, broken: map[string]bool{}, restarts: map[string]int{}, reapply: map[string]int{}, silent: map[string]bool{}}
	for _, ip := range nodes {
		c.running[ip] = true
	}
	respond := func(subj string, fn func(m *nats.Msg) (int, string)) {
		if _, err := b.NC.Subscribe(subj, func(m *nats.Msg) {
			code, body := fn(m)
			if code == 0 {
				return // no answer
			}
			r := nats.NewMsg(m.Reply)
			r.Header.Set("De-Code", fmt.Sprint(code))
			r.Data = []byte(body)
			_ = m.RespondMsg(r)
		}); err != nil {
			t.Fatal(err)
		}
	}
	respond(subject.MonitorControl(), func(m *nats.Msg) (int, string) {
		var req struct{ Comp, IP, Action string }
		_ = json.Unmarshal(m.Data, &req)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.restarts[req.IP]++
		if c.hang {
			return 0, ""
		}
		if !c.broken[req.IP] {
			c.running[req.IP] = true
		}
		return 200, `{"status": "ok"}`
	})
	respond(subject.DeployList(), func(*nats.Msg) (int, string) {
		c.mu.Lock()
		gate, asked := c.listGate, c.listAsked
		c.mu.Unlock()
		if gate != nil {
			select {
			case asked <- struct{}{}:
			default:
			}
			<-gate
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch c.list {
		case "":
			return 200, `[]`
		case "hang":
			return 0, ""
		}
		return 200, c.list
	})
	respond(subject.DeployReapply(), func(m *nats.Msg) (int, string) {
		var req contract.Reapply
		_ = json.Unmarshal(m.Data, &req)
		c.mu.Lock()
		c.reapply[req.IP]++
		c.mu.Unlock()
		return 202, `{"id": "d-reapply"}`
	})
	respond(subject.DeployGet(), func(*nats.Msg) (int, string) { return 200, `{"state": "failed"}` })
	stop := make(chan struct{})
	go func() {
		for {
			for _, ip := range nodes {
				c.mu.Lock()
				if c.silent[ip] {
					c.mu.Unlock()
					continue
				}
				hb := contract.Heartbeat{V: 1, IP: ip, Time: time.Now(), IntervalS: 1,
					Components: []contract.ComponentState{{Name: "web", Process: "web", Running: c.running[ip], Monit: map[bool]string{true: "running", false: "does not exist"}[c.running[ip]]}}}
				c.mu.Unlock()
				data, _ := json.Marshal(hb)
				_ = b.NC.Publish(subject.Node(ip, subject.VerbHeartbeat), data)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	if before != nil {
		before(b)
	}
	h, err := Start(ctx, Options{NC: b.NC, Res: b.Res, Tick: 100 * time.Millisecond, Recheck: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stop); h.Stop() })
	return b, c, h
}

func (c *cluster) kill(ips ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ip := range ips {
		c.running[ip] = false
	}
}

func (c *cluster) count(m map[string]int, ip string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[ip]
}

func state(t *testing.T, b *bustest.Bus) contract.HealState {
	t.Helper()
	msg, err := b.NC.Request(subject.HealGet(), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var s contract.HealState
	if err := json.Unmarshal(msg.Data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, within)
}

const fast = `{"grace_s": 1, "backoff_s": 1, "max_backoff_s": 2, "max_attempts": 3}`

func TestHealRestartsADownInstance(t *testing.T) {
	b, c, _ := start(t, fast)
	audits := make(chan contract.AuditEntry, 100)
	sub, _ := b.NC.Subscribe(subject.AllAudit, func(m *nats.Msg) {
		var e contract.AuditEntry
		_ = json.Unmarshal(m.Data, &e)
		audits <- e
	})
	defer sub.Unsubscribe()
	time.Sleep(500 * time.Millisecond)
	c.kill("10.9.0.2")
	eventually(t, 10*time.Second, "restarted", func() bool { return c.count(c.running2(), "10.9.0.2") == 1 })
	select {
	case e := <-audits:
		if e.Actor != "engine" || e.Action != contract.AuditHealRestart || e.Component != "web" || e.IP != "10.9.0.2" || e.Result != "ok" {
			t.Fatalf("audit entry %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no audit entry for the heal")
	}
	if n := c.count(c.reapply, "10.9.0.2"); n != 0 {
		t.Fatalf("re-applied %d times although the restart worked", n)
	}
	eventually(t, 5*time.Second, "nothing left to heal", func() bool { return len(state(t, b).Instances) == 0 })
}

// running2 maps an IP to 1 while it runs: for eventually's count.
func (c *cluster) running2() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for ip, r := range c.running {
		if r {
			out[ip] = 1
		}
	}
	return out
}

func TestHealLeavesAStoppedInstance(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	stop, _ := json.Marshal(contract.AuditEntry{V: 1, Actor: "alice", Action: contract.AuditStop, Component: "web", IP: "10.9.0.3", Result: "ok"})
	if _, err := b.Res.JS.Publish(context.Background(), subject.Audit(contract.AuditStop), stop); err != nil {
		t.Fatal(err)
	}
	c.kill("10.9.0.3")
	time.Sleep(3 * time.Second)
	if n := c.count(c.restarts, "10.9.0.3"); n != 0 {
		t.Fatalf("a stopped instance was restarted %d times", n)
	}
	if s := state(t, b); len(s.Instances) != 1 || s.Instances[0].State != contract.HealHeld {
		t.Fatalf("state %+v", s)
	}
}

func TestHealBacksOffThenFails(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	c.broken["10.9.0.1"] = true
	c.mu.Unlock()
	c.kill("10.9.0.1")
	eventually(t, 40*time.Second, "failing", func() bool {
		s := state(t, b)
		return len(s.Instances) == 1 && s.Instances[0].State == contract.HealFailing
	})
	time.Sleep(3 * time.Second)
	if r, a := c.count(c.restarts, "10.9.0.1"), c.count(c.reapply, "10.9.0.1"); r != 3 || a != 3 {
		t.Fatalf("%d restarts and %d re-applies, want 3 of each (max_attempts)", r, a)
	}
}

func TestMeltdownGuard(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	c.kill("10.9.0.1", "10.9.0.2", "10.9.0.3")
	eventually(t, 5*time.Second, "meltdown", func() bool { return state(t, b).Meltdown.Active })
	time.Sleep(3 * time.Second)
	for _, ip := range nodes {
		if n := c.count(c.restarts, ip); n != 0 {
			t.Fatalf("%s restarted %d times under the meltdown guard", ip, n)
		}
	}
	s := state(t, b)
	if s.Meltdown.Down != 3 || s.Meltdown.Instances != 4 {
		t.Fatalf("meltdown %+v", s.Meltdown)
	}
	// Switched on again, it heals every one, one at a time.
	if _, err := b.NC.Request(subject.HealSet(), []byte(`{"v": 1, "enabled": true, "actor": "alice"}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "all healed", func() bool { return len(c.running2()) == 4 })
	if state(t, b).Meltdown.Active {
		t.Fatal("the guard came back for instances the operator had seen")
	}
}

func TestHealWaitsForADeployment(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	// The planner lists it running too, as auto-heal asks it past Recheck.
	c.mu.Lock()
	c.list = `[{"id": "d-1", "state": "running"}]`
	c.mu.Unlock()
	started, _ := json.Marshal(contract.DeploymentEvent{V: 1, ID: "d-1", State: "pending", Time: time.Now()})
	if err := b.NC.Publish(subject.DeployEvent("d-1", subject.DeployStarted), started); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	// A deployment installs and starts things: what is down meanwhile is
	// neither healed nor counted by the meltdown guard.
	c.kill("10.9.0.1", "10.9.0.2", "10.9.0.3")
	time.Sleep(3 * time.Second)
	if s := state(t, b); s.Meltdown.Active || len(s.Instances) != 0 || c.count(c.restarts, "10.9.0.1") != 0 {
		t.Fatalf("judged during a deployment: %+v", s)
	}
	c.mu.Lock()
	c.list = ""
	c.mu.Unlock()
	finished, _ := json.Marshal(contract.DeploymentEvent{V: 1, ID: "d-1", State: "failed", Time: time.Now()})
	if err := b.NC.Publish(subject.DeployEvent("d-1", subject.DeployFinished), finished); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "meltdown once it ended", func() bool { return state(t, b).Meltdown.Active })
}

// A deployment's end handled before its start (they come on
// subscriptions of their own) does not leave it running in auto-heal's
// eyes; nor does an end never heard: the planner is asked once the start
// is older than Recheck.
func TestHealHearsDeploymentsOutOfOrder(t *testing.T) {
	b, c, h := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	publish := func(id string, what subject.DeployEventKind) {
		t.Helper()
		ev, _ := json.Marshal(contract.DeploymentEvent{V: 1, ID: id, State: "succeeded", Time: time.Now()})
		if err := b.NC.Publish(subject.DeployEvent(id, what), ev); err != nil {
			t.Fatal(err)
		}
		if err := b.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish("d-late", subject.DeployFinished)
	publish("d-late", subject.DeployStarted)
	h.mu.Lock()
	_, running := h.deploying["d-late"]
	h.mu.Unlock()
	if running {
		t.Fatal("a deployment whose end came first is taken for running")
	}
	c.kill("10.9.0.2")
	eventually(t, 10*time.Second, "healed after an end heard before its start", func() bool { return c.count(c.running2(), "10.9.0.2") == 1 })

	publish("d-lost", subject.DeployStarted) // its end is never heard
	c.kill("10.9.0.3")
	time.Sleep(time.Second)
	if n := c.count(c.restarts, "10.9.0.3"); n != 0 {
		t.Fatalf("healed while a deployment was taken for running: %d restarts", n)
	}
	eventually(t, 10*time.Second, "healed once the planner says nothing runs", func() bool { return c.count(c.running2(), "10.9.0.3") == 1 })
}

// A node that went silent and comes back with its instance down is
// repaired like any other; while silent it is left alone.
func TestHealANodeThatComesBack(t *testing.T) {
	b, c, _ := start(t, fast)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	c.silent["10.9.0.4"] = true
	c.running["10.9.0.4"] = false
	c.mu.Unlock()
	time.Sleep(6 * time.Second) // past 3 intervals and the grace
	if n := c.count(c.restarts, "10.9.0.4"); n != 0 {
		t.Fatalf("a silent node was acted on %d times", n)
	}
	if s := state(t, b); len(s.Instances) != 1 || s.Instances[0].State != contract.HealDown || !strings.Contains(s.Instances[0].Reason, "has not reported") {
		t.Fatalf("state while silent: %+v", s)
	}
	c.mu.Lock()
	c.silent["10.9.0.4"] = false
	c.mu.Unlock()
	eventually(t, 10*time.Second, "repaired once back", func() bool { return len(c.running2()) == 4 })
}

// putInMaintenance records ips in maintenance as the planner does, or
// takes every node out with none.
func putInMaintenance(t *testing.T, b *bustest.Bus, ips ...string) {
	t.Helper()
	if _, err := bus.UpdateMaintenance(context.Background(), b.Res.Engine, func(m *contract.Maintenances) error {
		m.Nodes = map[string]contract.NodeMaintenance{}
		for _, ip := range ips {
			m.Nodes[ip] = contract.NodeMaintenance{IP: ip, On: true, Actor: "alice", Reason: "by hand"}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Instances on nodes in maintenance stay down, and do not set off the
// meltdown guard; out of maintenance, they are healed again.
func TestHealLeavesNodesInMaintenance(t *testing.T) {
	b, c, _ := start(t, fast)
	putInMaintenance(t, b, "10.9.0.2", "10.9.0.3")
	time.Sleep(500 * time.Millisecond)
	c.kill("10.9.0.2", "10.9.0.3")
	time.Sleep(3 * time.Second)
	for _, ip := range []string{"10.9.0.2", "10.9.0.3"} {
		if r, a := c.count(c.restarts, ip), c.count(c.reapply, ip); r+a != 0 {
			t.Fatalf("%s in maintenance: %d restarts, %d re-applies", ip, r, a)
		}
	}
	if s := state(t, b); s.Meltdown.Active || len(s.Instances) != 0 {
		t.Fatalf("auto-heal counted the nodes in maintenance: %+v", s)
	}
	putInMaintenance(t, b, "10.9.0.3")
	eventually(t, 10*time.Second, "healed once out of maintenance", func() bool { return c.count(c.running2(), "10.9.0.2") == 1 })
	time.Sleep(time.Second)
	if n := c.count(c.restarts, "10.9.0.3"); n != 0 {
		t.Fatalf("10.9.0.3, still in maintenance, restarted %d times", n)
	}
}
