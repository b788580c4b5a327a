package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// BenchmarkHeartbeat is the agent's cost of one heartbeat: gopsutil's
// reads, monit's XML over HTTP (monit's own output, served from testdata),
// and the publish. It reports CPU time per heartbeat and the process RSS.
// Target: agent RSS ≤ 30 MB.
func BenchmarkHeartbeat(b *testing.B) {
	xml, err := os.ReadFile("../monit/testdata/status-5.33.xml")
	if err != nil {
		b.Fatal(err)
	}
	monitd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(xml) }))
	defer monitd.Close()
	srv, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	nc, err := srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	a := &Agent{
		cfg: contract.AgentConfig{IP: "10.213.250.1", IntervalS: 5, Components: []contract.AgentComponent{
			{Name: "web", Process: "sleeper"}, {Name: "nats", Process: "ghost"}, {Name: "redis", Process: "hosts"}}},
		o:   Options{MonitURL: monitd.URL, MonitCmd: []string{"false"}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), nc: nc, sampler: newSampler(), beat: make(chan struct{}, 1),
	}
	a.metrics = newMetrics(a)
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for range b.N {
		a.heartbeat(context.Background())
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/heartbeat")
	b.ReportMetric(rssMB(), "rss-MB")
	if !a.last.Components[0].Running || a.last.Components[1].Running {
		b.Fatalf("heartbeat read monit wrong: %+v", a.last.Components)
	}
}

// rssMB reads this process's resident set from /proc.
func rssMB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
