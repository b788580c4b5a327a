package logsvc

import (
	"testing"
	"time"
)

// BenchmarkIngest measures how fast the service empties DE_EVENTS into its
// files: lines from 4 nodes wait in the stream, then the service starts
// and the clock runs until the last one is flushed. At least 200,000
// lines per run, so that -benchtime 1x still measures something.
func BenchmarkIngest(b *testing.B) {
	lines := max(b.N, 200_000)
	per := (lines + len(webIPs) - 1) / len(webIPs)
	e := newEnv(b, map[string][]string{"web": webIPs})
	e.publishBurst(webIPs, "d-1", 1, per)
	b.ResetTimer()
	start := time.Now()
	e.start()
	e.waitLines(int64(per * len(webIPs)))
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(per*len(webIPs))/el.Seconds(), "lines/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(per*len(webIPs)), "ns/line")
}
