// Package chaos kills the engine with SIGKILL at random moments of
// deployments whose steps outlast the step queue's AckWait, and checks
// that every deployment still succeeds with each step run exactly once on
// its node, counted on the node. Half the trials kill the whole engine,
// half only its installer, running alone (serve --only installer) against
// an external NATS server.
//
// DE_CHAOS_TRIALS sets the number of trials (default 10, what CI runs;
// `make chaos` runs 50).
package chaos

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

// The trials' queue hands a silent step on after ackWait; each install
// takes installTime, talking all the while.
const (
	ackWait     = "1s"
	installTime = 2 * time.Second
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	code := testbed.Main(m, testbed.Options{Name: "chaos", Nodes: 2}, &bed)
	harness.RemoveBinary()
	os.Exit(code)
}

func trials(t *testing.T) int {
	n := 10
	if s := os.Getenv("DE_CHAOS_TRIALS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("DE_CHAOS_TRIALS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// trial is what one kill did.
type trial struct {
	mode     string
	killAt   time.Duration // after the deploy was accepted
	active   []string      // steps queued or running at the kill
	ended    bool          // the deployment had ended before the kill
	took     time.Duration // from deploy to succeeded
	attempts int           // the most attempts any step took
}

func TestChaos(t *testing.T) {
	n := trials(t)
	catalogs, err := filepath.Abs("testdata/catalogs")
	if err != nil {
		t.Fatal(err)
	}
	var all []trial
	t.Run("engine", func(t *testing.T) {
		e := harness.Start(t, harness.Options{Args: []string{"--no-agents", "--catalog", catalogs, "--step-ack-wait", ackWait}})
		for i := 0; i < (n+1)/2; i++ {
			all = append(all, run(t, i, "engine", e, e))
		}
	})
	t.Run("installer", func(t *testing.T) {
		url := natsServer(t)
		e := harness.Start(t, harness.Options{Args: []string{"--catalog", catalogs, "--nats", url, "--only", "api,planner,monitor,logs"}})
		// The installer opens the config's sealed secrets with the engine's
		// key: it runs with a copy of that key file in its own data dir.
		insData := t.TempDir()
		key, err := os.ReadFile(filepath.Join(e.Data, "engine-key"))
		if err != nil {
			t.Fatalf("the engine's key: %v", err)
		}
		if err := os.WriteFile(filepath.Join(insData, "engine-key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		ins := harness.Start(t, harness.Options{Data: insData, NoHTTP: true, Args: []string{"--nats", url, "--only", "installer", "--step-ack-wait", ackWait}})
		for i := 0; i < n/2; i++ {
			all = append(all, run(t, i, "installer", e, ins))
		}
	})
	report(t, all)
}

// natsServer runs a NATS server with JetStream for the split engine.
func natsServer(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// reset takes the nodes back to before any deployment, so that every
// step of the next one runs.
func reset(t *testing.T) {
	t.Helper()
	harness.ResetNodes(t, bed.Nodes, "c1 c2", "^/bin/sleep 100001$", "/var/lib/chaos", "/etc/chaos", "/run/chaos-*.pid")
}

// run is one trial: deploy, kill -9 the victim at a random moment,
// start it again, and check the outcome on the nodes.
func run(t *testing.T, i int, mode string, api, victim *harness.Engine) trial {
	t.Helper()
	reset(t)
	comps := map[string][]string{"c1": {bed.Nodes[0].IP, bed.Nodes[1].IP}, "c2": {bed.Nodes[0].IP, bed.Nodes[1].IP}}
	cfg := map[string]any{"components": comps, "properties": map[string]any{
		"catalog": "chaos", "domain": "chaos.local", "home": bed.Home, "key": bed.KeyPath, "disksize": "1", "checkdisk": 0, "adduser": 0}}
	if code, body := api.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("trial %s/%d: config: %d %s", mode, i, code, body)
	}
	// The installer may still be coming back from the last kill.
	id, err := harness.DeployWhenAccepted(t, api, 30*time.Second, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("trial %s/%d: deploy: %v", mode, i, err)
	}
	start := time.Now()
	// A deployment here takes about 2 installs per node plus a few short
	// steps: kill anywhere in it.
	tr := trial{mode: mode, killAt: time.Duration(rand.Int64N(int64(3*installTime))) + 200*time.Millisecond}
	time.Sleep(time.Until(start.Add(tr.killAt)))
	c := api.Client()
	if d, _, err := c.Deployment(context.Background(), id); err == nil {
		tr.ended = harness.Ended(d)
		for _, s := range d.Steps {
			if s.State == "running" || s.State == "queued" {
				tr.active = append(tr.active, s.ID+" "+s.State)
			}
		}
	}
	victim.Kill9()
	victim.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	d, err := harness.Wait(ctx, c, id, 200*time.Millisecond)
	cancel()
	if err != nil {
		t.Fatalf("trial %s/%d (kill at %s, active %v): deployment not finished in 2m (%v): %+v\n%s", mode, i, tr.killAt, tr.active, err, d, harness.Tail(victim.Log(), 30))
	}
	tr.took = time.Since(start)
	if d.State != "succeeded" {
		t.Errorf("trial %s/%d (kill at %s, active %v): deployment %s: %s", mode, i, tr.killAt, tr.active, d.State, harness.Failures(d))
	}
	for _, s := range d.Steps {
		tr.attempts = max(tr.attempts, s.Attempt)
	}
	// Counted on the nodes: each install started and ended once, one at a
	// time, in order.
	for _, n := range bed.Nodes {
		out, err := n.Exec(context.Background(), "cat /var/lib/chaos/runs 2>/dev/null; true")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), "c1 start\nc1 end\nc2 start\nc2 end\n"; got != want {
			t.Errorf("trial %s/%d (kill at %s, active %v): %s ran %q, want %q", mode, i, tr.killAt, tr.active, n.IP, got, want)
		}
	}
	t.Logf("trial %s/%d: kill at %s (ended before: %v; active: %s) → %s in %s, at most %d attempts",
		mode, i, tr.killAt.Round(time.Millisecond), tr.ended, strings.Join(tr.active, ", "), d.State, tr.took.Round(100*time.Millisecond), tr.attempts)
	return tr
}

func report(t *testing.T, all []trial) {
	var took []time.Duration
	mid := 0
	for _, tr := range all {
		took = append(took, tr.took)
		if !tr.ended {
			mid++
		}
	}
	if len(took) == 0 {
		return
	}
	sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	t.Logf("chaos: %d trials (%d killed mid-deployment), failed: %v; deploy-to-success p50 %s, max %s, mean %s",
		len(all), mid, t.Failed(), took[len(took)/2].Round(100*time.Millisecond), took[len(took)-1].Round(100*time.Millisecond),
		(sum / time.Duration(len(took))).Round(100*time.Millisecond))
}
