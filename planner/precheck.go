package planner

import (
	"context"
	"fmt"
	"strings"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// ramSlack forgives the memory the kernel keeps for itself: a 1024 MB
// machine reports about 980 MB in MemTotal.
const ramSlack = 0.95

// need is what a node must have: the largest minimum of the components on
// it (components sharing a node share its resources over time, not at
// install, so the largest minimum is the bar, as in the manual's table).
type need struct {
	cpu, ramMB, diskMB int
	comps              []string
}

func needs(cfg contract.Config, cat *catalog.Catalog) map[string]*need {
	out := map[string]*need{}
	for _, name := range contract.SortedKeys(cfg.Components) {
		var comp *catalog.Component
		if cat != nil {
			comp = cat.Components[name]
		} else if cfg.CatalogName() == BoshCatalog {
			comp = &catalog.Component{Min: &boshMin}
		}
		for _, ip := range cfg.Components[name] {
			n := out[ip]
			if n == nil {
				n = &need{}
				out[ip] = n
			}
			n.comps = append(n.comps, name)
			if comp == nil {
				continue
			}
			n.cpu = max(n.cpu, comp.Min.CPU)
			n.ramMB = max(n.ramMB, comp.Min.RAMMB)
			n.diskMB = max(n.diskMB, comp.Min.DiskMB)
		}
	}
	switch {
	case cfg.Properties.Checkdisk.Set && cfg.Properties.Checkdisk.N == 0:
		// checkdisk 0: "do not check disk", the catalog's minima included.
		for _, n := range out {
			n.diskMB = 0
		}
	case cfg.Properties.Checkdisk.N == 1:
		for _, n := range out {
			n.diskMB = max(n.diskMB, cfg.Properties.Disksize.N*1024)
		}
	}
	return out
}

// precheck contacts every node at once: reachable, enough hardware.
func (p *Planner) precheck(ctx context.Context, cfg contract.Config) ([]contract.NodeHardware, []string, []contract.Problem, error) {
	cat := p.o.Catalogs[cfg.CatalogName()]
	nodes := cfg.Nodes()
	results, err := p.probe(ctx, cfg, nodes)
	if err != nil {
		return nil, nil, nil, err
	}
	req := needs(cfg, cat)
	var hw []contract.NodeHardware
	var problems []contract.Problem
	for _, r := range results {
		n := req[r.IP]
		if n == nil {
			continue
		}
		comps := strings.Join(n.comps, ", ")
		if !r.Reachable {
			problems = append(problems, contract.Problem{Path: "components", IP: r.IP, Component: comps, Reason: "node not reachable: " + r.Error})
			continue
		}
		hw = append(hw, r.Hardware)
		h := r.Hardware
		if h.CPU < n.cpu {
			problems = append(problems, contract.Problem{Path: "components", IP: r.IP, Component: comps,
				Reason: fmt.Sprintf("has %d vCPU, needs %d (short by %d)", h.CPU, n.cpu, n.cpu-h.CPU)})
		}
		ramMB := float64(h.RAM) / 1024
		if ramMB < float64(n.ramMB)*ramSlack {
			problems = append(problems, contract.Problem{Path: "components", IP: r.IP, Component: comps,
				Reason: fmt.Sprintf("has %.0f MB RAM, needs %d MB (short by %.0f MB)", ramMB, n.ramMB, float64(n.ramMB)-ramMB)})
		}
		if n.diskMB > 0 && h.DISK < float64(n.diskMB) {
			problems = append(problems, contract.Problem{Path: "components", IP: r.IP, Component: comps,
				Reason: fmt.Sprintf("has %.0f MB disk, needs %d MB (short by %.0f MB)", h.DISK, n.diskMB, float64(n.diskMB)-h.DISK)})
		}
	}
	return hw, nil, problems, nil
}
