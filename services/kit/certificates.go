package kit

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
)

// certCollector reports the seconds each of the engine's certificates has
// left, read from the store's summary when Prometheus scrapes: the process
// serving /metrics need not hold the certificates.
type certCollector struct {
	kv     jetstream.KeyValue
	now    func() time.Time
	expiry *prometheus.Desc
}

// NewCertificateCollector returns the collector of
// de_certificate_expiry_seconds{name}.
func NewCertificateCollector(kv jetstream.KeyValue) prometheus.Collector {
	return &certCollector{kv: kv, now: time.Now,
		expiry: prometheus.NewDesc("de_certificate_expiry_seconds",
			"Seconds until a certificate the engine made or serves expires (negative once expired).", []string{"name"}, nil)}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.expiry }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A store that does not answer reports nothing: an absent series, not
	// a made-up figure.
	certs, err := bus.LoadCertificates(ctx, c.kv, c.now())
	if err != nil {
		return
	}
	for _, cert := range certs.Certificates {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(cert.SecondsLeft), cert.Name)
	}
}
