package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

// BenchmarkEngineAt100Nodes deploys ten components on each of 100 nodes
// (1,000 instances) with the node agents on, then, while all 100 report,
// measures the engine's resident memory and GET /status through HTTP.
// Targets: RSS ≤ 150 MB, /status p99 ≤ 20 ms.
func BenchmarkEngineAt100Nodes(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	nodes := 100
	if v, err := strconv.Atoi(os.Getenv("DE_BENCH_NODES")); err == nil && v > 0 {
		nodes = v // a smaller run to try the benchmark out
	}
	ctx := context.Background()
	bed, err := testbed.Up(ctx, testbed.Options{Name: "bench", Nodes: nodes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bed.Down() })
	dir, _ := catalogDir(b)
	e := harness.Start(b, harness.Options{Args: []string{"--catalog", dir, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, bustest.FreePort(b))}})
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("the engine's log, last lines:\n%s", harness.Tail(e.Log(), 80))
		}
	})
	comps := map[string][]string{}
	for _, c := range []string{"svc", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"} {
		comps[c] = ips(bed)
	}
	cfg := map[string]any{"components": comps, "properties": map[string]any{
		"catalog": "bench", "domain": "bench.local", "home": bed.Home, "key": bed.KeyPath, "adduser": 0}}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		b.Fatalf("config: %d %s", code, body)
	}
	start := time.Now()
	d, _ := deploy(b, e)
	b.Logf("%d instances on %d nodes deployed in %s (%d steps)", 10*nodes, nodes, time.Since(start).Round(time.Second), len(d.Steps))

	// Every instance RUNNING: all 100 agents report.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := status(b, e)
		running := 0
		for _, s := range st {
			if s.Status == "RUNNING" {
				running++
			}
		}
		if len(st) == 10*nodes && running == 10*nodes {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d instances RUNNING 3 minutes after the deploy: %+v", running, len(st), st)
		}
		time.Sleep(time.Second)
	}

	// Memory while 100 nodes report: the highest of a minute's samples.
	var peak int64
	samples := 60
	if nodes < 100 {
		samples = 5
	}
	for range samples {
		peak = max(peak, procRSS(e.PID()))
		time.Sleep(time.Second)
	}
	b.ReportMetric(float64(peak)/(1<<20), "engine-rss-MB")

	// GET /status through HTTP, one client, keep-alive.
	var lat []time.Duration
	for range 1000 {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		code, body, err := e.DoErr(rctx, "GET", "/deployment-engine/status", nil)
		lat = append(lat, time.Since(t0))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if code != 200 || len(body) < 1000 {
			b.Fatalf("status: %d %.200s", code, body)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Microseconds())/1000, "status-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "status-p99-ms")
	b.Logf("%d nodes reporting, %d instances: engine RSS peak %.0f MB over a minute; GET /status p50 %s, p99 %s (1,000 requests over HTTP)",
		nodes, 10*nodes, float64(peak)/(1<<20), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
}

type statusEntry struct{ Comp, Ip, Status string }

func status(tb testing.TB, e *harness.Engine) []statusEntry {
	code, body := e.Do("GET", "/deployment-engine/status", nil)
	var st []statusEntry
	if code != 200 || json.Unmarshal(body, &st) != nil {
		tb.Fatalf("status: %d %.300s", code, body)
	}
	return st
}
