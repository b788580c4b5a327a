package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

func catalogDir(t *testing.T) string {
	dir, err := filepath.Abs("testdata/catalogs")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// setSleep makes every install step on the nodes sleep that long.
func setSleep(t *testing.T, secs int, nodes ...*testbed.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := n.Exec(context.Background(), fmt.Sprintf("mkdir -p /var/lib/e2e && echo %d > /var/lib/e2e/sleep && rm -f /var/lib/e2e/runs", secs)); err != nil {
			t.Fatal(err)
		}
	}
}

func runs(t *testing.T, n *testbed.Node) string {
	out, err := n.Exec(context.Background(), "cat /var/lib/e2e/runs 2>/dev/null; true")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func storeE2E(t *testing.T, e *harness.Engine, comps map[string][]string) {
	t.Helper()
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", config("e2e", comps)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
}

func TestDeployCodes(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	if code, body := e.Do("GET", "/deployment-engine/deploy", nil); code != 403 {
		t.Fatalf("deploy without config: %d %s", code, body)
	}
	setSleep(t, 3, bed.Nodes[0], bed.Nodes[1])
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1), "beta": ips(1)})
	id := deploy(t, e)
	if code, body := e.Do("GET", "/deployment-engine/deploy", nil); code != 409 || !strings.Contains(string(body), id) {
		t.Fatalf("deploy while one runs: %d %s", code, body)
	}
	if d := wait(t, e, id, 5*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	// Each node ran each install once, and beta after alpha.
	if got := runs(t, bed.Nodes[1]); got != "alpha install\nbeta install\n" {
		t.Errorf("node 1 ran %q", got)
	}
	// No agent runs here (--no-agents): status, stop and restart go
	// over SSH.
	waitFor(t, e, 30*time.Second, "every instance RUNNING, read over SSH", func(st []statusEntry) bool {
		running := 0
		for _, s := range st {
			if s.Status == "RUNNING" && strings.HasSuffix(s.Mem, "%") {
				running++
			}
		}
		return len(st) == 3 && running == 3
	})
	a0 := ips(0)[0]
	if code, body := e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "alpha", "ip": a0}); code != 200 || !strings.Contains(string(body), `"via":"ssh"`) {
		t.Fatalf("stop over SSH: %d %s", code, body)
	}
	waitFor(t, e, 30*time.Second, "alpha DOWN after stop over SSH", func(st []statusEntry) bool {
		return instance(st, "alpha", a0).Status == "DOWN"
	})
	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "alpha", "ip": a0}); code != 200 {
		t.Fatalf("restart over SSH: %d %s", code, body)
	}
	waitFor(t, e, 30*time.Second, "alpha RUNNING after restart over SSH", func(st []statusEntry) bool {
		return instance(st, "alpha", a0).Status == "RUNNING"
	})
	// The engine fetches alpha's
	// runtime log over SSH into its instance's log.
	want := "[runtime /var/log/e2e-alpha.log] alpha runtime line on " + bed.Nodes[1].IP
	var alpha1 string
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		_, b := e.Do("PUT", "/deployment-engine/download", "alpha_1.log")
		if alpha1 = string(b); strings.Contains(alpha1, want) {
			break
		}
	}
	if !strings.Contains(alpha1, want) || !strings.Contains(alpha1, "installing alpha 1 on "+bed.Nodes[1].IP) {
		t.Errorf("alpha_1.log lacks its install output or %q:\n%s", want, tail(alpha1, 20))
	}

	// A second engine finds the nodes owned by the first.
	other := harness.Start(t, harness.Options{Args: []string{"--no-agents", "--catalog", catalogDir(t)}})
	storeE2E(t, other, map[string][]string{"alpha": ips(0)})
	if code, body := other.Do("GET", "/deployment-engine/deploy", nil); code != 409 || !strings.Contains(string(body), "owned by engine") {
		t.Fatalf("deploy onto another engine's node: %d %s", code, body)
	}

	// A node that does not answer: 502, naming it.
	n := bed.Nodes[3]
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 3)})
	code, body := e.Do("GET", "/deployment-engine/deploy", nil)
	// The hardware of that one node: 502, naming it and what failed.
	hcode, hbody := e.Do("GET", "/deployment-engine/hardware", map[string]string{"Comp": "alpha", "Ip": n.IP})
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	failed := regexp.MustCompile(regexp.QuoteMeta(n.IP) + `: (refused|timeout|unreachable): `)
	if code != 502 || !failed.Match(body) {
		t.Fatalf("deploy with a node down: %d %s", code, body)
	}
	if hcode != 502 || !strings.Contains(string(hbody), "node "+n.IP+" (alpha)") || !regexp.MustCompile(`(refused|timeout|unreachable): `).Match(hbody) {
		t.Errorf("hardware of a node that is down: %d %s", hcode, hbody)
	}
	// Each refusal is in the operations log, with its reason.
	for _, want := range []struct {
		e    *harness.Engine
		line string
	}{{other, "deployment refused (409): another engine manages these nodes"}, {e, "deployment refused (502): cannot reach every node: " + n.IP}} {
		deadline := time.Now().Add(10 * time.Second)
		var log []byte
		for time.Now().Before(deadline) {
			if _, log = want.e.Do("PUT", "/deployment-engine/download", "local.log"); strings.Contains(string(log), want.line) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(string(log), want.line) {
			t.Errorf("local.log lacks %q:\n%s", want.line, tail(string(log), 10))
		}
	}

	// A node whose host key changed is refused, saying so.
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1)})
	m := bed.Nodes[0]
	if _, err := m.Exec(context.Background(), "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null"); err != nil {
		t.Fatal(err)
	}
	_ = m.Stop(context.Background())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body = e.Do("GET", "/deployment-engine/deploy", nil)
	if code != 502 || !strings.Contains(string(body), m.IP+": host key: ") {
		t.Fatalf("deploy to a node whose host key changed: %d %s", code, body)
	}
}

// kill -9 of the engine mid-deploy, then a restart, finishes the
// deployment with no step completed twice on any node.
func TestCrashResume(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	nodes := []*testbed.Node{bed.Nodes[1], bed.Nodes[2], bed.Nodes[3]}
	setSleep(t, 2, nodes...)
	storeE2E(t, e, map[string][]string{"alpha": ips(1, 2, 3), "beta": ips(2, 3)})
	id := deploy(t, e)
	time.Sleep(3 * time.Second)
	e.Kill9()
	e.Restart()
	d := wait(t, e, id, 4*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("resumed deployment: %s\n%s", d.State, failures(d))
	}
	for _, s := range d.Steps {
		if s.Started != nil && s.Finished != nil {
			t.Logf("%s attempt %d %s → %s", s.ID, s.Attempt, s.Started.Format("15:04:05.0"), s.Finished.Format("15:04:05.0"))
		}
	}
	for i, n := range nodes {
		want := "alpha install\n"
		if i > 0 {
			want += "beta install\n"
		}
		if got := runs(t, n); got != want {
			t.Errorf("%s ran %q, want %q (a step ran twice or not at all)", n.IP, got, want)
		}
	}
}

// A node cut off mid-deploy fails its steps within a bound, with a clear
// error, and the other nodes finish.
func TestNodeCutMidDeploy(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	setSleep(t, 1, bed.Nodes[1], bed.Nodes[2])
	setSleep(t, 20, bed.Nodes[3])
	storeE2E(t, e, map[string][]string{"alpha": ips(1, 2, 3)})
	id := deploy(t, e)
	cut := bed.Nodes[3]
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(runs(t, cut), "alpha install") {
		if time.Now().After(deadline) {
			t.Fatal("the install on the node to cut never started")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cut.Cut(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The engine could not reach the node to kill its step: do it here.
		_ = cut.Restore()
		_, _ = cut.Exec(context.Background(), "pkill -KILL -f '^sleep 20$'; true")
	}()
	start := time.Now()
	d := wait(t, e, id, 3*time.Minute)
	took := time.Since(start)
	if d.State != "failed" {
		t.Fatalf("deployment with a cut node: %s", d.State)
	}
	// Keepalives (5s, 3 missed: ≤ 20s), then 3 attempts with 5s dial
	// timeouts and 2s+4s back-off bound it at about 40s on an idle machine;
	// the bound leaves room for a loaded one, and the timeline below says
	// where the time went when it is passed.
	if took > 2*time.Minute {
		t.Errorf("the cut node's steps took %s to fail", took)
		for _, s := range d.Steps {
			t.Logf("%s attempt %d %v → %v %s", s.ID, s.Attempt, s.Started, s.Finished, s.Error)
		}
		for _, l := range strings.Split(e.Log(), "\n") {
			if strings.Contains(l, cut.IP) {
				t.Log(l)
			}
		}
	}
	for _, s := range d.Steps {
		switch {
		case s.Node == cut.IP && s.Action == "install" && (s.State != "failed" || s.Error == ""):
			t.Errorf("cut node's install: %s %q", s.State, s.Error)
		case s.Node != cut.IP && s.State != "succeeded":
			t.Errorf("step %s on a live node: %s %s", s.ID, s.State, s.Error)
		}
	}
	t.Logf("cut node failed after %s: %s", took, failures(d))
}
