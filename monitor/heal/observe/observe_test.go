package observe

import (
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A node is silent by the engine's one rule, nodeclient.Reporting: past
// missed of its intervals, not a second later.
func TestSilentByReporting(t *testing.T) {
	n := New(3)
	t0 := time.Now()
	n.Record(contract.Heartbeat{IP: "10.0.0.1", IntervalS: 1,
		Components: []contract.ComponentState{{Name: "web", Running: true}}}, t0)
	for _, tc := range []struct {
		after time.Duration
		want  Observation
	}{{time.Second, Up}, {3 * time.Second, Up}, {3500 * time.Millisecond, Silent}} {
		if got, _ := n.Of("web", "10.0.0.1", t0.Add(tc.after)); got != tc.want {
			t.Errorf("%s after its report: %v, want %v", tc.after, got, tc.want)
		}
	}
	if got, _ := n.Of("web", "10.0.0.2", t0); got != Unknown {
		t.Errorf("a node never heard: %v", got)
	}
}
