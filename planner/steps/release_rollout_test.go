package steps

import (
	"reflect"
	"slices"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A release job's running instances change canary first, then
// max_in_flight at a time, each batch's apply after the starts (and so
// the post-starts) of the batch before; a new instance and an unchanged
// one are not held in a batch.
func TestReleaseRollout(t *testing.T) {
	one := 1
	ips := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	cfg := contract.Config{Components: map[string][]string{"api-server": ips},
		Properties: contract.Properties{Update: &contract.UpdateConfig{UpdateSettings: contract.UpdateSettings{Canaries: &one, MaxInFlight: "2"}}}}
	previous := map[string][]string{}
	for _, ip := range ips[:4] {
		previous[ip] = []string{"api-server"}
	}
	var planned []*Step
	for _, ip := range ips {
		prev := ""
		for _, a := range releaseActions {
			s := &Step{Spec: contract.Step{ID: ID(ip, "api-server", a), Node: ip, Component: "api-server", Action: a,
				Key: "bosh.job.api-server." + a, Hash: "new-" + a}}
			if prev != "" {
				s.After = []string{prev}
			}
			prev = s.Spec.ID
			planned = append(planned, s)
		}
	}
	// 10.0.0.5 already runs this version: nothing of it changes.
	unchanged := map[string]string{}
	for _, a := range releaseActions {
		unchanged[nodefs.MarkerName("bosh.job.api-server."+a)] = "new-" + a
	}
	markers := map[string]map[string]string{"10.0.0.5": unchanged, "10.0.0.2": {}}
	in := Builder{Config: cfg, Previous: previous}
	out, batches, err := in.ReleaseRolloutSteps(planned, markers, contract.UpdateSettings{})
	if err != nil {
		t.Fatal(err)
	}
	var nodes [][]string
	for _, b := range batches {
		nodes = append(nodes, b.Nodes)
		if len(b.Steps) != 4*len(b.Nodes) {
			t.Errorf("batch %d steps %v", b.Index, b.Steps)
		}
	}
	if want := [][]string{{"10.0.0.2"}, {"10.0.0.3", "10.0.0.4"}}; !reflect.DeepEqual(nodes, want) {
		t.Fatalf("batches %v, want %v", nodes, want)
	}
	if !batches[0].Canary || batches[1].Canary {
		t.Errorf("canary flags: %v %v", batches[0].Canary, batches[1].Canary)
	}
	after := map[string][]string{}
	for _, s := range out {
		after[s.Spec.ID] = s.After
	}
	for _, ip := range []string{"10.0.0.3", "10.0.0.4"} {
		if !slices.Contains(after[ID(ip, "api-server", "apply")], ID("10.0.0.2", "api-server", "start")) {
			t.Errorf("%s applies before the canary started: after %v", ip, after[ID(ip, "api-server", "apply")])
		}
	}
	for _, ip := range []string{"10.0.0.2", "10.0.0.5", "10.0.0.6"} {
		if len(after[ID(ip, "api-server", "apply")]) != 0 {
			t.Errorf("%s's apply waits for %v", ip, after[ID(ip, "api-server", "apply")])
		}
	}
}

// An errand's instances (an apply, no start) are in no batch and hold
// nothing back, where a rollout used to refuse them ("no apply or start
// step").
func TestReleaseRolloutLeavesErrands(t *testing.T) {
	one := 1
	ips := []string{"10.0.0.2", "10.0.0.3"}
	cfg := contract.Config{Components: map[string][]string{"smoke": ips},
		Properties: contract.Properties{Update: &contract.UpdateConfig{UpdateSettings: contract.UpdateSettings{Canaries: &one}}}}
	previous := map[string][]string{"10.0.0.2": {"smoke"}, "10.0.0.3": {"smoke"}}
	var planned []*Step
	for _, ip := range ips {
		planned = append(planned, &Step{Spec: contract.Step{ID: ID(ip, "smoke", "apply"), Node: ip, Component: "smoke", Action: "apply",
			Key: "bosh.job.smoke.apply", Hash: "new"}})
	}
	out, batches, err := Builder{Config: cfg, Previous: previous}.ReleaseRolloutSteps(planned, map[string]map[string]string{}, contract.UpdateSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 0 || len(out) != 2 || len(out[0].After)+len(out[1].After) != 0 {
		t.Errorf("batches %v, steps %d: want none, both applies free", batches, len(out))
	}
}
