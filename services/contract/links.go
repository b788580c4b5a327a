package contract

// JobLinks is how one BOSH job of a config (catalog bosh) wires its links,
// as a manifest's job says it: properties.links.<job>.
//
//	{"consumes": {"db": {"from": "primary"}, "cache": null},
//	 "provides": {"db": {"as": "primary", "shared": true}},
//	 "custom_provider_definitions": [{"name": "conn", "type": "address", "properties": ["port"]}]}
//
// A consumed link absent here is matched by type, when exactly one placed
// job provides that type; one given as null is not consumed at all.
type JobLinks struct {
	Consumes map[string]*ConsumeLink `json:"consumes,omitempty"`
	Provides map[string]*ProvideLink `json:"provides,omitempty"`
	// Custom are links the job provides beside those its spec declares,
	// sharing properties its spec declares.
	Custom []CustomProvider `json:"custom_provider_definitions,omitempty"`
}

// CustomProvider is a link a deployment adds to a job, as BOSH's
// custom_provider_definitions do.
type CustomProvider struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Properties []string `json:"properties,omitempty"`
}

// ConsumeLink names the provider a consumed link comes from: a provided
// link's alias, or its name when it has none. Deployment names another
// cluster of the engine whose shared providers (ProvideLink.Shared) the
// link is taken from, as of that cluster's last successful deployment;
// "" (or this cluster's own name) is this config's providers.
//
//	{"from": "primary", "deployment": "db"}
type ConsumeLink struct {
	From       string `json:"from,omitempty"`
	Deployment string `json:"deployment,omitempty"`
}

// ProvideLink renames a provided link for consumers' "from" (As) and
// marks it shared: BOSH's flag that offers it to other deployments'
// consumers (ConsumeLink.Deployment); inside one cluster it changes
// nothing.
type ProvideLink struct {
	As     string `json:"as,omitempty"`
	Shared bool   `json:"shared,omitempty"`
}

// LinkNameMax bounds a link's name, alias or "from" in a config.
const LinkNameMax = 128

// cloneLinks deep-copies a config's link wiring.
func cloneLinks(in map[string]JobLinks) map[string]JobLinks {
	if in == nil {
		return nil
	}
	out := make(map[string]JobLinks, len(in))
	for job, jl := range in {
		var c JobLinks
		if jl.Consumes != nil {
			c.Consumes = make(map[string]*ConsumeLink, len(jl.Consumes))
			for k, v := range jl.Consumes {
				if v != nil {
					cv := *v
					v = &cv
				}
				c.Consumes[k] = v
			}
		}
		if jl.Provides != nil {
			c.Provides = make(map[string]*ProvideLink, len(jl.Provides))
			for k, v := range jl.Provides {
				if v != nil {
					pv := *v
					v = &pv
				}
				c.Provides[k] = v
			}
		}
		for _, cp := range jl.Custom {
			cp.Properties = append([]string(nil), cp.Properties...)
			c.Custom = append(c.Custom, cp)
		}
		out[job] = c
	}
	return out
}
