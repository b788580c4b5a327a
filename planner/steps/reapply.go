package steps

import (
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// ReapplySteps are the catalog's steps of component comp on node ip alone,
// behind a first step that forgets the node's record of them, so that
// they run even where the node records them as done. What they waited for
// elsewhere ran in earlier deployments.
func (in Builder) ReapplySteps(comp, ip string) ([]*Step, error) {
	all, err := in.CatalogSteps()
	if err != nil {
		return nil, err
	}
	return in.keepInstance(all, comp, ip), nil
}

// keepInstance keeps the steps of all of comp on ip, behind a reset.
func (in Builder) keepInstance(all []*Step, comp, ip string) []*Step {
	reset := in.stamp(&Step{Spec: contract.Step{Node: ip, Component: comp, Action: "reset", Hash: Hash("reset", comp, in.ID),
		TimeoutS: 60, Script: nodefs.ClearMarkers(comp+".") + "\n"}, Prio: -1})
	out := []*Step{reset}
	keep := map[string]bool{}
	for _, s := range all {
		if s.Spec.Node == ip && s.Spec.Component == comp && s.Spec.Action != "remove" {
			keep[s.Spec.ID] = true
		}
	}
	for _, s := range all {
		if !keep[s.Spec.ID] {
			continue
		}
		var after []string
		for _, a := range s.After {
			if keep[a] {
				after = append(after, a)
			}
		}
		if len(after) == 0 {
			after = []string{reset.Spec.ID}
		}
		s.After = after
		out = append(out, s)
	}
	return out
}
