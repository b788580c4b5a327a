package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPatchReadsAndChecks(t *testing.T) {
	for _, tc := range []struct {
		body     string
		inFlight string
		reboot   string
		problems string // the paths at fault, comma-separated
	}{
		{`{}`, "1", PatchRebootIfRequired, ""},
		{`{"max_in_flight": 2, "reboot": "never", "nodes": ["10.0.0.2"]}`, "2", PatchRebootNever, ""},
		{`{"max_in_flight": "25%", "reboot": "always"}`, "25%", PatchRebootAlways, ""},
		{`{"max_in_flight": 0}`, "0", PatchRebootIfRequired, "max_in_flight"},
		{`{"reboot": "soon", "nodes": ["10.0.0.2", "node-3", "::1"]}`, "1", "soon", "nodes[1],nodes[2],reboot"},
	} {
		var x Patch
		if err := json.Unmarshal([]byte(tc.body), &x); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		var paths []string
		for _, p := range x.Problems() {
			paths = append(paths, p.Path)
		}
		if x.InFlightOr() != tc.inFlight || x.RebootOr() != tc.reboot || strings.Join(paths, ",") != tc.problems {
			t.Errorf("%s: in flight %q, reboot %q, problems %v", tc.body, x.InFlightOr(), x.RebootOr(), paths)
		}
	}
	var x Patch
	if err := json.Unmarshal([]byte(`{"max_in_flight": {}}`), &x); err == nil || !strings.Contains(err.Error(), "max_in_flight") {
		t.Errorf("max_in_flight an object: %v", err)
	}
}
