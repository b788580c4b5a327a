package cluster

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// ackWait is the step queue's wait for a sign of life: an installer killed
// mid-step loses its step to the other one after it.
const ackWait = "1s"

// stack is the NATS cluster and the engine's processes on it.
type stack struct {
	nats      *natsCluster
	apis      [2]*harness.Engine // api+planner each
	installer [2]*harness.Engine
	monitor   *harness.Engine // monitor+logs
}

func up(t *testing.T) *stack {
	t.Helper()
	c, err := startNATS(t.TempDir(), agents())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll)
	opts := processes(t, c)
	s := &stack{nats: c}
	for i := range s.apis {
		s.apis[i] = harness.Start(t, opts[i])
	}
	for i := range s.installer {
		s.installer[i] = harness.Start(t, opts[2+i])
	}
	s.monitor = harness.Start(t, opts[4])
	// DE_CLUSTER_LOGS=DIR keeps every process's log of a failed run.
	if dir := os.Getenv("DE_CLUSTER_LOGS"); dir != "" {
		t.Cleanup(func() {
			if !t.Failed() {
				return
			}
			_ = os.MkdirAll(dir, 0o755)
			for name, e := range map[string]*harness.Engine{"api1": s.apis[0], "api2": s.apis[1], "installer1": s.installer[0], "installer2": s.installer[1], "monitor": s.monitor} {
				_ = os.WriteFile(filepath.Join(dir, name+".log"), []byte(e.Log()), 0o644)
			}
		})
	}
	if log := s.apis[0].Log(); !strings.Contains(log, "replicas=3") {
		t.Fatalf("the engine did not declare its streams with 3 replicas on a 3-server cluster:\n%s", harness.Tail(log, 20))
	}
	return s
}

// agents are the NATS users of the bed's nodes' agents.
func agents() []agentUser {
	var out []agentUser
	for _, n := range bed.Nodes {
		tok := strings.ReplaceAll(n.IP, ".", "-")
		out = append(out, agentUser{IP: n.IP, User: "node-" + tok, Password: secret(), Subjects: subject.NodeAll(n.IP)})
	}
	return out
}

// processes are the options of the README's split of one engine on c, in
// the stack's order: api+planner twice, two installers, monitor+logs. Every
// process holds the same engine key.
func processes(t *testing.T, c *natsCluster) []harness.Options {
	t.Helper()
	catalogs, err := filepath.Abs("testdata/catalogs")
	if err != nil {
		t.Fatal(err)
	}
	key := secret() + secret()
	common := []string{"--nats", c.url(), "--catalog", catalogs, "--step-ack-wait", ackWait, "--log-level", "debug"}
	var out []harness.Options
	for _, only := range []string{"api,planner", "api,planner", "installer", "installer", "monitor,logs"} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "engine-key"), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, harness.Options{Data: d, NoHTTP: !strings.HasPrefix(only, "api"), Args: append([]string{"--only", only}, common...)})
	}
	return out
}

func TestCluster(t *testing.T) {
	s := up(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *stack)
	}{
		{"server-lost", testServerLost},
		{"step-leader-lost", testStepLeaderLost},
		{"installer-killed", testInstallerKilled},
		{"planner-killed", testPlannerKilled},
		{"schedule-failover", testScheduleFailover},
		{"server-gone", testServerGone},
		{"no-quorum", testNoQuorum},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) }) {
			s.heal(t) // the next test starts from a whole cluster
		}
	}
}

// heal starts every stopped member and waits until the step stream has all
// its replicas current again.
func (s *stack) heal(t *testing.T) {
	t.Helper()
	for i := range s.nats.servers {
		if err := s.nats.start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.nats.waitCurrent(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, e := range append(append([]*harness.Engine{}, s.apis[:]...), s.installer[0], s.installer[1], s.monitor) {
		if e.PID() == 0 {
			e.Restart()
		}
	}
}

// reset takes the nodes back to before any deployment, so that every step
// of the next one runs and its runs can be counted.
func reset(t *testing.T) {
	t.Helper()
	harness.ResetNodes(t, bed.Nodes, "c1 c2", "^/bin/sleep 100003$", "/var/lib/cl", "/etc/cl", "/run/cl-*.pid")
}

// deploy posts the config for c1 and c2 on every node and starts a
// deployment through api; it returns the deployment's id.
func deploy(t *testing.T, api *harness.Engine) string {
	t.Helper()
	reset(t)
	var all []string
	for _, n := range bed.Nodes {
		all = append(all, n.IP)
	}
	cfg := map[string]any{"components": map[string][]string{"c1": all, "c2": all}, "properties": map[string]any{
		"catalog": "cl", "domain": "cluster.local", "home": bed.Home, "key": bed.KeyPath, "disksize": "1", "checkdisk": 0, "adduser": 0}}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		code, body, err := api.DoErr(context.Background(), "POST", "/deployment-engine/config?check=0", cfg)
		if err == nil && code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("config: %d %s %v", code, body, err)
		}
	}
	id, err := harness.DeployWhenAccepted(t, api, 2*time.Minute, 250*time.Millisecond)
	if err != nil {
		t.Fatalf("deploy: %v\nthe engine's log ends:\n%s", err, harness.Tail(api.Log(), 40))
	}
	return id
}

func get(api *harness.Engine, id string) (contract.Deployment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, _, err := api.Client().Deployment(ctx, id)
	return d, err
}

// waitRunning waits until an install step of the deployment runs.
func waitRunning(t *testing.T, api *harness.Engine, id string) contract.Deployment {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d, err := get(api, id)
		if err != nil {
			continue
		}
		for _, st := range d.Steps {
			if st.State == "running" && strings.Contains(st.ID, "install") {
				return d
			}
		}
	}
	t.Fatalf("no step of %s ran within 60s", id)
	return contract.Deployment{}
}

// finish waits for the deployment to end through api and checks that it
// succeeded with every install run exactly once on its node.
func finish(t *testing.T, api *harness.Engine, id string, within time.Duration) contract.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := harness.Wait(ctx, api.Client(), id, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("deployment %s not ended within %s (%v): %+v\napi log:\n%s", id, within, err, d, harness.Tail(api.Log(), 40))
	}
	if d.State != "succeeded" {
		t.Errorf("deployment %s: %s: %s", id, d.State, harness.Failures(d))
	}
	ranOnce(t)
	if d.Finished != nil {
		t.Logf("deployment %s: %s, %d steps in %s", id, d.State, len(d.Steps), d.Finished.Sub(d.Created).Round(100*time.Millisecond))
	}
	return d
}

// ranOnce counts the installs on the nodes: each started and ended once,
// one at a time, in order.
func ranOnce(t *testing.T) {
	t.Helper()
	for _, n := range bed.Nodes {
		out, err := n.Exec(context.Background(), "cat /var/lib/cl/runs 2>/dev/null; true")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), "c1 start\nc1 end\nc2 start\nc2 end\n"; got != want {
			t.Errorf("%s ran %q, want %q", n.IP, got, want)
		}
	}
}

func testServerLost(t *testing.T, s *stack) {
	id := deploy(t, s.apis[0])
	time.Sleep(800 * time.Millisecond)
	leader, err := s.nats.leaderOf("DE_STEPS")
	if err != nil {
		t.Fatal(err)
	}
	victim := (leader + 1) % 3
	s.nats.stop(victim)
	t.Logf("stopped %s (not the step stream's leader, %s) 0.8s into %s", s.nats.names[victim], s.nats.names[leader], id)
	finish(t, s.apis[0], id, 2*time.Minute)
	s.heal(t)
}

func testStepLeaderLost(t *testing.T, s *stack) {
	id := deploy(t, s.apis[0])
	waitRunning(t, s.apis[0], id)
	leader, err := s.nats.leaderOf("DE_STEPS")
	if err != nil {
		t.Fatal(err)
	}
	s.nats.stop(leader)
	t.Logf("stopped %s, the step stream's leader, mid-step of %s", s.nats.names[leader], id)
	if now, err := s.nats.leaderOf("DE_STEPS"); err != nil || now == leader {
		t.Errorf("the step stream has no new leader: %d %v", now, err)
	}
	finish(t, s.apis[0], id, 2*time.Minute)
	s.heal(t)
}

var takenRe = regexp.MustCompile(`msg="step taken" .*deployment=(\S+) step=(\S+)`)

// holding names the steps of id an installer took and has not finished.
func holding(e *harness.Engine, id string) []string {
	open := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(e.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := takenRe.FindStringSubmatch(line); m != nil && m[1] == id {
			open[m[2]] = true
		}
		if strings.Contains(line, `msg="step done"`) && strings.Contains(line, "deployment="+id) {
			for st := range open {
				if strings.Contains(line, "step="+st+" ") || strings.HasSuffix(line, "step="+st) {
					delete(open, st)
				}
			}
		}
	}
	var out []string
	for st := range open {
		out = append(out, st)
	}
	return out
}

func testInstallerKilled(t *testing.T, s *stack) {
	id := deploy(t, s.apis[0])
	var victim, other *harness.Engine
	var held []string
	for deadline := time.Now().Add(60 * time.Second); victim == nil; time.Sleep(50 * time.Millisecond) {
		for i, e := range s.installer {
			// An install (1.5 s) is still running when the kill comes; a
			// prepare may be done by then, and nothing is redelivered.
			if h := slices.DeleteFunc(holding(e, id), func(st string) bool { return !strings.HasSuffix(st, "/install") }); len(h) > 0 {
				victim, other, held = e, s.installer[1-i], h
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no installer took a step of %s within 60s", id)
		}
	}
	time.Sleep(300 * time.Millisecond) // mid-step: the installs take 1.5s
	victim.Kill9()
	t.Logf("killed an installer holding %v", held)
	finish(t, s.apis[0], id, 2*time.Minute)
	for _, st := range held {
		if !strings.Contains(other.Log(), "deployment="+id+" step="+st) {
			t.Errorf("step %s of the killed installer was not taken by the other one", st)
		}
	}
	victim.Restart()
}

var drivingRe = regexp.MustCompile(`msg="driving deployment" .*id=(\S+)`)

func drives(e *harness.Engine, id string) int {
	n := 0
	for _, m := range drivingRe.FindAllStringSubmatch(e.Log(), -1) {
		if m[1] == id {
			n++
		}
	}
	return n
}

func testPlannerKilled(t *testing.T, s *stack) {
	id := deploy(t, s.apis[0])
	waitRunning(t, s.apis[0], id)
	lead := -1
	for i, e := range s.apis {
		if drives(e, id) > 0 {
			lead = i
		}
	}
	if lead < 0 {
		t.Fatalf("no planner says it drives %s", id)
	}
	other := s.apis[1-lead]
	before := drives(other, id)
	s.apis[lead].Kill9()
	killed := time.Now()
	for drives(other, id) == before {
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("the other planner did not take %s over within 15s of the leader's kill -9:\n%s", id, harness.Tail(other.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the other planner took %s over %s after the leader's kill -9", id, time.Since(killed).Round(100*time.Millisecond))
	finish(t, other, id, 2*time.Minute)
	s.apis[lead].Restart()
}

// testServerGone keeps one server down for good: deploy, status, logs and
// events all work on the other two, through either API.
func testServerGone(t *testing.T, s *stack) {
	s.nats.stop(2)
	id := deploy(t, s.apis[1])
	finish(t, s.apis[0], id, 2*time.Minute)
	for _, api := range s.apis {
		for _, path := range []string{"/deployment-engine/status", "/deployment-engine/deployments", "/deployment-engine/download", "/deployment-engine/audit"} {
			code, body, err := api.DoErr(context.Background(), "GET", path, nil)
			if err != nil || code != 200 {
				t.Errorf("GET %s with a server gone: %d %v %.200s", path, code, err, body)
			}
		}
		// An instance's log, kept by the log service in another process,
		// through this API: it holds the install's last line.
		code, body, err := api.DoErr(context.Background(), "GET", "/deployment-engine/logs/c2_3.log", nil)
		if err != nil || code != 200 || !strings.Contains(string(body), "c2 on "+bed.Nodes[3].IP+": working 6") {
			t.Errorf("GET c2_3.log: %d %v %.300s", code, err, body)
		}
		// Its events, replayed to the end.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		code, b, err := api.Events(ctx, id)
		cancel()
		if code == 0 {
			t.Errorf("events of %s: %v", id, err)
			continue
		}
		if !strings.Contains(string(b), "event: finished") || !strings.Contains(string(b), "event: step") {
			t.Errorf("events of %s with a server gone: %d %.300s", id, code, b)
		}
	}
}

// testNoQuorum takes a second server away under a running deployment:
// every route answers 503 at once; the deployment, whose store stays gone
// longer than a step may be silent (a minute), is failed saying why and
// its lock released; and the engine recovers by itself when the quorum
// returns: the next deployment runs.
func testNoQuorum(t *testing.T, s *stack) {
	api := s.apis[0]
	id := deploy(t, api)
	waitRunning(t, api, id)
	for i := 1; i < 3; i++ {
		s.nats.stop(i)
	}
	lost := time.Now()
	for {
		// The config is answered from the planner's memory: a 503 there
		// is the API's own look at the store.
		asked := time.Now()
		code, _, err := api.DoErr(context.Background(), "GET", "/deployment-engine/config", nil)
		// Before the API notices, a request may fail otherwise, but
		// never hang.
		if took := time.Since(asked); took > 10*time.Second {
			t.Errorf("GET /config while the quorum was going: %d %v after %s", code, err, took.Round(100*time.Millisecond))
		}
		if err == nil && code == 503 {
			break
		}
		if time.Since(lost) > 20*time.Second {
			t.Fatalf("the API did not notice the lost quorum within 20s: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the API answers 503 %s after the quorum was lost", time.Since(lost).Round(100*time.Millisecond))
	routes := [][2]string{
		{"GET", "/deployment-engine/config"}, {"POST", "/deployment-engine/config?check=0"}, {"GET", "/deployment-engine/precheck"},
		{"GET", "/deployment-engine/deploy"}, {"POST", "/deployment-engine/deploy"}, {"POST", "/deployment-engine/scale"},
		{"GET", "/deployment-engine/deployments"}, {"GET", "/deployment-engine/deployments/" + id},
		{"GET", "/deployment-engine/deployments/" + id + "/events"}, {"GET", "/deployment-engine/deployments/" + id + "/report"},
		{"POST", "/deployment-engine/deployments/" + id + "/cancel"},
		{"GET", "/deployment-engine/status"}, {"GET", "/deployment-engine/hardware"}, {"PUT", "/deployment-engine/restart"},
		{"PUT", "/deployment-engine/stop"}, {"GET", "/deployment-engine/prometheus/targets"},
		{"GET", "/deployment-engine/download"}, {"PUT", "/deployment-engine/download"}, {"GET", "/deployment-engine/logs/local.log"},
		{"GET", "/deployment-engine/logs.tar.gz"}, {"GET", "/deployment-engine/audit"}, {"GET", "/deployment-engine/heal"},
		{"PUT", "/deployment-engine/heal"}, {"GET", "/deployment-engine/releases"},
	}
	for _, r := range routes {
		for _, a := range s.apis {
			ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
			start := time.Now()
			code, b, err := a.DoErr(ctx, r[0], r[1], nil)
			took := time.Since(start)
			cancel()
			if err != nil || code != 503 || took > 5*time.Second || !strings.Contains(string(b), "no quorum") {
				t.Errorf("no quorum: %s %s → %d %v in %s, want a 503 that says why within 5s: %.200s", r[0], r[1], code, err, took, b)
			}
		}
	}
	// The deployment's store stays away longer than a step may be silent.
	time.Sleep(time.Until(lost.Add(70 * time.Second)))
	for i := 1; i < 3; i++ {
		if err := s.nats.start(i); err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), back.Add(time.Minute))
	d, err := harness.Wait(ctx, api.Client(), id, 200*time.Millisecond)
	cancel()
	if err != nil {
		t.Fatalf("deployment %s not ended within a minute of the quorum's return: %+v %v", id, d, err)
	}
	t.Logf("deployment %s under the lost quorum: %s: %s", id, d.State, d.Error)
	if d.State != "failed" || !strings.Contains(d.Error, "has not answered") {
		t.Errorf("deployment %s whose store was gone for a minute: %s %q, want failed saying the store did not answer", id, d.State, d.Error)
	}
	id = deploy(t, api)
	t.Logf("the next deployment was accepted %s after the quorum returned", time.Since(back).Round(100*time.Millisecond))
	finish(t, api, id, 2*time.Minute)
}
