package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the latest state of every node.
type collector struct{ m *Monitor }

var (
	descNodeUp   = prometheus.NewDesc("de_node_up", "Whether the node's agent reported within its allowed silence (1) or not (0).", []string{"node"}, nil)
	descNodeSeen = prometheus.NewDesc("de_node_last_report_timestamp_seconds", "When the node's agent last reported.", []string{"node"}, nil)
	descNodeCPU  = prometheus.NewDesc("de_node_cpu_usage_percent", "The node's CPU use at its last report, in percent.", []string{"node"}, nil)
	descNodeMem  = prometheus.NewDesc("de_node_memory_usage_percent", "The node's memory use at its last report, in percent.", []string{"node"}, nil)
	descNodeDisk = prometheus.NewDesc("de_node_disk_usage_percent", "The node's root filesystem use at its last report, in percent.", []string{"node"}, nil)
	descCompUp   = prometheus.NewDesc("de_component_instance_up", "Whether the component instance runs (1) or not (0), as its node last reported; 0 when its last pre-start failed.", []string{"component", "node"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodeUp, descNodeSeen, descNodeCPU, descNodeMem, descNodeDisk, descCompUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	preFailed := c.m.pre.snapshot()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for ip, n := range c.m.snapshot() {
		up := 0.0
		if c.m.fresh(&n, now) {
			up = 1
		}
		g(descNodeUp, up, ip)
		g(descNodeSeen, float64(n.seen.Unix()), ip)
		g(descNodeCPU, n.hb.CPUPct, ip)
		g(descNodeMem, n.hb.MemPct, ip)
		g(descNodeDisk, n.hb.DiskPct, ip)
		for _, comp := range n.hb.Components {
			v := 0.0
			if _, failed := preFailed[comp.Name+"@"+ip]; comp.Running && up == 1 && n.hb.MonitError == "" && !failed {
				v = 1
			}
			g(descCompUp, v, comp.Name, ip)
		}
	}
}
