package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/schema"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
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

// configSchema answers de.cmd.config.schema: the config's JSON Schema.
func (p *Planner) configSchema(ctx context.Context, req micro.Request) (int, any, error) {
	return 200, schema.Config(p.o.Catalogs, BoshCatalog), nil
}

// checkEndpoints are the planner's endpoints that check a config.
func (p *Planner) checkEndpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.ConfigPrecheck(): p.configPrecheck,
		subject.ConfigSchema():   p.configSchema,
	}
}

// precheck contacts every node at once: reachable, enough hardware, a
// system the catalog supports, a resolver that sends the domain to the
// catalog's DNS component, and a way to the engine's HTTP address.
// Mismatches of the system are problems or warnings as the catalog says;
// DNS never refuses a config; an engine the node cannot reach refuses it
// when the node's steps fetch from the engine, and warns otherwise.
func (p *Planner) precheck(ctx context.Context, cfg contract.Config) ([]contract.NodeHardware, []string, []contract.Problem, error) {
	cat := p.o.Catalogs[cfg.CatalogName()]
	nodes := cfg.Nodes()
	dns := dnsCheckOf(cfg, cat)
	health := p.nodeURL(cfg) + "/healthz"
	results, err := p.probeWith(ctx, cfg, contract.Probe{Nodes: nodes, Resolve: dns.names, Fetch: []string{health}})
	if err != nil {
		return nil, nil, nil, err
	}
	req := needs(cfg, cat)
	var hw []contract.NodeHardware
	var problems []contract.Problem
	var warnings []string
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
		var sys catalog.NodeSystem
		if cat != nil {
			sys = cat.Nodes
		}
		for _, m := range sys.CheckNode(r.OS, r.Monit) {
			if sys.Refuses() {
				problems = append(problems, contract.Problem{Path: "components", IP: r.IP, Component: comps, Reason: m})
			} else {
				warnings = append(warnings, fmt.Sprintf("node %s (%s) %s", r.IP, comps, m))
			}
		}
		warnings = append(warnings, dns.warnings(r)...)
		if m := engineUnreachable(r, health); m != "" {
			// A node without monit gets it from the mirror.
			if fetchesFromEngine(cfg, cat) || r.Monit == "" {
				problems = append(problems, contract.Problem{Path: "properties.home", IP: r.IP, Component: comps, Reason: m})
			} else {
				warnings = append(warnings, fmt.Sprintf("node %s (%s) %s", r.IP, comps, m))
			}
		}
	}
	return hw, warnings, problems, nil
}

// nodeURL is the engine's HTTP address as the nodes use it: the config's
// home and the engine's port.
func (p *Planner) nodeURL(cfg contract.Config) string {
	return "http://" + net.JoinHostPort(cfg.Properties.Home, strconv.Itoa(p.o.Port))
}

// engineUnreachable says why the node of r could not fetch url, "" when it
// could. apt-get update only warns about a source it cannot reach, so a
// deploy would get as far as "Unable to locate package".
func engineUnreachable(r contract.ProbeResult, url string) string {
	for _, f := range r.Fetched {
		if f.URL == url && f.Error != "" {
			return fmt.Sprintf("cannot reach the engine at %s: %s — the nodes fetch the mirror and packages from the config's home and the engine's port: listen (--listen) on an address the nodes reach, or set home to one", url, f.Error)
		}
	}
	return ""
}

// dnsCheck asks each node's resolver for the domain and for a random name
// under it (the manual's *.<domain>), both of which must lead to the
// catalog's DNS component.
type dnsCheck struct {
	names  []string
	comp   string
	want   []string // the component's IPs
	domain string
}

func dnsCheckOf(cfg contract.Config, cat *catalog.Catalog) dnsCheck {
	domain := strings.TrimSuffix(strings.TrimSpace(cfg.Properties.Domain), ".")
	if cat == nil || cat.DNS == "" || domain == "" || len(cfg.Components[cat.DNS]) == 0 {
		return dnsCheck{}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return dnsCheck{names: []string{domain, "de-check-" + hex.EncodeToString(b) + "." + domain},
		comp: cat.DNS, want: cfg.Components[cat.DNS], domain: domain}
}

// warnings names what r's resolver got wrong, one warning per name.
func (d dnsCheck) warnings(r contract.ProbeResult) []string {
	var out []string
	for i, l := range r.Names {
		if i >= len(d.names) {
			break
		}
		shown := l.Name
		if i == 1 {
			shown = "*." + d.domain + " (asked as " + l.Name + ")"
		}
		want := d.comp + " (" + strings.Join(d.want, ", ") + ")"
		switch {
		case len(l.Addrs) == 0:
			out = append(out, fmt.Sprintf("DNS: on node %s, %s does not resolve; point it at %s", r.IP, shown, want))
		case !subset(l.Addrs, d.want):
			out = append(out, fmt.Sprintf("DNS: on node %s, %s resolves to %s, not to %s", r.IP, shown, strings.Join(l.Addrs, ", "), want))
		}
	}
	return out
}

func subset(got, want []string) bool {
	for _, g := range got {
		if !slices.Contains(want, g) {
			return false
		}
	}
	return true
}

// fetchesFromEngine tells whether cfg's nodes fetch from the engine's HTTP
// address: the mirror's packages, or a BOSH release's.
func fetchesFromEngine(cfg contract.Config, cat *catalog.Catalog) bool {
	return cfg.CatalogName() == BoshCatalog || steps.InstallsPackages(cfg, cat)
}
