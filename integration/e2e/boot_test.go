package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

// reboot kills everything in the node and boots it again.
func reboot(t *testing.T, n *testbed.Node) {
	t.Helper()
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A node with nothing but sshd: monit comes from the engine's mirror,
// configured with the engine's monitrc, and supervises what is deployed.
// Whatever the engine installs comes back when nodes reboot, without a
// deployment: monit is enabled at boot (also where it had been disabled)
// and starts its checks.
func TestNodeWithoutMonit(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	bare, disabled := bed.Nodes[3], bed.Nodes[2]
	setSleep(t, 0, bare, disabled)
	saved, err := bare.Exec(context.Background(), "cat /etc/monit/monitrc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Later tests find the node as the test bed makes it: its monitrc,
		// and monit started by its own boot.
		_, _ = bare.Exec(context.Background(), "cat > /etc/monit/monitrc <<'EOF'\n"+string(saved)+"EOF\nchmod 600 /etc/monit/monitrc")
		_ = bare.Stop(context.Background())
		if err := bare.Start(context.Background()); err != nil {
			t.Errorf("boot %s again: %v", bare.IP, err)
		}
	})
	if _, err := bare.Exec(context.Background(), `monit quit >/dev/null 2>&1 || true
for i in $(seq 1 50); do pgrep -x monit >/dev/null || break; sleep 0.1; done
DEBIAN_FRONTEND=noninteractive dpkg --purge monit >/dev/null 2>&1
hash -r; ! command -v monit`); err != nil {
		t.Fatalf("remove monit from %s: %v", bare.IP, err)
	}
	if _, err := disabled.Exec(context.Background(), `update-rc.d monit disable >/dev/null 2>&1; ! ls /etc/rc2.d/S*monit >/dev/null 2>&1`); err != nil {
		t.Fatalf("disable monit at boot on %s: %v", disabled.IP, err)
	}

	storeE2E(t, e, map[string][]string{"alpha": ips(2, 3)})
	d := wait(t, e, deploy(t, e), 4*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	out, err := bare.Exec(context.Background(), `monit -V | head -1; grep -c -e '^set httpd port 2812 and use address localhost allow localhost$' -e '^include /etc/monit/conf.d/\*$' /etc/monit/monitrc; stat -c %a /etc/monit/monitrc`)
	if err != nil || !strings.Contains(string(out), "Monit version") || !strings.Contains(string(out), "\n2\n600") {
		t.Errorf("monit on the bare node: %s %v", out, err)
	}
	for _, n := range []*testbed.Node{bare, disabled} {
		if out, err := n.Exec(context.Background(), "ls /etc/rc2.d/ | grep monit"); err != nil || !strings.HasPrefix(string(out), "S") {
			t.Errorf("monit not enabled at boot on %s: %q %v", n.IP, out, err)
		}
	}
	running := func(st []statusEntry) bool {
		n := 0
		for _, s := range st {
			if s.Comp == "alpha" && s.Status == "RUNNING" {
				n++
			}
		}
		return n == 2
	}
	waitFor(t, e, 30*time.Second, "alpha RUNNING on both nodes", running)

	// Reboot both: everything is back within 60 s, and no deployment ran.
	before := deployments(t, e)
	reboot(t, bare)
	reboot(t, disabled)
	// The truth is on the nodes: a fresh /run, so a pid file there is
	// monit's doing after the boot, and its process runs.
	start := time.Now()
	for _, n := range []*testbed.Node{bare, disabled} {
		for {
			out, _ := n.Exec(context.Background(), `p=$(cat /run/e2e-alpha.pid 2>/dev/null) && kill -0 "$p" && echo up`)
			if strings.TrimSpace(string(out)) == "up" {
				break
			}
			if time.Since(start) > 60*time.Second {
				log, _ := n.Exec(context.Background(), "tail -20 /var/log/monit.log; ls /etc/rc2.d")
				t.Fatalf("alpha not running on %s 60 s after the reboot:\n%s", n.IP, log)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	t.Logf("reboot → alpha running on both nodes in %s", time.Since(start).Round(100*time.Millisecond))
	waitFor(t, e, 60*time.Second-time.Since(start), "alpha RUNNING again after the reboots", running)
	if after := deployments(t, e); after != before {
		t.Errorf("deployments: %d before the reboots, %d after", before, after)
	}
}

func deployments(t *testing.T, e *harness.Engine) int {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/deployments", nil)
	var list []json.RawMessage
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("deployments: %d %s", code, body)
	}
	return len(list)
}
