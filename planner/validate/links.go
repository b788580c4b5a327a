package validate

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/deployment-engine/engine/services/contract"
)

// decodeLinks reads properties.links: per job, consumes (each link null
// or {"from": NAME, "deployment": CLUSTER}) and provides (each {"as": ALIAS, "shared": BOOL}).
// An unknown key is refused by name: a misspelt "form" would otherwise
// wire nothing and say nothing.
func decodeLinks(raw json.RawMessage, p *contract.Properties, ps *problems) {
	const path = "properties.links"
	var jobs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &jobs); err != nil {
		ps.add(path, "", "", "must be an object of job name to its links")
		return
	}
	p.Links = map[string]contract.JobLinks{}
	for job, v := range jobs {
		jp := path + "." + contract.Clip(job)
		if !linkName(job) {
			ps.add(jp, "", "", fmt.Sprintf("a job's name is 1 to %d characters", contract.LinkNameMax))
			continue
		}
		var parts map[string]json.RawMessage
		if err := json.Unmarshal(v, &parts); err != nil || parts == nil {
			ps.add(jp, job, "", `must be {"consumes": {...}, "provides": {...}}`)
			continue
		}
		var jl contract.JobLinks
		for k, pv := range parts {
			switch k {
			case "consumes":
				jl.Consumes = decodeConsumes(pv, jp+".consumes", job, ps)
			case "provides":
				jl.Provides = decodeProvides(pv, jp+".provides", job, ps)
			case "custom_provider_definitions":
				jl.Custom = decodeCustom(pv, jp+".custom_provider_definitions", job, ps)
			default:
				ps.add(jp+"."+contract.Clip(k), job, "", "unknown field: a job's links have consumes, provides and custom_provider_definitions")
			}
		}
		p.Links[job] = jl
	}
}

func decodeConsumes(raw json.RawMessage, path, job string, ps *problems) map[string]*contract.ConsumeLink {
	var links map[string]json.RawMessage
	if err := json.Unmarshal(raw, &links); err != nil {
		ps.add(path, job, "", "must be an object of link name to null or {\"from\": PROVIDER}")
		return nil
	}
	out := map[string]*contract.ConsumeLink{}
	for name, v := range links {
		lp := path + "." + contract.Clip(name)
		if !linkName(name) {
			ps.add(lp, job, "", fmt.Sprintf("a link's name is 1 to %d characters", contract.LinkNameMax))
			continue
		}
		if isNull(v) {
			out[name] = nil
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(v, &fields); err != nil {
			ps.add(lp, job, "", "must be null (not consumed) or {\"from\": PROVIDER}")
			continue
		}
		c := &contract.ConsumeLink{}
		for k, fv := range fields {
			switch k {
			case "from":
				if json.Unmarshal(fv, &c.From) != nil || !linkName(c.From) {
					ps.add(lp+".from", job, "", fmt.Sprintf("must be a provider's alias or link name, 1 to %d characters", contract.LinkNameMax))
				}
			case "deployment":
				if json.Unmarshal(fv, &c.Deployment) != nil || !linkName(c.Deployment) {
					ps.add(lp+".deployment", job, "", fmt.Sprintf("must be a cluster's name, 1 to %d characters", contract.LinkNameMax))
				}
			default:
				ps.add(lp+"."+contract.Clip(k), job, "", "unknown field: a consumed link has from and deployment")
			}
		}
		out[name] = c
	}
	return out
}

func decodeProvides(raw json.RawMessage, path, job string, ps *problems) map[string]*contract.ProvideLink {
	var links map[string]json.RawMessage
	if err := json.Unmarshal(raw, &links); err != nil {
		ps.add(path, job, "", "must be an object of link name to {\"as\": ALIAS, \"shared\": BOOL}")
		return nil
	}
	out := map[string]*contract.ProvideLink{}
	for name, v := range links {
		lp := path + "." + contract.Clip(name)
		var fields map[string]json.RawMessage
		switch {
		case !linkName(name):
			ps.add(lp, job, "", fmt.Sprintf("a link's name is 1 to %d characters", contract.LinkNameMax))
			continue
		case json.Unmarshal(v, &fields) != nil || fields == nil:
			ps.add(lp, job, "", "must be {\"as\": ALIAS, \"shared\": BOOL}")
			continue
		}
		pl := &contract.ProvideLink{}
		for k, fv := range fields {
			switch k {
			case "as":
				if json.Unmarshal(fv, &pl.As) != nil || !linkName(pl.As) {
					ps.add(lp+".as", job, "", fmt.Sprintf("must be an alias of 1 to %d characters", contract.LinkNameMax))
				}
			case "shared":
				if json.Unmarshal(fv, &pl.Shared) != nil || isNull(fv) {
					ps.add(lp+".shared", job, "", "must be true or false")
				}
			default:
				ps.add(lp+"."+contract.Clip(k), job, "", "unknown field: a provided link has as and shared")
			}
		}
		out[name] = pl
	}
	return out
}

// decodeCustom reads custom providers: [{"name", "type", "properties"}].
func decodeCustom(raw json.RawMessage, path, job string, ps *problems) []contract.CustomProvider {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) > maxCustom {
		ps.add(path, job, "", fmt.Sprintf(`must be a list of at most %d {"name", "type", "properties"}`, maxCustom))
		return nil
	}
	var out []contract.CustomProvider
	for i, v := range list {
		ip := fmt.Sprintf("%s[%d]", path, i)
		var fields map[string]json.RawMessage
		if json.Unmarshal(v, &fields) != nil || fields == nil {
			ps.add(ip, job, "", `must be {"name", "type", "properties"}`)
			continue
		}
		var c contract.CustomProvider
		for _, k := range []string{"name", "type"} {
			dst := &c.Name
			if k == "type" {
				dst = &c.Type
			}
			if json.Unmarshal(fields[k], dst) != nil || !linkName(*dst) {
				ps.add(ip+"."+k, job, "", fmt.Sprintf("missing: the link's %s, 1 to %d characters", k, contract.LinkNameMax))
			}
		}
		for k, fv := range fields {
			switch k {
			case "name", "type":
			case "properties":
				var names []*string // a null name is refused, not read as ""
				if json.Unmarshal(fv, &names) != nil || len(names) > maxCustom || slices.Contains(names, nil) {
					ps.add(ip+".properties", job, "", fmt.Sprintf("must be a list of at most %d of the job's property names", maxCustom))
					continue
				}
				for _, n := range names {
					c.Properties = append(c.Properties, *n)
				}
			default:
				ps.add(ip+"."+contract.Clip(k), job, "", "unknown field: a custom provider has name, type and properties")
			}
		}
		out = append(out, c)
	}
	return out
}

// maxCustom bounds a job's custom providers and the properties each shares.
const maxCustom = 256

// linkName bounds a job's or link's name, an alias and a "from".
func linkName(s string) bool {
	return s != "" && utf8.RuneCountInString(s) <= contract.LinkNameMax // as JSON Schema's maxLength counts
}
