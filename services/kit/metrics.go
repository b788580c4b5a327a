package kit

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
)

// busCollector reports the bus connection's traffic and every JetStream
// stream's size, read when Prometheus scrapes.
type busCollector struct {
	nc  *nats.Conn
	res *bus.Resources

	msgs, bytes, reconnects, streamMsgs, streamBytes, consumers, up *prometheus.Desc
}

// NewBusCollector returns a collector of bus and JetStream figures.
func NewBusCollector(nc *nats.Conn, res *bus.Resources) prometheus.Collector {
	return &busCollector{
		nc: nc, res: res,
		msgs:        prometheus.NewDesc("de_bus_messages_total", "Messages through the engine's bus connection, by direction.", []string{"direction"}, nil),
		bytes:       prometheus.NewDesc("de_bus_bytes_total", "Bytes through the engine's bus connection, by direction.", []string{"direction"}, nil),
		reconnects:  prometheus.NewDesc("de_bus_reconnects_total", "Times the engine reconnected to the bus.", nil, nil),
		up:          prometheus.NewDesc("de_bus_connected", "1 when the engine is connected to the bus.", nil, nil),
		streamMsgs:  prometheus.NewDesc("de_jetstream_stream_messages", "Messages stored in a JetStream stream.", []string{"stream"}, nil),
		streamBytes: prometheus.NewDesc("de_jetstream_stream_bytes", "Bytes stored in a JetStream stream.", []string{"stream"}, nil),
		consumers:   prometheus.NewDesc("de_jetstream_stream_consumers", "Consumers of a JetStream stream.", []string{"stream"}, nil),
	}
}

func (c *busCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.msgs, c.bytes, c.reconnects, c.up, c.streamMsgs, c.streamBytes, c.consumers} {
		ch <- d
	}
}

func (c *busCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.nc.Stats()
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(st.InMsgs), "in")
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(st.OutMsgs), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.InBytes), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.OutBytes), "out")
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects))
	up := 0.0
	if c.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	names := c.res.JS.StreamNames(ctx)
	for name := range names.Name() {
		s, err := c.res.JS.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.streamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(c.streamBytes, prometheus.GaugeValue, float64(info.State.Bytes), name)
		ch <- prometheus.MustNewConstMetric(c.consumers, prometheus.GaugeValue, float64(info.State.Consumers), name)
	}
}
