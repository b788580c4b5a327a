package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/contract"
)

// clustersRow is one run of BenchmarkClusters.
type clustersRow struct {
	Clusters, PerCluster int
	// One is the deploy of every node as one cluster, Many as Clusters
	// clusters deployed at once; each from the first request to the last
	// step's end, by the engine's clock.
	One, Many time.Duration
	// Limit is the physical limit of both: the component's declared
	// sleep and monit's start on the slowest node.
	Limit time.Duration
	// RSS is the engine's most resident memory while the clusters
	// deployed; ListP50 and ListP99 GET /clusters's latency once they had.
	RSS              int64
	ListP50, ListP99 time.Duration
}

// BenchmarkClusters deploys the five-step component on 100 fresh nodes
// with the defaults (agents on) twice: as one cluster, then as 20 clusters
// of 5 nodes each, all deployed at once. The work per node is the same
// both times, and so is the physical limit. It reports both walls, the
// engine's RSS with 20 clusters running, and GET /clusters's latency.
func BenchmarkClusters(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		r := compareClusters(b, 20, 5)
		b.ReportMetric(r.One.Seconds(), "one-cluster-s")
		b.ReportMetric(r.Many.Seconds(), "clusters-s")
		b.ReportMetric(r.Limit.Seconds(), "limit-s")
		b.ReportMetric(float64(r.RSS)/(1<<20), "rss-MB")
		b.ReportMetric(float64(r.ListP50.Microseconds())/1000, "list-p50-ms")
		b.ReportMetric(float64(r.ListP99.Microseconds())/1000, "list-p99-ms")
	}
}

// TestClustersSmoke runs the comparison on two clusters of one node, so
// that `make test` keeps it working.
func TestClustersSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test bed")
	}
	if err := testbed.Check(); err != nil {
		t.Fatal(err)
	}
	r := compareClusters(t, 2, 1)
	_, cat := catalogDir(t)
	if declared := declaredOf(t, cat); r.One < declared || r.Many < declared {
		t.Errorf("a run beat the sleeps the catalog declares (%s): one cluster %s, two %s — the limit is wrong", declared, r.One, r.Many)
	}
	if r.RSS == 0 || r.ListP99 == 0 {
		t.Errorf("nothing measured: %+v", r)
	}
}

// compareClusters brings up clusters×per fresh nodes, deploys them as one
// cluster, resets them, and deploys them as clusters clusters at once.
func compareClusters(tb testing.TB, clusters, per int) clustersRow {
	ctx := context.Background()
	n := clusters * per
	bed, down := freshBed(ctx, tb, n)
	defer down()
	dir, cat := catalogDir(tb)
	r := clustersRow{Clusters: clusters, PerCluster: per, Limit: physicalLimit(ctx, tb, bed, cat)}
	cfg := func(nodes []string) map[string]any {
		return map[string]any{"components": map[string][]string{comp: nodes}, "properties": map[string]any{
			"catalog": "bench", "domain": "bench.local", "home": bed.Home, "key": bed.KeyPath, "adduser": 0}}
	}

	// One cluster of every node.
	e := harness.Start(tb, harness.Options{Args: []string{"--catalog", dir}})
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg(ips(bed))); code != 201 {
		tb.Fatalf("config: %d %s", code, body)
	}
	d, requested := deploy(tb, e)
	r.One = d.Finished.Sub(requested)
	e.Stop()
	if err := reset(ctx, bed); err != nil {
		tb.Fatal(err)
	}

	// The same nodes as clusters, all deployed at once.
	e = harness.Start(tb, harness.Options{Args: []string{"--catalog", dir}})
	defer e.Stop()
	defer func() {
		if tb.Failed() {
			tb.Logf("the engine's warnings and errors:\n%s", harness.Tail(problemLines(e.Log()), 80))
		}
	}()
	var names []string
	for i := range clusters {
		name := fmt.Sprintf("c%02d", i)
		names = append(names, name)
		if code, body := e.Do("POST", "/deployment-engine/clusters", map[string]any{"name": name}); code != 201 {
			tb.Fatalf("make cluster %s: %d %s", name, code, body)
		}
		if code, body := e.Do("POST", "/deployment-engine/clusters/"+name+"/config?check=0", cfg(ips(bed)[i*per:(i+1)*per])); code != 201 {
			tb.Fatalf("cluster %s's config: %d %s", name, code, body)
		}
	}
	stopRSS := peakRSS(e.PID())
	requested = time.Now()
	ids := make([]string, clusters)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			code, body := e.Do("POST", "/deployment-engine/clusters/"+name+"/deploy", nil)
			var st struct{ ID string }
			if code != http.StatusAccepted || json.Unmarshal(body, &st) != nil {
				tb.Errorf("deploy %s, answered after %s: %d %s", name, time.Since(start).Round(time.Millisecond), code, body)
			}
			ids[i] = st.ID
		}()
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	var last time.Time
	for i, name := range names {
		d := waitCluster(tb, e, name, ids[i])
		if d.Finished != nil && d.Finished.After(last) {
			last = *d.Finished
		}
	}
	r.RSS = stopRSS()
	r.Many = last.Sub(requested)

	var took []time.Duration
	for range 200 {
		start := time.Now()
		if code, body := e.Do("GET", "/deployment-engine/clusters", nil); code != 200 {
			tb.Fatalf("clusters: %d %s", code, body)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	r.ListP50, r.ListP99 = took[len(took)/2], took[len(took)*99/100]
	tb.Logf("%d nodes: one cluster %s, %d clusters of %d at once %s (limit %s); engine RSS %d MB; GET /clusters p50 %s p99 %s",
		n, r.One.Round(time.Millisecond), clusters, per, r.Many.Round(time.Millisecond), r.Limit.Round(time.Millisecond),
		r.RSS>>20, r.ListP50.Round(time.Microsecond), r.ListP99.Round(time.Microsecond))
	return r
}

// problemLines are the lines of an engine's log at level WARN or ERROR.
func problemLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitCluster waits for deployment id of cluster name to succeed.
func waitCluster(tb testing.TB, e *harness.Engine, name, id string) contract.Deployment {
	tb.Helper()
	for deadline := time.Now().Add(15 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		code, body := e.Do("GET", "/deployment-engine/clusters/"+name+"/deployments/"+id, nil)
		var d contract.Deployment
		if code != http.StatusOK || json.Unmarshal(body, &d) != nil {
			tb.Fatalf("deployment %s of %s: %d %s", id, name, code, body)
		}
		switch d.State {
		case contract.DeploySucceeded:
			return d
		case contract.DeployFailed:
			tb.Fatalf("deployment %s of cluster %s failed", id, name)
		}
	}
	tb.Fatalf("deployment %s of cluster %s did not end within 15 minutes", id, name)
	return contract.Deployment{}
}
