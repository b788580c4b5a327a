package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// problems scans the cluster through the API.
func problems(t *testing.T, e *harness.Engine) contract.ProblemList {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/problems", nil)
	var out contract.ProblemList
	if code != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("problems: %d %s", code, body)
	}
	return out
}

// Problems provoked by hand on real nodes, auto-heal off: delta killed on
// node 0, its monit check deleted on node 1, its managed file edited and
// the agent killed (monit off for it) on node 2, and node 3 dropped from
// the config, leaving its delta an orphan. The scan lists each with its
// fix; `problems --auto` applies them as deployments, and then the scan
// finds nothing and every delta the config places runs. Then node 0 gets
// a new host key: --auto leaves it to a person, and the fix named forgets
// the old key and deploys.
func TestProblems(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--catalog", catalogDir(t), "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 80))
		}
	}()
	n := ips(0, 1, 2, 3)
	cfg := config("e2e", map[string][]string{"delta": n})
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	setSleep(t, 0, bed.Nodes...)
	if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	waitFor(t, e, reportWithin, "every delta RUNNING", func(st []statusEntry) bool {
		running := 0
		for _, s := range st {
			if s.Status == contract.StatusRunning && !strings.Contains(s.Reason, "monit") {
				running++
			}
		}
		return running == 4
	})
	if l := problems(t, e); len(l.Problems) != 0 {
		t.Fatalf("a healthy cluster has problems: %+v", l)
	}
	if code, body := e.Do("PUT", "/deployment-engine/heal", map[string]any{"enabled": false}); code != 200 {
		t.Fatalf("heal off: %d %s", code, body)
	}

	kill9(t, 0)
	nodeSh(t, bed.Nodes[1], "rm /etc/monit/conf.d/delta && monit reload && echo ok")
	nodeSh(t, bed.Nodes[2], "echo 'edited by hand' >> /etc/e2e/delta.conf && echo ok")
	nodeSh(t, bed.Nodes[2], "monit unmonitor de-agent && pkill -KILL -f '^/usr/local/bin/de-agen[t] ' && echo killed")
	cfg["components"] = map[string][]string{"delta": ips(0, 1, 2)}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config without node 3: %d %s", code, body)
	}

	want := map[string]string{ // kind@node → its recommended fix
		contract.ProblemNotRunning + "@" + n[0]:   contract.FixRestart,
		contract.ProblemCheckMissing + "@" + n[1]: contract.FixReapply,
		contract.ProblemDrift + "@" + n[2]:        contract.FixReapply,
		contract.ProblemAgentSilent + "@" + n[2]:  contract.FixRestartAgent,
		contract.ProblemOrphan + "@" + n[3]:       contract.FixRemove,
	}
	var list contract.ProblemList
	found := map[string]contract.ClusterProblem{}
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline) && len(found) < len(want); time.Sleep(time.Second) {
		list = problems(t, e)
		clear(found)
		for _, p := range list.Problems {
			if _, ok := want[p.Kind+"@"+p.Node]; ok {
				found[p.Kind+"@"+p.Node] = p
			}
		}
	}
	for k, fix := range want {
		p, ok := found[k]
		if !ok {
			t.Fatalf("%s not listed within 90 s: %+v", k, list)
		}
		if r, ok := p.Recommended(); !ok || r.Name != fix {
			t.Errorf("%s recommends %+v, want %s", k, r, fix)
		}
	}
	for _, p := range list.Problems {
		t.Logf("listed: %s %s %s/%s: %s", p.ID, p.Kind, p.Node, p.Component, p.Detail)
	}

	// The plan shows delta's start on node 0, unchanged but its process
	// gone, as what a deploy would do.
	code, body := e.Do("POST", "/deployment-engine/plan", nil)
	var plan contract.Plan
	if code != 200 || json.Unmarshal(body, &plan) != nil {
		t.Fatalf("plan: %d %s", code, body)
	}
	starts := false
	for _, nd := range plan.Nodes {
		for _, a := range nd.Actions {
			starts = starts || (nd.IP == n[0] && a.Action == "start" && strings.Contains(a.Why, "process gone"))
		}
	}
	if !starts {
		t.Errorf("the plan does not start delta on %s, whose process is gone: %s", n[0], body)
	}

	// A fix the problem does not offer names those it does.
	down := found[contract.ProblemNotRunning+"@"+n[0]]
	code, body = e.Do("POST", "/deployment-engine/problems/"+down.ID+"/resolve", map[string]any{"fix": "forget-host-key"})
	if code != 400 || !strings.Contains(string(body), "restart, reapply") {
		t.Fatalf("a fix not offered: %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Bin, "problems", "--auto", "--server", e.URL())
	cmd.Env = append(os.Environ(), "DE_API_TOKEN="+e.Token)
	out, err := cmd.CombinedOutput()
	t.Logf("problems --auto:\n%s", out)
	if err != nil {
		// Each failed fix's steps, with their errors and output.
		for _, id := range regexp.MustCompile(`deployment (d-[0-9a-f-]+): failed`).FindAllStringSubmatch(string(out), -1) {
			t.Logf("%s:\n%s", id[1], failures(getDeployment(t, e, id[1])))
		}
		t.Fatalf("problems --auto: %v", err)
	}

	waitFor(t, e, 60*time.Second, "delta RUNNING on nodes 0-2", func(st []statusEntry) bool {
		running := 0
		for _, s := range st {
			if s.Status == contract.StatusRunning && !strings.Contains(s.Reason, "monit") {
				running++
			}
		}
		return len(st) == 3 && running == 3
	})
	if got := deltaConf(t, 2); strings.Contains(got, "edited by hand") {
		t.Errorf("delta.conf on node 2 still edited: %q", got)
	}
	nodeSh(t, bed.Nodes[1], "test -e /etc/monit/conf.d/delta && echo ok")
	nodeSh(t, bed.Nodes[3], "test ! -e /etc/monit/conf.d/delta && echo gone")
	var left contract.ProblemList
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if left = problems(t, e); len(left.Problems) == 0 {
			break
		}
	}
	if len(left.Problems) != 0 {
		t.Fatalf("problems left after --auto: %+v", left)
	}
	if n := countAudit(audit(t, e, "action=resolve"), "resolve", "", "ok"); n < len(want)-1 {
		t.Errorf("%d resolve audit entries, want at least %d", n, len(want)-1)
	}

	// Node 0 reinstalled: a new host key. --auto leaves it to a person;
	// named, the fix forgets the old key and deploys. The reboot left delta
	// down (its monit check only alerts), and that deployment starts it
	// though none of its steps changed: no problem is left.
	nodeSh(t, bed.Nodes[0], "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && echo ok")
	reboot(t, bed.Nodes[0])
	var hostKey contract.ClusterProblem
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && hostKey.ID == ""; time.Sleep(time.Second) {
		for _, p := range problems(t, e).Problems {
			if p.Kind == contract.ProblemHostKey && p.Node == n[0] {
				hostKey = p
			}
		}
	}
	if hostKey.ID == "" {
		t.Fatalf("the changed host key is not listed: %+v", problems(t, e))
	}
	cmd = exec.CommandContext(ctx, e.Bin, "problems", "--auto", "--server", e.URL())
	cmd.Env = append(os.Environ(), "DE_API_TOKEN="+e.Token)
	out, err = cmd.CombinedOutput()
	t.Logf("problems --auto with a changed host key:\n%s", out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), hostKey.ID+" host-key-changed "+n[0]+": left to a person") {
		t.Fatalf("problems --auto with a changed host key: %v", err)
	}
	code, body = e.Do("POST", "/deployment-engine/problems/"+hostKey.ID+"/resolve", map[string]any{"fix": contract.FixForgetHostKey})
	var started contract.DeployStarted
	if code != 202 || json.Unmarshal(body, &started) != nil {
		t.Fatalf("forget the host key: %d %s", code, body)
	}
	if d := wait(t, e, started.ID, 8*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment after the host key: %s\n%s", d.State, failures(d))
	}
	// Started by that deployment: auto-heal is off.
	nodeSh(t, bed.Nodes[0], "monit status delta | grep -Eq '^[[:space:]]+status[[:space:]]+OK' && echo running")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if left = problems(t, e); len(left.Problems) == 0 {
			return
		}
	}
	t.Fatalf("problems left after the host key was forgotten: %+v", left)
}
