package steps

import (
	"fmt"
	"slices"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// releaseActions are the steps that change a release job's instance, in
// order: the last one (start, which runs post-start) is its verdict.
var releaseActions = []string{"apply", "pre-start", "register", "start"}

// ReleaseRolloutSteps orders the running instances of each release job
// that a deployment changes in batches, as RolloutSteps does a catalog's
// components: the canaries first, then max_in_flight at a time, each
// batch's apply after every start of the batch before. A start fails when
// the job's processes do not run or its post-start fails, so a failed
// canary leaves the other running instances as they were. markers and
// query are RolloutSteps'. Instances not running yet are not held back:
// nothing of theirs serves.
func (in Builder) ReleaseRolloutSteps(steps []*Step, markers map[string]map[string]string, query contract.UpdateSettings) ([]*Step, []contract.Batch, error) {
	byID := map[string]*Step{}
	for _, s := range steps {
		byID[s.Spec.ID] = s
	}
	var batches []contract.Batch
	for _, comp := range contract.SortedKeys(in.Config.Components) {
		var running []string
		for _, ip := range in.Config.Components[comp] {
			// An errand's instance has no start: nothing of it serves.
			if byID[ID(ip, comp, "start")] == nil {
				continue
			}
			if slices.Contains(in.Previous[ip], comp) && releaseChanges(byID, markers, comp, ip) {
				running = append(running, ip)
			}
		}
		if len(running) == 0 {
			continue
		}
		set := SettingsFor(nil, in.Config, comp, query)
		groups, err := BatchesOf(running, set, len(in.Config.Components[comp]))
		if err != nil {
			return nil, nil, fmt.Errorf("rollout of %s: %w", comp, err)
		}
		var gate []string
		for k, group := range groups {
			b := contract.Batch{Component: comp, Index: k, Canary: k == 0 && set.canaries > 0, Nodes: group, State: contract.BatchPending}
			var next []string
			for _, ip := range group {
				apply, start := byID[ID(ip, comp, "apply")], byID[ID(ip, comp, "start")]
				if apply == nil || start == nil {
					return nil, nil, fmt.Errorf("rollout of %s: no apply or start step on %s", comp, ip)
				}
				apply.After = append(apply.After, gate...)
				for _, a := range releaseActions {
					if s := byID[ID(ip, comp, a)]; s != nil {
						b.Steps = append(b.Steps, s.Spec.ID)
					}
				}
				next = append(next, start.Spec.ID)
			}
			gate = next
			batches = append(batches, b)
		}
	}
	return steps, batches, nil
}

// releaseChanges tells whether a deployment would change comp's instance
// on ip: a step of it whose hash differs from the node's marker, or a
// node whose markers were not read.
func releaseChanges(byID map[string]*Step, markers map[string]map[string]string, comp, ip string) bool {
	m, read := markers[ip]
	for _, a := range releaseActions {
		s := byID[ID(ip, comp, a)]
		if s != nil && (!read || m[nodefs.MarkerName(s.Spec.Key)] != s.Spec.Hash) {
			return true
		}
	}
	return false
}
