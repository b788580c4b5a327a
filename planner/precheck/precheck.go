// Package precheck judges whether a config's nodes, as the installer's
// probe found them, can take the config.
//
// It asks nothing itself: Check.Probe says what to ask the nodes, and
// Check.Judge turns their answers into problems (the config is refused)
// and warnings (it is not). ListenWarning judges the engine's own address
// without asking a node.
package precheck

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// ramSlack forgives the memory the kernel keeps for itself: a 1024 MB
// machine reports about 980 MB in MemTotal.
const ramSlack = 0.95

// Target is a config as the checks see it.
type Target struct {
	Config contract.Config
	// Catalog is the config's catalog; nil for a BOSH release's config.
	Catalog *catalog.Catalog
	// Min is the hardware minimum of every component when Catalog is nil
	// (a release says nothing of its jobs'); nil: none.
	Min *catalog.Hardware
	// Fetches tells that the nodes' steps fetch from the engine's HTTP
	// address (the mirror's packages, a release's): a node that cannot
	// reach it is refused rather than warned of.
	Fetches bool
	// Health is the engine's health URL as the nodes reach it: the
	// config's home and the engine's port.
	Health string
}

// Check is one pre-check of a config: what to ask its nodes and the
// verdict on their answers. The DNS check's random name is drawn once, so
// Judge must see the answers to this Check's Probe.
type Check struct {
	t   Target
	dns dnsCheck
}

// New draws a pre-check of t.
func New(t Target) *Check {
	return &Check{t: t, dns: dnsCheckOf(t.Config, t.Catalog)}
}

// Probe is what the installer asks every node of the config: reachable,
// its hardware and system, the names of the DNS check, and a fetch of the
// engine's health URL.
func (c *Check) Probe() contract.Probe {
	return contract.Probe{Nodes: c.t.Config.Nodes(), Resolve: c.dns.names, Fetch: []string{c.t.Health}}
}

// Judge names what is wrong with each node of results: not reachable,
// short of hardware, a system the catalog does not support, a resolver
// that does not send the domain to the catalog's DNS component, no way to
// the engine's HTTP address. Mismatches of the system are problems or
// warnings as the catalog says; DNS never refuses a config; an engine the
// node cannot reach refuses it when the node's steps fetch from the
// engine (a node without monit gets it from the mirror), and warns
// otherwise. hw is the hardware of every reachable node.
func (c *Check) Judge(results []contract.ProbeResult) (hw []contract.NodeHardware, warnings []string, problems []contract.Problem) {
	req := needs(c.t.Config, c.t.Catalog, c.t.Min)
	var sys catalog.NodeSystem
	if c.t.Catalog != nil {
		sys = c.t.Catalog.Nodes
	}
	for _, r := range results {
		n := req[r.IP]
		if n == nil {
			continue
		}
		comps := strings.Join(n.comps, ", ")
		refuse := func(path, reason string) {
			problems = append(problems, contract.Problem{Path: path, IP: r.IP, Component: comps, Reason: reason})
		}
		warn := func(m string) { warnings = append(warnings, fmt.Sprintf("node %s (%s) %s", r.IP, comps, m)) }
		if !r.Reachable {
			refuse("components", "node not reachable: "+r.Error)
			continue
		}
		hw = append(hw, r.Hardware)
		for _, m := range n.short(r.Hardware) {
			refuse("components", m)
		}
		for _, m := range sys.CheckNode(r.OS, r.Monit) {
			if sys.Refuses() {
				refuse("components", m)
			} else {
				warn(m)
			}
		}
		warnings = append(warnings, c.dns.warnings(r)...)
		if m := engineUnreachable(r, c.t.Health); m != "" {
			if c.t.Fetches || r.Monit == "" {
				refuse("properties.home", m)
			} else {
				warn(m)
			}
		}
	}
	return hw, warnings, problems
}

// need is what a node must have: the largest minimum of the components on
// it (components sharing a node share its resources over time, not at
// install, so the largest minimum is the bar, as in the manual's table).
type need struct {
	cpu, ramMB, diskMB int
	comps              []string
}

func needs(cfg contract.Config, cat *catalog.Catalog, jobMin *catalog.Hardware) map[string]*need {
	out := map[string]*need{}
	for _, name := range contract.SortedKeys(cfg.Components) {
		var m *catalog.Hardware
		if cat != nil {
			if comp := cat.Components[name]; comp != nil {
				m = comp.Min
			}
		} else {
			m = jobMin
		}
		for _, ip := range cfg.Components[name] {
			n := out[ip]
			if n == nil {
				n = &need{}
				out[ip] = n
			}
			n.comps = append(n.comps, name)
			if m == nil {
				continue
			}
			n.cpu = max(n.cpu, m.CPU)
			n.ramMB = max(n.ramMB, m.RAMMB)
			n.diskMB = max(n.diskMB, m.DiskMB)
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

// short names what h lacks of n, one reason per resource.
func (n *need) short(h contract.NodeHardware) []string {
	var out []string
	if h.CPU < n.cpu {
		out = append(out, fmt.Sprintf("has %d vCPU, needs %d (short by %d)", h.CPU, n.cpu, n.cpu-h.CPU))
	}
	ramMB := float64(h.RAM) / 1024
	if ramMB < float64(n.ramMB)*ramSlack {
		out = append(out, fmt.Sprintf("has %.0f MB RAM, needs %d MB (short by %.0f MB)", ramMB, n.ramMB, float64(n.ramMB)-ramMB))
	}
	if n.diskMB > 0 && h.DISK < float64(n.diskMB) {
		out = append(out, fmt.Sprintf("has %.0f MB disk, needs %d MB (short by %.0f MB)", h.DISK, n.diskMB, float64(n.diskMB)-h.DISK))
	}
	return out
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
