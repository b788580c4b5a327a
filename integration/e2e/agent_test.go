package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// The nodes pull the node agent from the engine: each ends with the
// binary the engine serves (its SHA-256) running under monit, a node that
// ran the agent of an earlier engine (the engine's own binary, run as
// `deployment-engine agent`) ends with only the new one, and a deployment
// that runs the agent step again fetches nothing.
func TestAgentPulled(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--catalog", catalogDir(t), "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()
	bin, err := os.ReadFile(harness.AgentBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	sha := hex.EncodeToString(sum[:])

	// The engine serves that binary, and no other.
	if got := fetchAgent(t, "http://"+e.Addr+"/agent/"+sha+"/de-agent", 200); got != string(bin) {
		t.Fatalf("the engine serves %d bytes, not the agent's %d", len(got), len(bin))
	}
	fetchAgent(t, "http://"+e.Addr+"/agent/"+strings.Repeat("0", 64)+"/de-agent", 404)
	fetchAgent(t, "http://"+e.Addr+"/agent/"+sha+"/", 404)

	n0, n1 := bed.Nodes[0], bed.Nodes[1]
	plantOldAgent(t, n0)

	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1)})
	first := wait(t, e, deploy(t, e), 3*time.Minute)
	if first.State != "succeeded" {
		t.Fatalf("deployment: %s\n%s", first.State, failures(first))
	}
	logAgentSteps(t, first)
	files := map[string]string{}
	for _, n := range []*testbed.Node{n0, n1} {
		if got := nodeSh(t, n, "sha256sum /usr/local/bin/de-agent | cut -d' ' -f1"); got != sha {
			t.Errorf("%s: /usr/local/bin/de-agent has SHA-256 %q, the engine serves %s", n.IP, got, sha)
		}
		untilNode(t, n, "the agent runs", "pgrep -f '^/usr/local/bin/de-agen[t] ' >/dev/null && echo yes", "yes")
		untilNode(t, n, "the agent is connected", fmt.Sprintf("ss -Htn state established dst %s:%d | wc -l", bed.Home, natsPort), "1")
		files[n.IP] = nodeSh(t, n, "stat -c '%i %Y' /usr/local/bin/de-agent")
	}
	// The earlier engine's agent is gone, and its binary with it.
	untilNode(t, n0, "the old agent gone", "pgrep -f '^/usr/local/bin/deployment-engin[e] agent' || echo none", "none")
	if got := nodeSh(t, n0, "test -e /usr/local/bin/deployment-engine && echo kept || echo removed"); got != "removed" {
		t.Errorf("the earlier engine's binary on %s: %s", n0.IP, got)
	}

	// A new component on n0 changes its agent's config: the agent step
	// runs again there, and fetches nothing.
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1), "beta": ips(0)})
	d := wait(t, e, deploy(t, e), 3*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("second deployment: %s\n%s", d.State, failures(d))
	}
	for _, s := range d.Steps {
		if s.Action == "agent" && s.Node == n0.IP && s.State != contract.StateSucceeded {
			t.Errorf("the agent step on %s did not run again: %s", n0.IP, s.State)
		}
	}
	logAgentSteps(t, d)
	for _, n := range []*testbed.Node{n0, n1} {
		if got := nodeSh(t, n, "stat -c '%i %Y' /usr/local/bin/de-agent"); got != files[n.IP] {
			t.Errorf("%s fetched the agent again: inode and mtime %s, were %s", n.IP, got, files[n.IP])
		}
		untilNode(t, n, "the agent runs", "pgrep -f '^/usr/local/bin/de-agen[t] ' | wc -l", "1")
	}
}

// logAgentSteps logs how long d's agent steps took.
func logAgentSteps(t *testing.T, d contract.Deployment) {
	for _, s := range d.Steps {
		if s.Action == "agent" && s.Started != nil && s.Finished != nil {
			t.Logf("%s: %s in %s", s.ID, s.State, s.Finished.Sub(*s.Started).Round(time.Millisecond))
		}
	}
}

// fetchAgent GETs url and checks its status.
func fetchAgent(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != want {
		t.Fatalf("GET %s: %d (%v), want %d", url, resp.StatusCode, err, want)
	}
	return string(b)
}

// plantOldAgent makes n run the agent as engines before de-agent
// installed it: a process whose command line starts with
// /usr/local/bin/deployment-engine agent, which monit's check of that
// engine found by it and starts again when it goes.
func plantOldAgent(t *testing.T, n *testbed.Node) {
	t.Helper()
	const script = `set -eu
mkdir -p /var/lib/deployment-engine /etc/monit/conf.d
cp /bin/true /usr/local/bin/deployment-engine
cat > /var/lib/deployment-engine/old-agent <<'DE_OLD'
#!/bin/bash
setsid bash -c 'exec -a "/usr/local/bin/deployment-engine agent --config /var/lib/deployment-engine/agent.json" sleep 100009' </dev/null >/dev/null 2>&1 &
DE_OLD
chmod 755 /var/lib/deployment-engine/old-agent
cat > /etc/monit/conf.d/de-agent <<'DE_OLD'
check process de-agent matching "^/usr/local/bin/deployment-engine agent"
  start program = "/var/lib/deployment-engine/old-agent"
  stop program = "/usr/bin/pkill -f '^/usr/local/bin/deployment-engine agent'"
DE_OLD
chmod 600 /etc/monit/conf.d/de-agent
monit reload
for i in $(seq 1 200); do monit status de-agent >/dev/null 2>&1 && break; sleep 0.1; done
# monit answers status before it rereads its checks, then closes its port.
for i in $(seq 1 200); do monit start de-agent 2>/dev/null && exit 0; sleep 0.1; done
monit start de-agent
`
	if out, err := n.Exec(context.Background(), script); err != nil {
		t.Fatalf("plant the old agent on %s: %v\n%s", n.IP, err, out)
	}
	untilNode(t, n, "the old agent runs", "pgrep -f '^/usr/local/bin/deployment-engin[e] agent' >/dev/null && echo yes", "yes")
}

// nodeSh runs script on n and answers its output, trimmed.
func nodeSh(t *testing.T, n *testbed.Node, script string) string {
	t.Helper()
	out, err := n.Exec(context.Background(), script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.IP, script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// untilNode waits, 30 s at most, until script prints want on n.
func untilNode(t *testing.T, n *testbed.Node, what, script, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		out, _ := n.Exec(context.Background(), script)
		if got = strings.TrimSpace(string(out)); got == want {
			return
		}
	}
	log, _ := n.Exec(context.Background(), "tail -5 /var/log/de-agent.log; monit summary")
	t.Fatalf("%s: not %s within 30s (%q)\n%s", n.IP, what, got, log)
}
