package manifest

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/deployment-engine/engine/planner/manifest/patch"
	"github.com/deployment-engine/engine/services/contract"
)

// jobLinks reads a v2 job's consumes, provides and custom provider
// definitions into the config's wiring, as BOSH reads them: a consumed
// link is null (not consumed) or names its provider with from; a
// provided link may take an alias (as) and be shared; a custom provider
// is a link the job provides beside its spec's. A consumed link's
// deployment names the cluster whose shared providers it is taken from;
// self is the manifest's name: from a deployment of that name is from
// this one. What the engine cannot wire is an error naming it: a manual
// link.
func (c *converter) jobLinks(m map[string]any, where, self string) (*contract.JobLinks, error) {
	cons, err := mapOf(m, "consumes", where)
	if err != nil {
		return nil, err
	}
	provs, err := mapOf(m, "provides", where)
	if err != nil {
		return nil, err
	}
	custom, err := customProviders(m["custom_provider_definitions"], where+": custom_provider_definitions")
	if err != nil {
		return nil, err
	}
	if cons == nil && provs == nil && custom == nil {
		return nil, nil
	}
	jl := &contract.JobLinks{Custom: custom}
	for _, name := range sortedKeys(cons) {
		if jl.Consumes == nil {
			jl.Consumes = map[string]*contract.ConsumeLink{}
		}
		l, err := c.consumed(cons[name], fmt.Sprintf("%s: consumes.%s", where, name), self)
		if err != nil {
			return nil, err
		}
		jl.Consumes[name] = l
	}
	for _, name := range sortedKeys(provs) {
		if jl.Provides == nil {
			jl.Provides = map[string]*contract.ProvideLink{}
		}
		l, err := c.provided(provs[name], fmt.Sprintf("%s: provides.%s", where, name))
		if err != nil {
			return nil, err
		}
		jl.Provides[name] = l
	}
	return jl, nil
}

func (c *converter) consumed(v any, where, self string) (*contract.ConsumeLink, error) {
	if v == nil || v == "nil" { // BOSH writes "nil" for null too
		return nil, nil
	}
	f, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s: give nil (not consumed) or {from: PROVIDER}", where, patch.Kind(v))
	}
	l := &contract.ConsumeLink{}
	for _, k := range sortedKeys(f) {
		switch k {
		case "from":
			s, ok := f[k].(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%s: from names a provider's alias or link name", where)
			}
			l.From = s
		case "deployment":
			d, ok := f[k].(string)
			if !ok || d == "" {
				return nil, fmt.Errorf("%s: deployment names the deployment (the engine's cluster) that provides the link", where)
			}
			if d != self {
				l.Deployment = d
			}
		case "network":
			// On bare metal a machine's IP is its network.
		case "ip_addresses":
			if b, _ := f[k].(bool); !b {
				c.warnf("%s: ip_addresses false asks for DNS names, and the engine runs no DNS: addresses are the instances' IPs", where)
			}
		case "instances", "properties", "address":
			return nil, fmt.Errorf("%s: manual links (%s) are not supported yet: place the providing job in the manifest", where, k)
		default:
			return nil, fmt.Errorf("%s: unknown key %q (a consumed link takes from, deployment, network, ip_addresses)", where, contract.Clip(k))
		}
	}
	return l, nil
}

func (c *converter) provided(v any, where string) (*contract.ProvideLink, error) {
	f, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s: give {as: ALIAS, shared: BOOL}", where, patch.Kind(v))
	}
	l := &contract.ProvideLink{}
	for _, k := range sortedKeys(f) {
		switch k {
		case "as":
			s, ok := f[k].(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%s: as is the link's alias, a string", where)
			}
			l.As = s
		case "shared":
			b, ok := f[k].(bool)
			if !ok {
				return nil, fmt.Errorf("%s: shared is true or false", where)
			}
			l.Shared = b
		case "aliases":
			c.warnf("%s: aliases are DNS names, and the engine runs no DNS: they are not read", where)
		default:
			return nil, fmt.Errorf("%s: unknown key %q (a provided link takes as, shared)", where, contract.Clip(k))
		}
	}
	return l, nil
}

// setLinks gives job its wiring; a job in several groups is one component
// of the config, so its wiring must agree.
func (c *converter) setLinks(job, group string, jl *contract.JobLinks) error {
	var cur contract.JobLinks
	if jl != nil {
		cur = *jl
	}
	if first, seen := c.linksGroup[job]; seen {
		if !reflect.DeepEqual(c.cfg.Properties.Links[job], cur) {
			return fmt.Errorf("job %s has other consumes or provides in instance group %s than in %s: the engine places a job once, with one wiring", job, group, first)
		}
		return nil
	}
	c.linksGroup[job] = group
	if cur.Consumes == nil && cur.Provides == nil && cur.Custom == nil {
		return nil
	}
	if c.cfg.Properties.Links == nil {
		c.cfg.Properties.Links = map[string]contract.JobLinks{}
	}
	c.cfg.Properties.Links[job] = cur
	return nil
}

// customProviders reads custom_provider_definitions: [{name, type,
// properties}].
func customProviders(v any, where string) ([]contract.CustomProvider, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not a list", where, patch.Kind(v))
	}
	var out []contract.CustomProvider
	for i, x := range list {
		at := fmt.Sprintf("%s[%d]", where, i)
		f, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is %s: give {name, type, properties}", at, patch.Kind(x))
		}
		var c contract.CustomProvider
		for _, k := range sortedKeys(f) {
			switch k {
			case "name", "type":
				s, ok := f[k].(string)
				if !ok || s == "" {
					return nil, fmt.Errorf("%s: %s is a string", at, k)
				}
				if k == "name" {
					c.Name = s
				} else {
					c.Type = s
				}
			case "properties":
				props, ok := f[k].([]any)
				if !ok && f[k] != nil {
					return nil, fmt.Errorf("%s: properties is a list of the job's property names", at)
				}
				for _, p := range props {
					s, ok := p.(string)
					if !ok {
						return nil, fmt.Errorf("%s: properties is a list of the job's property names", at)
					}
					c.Properties = append(c.Properties, s)
				}
			default:
				return nil, fmt.Errorf("%s: unknown key %q (a custom provider takes name, type, properties)", at, contract.Clip(k))
			}
		}
		if c.Name == "" || c.Type == "" {
			return nil, fmt.Errorf("%s: a custom provider needs a name and a type", at)
		}
		out = append(out, c)
	}
	return out, nil
}

func mapOf(m map[string]any, key, where string) (map[string]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	out, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s is %s, not a map of link name to its wiring", where, key, patch.Kind(v))
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
