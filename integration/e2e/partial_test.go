package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An instance whose install failed was never placed, but its upload left
// a rendered file and a marker on the node: a config that drops it has it
// removed, and the node keeps nothing of it.
func TestFailedInstanceIsRemoved(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	n := bed.Nodes[2]
	setSleep(t, 0, bed.Nodes[0], n)
	if _, err := n.Exec(context.Background(), "touch /var/lib/e2e/broken"); err != nil {
		t.Fatal(err)
	}
	storeE2E(t, e, map[string][]string{"alpha": ips(0), "delta": ips(2)})
	d := wait(t, e, deploy(t, e), 3*time.Minute)
	if d.State != "failed" {
		t.Fatalf("deployment with delta's install broken: %s", d.State)
	}
	// The instance's file, monit check and step markers; the remove step's
	// own marker (delta.remove) records the removal, as it does for any
	// instance removed, so that a redelivered remove knows it ran.
	left := "ls /etc/e2e/delta.conf /etc/monit/conf.d/delta /var/lib/deployment-engine/applied/ 2>/dev/null | grep -E 'delta' | grep -vx 'delta.remove'; true"
	if out, _ := n.Exec(context.Background(), left); !strings.Contains(string(out), "delta") {
		t.Fatalf("the failed install left nothing on the node, so the test proves nothing: %q", out)
	}
	if _, err := n.Exec(context.Background(), "rm -f /var/lib/e2e/broken"); err != nil {
		t.Fatal(err)
	}
	storeE2E(t, e, map[string][]string{"alpha": ips(0)})
	d = wait(t, e, deploy(t, e), 3*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment without delta: %s\n%s", d.State, failures(d))
	}
	removed := false
	for _, st := range d.Steps {
		removed = removed || (st.Node == n.IP && st.Component == "delta" && st.Action == "remove" && st.State == "succeeded")
	}
	if !removed {
		t.Errorf("no remove step of the failed delta on %s ran: %+v", n.IP, d.Steps)
	}
	if out, _ := n.Exec(context.Background(), left); strings.TrimSpace(string(out)) != "" {
		t.Errorf("the dropped, failed instance left on the node: %q", out)
	}
	// Gone for good: the next deployment has nothing of it to remove.
	d = wait(t, e, deploy(t, e), 3*time.Minute)
	for _, st := range d.Steps {
		if st.Component == "delta" {
			t.Errorf("a later deployment still plans %s", st.ID)
		}
	}
}
