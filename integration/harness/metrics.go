package harness

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric is the sum over its labels of a counter or gauge the engine's
// /metrics shows, read by Prometheus's own text parser; 0 when the
// engine shows none.
func (e *Engine) Metric(tb testing.TB, name string) float64 {
	tb.Helper()
	v, err := e.metric(name)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func (e *Engine) metric(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parse /metrics: %w", err)
	}
	var sum float64
	if f := families[name]; f != nil {
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum, nil
}
