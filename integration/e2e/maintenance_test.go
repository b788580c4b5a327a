package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// e2eCatalogs is the e2e catalog as e2e, and as e2e_v2 whose delta.conf
// template differs: the config switching to it changes delta everywhere.
func e2eCatalogs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"e2e", "e2e_v2"} {
		dst := filepath.Join(dir, v)
		if out, err := exec.Command("cp", "-r", filepath.Join(catalogDir(t), "e2e"), dst).CombinedOutput(); err != nil {
			t.Fatalf("copy catalog: %v %s", err, out)
		}
		if v == "e2e" {
			continue
		}
		cj := filepath.Join(dst, "catalog.json")
		b, _ := os.ReadFile(cj)
		if err := os.WriteFile(cj, []byte(strings.Replace(string(b), `"name": "e2e"`, `"name": "e2e_v2"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, "templates", "conf"), []byte("{{.Component}} on {{.Node}}, v2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// deltaConf is what delta.conf holds on node i.
func deltaConf(t *testing.T, i int) string {
	t.Helper()
	return strings.TrimSpace(inNode(t, i, "cat /etc/e2e/delta.conf"))
}

// A node in maintenance: delta killed on it stays down with auto-heal on
// and /status says MAINTENANCE, by whom and why; a deployment of a changed
// template holds its steps and changes the others, and succeeds; the plan
// said so first. Out of maintenance, auto-heal brings delta back and the
// next deployment applies the held change there, and only there.
func TestMaintenance(t *testing.T) {
	e := engine(t, "--catalog", e2eCatalogs(t))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()
	n1 := bed.Nodes[1].IP
	cfg := config("e2e", map[string][]string{"delta": ips(0, 1, 2, 3)})
	cfg["properties"].(map[string]any)["heal"] = map[string]any{"backoff_s": 2, "grace_s": 2}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	setSleep(t, 0, bed.Nodes...)
	if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("first deployment: %s\n%s", d.State, failures(d))
	}
	allRunning := func(st []statusEntry) bool {
		running := 0
		for _, s := range st {
			if s.Status == contract.StatusRunning {
				running++
			}
		}
		return len(st) == 4 && running == 4
	}
	waitFor(t, e, reportWithin, "every delta RUNNING", allRunning)

	code, body := e.Do("PUT", "/deployment-engine/nodes/"+n1+"/maintenance", map[string]any{"on": true, "reason": "disk swap"})
	if code != 200 {
		t.Fatalf("maintenance on: %d %s", code, body)
	}
	kill9(t, 1)
	killed := time.Now()
	why := "maintenance: disk swap (by admin, since "
	waitFor(t, e, 30*time.Second, "delta on node 1 MAINTENANCE and down", func(st []statusEntry) bool {
		s := instance(st, "delta", n1)
		return s.Status == contract.StatusMaintenance && strings.HasPrefix(s.Reason, why) && strings.Contains(s.Reason, "instance DOWN")
	})
	// Well past the grace, the back-off and a few heartbeats: still down.
	time.Sleep(time.Until(killed.Add(25 * time.Second)))
	if out := inNode(t, 1, `kill -0 "$(cat /run/e2e-delta.pid)" 2>/dev/null && echo alive || echo gone`); strings.TrimSpace(out) != "gone" {
		t.Fatalf("delta on a node in maintenance came back: %s", out)
	}
	if n := countAudit(audit(t, e, ""), "heal-restart", n1, "") + countAudit(audit(t, e, ""), "heal-reapply", n1, ""); n != 0 {
		t.Fatalf("auto-heal acted %d times on a node in maintenance", n)
	}
	if n := countAudit(audit(t, e, "action=maintenance"), "maintenance", n1, "ok"); n != 1 {
		t.Fatalf("%d audit entries for the maintenance, want 1", n)
	}

	// The plan of the changed template holds node 1's actions.
	cfg["properties"].(map[string]any)["catalog"] = "e2e_v2"
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config v2: %d %s", code, body)
	}
	code, body = e.Do("POST", "/deployment-engine/plan", nil)
	var p contract.Plan
	if code != 200 || json.Unmarshal(body, &p) != nil || p.Held == 0 || p.Changes == 0 {
		t.Fatalf("plan: %d %s", code, body)
	}
	for _, n := range p.Nodes {
		if (n.IP == n1) != strings.HasPrefix(n.Held, why) {
			t.Errorf("plan of node %s: held %q", n.IP, n.Held)
		}
		for _, a := range n.Actions {
			if a.Held != (n.IP == n1) {
				t.Errorf("plan: %s held %v", a.Step, a.Held)
			}
		}
	}
	d := wait(t, e, deploy(t, e), 8*time.Minute)
	if d.State != contract.DeploySucceeded || len(d.Held) != 1 || d.Held[0].IP != n1 || !strings.HasPrefix(d.Held[0].Reason, why) {
		t.Fatalf("deployment with node 1 held: %s held %+v\n%s", d.State, d.Held, failures(d))
	}
	held := 0
	for _, st := range d.Steps {
		switch {
		case st.Node == n1 && st.State != contract.StateHeld:
			t.Errorf("step %s on the node in maintenance: %s", st.ID, st.State)
		case st.Node == n1:
			held++
		case st.State == contract.StateHeld:
			t.Errorf("step %s held on a node in service", st.ID)
		}
	}
	if held == 0 {
		t.Fatal("no step held on node 1")
	}
	for i := range bed.Nodes {
		if got, v2 := deltaConf(t, i), i != 1; strings.HasSuffix(got, ", v2") != v2 {
			t.Errorf("delta.conf on node %d: %q (want v2: %v)", i, got, v2)
		}
	}
	t.Logf("deployment %s: %d steps held on %s, %d changed", d.ID, held, n1, d.Changed)

	// Out of maintenance: auto-heal brings delta back, the next deployment
	// changes node 1 alone.
	if code, body := e.Do("PUT", "/deployment-engine/nodes/"+n1+"/maintenance", map[string]any{"on": false}); code != 200 {
		t.Fatalf("maintenance off: %d %s", code, body)
	}
	waitFor(t, e, reportWithin, "delta on node 1 healed out of maintenance", allRunning)
	var next contract.Deployment
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		code, body, err := e.DoErr(context.Background(), "POST", "/deployment-engine/deploy", nil)
		if err == nil && code == 202 {
			var r struct{ ID string }
			_ = json.Unmarshal(body, &r)
			next = wait(t, e, r.ID, 8*time.Minute)
			break
		}
		if code != 409 || time.Now().After(deadline) { // a heal's re-apply may still run
			t.Fatalf("deploy: %d %s %v", code, body, err)
		}
	}
	if next.State != contract.DeploySucceeded || len(next.Held) != 0 {
		t.Fatalf("the deployment after maintenance: %s held %+v\n%s", next.State, next.Held, failures(next))
	}
	for _, st := range next.Steps {
		if st.Component != "delta" || st.Action != "upload" {
			continue
		}
		if want := map[bool]string{true: contract.StateSucceeded, false: contract.StateUnchanged}[st.Node == n1]; st.State != want {
			t.Errorf("%s after maintenance: %s, want %s", st.ID, st.State, want)
		}
	}
	if got := deltaConf(t, 1); !strings.HasSuffix(got, ", v2") {
		t.Fatalf("delta.conf on node 1 after maintenance: %q", got)
	}
	waitFor(t, e, reportWithin, "every delta RUNNING at the end", allRunning)
}
