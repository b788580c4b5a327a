// Package e2e drives the real engine binary through its API only, against
// a shared test bed of real nodes.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/contract"
)

// nodeRAM are the memory limits of the bed's nodes, alternating.
var nodeRAM = [2]int64{2 << 30, 3 << 30}

var (
	bed       *testbed.Bed
	mirrorDir string
)

// reportWithin bounds the waits for what a node's agent reports after a
// deploy (an instance RUNNING, a job's processes). An agent reports within
// a heartbeat on a quiet machine; make test runs two beds of this package
// beside the cluster package and the unit packages on two cores, where
// reports came 40-60 s late. The bound only ends a test that failed.
const reportWithin = 3 * time.Minute

func TestMain(m *testing.M) {
	// make test runs the package as two shards side by side (Makefile,
	// E2E_B), each on a bed of its own.
	name := "e2e"
	if s := os.Getenv("DE_E2E_SHARD"); s != "" && s != "a" {
		name += "-" + s
	}
	// Nodes of two sizes: each reports its own through lxcfs.
	code := testbed.Main(m, testbed.Options{Name: name, Nodes: 4,
		PerNode: []testbed.Limits{{Memory: nodeRAM[0]}, {Memory: nodeRAM[1]}, {Memory: nodeRAM[0]}, {Memory: nodeRAM[1]}}}, &bed)
	if mirrorDir != "" {
		os.RemoveAll(filepath.Dir(mirrorDir))
	}
	harness.RemoveBinary()
	os.Exit(code)
}

// syncMirror fills one mirror for every engine of the package.
func syncMirror(t *testing.T, bin string) string {
	t.Helper()
	if mirrorDir != "" {
		return mirrorDir
	}
	data, err := os.MkdirTemp("", "de-e2e-mirror-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "mirror", "sync", "--catalog", "starter", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("mirror sync: %v\n%s", err, out)
	}
	mirrorDir = filepath.Join(data, "mirror")
	return mirrorDir
}

// engine starts a fresh engine whose mirror is the shared one, and hands
// the bed's nodes to it.
func engine(t *testing.T, args ...string) *harness.Engine {
	t.Helper()
	bin := harness.Binary(t)
	data := t.TempDir()
	if err := os.Symlink(syncMirror(t, bin), filepath.Join(data, "mirror")); err != nil {
		t.Fatal(err)
	}
	release(t)
	return harness.Start(t, harness.Options{Data: data, Args: args})
}

// release forgets which engine owned the nodes, so the next engine may
// take them: each test starts a new engine, with a new id.
func release(t *testing.T) {
	t.Helper()
	takeOver(t)
	// The test catalog's services of an earlier test go too, and its agent
	// (whose start, failing without its config, would hold monit up 30 s
	// at a time), so each test starts from nodes that run none of them.
	harness.ResetNodes(t, bed.Nodes, "alpha beta gamma delta de-agent", "^/bin/sleep 10000[012]$",
		"/var/lib/e2e/broken", "/run/e2e-*.pid", "/var/log/e2e-*.log")
}

func ips(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, bed.Nodes[i].IP)
	}
	return out
}

func config(catalog string, comps map[string][]string) map[string]any {
	return map[string]any{"components": comps, "properties": map[string]any{
		"catalog": catalog, "domain": "e2e.local", "home": bed.Home, "key": bed.KeyPath,
		"disksize": "1", "checkdisk": 1, "adduser": 0}}
}

// The suite's names for the harness's helpers.
var (
	deploy   = harness.Deploy
	failures = harness.Failures
	tail     = harness.Tail
)

// wait waits for deployment id to end, within.
func wait(t *testing.T, e *harness.Engine, id string, within time.Duration) contract.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := harness.Wait(ctx, e.Client(), id, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("deployment %s did not finish within %s: %v: %+v\nengine log:\n%s", id, within, err, d, tail(e.Log(), 40))
	}
	return d
}

// takeOver clears the claims the engines of earlier tests left on the
// bed's nodes the way an operator does: a takeover through the API of an
// engine that holds the nodes in its config. The reset then removes the
// rest of what those engines left.
func takeOver(t *testing.T) {
	t.Helper()
	owners := map[string]bool{}
	for _, n := range bed.Nodes {
		if o := nodeOwner(t, n); o != "" {
			owners[o] = true
		}
	}
	if len(owners) == 0 {
		return
	}
	e := harness.Start(t, harness.Options{Args: []string{"--no-agents", "--catalog", catalogDir(t)}})
	defer e.Stop()
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1, 2, 3)})
	for o := range owners {
		if code, body := e.Do("POST", "/deployment-engine/takeover", map[string]any{"from": o}); code != 200 {
			t.Fatalf("take the nodes over from engine %s: %d %s", o, code, body)
		}
	}
	for _, n := range bed.Nodes {
		if o := nodeOwner(t, n); o != "" {
			t.Fatalf("node %s (%s) still names engine %s after the takeover", n.Name, n.IP, o)
		}
	}
}

// nodeOwner is the engine id a node's owner file names, "" for none.
func nodeOwner(t *testing.T, n *testbed.Node) string {
	t.Helper()
	out, err := n.Exec(context.Background(), "cat /var/lib/deployment-engine/owner 2>/dev/null; true")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
