package agent

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
)

// metrics is the node's Prometheus view: node_exporter's names for what
// node_exporter also reports, de_ names for what only the agent knows.
type metrics struct {
	a     *Agent
	beats prometheus.Counter

	cpuSeconds, memTotal, memAvail, fsSize, fsAvail, load1, load5, load15 *prometheus.Desc
	cpuPct, compUp, monitUp, info                                         *prometheus.Desc
}

func newMetrics(a *Agent) *metrics {
	fs := []string{"mountpoint"}
	return &metrics{
		a:          a,
		beats:      prometheus.NewCounter(prometheus.CounterOpts{Name: "de_agent_heartbeats_total", Help: "Heartbeats the agent published."}),
		cpuSeconds: prometheus.NewDesc("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil),
		memTotal:   prometheus.NewDesc("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", nil, nil),
		memAvail:   prometheus.NewDesc("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes.", nil, nil),
		fsSize:     prometheus.NewDesc("node_filesystem_size_bytes", "Filesystem size in bytes.", fs, nil),
		fsAvail:    prometheus.NewDesc("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", fs, nil),
		load1:      prometheus.NewDesc("node_load1", "1m load average.", nil, nil),
		load5:      prometheus.NewDesc("node_load5", "5m load average.", nil, nil),
		load15:     prometheus.NewDesc("node_load15", "15m load average.", nil, nil),
		cpuPct:     prometheus.NewDesc("de_node_cpu_usage_percent", "CPU use over the last heartbeat interval, in percent.", nil, nil),
		compUp:     prometheus.NewDesc("de_component_up", "Whether monit reports the component running (1) or not (0).", []string{"component", "process"}, nil),
		monitUp:    prometheus.NewDesc("de_monit_up", "Whether monit answered the agent's last read (1) or not (0).", nil, nil),
		info:       prometheus.NewDesc("de_agent_info", "The node the agent runs on.", []string{"node", "hostname"}, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.beats.Describe(ch)
	for _, d := range []*prometheus.Desc{m.cpuSeconds, m.memTotal, m.memAvail, m.fsSize, m.fsAvail, m.load1, m.load5, m.load15, m.cpuPct, m.compUp, m.monitUp, m.info} {
		ch <- d
	}
}

// Collect reads the kernel's counters at scrape time and monit's state as
// of the last heartbeat.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.beats.Collect(ch)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if times, err := cpu.Times(true); err == nil {
		for i, t := range times {
			n := strconv.Itoa(i)
			for mode, v := range map[string]float64{"user": t.User, "nice": t.Nice, "system": t.System, "idle": t.Idle,
				"iowait": t.Iowait, "irq": t.Irq, "softirq": t.Softirq, "steal": t.Steal} {
				ch <- prometheus.MustNewConstMetric(m.cpuSeconds, prometheus.CounterValue, v, n, mode)
			}
		}
	}
	if v, err := mem.VirtualMemory(); err == nil {
		gauge(m.memTotal, float64(v.Total))
		gauge(m.memAvail, float64(v.Available))
	}
	if d, err := disk.Usage("/"); err == nil {
		gauge(m.fsSize, float64(d.Total), "/")
		gauge(m.fsAvail, float64(d.Free), "/")
	}
	if l, err := load.Avg(); err == nil {
		gauge(m.load1, l.Load1)
		gauge(m.load5, l.Load5)
		gauge(m.load15, l.Load15)
	}
	m.a.mu.Lock()
	hb := m.a.last
	m.a.mu.Unlock()
	if hb.Time.IsZero() {
		return
	}
	gauge(m.info, 1, hb.IP, hb.Hostname)
	gauge(m.cpuPct, hb.CPUPct)
	up := 1.0
	if hb.MonitError != "" {
		up = 0
	}
	gauge(m.monitUp, up)
	for _, c := range hb.Components {
		v := 0.0
		if c.Running {
			v = 1
		}
		gauge(m.compUp, v, c.Name, c.Process)
	}
}

// serveMetrics serves /metrics on addr.
func serveMetrics(addr string, g prometheus.Gatherer) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("agent: metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}
