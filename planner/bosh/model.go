package bosh

import (
	"crypto/sha1" //nolint:gosec // a stable instance id, not a secret
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// DefaultAZ is a node's availability zone when the config names none.
const DefaultAZ = "z1"

// Deployment is a release placed on nodes by a config: each component of
// the config is a job of the release, with its per-job property tree.
type Deployment struct {
	Release *release.Release
	// Name is spec.deployment: the config's deployment, else the
	// release's name.
	Name string
	// Jobs maps a job to the IPs it runs on (an instance's index is its
	// position).
	Jobs map[string][]string
	// Props holds the config's property tree of each job; NodeProps a
	// job's tree on a node where it has other properties (by node, then
	// job).
	Props     map[string]map[string]any
	NodeProps map[string]map[string]map[string]any
	// AZs maps a node to its availability zone.
	AZs map[string]string
	// Disks are the nodes' persistent disks.
	Disks map[string]contract.PersistentDisk
	// Global is a property tree every job reads a declared property from
	// when its own tree lacks it (a manifest's global properties, as BOSH
	// v1 has them): the config's properties.global, or the cloudfoundry
	// catalog's rendered manifest.
	Global map[string]any
	// Comp names a job's component as the config calls it, when that is
	// not the job's own name (a catalog's component mapped to a job).
	Comp map[string]string
	// Links is the config's wiring of each job's links.
	Links map[string]contract.JobLinks
	// resolved maps a job's consumed link to its provider.
	resolved map[string]map[string]provider
	// waits maps a job to the providers it starts after.
	waits map[string][]string
	// remote reads other deployments' providers (noRemote says why there
	// is none); self is this cluster's name; remoteCache holds what was
	// read, once a deployment.
	remote      Remote
	noRemote    string
	self        string
	remoteCache map[string]remoteRead
}

// CompOf is the config's name of a job.
func (d *Deployment) CompOf(job string) string {
	if c, ok := d.Comp[job]; ok {
		return c
	}
	return job
}

// ParseReleaseRef splits "NAME[/VERSION]".
func ParseReleaseRef(ref string) (name, version string) {
	name, version, _ = strings.Cut(ref, "/")
	return name, version
}

// NewDeployment places rel by cfg and names every problem: jobs the
// release does not have, properties their spec does not declare, zones
// for nodes the config does not place, links with no provider or several
// it cannot choose between, wiring of links the jobs do not have.
func NewDeployment(rel *release.Release, cfg contract.Config) (*Deployment, []contract.Problem) {
	return NewMappedDeployment(rel, cfg, nil)
}

// NewMappedDeployment is NewDeployment for a config whose components are
// not the release's job names: jobOf names each component's job.
func NewMappedDeployment(rel *release.Release, cfg contract.Config, jobOf func(comp string) string) (*Deployment, []contract.Problem) {
	return NewDeploymentWith(rel, cfg, Placing{JobOf: jobOf})
}

// NewDeploymentWith is NewDeployment with what o gives: components mapped
// to jobs, and links taken from other deployments.
func NewDeploymentWith(rel *release.Release, cfg contract.Config, o Placing) (*Deployment, []contract.Problem) {
	jobOf := o.JobOf
	name := rel.Name
	if cfg.Properties.Deployment != "" {
		name = cfg.Properties.Deployment
	}
	d := &Deployment{Release: rel, Name: name, Jobs: map[string][]string{}, Props: map[string]map[string]any{}, NodeProps: map[string]map[string]map[string]any{},
		AZs: map[string]string{}, Comp: map[string]string{},
		Global: cfg.Properties.Global, Links: cfg.Properties.Links, Disks: cfg.Properties.PersistentDisks,
		remote: o.Remote, noRemote: o.NoRemote, self: o.Self}
	if d.noRemote == "" {
		d.noRemote = "this engine reads no other deployment's links"
	}
	var ps []contract.Problem
	add := func(path, comp, ip, format string, a ...any) {
		ps = append(ps, contract.Problem{Path: path, Component: comp, IP: ip, Reason: fmt.Sprintf(format, a...)})
	}
	have := strings.Join(jobNames(rel), ", ")
	for _, name := range contract.SortedKeys(cfg.Components) {
		job := name
		if jobOf != nil {
			job = jobOf(name)
		}
		if rel.Specs[job] == nil {
			add("components."+name, name, "", "release %s has no job %q (it has %s)", rel.Ref(), job, have)
			continue
		}
		if prev, dup := d.Jobs[job]; dup && prev != nil {
			add("components."+name, name, "", "job %s is already placed by component %s", job, d.Comp[job])
			continue
		}
		d.Jobs[job] = cfg.Components[name]
		if job != name {
			d.Comp[job] = name
		}
	}
	for _, name := range contract.SortedKeys(cfg.Properties.Jobs) {
		spec := rel.Specs[name]
		if spec == nil {
			add("properties.jobs."+name, name, "", "release %s has no job %q (it has %s)", rel.Ref(), name, have)
			continue
		}
		tree, ok := cfg.Properties.Jobs[name].(map[string]any)
		if !ok {
			add("properties.jobs."+name, name, "", "must be an object of the job's properties")
			continue
		}
		for _, leaf := range leaves(tree, "") {
			if !declared(spec, leaf) {
				add("properties.jobs."+name+"."+leaf, name, "", "job %s declares no property %q (it declares %s)", name, leaf, declaredList(spec))
			}
		}
		d.Props[name] = tree
	}
	for _, ip := range contract.SortedKeys(cfg.Properties.NodeJobs) {
		jobs, _ := cfg.Properties.NodeJobs[ip].(map[string]any)
		for _, name := range contract.SortedKeys(jobs) {
			path := "properties.node_jobs." + ip + "." + name
			spec := rel.Specs[name]
			tree, ok := jobs[name].(map[string]any)
			switch {
			case spec == nil:
				add(path, name, ip, "release %s has no job %q (it has %s)", rel.Ref(), name, have)
				continue
			case !ok:
				add(path, name, ip, "must be an object of the job's properties")
				continue
			case !slices.Contains(d.Jobs[name], ip):
				add(path, name, ip, "job %s does not run on %s", name, ip)
				continue
			}
			for _, leaf := range leaves(tree, "") {
				if !declared(spec, leaf) {
					add(path+"."+leaf, name, ip, "job %s declares no property %q (it declares %s)", name, leaf, declaredList(spec))
				}
			}
			if d.NodeProps[ip] == nil {
				d.NodeProps[ip] = map[string]map[string]any{}
			}
			d.NodeProps[ip][name] = tree
		}
	}
	nodes := map[string]bool{}
	for _, ip := range cfg.Nodes() {
		nodes[ip] = true
		d.AZs[ip] = DefaultAZ
	}
	seen := map[string]string{}
	for _, az := range contract.SortedKeys(cfg.Properties.AZs) {
		for _, ip := range cfg.Properties.AZs[az] {
			switch {
			case !nodes[ip]:
				add("properties.azs."+az, "", ip, "%s is not a node of this config", ip)
			case seen[ip] != "":
				add("properties.azs."+az, "", ip, "%s is already in zone %s", ip, seen[ip])
			default:
				seen[ip] = az
				d.AZs[ip] = az
			}
		}
	}
	for _, ip := range contract.SortedKeys(d.Disks) {
		if !nodes[ip] {
			add("properties.persistent_disks."+ip, "", ip, "%s is not a node of this config", ip)
		}
	}
	ps = append(ps, d.resolveLinks()...)
	return d, ps
}

func jobNames(rel *release.Release) []string {
	out := make([]string, 0, len(rel.Jobs))
	for _, j := range rel.Jobs {
		out = append(out, j.Name)
	}
	return out
}

// leaves lists the dotted paths of a tree's leaves; an empty object is a
// leaf too.
func leaves(tree map[string]any, prefix string) []string {
	var out []string
	for _, k := range contract.SortedKeys(tree) {
		p := prefix + k
		if sub, ok := tree[k].(map[string]any); ok && len(sub) > 0 {
			out = append(out, leaves(sub, p+".")...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// declared tells whether a config leaf is a declared property or lies
// inside one (a declared property may take a whole hash).
func declared(spec *release.Job, leaf string) bool {
	for name := range spec.Properties {
		if leaf == name || strings.HasPrefix(leaf, name+".") {
			return true
		}
	}
	return false
}

func declaredList(spec *release.Job) string {
	if len(spec.Properties) == 0 {
		return "none"
	}
	names := contract.SortedKeys(spec.Properties)
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return strings.Join(names, ", ")
}

// Properties are a job's effective properties on node ip: every property
// its spec declares, from the config (the node's own tree for the job
// when it has one) or else the spec's default, as BOSH resolves them.
// Properties without either are absent.
func (d *Deployment) Properties(job, ip string) map[string]any {
	spec := d.Release.Specs[job]
	tree := d.Props[job]
	if t, ok := d.NodeProps[ip][job]; ok {
		tree = t
	}
	out := map[string]any{}
	for _, name := range contract.SortedKeys(spec.Properties) {
		if v, ok := lookup(tree, name); ok {
			set(out, name, v)
		} else if v, ok := lookup(d.Global, name); ok {
			set(out, name, v)
		} else if p := spec.Properties[name]; p.HasDefault {
			set(out, name, copyValue(p.Default))
		}
	}
	return out
}

func lookup(tree map[string]any, name string) (any, bool) {
	var cur any = tree
	for _, k := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok || cur == nil {
			return nil, false
		}
	}
	return cur, true
}

func set(tree map[string]any, name string, v any) {
	keys := strings.Split(name, ".")
	for _, k := range keys[:len(keys)-1] {
		sub, ok := tree[k].(map[string]any)
		if !ok {
			sub = map[string]any{}
			tree[k] = sub
		}
		tree = sub
	}
	tree[keys[len(keys)-1]] = v
}

// copyValue deep-copies a JSON-like value through JSON, so that two
// instances never share a default's map.
func copyValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

// InstanceID is an instance's stable id, in the form of a UUID.
func InstanceID(deployment, job string, index int) string {
	h := sha1.Sum([]byte(fmt.Sprintf("%s/%s/%d", deployment, job, index))) //nolint:gosec
	x := fmt.Sprintf("%x", h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// Spec is the evaluation context of one instance of job on ip.
func (d *Deployment) Spec(job string, index int) Spec {
	ip := d.Jobs[job][index]
	return Spec{
		"name":       d.CompOf(job),
		"job":        map[string]any{"name": d.CompOf(job)},
		"index":      index,
		"id":         InstanceID(d.Name, job, index),
		"az":         d.AZs[ip],
		"bootstrap":  index == 0,
		"address":    ip,
		"ip":         ip,
		"networks":   map[string]any{"default": map[string]any{"ip": ip, "default": []string{"dns", "gateway"}}},
		"deployment": d.Name,
		"release":    map[string]any{"name": d.Release.JobFrom(job).Name, "version": d.Release.JobFrom(job).Version},
		"properties": d.Properties(job, ip),
		"links":      d.links(job),
	}
}
