package fleet

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// A copy with from is a copy deployment of a step a node (what each holds
// is steps.CopyFromSteps's), and its start names the path and no size or
// checksum of its own; "to" and "from" together are refused.
func TestCopyFrom(t *testing.T) {
	cfg := contract.Config{Components: map[string][]string{"web": {"10.0.0.1", "10.0.0.2"}}}
	rec, started, err := Copy(cfg, contract.FleetCopy{Component: "web", From: "/etc/hostname", MaxInFlight: "2"}, "d-1", "e-1")
	if err != nil {
		t.Fatal(err)
	}
	if started.From != "/etc/hostname" || started.To != "" || started.SHA256 != "" || strings.Join(started.Nodes, ",") != "10.0.0.1,10.0.0.2" {
		t.Errorf("started: %+v", started)
	}
	if rec.Kind != contract.KindCopy || len(rec.Steps) != 2 || len(rec.Batches) != 1 {
		t.Fatalf("record: kind %s, %d steps, %d batches", rec.Kind, len(rec.Steps), len(rec.Batches))
	}
	if st := rec.Steps[1]; st.ID != "10.0.0.2/web/copy" || st.Action != "copy" {
		t.Errorf("step: %+v", st)
	}
	if _, _, err := Copy(cfg, contract.FleetCopy{Component: "web", From: "/etc/hostname", To: "/x"}, "d-2", "e-1"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("to and from: %v", err)
	}
}
