package monitor

import (
	"slices"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// instances lists the config's component instances in a stable order.
func instances(cfg contract.Config) []contract.Target {
	var out []contract.Target
	for _, comp := range contract.SortedKeys(cfg.Components) {
		for _, ip := range cfg.Components[comp] {
			out = append(out, contract.Target{Comp: comp, IP: ip})
		}
	}
	return out
}

// selectTargets resolves a target against the config: 400 when it names no
// instance.
func selectTargets(cfg contract.Config, t contract.Target) ([]contract.Target, error) {
	if strings.EqualFold(t.Comp, "all") && t.IP == "0.0.0.0" {
		return instances(cfg), nil
	}
	if t.Comp == "" || t.IP == "" {
		return nil, kit.Errorf(400, "name the component and its IP, or all and 0.0.0.0 for the whole cluster")
	}
	ips, ok := cfg.Components[t.Comp]
	if !ok {
		return nil, kit.Errorf(400, "the config has no component %q", t.Comp)
	}
	if t.IP == "0.0.0.0" {
		// A component and 0.0.0.0: every instance of it.
		var out []contract.Target
		for _, ip := range ips {
			out = append(out, contract.Target{Comp: t.Comp, IP: ip})
		}
		return out, nil
	}
	if !slices.Contains(ips, t.IP) {
		return nil, kit.Errorf(400, "component %s does not run on %s (it runs on %s)", t.Comp, t.IP, strings.Join(ips, ", "))
	}
	return []contract.Target{t}, nil
}
