package manifest

import (
	"fmt"
	"maps"
	"slices"

	"github.com/deployment-engine/engine/planner/manifest/patch"
)

// addon is one entry of a manifest's addons: jobs colocated on every
// instance group its placement rules select, as BOSH places them.
type addon struct {
	name             string
	jobs             []any
	include, exclude *rule
}

// rule is an addon's include or exclude: a group matches when it matches
// every kind of criterion given, and a kind when it matches one of its
// entries.
type rule struct {
	deployments, groups, azs, networks []string
	jobs                               []jobID
	lifecycle                          string
	// stemcells are operating systems: a group matches by the OS of the
	// stemcell it declares, as BOSH matches it (the machine's own OS
	// stands in for that stemcell, but the manifest says which one).
	stemcells []string
}

type jobID struct{ name, release string }

// readAddons reads root's addons; a criterion the engine cannot judge
// (teams) is refused by name rather than guessed.
func readAddons(root map[string]any) ([]addon, error) {
	list, ok := root["addons"].([]any)
	if root["addons"] != nil && !ok {
		return nil, fmt.Errorf("addons is a list of {name, jobs, include, exclude}")
	}
	var out []addon
	for i, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("addons[%d] is %s, not a map", i, patch.Kind(x))
		}
		a := addon{}
		a.name, _ = m["name"].(string)
		where := fmt.Sprintf("addon %q", a.name)
		if a.name == "" {
			return nil, fmt.Errorf("addons[%d] has no name", i)
		}
		for k := range m {
			if !slices.Contains([]string{"name", "jobs", "include", "exclude"}, k) {
				return nil, fmt.Errorf("%s: %s is not read (give each job its properties)", where, k)
			}
		}
		if a.jobs, ok = m["jobs"].([]any); !ok || len(a.jobs) == 0 {
			return nil, fmt.Errorf("%s: no jobs", where)
		}
		var err error
		if a.include, err = readRule(m["include"], where+": include"); err != nil {
			return nil, err
		}
		if a.exclude, err = readRule(m["exclude"], where+": exclude"); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func readRule(x any, where string) (*rule, error) {
	if x == nil {
		return nil, nil
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not a map", where, patch.Kind(x))
	}
	r := &rule{}
	for k, v := range m {
		var err error
		switch k {
		case "deployments":
			r.deployments, err = names(v, where+".deployments")
		case "instance_groups":
			r.groups, err = names(v, where+".instance_groups")
		case "azs":
			r.azs, err = names(v, where+".azs")
		case "networks":
			r.networks, err = names(v, where+".networks")
		case "lifecycle":
			if r.lifecycle, _ = v.(string); r.lifecycle != "service" && r.lifecycle != "errand" {
				err = fmt.Errorf("%s.lifecycle: service or errand", where)
			}
		case "stemcell":
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("%s.stemcell is a list of {os: NAME}", where)
			}
			for i, x := range list {
				sm, _ := x.(map[string]any)
				osName, _ := sm["os"].(string)
				if osName == "" {
					return nil, fmt.Errorf("%s.stemcell[%d]: {os: NAME}", where, i)
				}
				r.stemcells = append(r.stemcells, osName)
			}
		case "jobs":
			list, _ := v.([]any)
			for i, j := range list {
				jm, _ := j.(map[string]any)
				id := jobID{}
				id.name, _ = jm["name"].(string)
				id.release, _ = jm["release"].(string)
				if id.name == "" {
					return nil, fmt.Errorf("%s.jobs[%d]: {name, release}", where, i)
				}
				r.jobs = append(r.jobs, id)
			}
		default:
			err = fmt.Errorf("%s.%s: the engine places addons by deployments, instance_groups, jobs, azs, networks, stemcell and lifecycle", where, k)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

func names(v any, where string) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is a list of names", where)
	}
	out := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is %s, not a name", where, i, patch.Kind(x))
		}
		out[i] = s
	}
	return out, nil
}

// matches tells whether group g of deployment dep meets every kind of
// criterion r gives; osOf maps the manifest's stemcell aliases to their OS.
func (r *rule) matches(dep string, g map[string]any, osOf map[string]string) bool {
	name, _ := g["name"].(string)
	oneOf := func(want, have []string) bool {
		return len(want) == 0 || slices.ContainsFunc(have, func(h string) bool { return slices.Contains(want, h) })
	}
	var azs, nets []string
	for _, z := range listOf(g["azs"]) {
		azs = append(azs, fmt.Sprint(z))
	}
	for _, n := range listOf(g["networks"]) {
		if m, ok := n.(map[string]any); ok {
			nets = append(nets, fmt.Sprint(m["name"]))
		}
	}
	var jobs []jobID
	for _, j := range listOf(g["jobs"]) {
		if m, ok := j.(map[string]any); ok {
			n, _ := m["name"].(string)
			rel, _ := m["release"].(string)
			jobs = append(jobs, jobID{n, rel})
		}
	}
	lifecycle, _ := g["lifecycle"].(string)
	if lifecycle == "" {
		lifecycle = "service"
	}
	alias, _ := g["stemcell"].(string)
	return oneOf(r.deployments, []string{dep}) && oneOf(r.groups, []string{name}) && oneOf(r.azs, azs) && oneOf(r.networks, nets) &&
		oneOf(r.stemcells, []string{osOf[alias]}) &&
		(r.lifecycle == "" || r.lifecycle == lifecycle) &&
		(len(r.jobs) == 0 || slices.ContainsFunc(jobs, func(j jobID) bool {
			return slices.ContainsFunc(r.jobs, func(w jobID) bool { return w.name == j.name && (w.release == "" || w.release == j.release) })
		}))
}

func listOf(v any) []any { l, _ := v.([]any); return l }

// stemcellOS maps each stemcell alias root declares to its OS.
func stemcellOS(root map[string]any) map[string]string {
	out := map[string]string{}
	for _, x := range listOf(root["stemcells"]) {
		m, _ := x.(map[string]any)
		alias, _ := m["alias"].(string)
		osName, _ := m["os"].(string)
		if alias != "" {
			out[alias] = osName
		}
	}
	return out
}

// withAddons is group g with the jobs of every addon its rules place
// there appended, as a copy: the manifest is left as it was. A job the
// group has already is refused, as BOSH refuses it.
func withAddons(dep string, g map[string]any, addons []addon, osOf map[string]string) (map[string]any, error) {
	var extra []any
	for _, a := range addons {
		if (a.include != nil && !a.include.matches(dep, g, osOf)) || (a.exclude != nil && a.exclude.matches(dep, g, osOf)) {
			continue
		}
		extra = append(extra, a.jobs...)
	}
	if len(extra) == 0 {
		return g, nil
	}
	out := maps.Clone(g)
	jobs := slices.Clone(listOf(g["jobs"]))
	for _, x := range extra {
		m, _ := x.(map[string]any)
		name, _ := m["name"].(string)
		for _, have := range jobs {
			if hm, _ := have.(map[string]any); hm != nil && hm["name"] == name {
				return nil, fmt.Errorf("instance group %v: an addon's job %s is a job of the group already", g["name"], name)
			}
		}
		jobs = append(jobs, x)
	}
	out["jobs"] = jobs
	return out, nil
}
