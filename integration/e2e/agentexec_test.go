package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// Once the nodes' agents run, a deployment's work goes through them: a
// changed config is checked, planned and applied without one SSH session,
// and the nodes show the change. An agent killed mid-step leaves its step
// to finish over SSH, run once on the node, and the deployment after goes
// through the agent monit started again.
func TestStepsThroughAgents(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--catalog", catalogDir(t), "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	n0, n1 := bed.Nodes[0], bed.Nodes[1]
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 80))
			for _, n := range []*testbed.Node{n0, n1} {
				out, _ := n.Exec(context.Background(), "tail -20 /var/log/de-agent.log")
				t.Logf("%s's agent log:\n%s", n.IP, out)
			}
		}
	}()
	setSleep(t, 0, n0, n1)
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1)})
	mustSucceed(t, e, "the first deployment")
	agentsUp(t, e, natsPort, n0, n1)

	// A change: beta joins n1. Nothing of it may go over SSH.
	sessions := func() (float64, float64) {
		return e.Metric(t, "de_installer_ssh_sessions_total"), e.Metric(t, "de_installer_ssh_connections_total")
	}
	s0, c0 := sessions()
	agentCmds := e.Metric(t, "de_installer_agent_sessions_total")
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1), "beta": ips(1)})
	d := mustSucceed(t, e, "the change")
	if s1, c1 := sessions(); s1 != s0 || c1 != c0 {
		t.Errorf("the change through the agents opened %v SSH sessions on %v new connections", s1-s0, c1-c0)
	}
	if got := e.Metric(t, "de_installer_agent_sessions_total") - agentCmds; got == 0 {
		t.Errorf("no command of the change went through an agent")
	}
	if got := nodeSh(t, n1, "monit status beta | grep -c '^  status *OK'; cat /etc/e2e/beta.conf"); !strings.HasPrefix(got, "1\nbeta on "+n1.IP) {
		t.Errorf("%s after the change: %q", n1.IP, got)
	}
	t.Logf("the change: %d steps through the agents, no SSH session", len(d.Steps))
	agentsUp(t, e, natsPort, n0, n1) // the change gave n1's a new config: it restarted

	// The agent of n0 is killed while beta's install sleeps there: the
	// step ends over SSH, having run once.
	setSleep(t, 8, n0)
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1), "beta": ips(0, 1)})
	id := deploy(t, e)
	untilNode(t, n0, "beta's install running", "grep -c 'beta install' /var/lib/e2e/runs 2>/dev/null || echo 0", "1")
	nodeSh(t, n0, "pkill -KILL -f '^/usr/local/bin/de-agen[t] ' && echo killed")
	s0, _ = sessions()
	d = wait(t, e, id, 3*time.Minute)
	if d.State != contract.DeploySucceeded {
		t.Fatalf("the deployment whose agent was killed: %s\n%s", d.State, failures(d))
	}
	if got := nodeSh(t, n0, "grep -c 'beta install' /var/lib/e2e/runs"); got != "1" {
		t.Errorf("beta's install ran %s times on %s, want once", got, n0.IP)
	}
	if s1, _ := sessions(); s1 == s0 {
		t.Errorf("no SSH session finished the step of the killed agent")
	}

	// monit starts the agent again, and the next deployment goes through it.
	setSleep(t, 0, n0)
	// The agent monit started again is asked within 5 s and, started
	// after the one that failed, trusted at once: no SSH minute.
	agentsUp(t, e, natsPort, n0, n1)
	time.Sleep(6 * time.Second)
	s0, c0 = sessions()
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1), "beta": ips(0, 1), "delta": ips(1)})
	mustSucceed(t, e, "the deployment after the agent came back")
	if s1, c1 := sessions(); s1 != s0 || c1 != c0 {
		t.Errorf("the deployment after the agent came back opened %v SSH sessions on %v new connections", s1-s0, c1-c0)
	}
}

// mustSucceed deploys the stored config and fails the test unless the
// deployment succeeds within 3 minutes.
func mustSucceed(t *testing.T, e *harness.Engine, what string) contract.Deployment {
	t.Helper()
	d := wait(t, e, deploy(t, e), 3*time.Minute)
	if d.State != contract.DeploySucceeded {
		t.Fatalf("%s: %s\n%s", what, d.State, failures(d))
	}
	return d
}

// agentsUp waits until the agent of each node runs, is connected to the
// engine and takes commands (the engine counts the node up).
func agentsUp(t *testing.T, e *harness.Engine, natsPort int, nodes ...*testbed.Node) {
	t.Helper()
	for _, n := range nodes {
		untilNode(t, n, "the agent connected", fmt.Sprintf("ss -Htn state established dst %s:%d | wc -l", bed.Home, natsPort), "1")
	}
	for deadline := time.Now().Add(reportWithin); e.Metric(t, "de_node_up") < float64(len(nodes)); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d nodes up 30 s after their agents connected", e.Metric(t, "de_node_up"), len(nodes))
		}
	}
}
