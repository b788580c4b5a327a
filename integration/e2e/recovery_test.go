package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// An engine whose store is wiped knows itself from its id file: posting the
// same config and deploying again changes nothing on its nodes. A backup
// taken before brings the old deployments back.
func TestWipedStoreConverges(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	setSleep(t, 0, bed.Nodes[0], bed.Nodes[1])
	comps := map[string][]string{"alpha": ips(0, 1), "beta": ips(1)}
	storeE2E(t, e, comps)
	first := deploy(t, e)
	if d := wait(t, e, first, 3*time.Minute); d.State != "succeeded" || d.Changed == 0 {
		t.Fatalf("first deployment: %s changed=%d\n%s", d.State, d.Changed, failures(d))
	}
	e.Stop()
	bak := filepath.Join(t.TempDir(), "engine.bak")
	cli(t, e, "backup", bak, "--data", e.Data)
	if err := os.RemoveAll(filepath.Join(e.Data, "jetstream")); err != nil {
		t.Fatal(err)
	}
	e.Restart()
	if code, body := e.Do("GET", "/deployment-engine/config", nil); code != 404 {
		t.Fatalf("config after the store was wiped: %d %s", code, body)
	}
	storeE2E(t, e, comps)
	again := deploy(t, e)
	d := wait(t, e, again, 3*time.Minute)
	if d.State != "succeeded" || d.Changed != 0 {
		t.Fatalf("deployment on a wiped store: %s changed=%d (want 0)\n%s", d.State, d.Changed, failures(d))
	}
	if got := runs(t, bed.Nodes[1]); got != "alpha install\nbeta install\n" {
		t.Errorf("node 1 ran %q: an install ran again", got)
	}

	// The backup puts the first deployment back.
	e.Stop()
	cli(t, e, "restore", bak, "--data", e.Data)
	e.Restart()
	code, body := e.Do("GET", "/deployment-engine/deployments/"+first, nil)
	var back contract.Deployment
	_ = json.Unmarshal(body, &back)
	if code != 200 || back.State != "succeeded" {
		t.Fatalf("the first deployment after restore: %d %s", code, body)
	}
	if code, _ := e.Do("GET", "/deployment-engine/config", nil); code != 200 {
		t.Fatalf("config after restore: %d", code)
	}
}

func cli(t *testing.T, e *harness.Engine, args ...string) string {
	t.Helper()
	out, err := exec.Command(e.Bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A scale that fails leaves the stored config as it was: here a node of
// the config is down, so the deployment that would install the new
// instance cannot start.
func TestFailedScaleKeepsConfig(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	setSleep(t, 0, bed.Nodes[0], bed.Nodes[1], bed.Nodes[2])
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1)})
	if d := wait(t, e, deploy(t, e), 3*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	_, before := e.Do("GET", "/deployment-engine/config", nil)
	down := bed.Nodes[1]
	if err := down.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body := e.Do("POST", "/deployment-engine/scale", map[string]string{"Comp": "alpha", "Ip": ips(2)[0]})
	if err := down.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code != 502 || !strings.Contains(string(body), down.IP) {
		t.Fatalf("scale with a node of the config down: %d %s", code, body)
	}
	if _, after := e.Do("GET", "/deployment-engine/config", nil); !bytes.Equal(before, after) {
		t.Fatalf("the failed scale changed the config:\nbefore %s\nafter  %s", before, after)
	}
}

// Cancel ends a running deployment: its running install is killed on the
// node, it fails saying so, the lock is released at once; a second cancel
// is 409, an unknown deployment 404.
func TestCancelDeployment(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	n := bed.Nodes[2]
	setSleep(t, 300, n)
	storeE2E(t, e, map[string][]string{"alpha": ips(2)})
	id := deploy(t, e)
	for deadline := time.Now().Add(time.Minute); !strings.Contains(runs(t, n), "alpha install"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the install never started")
		}
	}
	code, body := e.Do("POST", "/deployment-engine/deployments/"+id+"/cancel", nil)
	var d contract.Deployment
	_ = json.Unmarshal(body, &d)
	if code != 202 || d.State != "failed" || !strings.Contains(d.Error, "cancelled") {
		t.Fatalf("cancel: %d %s", code, body)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out, err := n.Exec(context.Background(), "pgrep -fx 'sleep 300' || true")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled install still runs on the node: pids %s", out)
		}
	}
	if code, body := e.Do("POST", "/deployment-engine/deployments/"+id+"/cancel", nil); code != 409 {
		t.Fatalf("second cancel: %d %s", code, body)
	}
	if code, body := e.Do("POST", "/deployment-engine/deployments/d-20990101-000000-abcdef/cancel", nil); code != 404 {
		t.Fatalf("cancel of an unknown deployment: %d %s", code, body)
	}
	setSleep(t, 0, n)
	if d := wait(t, e, deploy(t, e), 3*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment after the cancel: %s\n%s", d.State, failures(d))
	}
}
