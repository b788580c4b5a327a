package policy

import (
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A deployment that starts forgets the instances seen down and not yet
// tried, but not while an attempt runs: that deployment is the attempt's
// re-apply of one instance, and the others are still down.
func TestDeploymentStartedDuringAnAttempt(t *testing.T) {
	now := time.Now()
	state := func(first string) *State {
		s := &State{Instances: map[string]*Instance{
			"delta@10.0.0.1": {Component: "delta", IP: "10.0.0.1", State: first, DownSince: now},
			"delta@10.0.0.2": {Component: "delta", IP: "10.0.0.2", State: contract.HealDown, DownSince: now},
			"delta@10.0.0.3": {Component: "delta", IP: "10.0.0.3", State: contract.HealDown, DownSince: now},
		}}
		s.DeploymentStarted()
		return s
	}
	if s := state(contract.HealHealing); len(s.Instances) != 3 {
		t.Errorf("a deployment started during an attempt forgot %d instances down", 3-len(s.Instances))
	}
	if s := state(contract.HealDown); len(s.Instances) != 0 {
		t.Errorf("a deployment started with no attempt running kept %v", s.Instances)
	}
}
