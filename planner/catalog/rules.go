package catalog

import (
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Validate checks a config against the catalog's components, their
// instance rules and the catalog's own properties.
func (c *Catalog) Validate(cfg contract.Config) []contract.Problem {
	var ps []contract.Problem
	for _, name := range contract.SortedKeys(cfg.Components) {
		ips := cfg.Components[name]
		path := "components." + name
		comp, ok := c.Components[name]
		if !ok {
			ps = append(ps, contract.Problem{Path: path, Component: name,
				Reason: fmt.Sprintf("unknown component in catalog %s (it has: %s)", c.Name, strings.Join(c.Order, ", "))})
			continue
		}
		switch {
		case comp.Instances == One && len(ips) != 1:
			ps = append(ps, contract.Problem{Path: path, Component: name, Reason: fmt.Sprintf("%s (%s) needs exactly one instance, got %d", name, comp.Role, len(ips))})
		case len(ips) == 0:
			ps = append(ps, contract.Problem{Path: path, Component: name, Reason: fmt.Sprintf("%s (%s) needs at least one instance", name, comp.Role)})
		}
		for _, req := range comp.Requires {
			if len(cfg.Components[req]) == 0 {
				ps = append(ps, contract.Problem{Path: path, Component: name, Reason: fmt.Sprintf("%s needs %s, which the config does not place", name, req)})
			}
		}
	}
	if len(cfg.Components) == 0 {
		ps = append(ps, contract.Problem{Path: "components", Reason: "no components: place at least one"})
	}
	if cfg.Properties.Release != "" {
		prop, ok := c.Properties["release"]
		if !ok {
			ps = append(ps, contract.Problem{Path: "properties.release", Reason: fmt.Sprintf("catalog %s has no releases to choose from", c.Name)})
		} else if !slices.Contains(prop.Values, cfg.Properties.Release) {
			ps = append(ps, contract.Problem{Path: "properties.release", Reason: fmt.Sprintf("must be one of %s", strings.Join(prop.Values, ", "))})
		}
	}
	if len(cfg.Properties.Releases) > 0 {
		ps = append(ps, contract.Problem{Path: "properties.releases", Reason: fmt.Sprintf("catalog %s deploys its own components: releases is for catalog bosh", c.Name)})
	}
	return ps
}
