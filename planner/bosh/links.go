package bosh

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// provider is one link a placed job provides, under the name consumers'
// "from" finds it by: its alias, or its own name.
type provider struct {
	Job  string
	Link release.Link
	Name string
	// Remote is the provider when it is another deployment's.
	Remote *RemoteProvider
}

func (p provider) String() string {
	if p.Remote != nil {
		return p.Remote.Deployment + "/" + p.Remote.String()
	}
	if p.Name != p.Link.Name {
		return fmt.Sprintf("%s.%s as %s", p.Job, p.Link.Name, p.Name)
	}
	return p.Job + "." + p.Link.Name
}

// allProviders lists every link the placed jobs provide, by job then by
// the order of the job's spec and its custom providers, each under its
// alias from the config.
func (d *Deployment) allProviders() []provider {
	var out []provider
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, pl := range d.provides(job) {
			p := provider{Job: job, Link: pl, Name: pl.Name}
			if w := d.Links[job].Provides[pl.Name]; w != nil && w.As != "" {
				p.Name = w.As
			}
			out = append(out, p)
		}
	}
	return out
}

// resolveLinks decides, as BOSH does, which provider each consumed link of
// each placed job takes: the one its "from" names (an alias, or a link's
// name when it has none); else the one provider of its type; none when
// the config sets it to null, or when it is optional and nothing fits. A
// job may consume its own link. Each problem names the job, the link and
// the candidates.
func (d *Deployment) resolveLinks() []contract.Problem {
	d.resolved = map[string]map[string]provider{}
	var ps []contract.Problem
	add := func(path, job, format string, a ...any) {
		ps = append(ps, contract.Problem{Path: path, Component: d.CompOf(job), Reason: fmt.Sprintf(format, a...)})
	}
	all := d.allProviders()
	ps = append(ps, d.checkWiring(all)...)
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, l := range d.Release.Specs[job].Consumes {
			path := "properties.links." + job + ".consumes." + l.Name
			w, explicit := d.Links[job].Consumes[l.Name]
			if explicit && w == nil {
				continue // not consumed, as the config says
			}
			if explicit && !d.local(w.Deployment) {
				p, why := d.resolveRemote(job, l.Name, l.Type, w)
				if why != "" {
					add(path, job, "%s", why)
					continue
				}
				if d.resolved[job] == nil {
					d.resolved[job] = map[string]provider{}
				}
				d.resolved[job][l.Name] = p
				continue
			}
			var fits, sameName []provider
			for _, p := range all {
				switch {
				case p.Link.Type != l.Type:
					if explicit && p.Name == w.From {
						sameName = append(sameName, p)
					}
				case !explicit || w.From == "" || p.Name == w.From:
					fits = append(fits, p)
				}
			}
			switch {
			case len(fits) == 1:
				if d.resolved[job] == nil {
					d.resolved[job] = map[string]provider{}
				}
				d.resolved[job][l.Name] = fits[0]
			case len(fits) > 1 && explicit && w.From != "":
				add(path, job, "job %s consumes link %q of type %s from %q, and several links are called that (%s): give each provider its own alias with provides.<link>.as",
					job, l.Name, l.Type, w.From, joinProviders(fits))
			case len(fits) > 1:
				add("components", job, "job %s consumes link %q of type %s, and several links provide one (%s): name one in properties.links.%s.consumes.%s.from",
					job, l.Name, l.Type, joinProviders(fits), job, l.Name)
			case explicit && w.From != "":
				why := "no placed job provides a link called that"
				if len(sameName) > 0 {
					why = "it is of another type (" + joinProviders(sameName) + " is " + sameName[0].Link.Type + ")"
				}
				add(path, job, "job %s consumes link %q of type %s from %q, and %s; links of type %s: %s",
					job, l.Name, l.Type, w.From, why, l.Type, orNone(ofType(all, l.Type)))
			case !l.Optional:
				add("components", job, "job %s consumes link %q of type %s, and no job in the config provides one", job, l.Name, l.Type)
			}
		}
	}
	d.orderLinks()
	return ps
}

// checkWiring refuses wiring for jobs not placed and links the job's spec
// does not declare: each would silently do nothing.
func (d *Deployment) checkWiring(all []provider) []contract.Problem {
	var ps []contract.Problem
	add := func(path, job, format string, a ...any) {
		ps = append(ps, contract.Problem{Path: path, Component: job, Reason: fmt.Sprintf(format, a...)})
	}
	for _, job := range contract.SortedKeys(d.Links) {
		spec := d.Release.Specs[job]
		if spec == nil || d.Jobs[job] == nil {
			add("properties.links."+job, job, "job %s is not placed by this config, and only placed jobs have links", job)
			continue
		}
		for _, name := range contract.SortedKeys(d.Links[job].Consumes) {
			if !hasLink(spec.Consumes, name) {
				add("properties.links."+job+".consumes."+name, job, "job %s consumes no link %q (it consumes %s)", job, name, linkNames(spec.Consumes))
			}
		}
		ps = append(ps, d.checkCustom(job)...)
		provides := d.provides(job)
		for _, name := range contract.SortedKeys(d.Links[job].Provides) {
			if !hasLink(provides, name) {
				add("properties.links."+job+".provides."+name, job, "job %s provides no link %q (it provides %s)", job, name, linkNames(provides))
			}
		}
	}
	return ps
}

// provides lists the links job provides: its spec's, then the config's
// custom providers.
func (d *Deployment) provides(job string) []release.Link {
	out := append([]release.Link(nil), d.Release.Specs[job].Provides...)
	for _, c := range d.Links[job].Custom {
		out = append(out, release.Link{Name: c.Name, Type: c.Type, Properties: c.Properties})
	}
	return out
}

// checkCustom refuses a custom provider that takes a name the job's spec
// provides already, or shares a property the spec does not declare.
func (d *Deployment) checkCustom(job string) []contract.Problem {
	var ps []contract.Problem
	spec := d.Release.Specs[job]
	seen := map[string]bool{}
	for i, c := range d.Links[job].Custom {
		path := fmt.Sprintf("properties.links.%s.custom_provider_definitions[%d]", job, i)
		if hasLink(spec.Provides, c.Name) || seen[c.Name] {
			ps = append(ps, contract.Problem{Path: path, Component: job,
				Reason: fmt.Sprintf("job %s provides a link %q already", job, c.Name)})
		}
		seen[c.Name] = true
		for _, prop := range c.Properties {
			if _, ok := spec.Properties[prop]; !ok {
				ps = append(ps, contract.Problem{Path: path, Component: job,
					Reason: fmt.Sprintf("job %s declares no property %q to share in link %q (it declares %s)", job, prop, c.Name, declaredList(spec))})
			}
		}
	}
	return ps
}

func hasLink(ls []release.Link, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

func linkNames(ls []release.Link) string {
	if len(ls) == 0 {
		return "none"
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	return strings.Join(names, ", ")
}

func ofType(all []provider, typ string) []provider {
	var out []provider
	for _, p := range all {
		if p.Link.Type == typ {
			out = append(out, p)
		}
	}
	return out
}

func joinProviders(ps []provider) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func orNone(ps []provider) string {
	if len(ps) == 0 {
		return "none"
	}
	return joinProviders(ps)
}

// links is what job's templates see of its resolved links: each
// provider's instances (a node's IP is an instance's address) and the
// properties its provides entry shares.
func (d *Deployment) links(job string) map[string]any {
	out := map[string]any{}
	for name, p := range d.resolved[job] {
		out[name] = d.linkOf(p)
	}
	return out
}

// linkOf is the link object of provider p: another deployment's as it
// shares it, a local one from its job's instances and properties.
func (d *Deployment) linkOf(p provider) map[string]any {
	if r := p.Remote; r != nil {
		return map[string]any{"instances": copyValue(r.Instances), "properties": copyValue(r.Properties)}
	}
	props := map[string]any{}
	// A provider shares the properties of its first instance (one
	// with other properties on other nodes shares its first node's).
	var first string
	if ips := d.Jobs[p.Job]; len(ips) > 0 {
		first = ips[0]
	}
	all := d.Properties(p.Job, first)
	for _, prop := range p.Link.Properties {
		if v, ok := lookup(all, prop); ok {
			set(props, prop, v)
		}
	}
	var insts []map[string]any
	for i, ip := range d.Jobs[p.Job] {
		insts = append(insts, map[string]any{"name": p.Job, "index": i, "id": InstanceID(d.Name, p.Job, i),
			"az": d.AZs[ip], "address": ip, "bootstrap": i == 0})
	}
	return map[string]any{"instances": insts, "properties": props}
}

// linkProviders lists the other jobs job takes links from and starts
// after.
func (d *Deployment) linkProviders(job string) []string {
	return d.waits[job]
}

// orderLinks decides which providers each job starts after: every job it
// takes a link from, save one that would then wait for it in turn. BOSH
// orders by instance group, not by links; here a cycle of links (a and b
// consuming each other's) is broken at the link that would close it, in
// job name order, so that no step waits on itself.
func (d *Deployment) orderLinks() {
	d.waits = map[string][]string{}
	var reaches func(from, to string, seen map[string]bool) bool
	reaches = func(from, to string, seen map[string]bool) bool {
		if from == to {
			return true
		}
		if seen[from] {
			return false
		}
		seen[from] = true
		for _, next := range d.waits[from] {
			if reaches(next, to, seen) {
				return true
			}
		}
		return false
	}
	for _, job := range contract.SortedKeys(d.resolved) {
		for _, name := range contract.SortedKeys(d.resolved[job]) {
			if d.resolved[job][name].Remote != nil {
				continue // another deployment's: deployed already
			}
			p := d.resolved[job][name].Job
			if p == job || slices.Contains(d.waits[job], p) || reaches(p, job, map[string]bool{}) {
				continue
			}
			d.waits[job] = append(d.waits[job], p)
		}
		sort.Strings(d.waits[job])
	}
}
