package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// fleet stores a config of nodes × comps instances and one heartbeat per node.
func fleet(b *testing.B, e *env, nodes, comps int) [][]byte {
	b.Helper()
	cfg := contract.Config{Components: map[string][]string{}}
	var beats [][]byte
	for n := range nodes {
		ip := fmt.Sprintf("10.213.250.%d", n+1)
		hb := contract.Heartbeat{V: 1, IP: ip, Time: time.Now(), IntervalS: 5, CPUPct: 1.5, MemPct: 40, DiskPct: 8,
			Hardware: contract.NodeHardware{IP: ip, CPU: 2, RAM: 4049952, DISK: 54988.8}}
		for c := range comps {
			name := fmt.Sprintf("comp%d", c)
			cfg.Components[name] = append(cfg.Components[name], ip)
			hb.Components = append(hb.Components, contract.ComponentState{Name: name, Process: name, Monit: "OK", Running: true})
		}
		raw, _ := json.Marshal(hb)
		beats = append(beats, raw)
	}
	raw, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, raw); err != nil {
		b.Fatal(err)
	}
	return beats
}

// BenchmarkStatus answers GET /status's command for 200 component
// instances (40 nodes × 5) and for 1,000 (100 nodes × 10), and reports p50
// and p99. Targets: p99 ≤ 50 ms at 200; through HTTP, the engine's own
// benchmark holds p99 ≤ 20 ms at 1,000.
func BenchmarkStatus(b *testing.B) {
	for _, size := range []struct{ nodes, comps int }{{40, 5}, {100, 10}} {
		b.Run(fmt.Sprintf("%dx%d", size.nodes, size.comps), func(b *testing.B) {
			benchStatus(b, size.nodes, size.comps)
		})
	}
}

func benchStatus(b *testing.B, nodes, comps int) {
	e := newEnv(b)
	beats := fleet(b, e, nodes, comps)
	for n, hb := range beats {
		_ = e.nc.Publish(subject.Node(fmt.Sprintf("10.213.250.%d", n+1), subject.VerbHeartbeat), hb)
	}
	_ = e.nc.Flush()
	time.Sleep(200 * time.Millisecond)
	total := nodes * comps
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rep, err := kit.Request(context.Background(), e.nc, subject.MonitorStatus(), nil)
		lat = append(lat, time.Since(start))
		if err != nil || rep.Code != 200 {
			b.Fatalf("status: %v %d", err, rep.Code)
		}
		var st []contract.StatusEntry
		if json.Unmarshal(rep.Body, &st) != nil || len(st) != total || st[total-1].Status != "RUNNING" {
			b.Fatalf("status: %s", rep.Body[:min(len(rep.Body), 200)])
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkHeartbeatIngest is the engine's cost of one node's heartbeat:
// decode, compare, keep in memory and in the KV bucket.
func BenchmarkHeartbeatIngest(b *testing.B) {
	e := newEnv(b)
	beats := fleet(b, e, 30, 5)
	b.ResetTimer()
	for i := range b.N {
		n := i % len(beats)
		_ = e.nc.Publish(subject.Node(fmt.Sprintf("10.213.250.%d", n+1), subject.VerbHeartbeat), beats[n])
	}
	// Every heartbeat taken ends in a KV write: wait for the last one.
	st, err := e.res.JS.Stream(context.Background(), "KV_"+bus.KVNodes)
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := st.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if info.State.LastSeq >= uint64(b.N) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
