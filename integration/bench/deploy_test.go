// Package bench measures the engine on the test bed. Its benchmarks bring
// up their own nodes; they do not run with the tests.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

type step struct {
	ID, Node          string
	After             []string
	Started, Finished *time.Time
}

type deployment struct {
	State    string
	Created  time.Time
	Finished *time.Time
	Steps    []step
}

// criticalPath is the physical limit of a finished deployment: no schedule
// can beat the longest chain of dependent steps, nor the sum of one node's
// steps (a node runs one step at a time). Both use the steps' measured
// durations, so the ratio to the wall time is the scheduler's own cost.
func criticalPath(d deployment) (time.Duration, string) {
	dur := map[string]time.Duration{}
	byID := map[string]step{}
	perNode := map[string]time.Duration{}
	for _, s := range d.Steps {
		if s.Started != nil && s.Finished != nil {
			dur[s.ID] = s.Finished.Sub(*s.Started)
		}
		byID[s.ID] = s
		perNode[s.Node] += dur[s.ID]
	}
	memo := map[string]time.Duration{}
	var chain func(id string) time.Duration
	chain = func(id string) time.Duration {
		if v, ok := memo[id]; ok {
			return v
		}
		var longest time.Duration
		for _, a := range byID[id].After {
			longest = max(longest, chain(a))
		}
		memo[id] = longest + dur[id]
		return memo[id]
	}
	var cp time.Duration
	for id := range byID {
		cp = max(cp, chain(id))
	}
	bound := "dependency chain"
	for _, v := range perNode {
		if v > cp {
			cp, bound = v, "one node's steps"
		}
	}
	return cp, bound
}

// BenchmarkDeploy deploys N nodes × 3 chained components whose installs
// sleep 2, 3 and 1 s, and reports the wall time against the critical path.
// Target: wall / critical path ≤ 1.10 at N = 30.
func BenchmarkDeploy(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	catalogs, err := filepath.Abs("testdata/catalogs")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{5, 20, 30} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			bed, err := testbed.Up(context.Background(), testbed.Options{Name: "bench", Nodes: n})
			if err != nil {
				_ = testbed.Down("bench")
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = bed.Down() })
			var ips []string
			for _, nd := range bed.Nodes {
				ips = append(ips, nd.IP)
			}
			comps := map[string][]string{"a": ips, "b": ips, "c": ips}
			cfg := map[string]any{"components": comps, "properties": map[string]any{
				"catalog": "bench", "domain": "bench.local", "home": bed.Home, "key": bed.KeyPath, "adduser": 0}}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				e := harness.Start(b, harness.Options{Args: []string{"--catalog", catalogs}})
				if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
					b.Fatalf("config: %d %s", code, body)
				}
				b.StartTimer()
				d := run(b, e)
				b.StopTimer()
				cp, bound := criticalPath(d)
				wall := d.Finished.Sub(d.Created)
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(cp.Seconds(), "critical-path-s")
				b.ReportMetric(wall.Seconds()/cp.Seconds(), "wall/critical-path")
				b.Logf("N=%d: %d steps, wall %s, critical path %s (%s), ratio %.3f", n, len(d.Steps), wall.Round(time.Millisecond), cp.Round(time.Millisecond), bound, wall.Seconds()/cp.Seconds())
				e.Stop()
				// The next round starts from nodes that have nothing.
				for _, nd := range bed.Nodes {
					_, _ = nd.Exec(context.Background(), `for c in a b c; do monit stop bench-$c >/dev/null 2>&1; rm -f /etc/monit/conf.d/$c; done; monit reload >/dev/null 2>&1; rm -rf /var/lib/deployment-engine; pkill -f 'sleep 100001'; true`)
				}
				b.StartTimer()
			}
		})
	}
}

func run(b *testing.B, e *harness.Engine) deployment {
	code, body := e.Do("GET", "/deployment-engine/deploy", nil)
	if code != 202 {
		b.Fatalf("deploy: %d %s", code, body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(body, &r)
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		code, body := e.Do("GET", "/deployment-engine/deployments/"+r.ID, nil)
		var d deployment
		if code != 200 || json.Unmarshal(body, &d) != nil {
			continue
		}
		switch d.State {
		case "succeeded":
			return d
		case "failed":
			b.Fatalf("deployment failed: %s", body)
		}
	}
	b.Fatal("deployment did not finish within 15 minutes")
	return deployment{}
}

func TestCriticalPath(t *testing.T) {
	at := func(s int) *time.Time { v := time.Unix(int64(s), 0); return &v }
	d := deployment{Steps: []step{
		{ID: "n1/a", Node: "n1", Started: at(0), Finished: at(2)},
		{ID: "n2/a", Node: "n2", Started: at(0), Finished: at(5)},
		{ID: "n1/b", Node: "n1", After: []string{"n1/a", "n2/a"}, Started: at(5), Finished: at(8)},
		{ID: "n1/c", Node: "n1", Started: at(8), Finished: at(9)},
	}}
	if cp, bound := criticalPath(d); cp != 8*time.Second || bound != "dependency chain" {
		t.Fatalf("critical path %s (%s), want 8s along the dependency chain", cp, bound)
	}
	d.Steps[3].Finished = at(14) // n1 alone now runs 2+3+6 = 11 s
	if cp, bound := criticalPath(d); cp != 11*time.Second || bound != "one node's steps" {
		t.Fatalf("critical path %s (%s), want 11s for one node's steps", cp, bound)
	}
}
