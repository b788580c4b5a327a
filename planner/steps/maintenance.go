package steps

import (
	"slices"

	"github.com/deployment-engine/engine/services/contract"
)

// MaintenanceSteps take the instances running on ip out of their
// balancers when the node goes into maintenance (out), or, when it comes
// back, watch each healthy and put it back (the balancer's ready after
// its watch): the same drain, watch and ready steps a rollout runs around
// a change, without the change. Only components that a running balancer
// balances have any; a node with none has no steps.
func (in Builder) MaintenanceSteps(ip string, out bool) ([]*Step, error) {
	if in.Catalog == nil {
		return nil, nil
	}
	ro := rollout{in: in}
	var steps []*Step
	for _, comp := range in.Catalog.Order {
		if !slices.Contains(in.Previous[ip], comp) || len(in.Catalog.Balancers(comp)) == 0 {
			continue
		}
		set := SettingsFor(in.Catalog, in.Config, comp, contract.UpdateSettings{})
		inst, err := ro.instanceSteps(comp, ip, nil, nil, 0, set.update, 0)
		if err != nil {
			return nil, err
		}
		if out {
			// Not about the node, whose maintenance would hold them: they
			// are what its maintenance asks for.
			for _, d := range inst.drains {
				d.For = ""
			}
			steps = append(steps, inst.drains...)
			continue
		}
		if len(inst.readies) > 0 {
			steps = append(append(steps, inst.watch...), inst.readies...)
		}
	}
	return steps, nil
}
