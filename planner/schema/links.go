package schema

import (
	"strconv"

	"github.com/deployment-engine/engine/services/contract"
)

// maxCustom bounds a job's custom providers and the properties each
// shares, as validation does.
const maxCustom = 256

// linksSchema is properties.links: per BOSH job, which provider each
// consumed link takes and the aliases of the links it provides.
func linksSchema() obj {
	name := func(what string) obj {
		return obj{"minLength": 1, "maxLength": contract.LinkNameMax,
			"x-reason": "a " + what + "'s name is 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"}
	}
	unknown := func(reason string) obj { return obj{"not": obj{}, "x-reason": reason} }
	consume := obj{"type": []string{"object", "null"}, "x-reason": `must be null (not consumed) or {"from": PROVIDER}`,
		"properties": obj{"from": obj{"type": "string", "minLength": 1, "maxLength": contract.LinkNameMax,
			"description": "the provider: a provided link's alias, or its name when it has none",
			"x-reason":    "must be a provider's alias or link name, 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"},
			"deployment": obj{"type": "string", "minLength": 1, "maxLength": contract.LinkNameMax,
				"description": "another cluster of the engine whose shared providers the link is taken from, as of its last successful deployment",
				"x-reason":    "must be a cluster's name, 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"}},
		"additionalProperties": unknown("unknown field: a consumed link has from and deployment")}
	provide := obj{"type": "object", "x-reason": `must be {"as": ALIAS, "shared": BOOL}`,
		"properties": obj{
			"as": obj{"type": "string", "minLength": 1, "maxLength": contract.LinkNameMax, "description": "the name consumers' from finds this link by",
				"x-reason": "must be an alias of 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"},
			"shared": obj{"type": "boolean", "x-reason": "must be true or false",
				"description": "offered to other clusters' consumers (their consumes.<link>.deployment), as BOSH offers it to other deployments; no effect inside one cluster"}},
		"additionalProperties": unknown("unknown field: a provided link has as and shared")}
	job := obj{"type": "object", "x-reason": `must be {"consumes": {...}, "provides": {...}}`,
		"properties": obj{
			"consumes": obj{"type": []string{"object", "null"}, "propertyNames": name("link"), "additionalProperties": consume,
				"x-reason":    `must be an object of link name to null or {"from": PROVIDER}`,
				"description": "each consumed link's provider; null leaves it unconsumed; a link not named takes the one provider of its type"},
			"provides": obj{"type": []string{"object", "null"}, "propertyNames": name("link"), "additionalProperties": provide,
				"x-reason": `must be an object of link name to {"as": ALIAS, "shared": BOOL}`},
		},
		"additionalProperties": unknown("unknown field: a job's links have consumes, provides and custom_provider_definitions")}
	job["properties"].(obj)["custom_provider_definitions"] = obj{"type": []string{"array", "null"}, "maxItems": maxCustom,
		"x-reason":    `must be a list of at most ` + strconv.Itoa(maxCustom) + ` {"name", "type", "properties"}`,
		"description": "links the job provides beside those its spec declares, sharing properties its spec declares",
		"items": obj{"type": "object", "x-reason": `must be {"name", "type", "properties"}`, "required": []string{"name", "type"},
			"properties": obj{
				"name": obj{"type": "string", "minLength": 1, "maxLength": contract.LinkNameMax, "x-reason": "missing: the link's name, 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"},
				"type": obj{"type": "string", "minLength": 1, "maxLength": contract.LinkNameMax, "x-reason": "missing: the link's type, 1 to " + strconv.Itoa(contract.LinkNameMax) + " characters"},
				"properties": obj{"type": []string{"array", "null"}, "maxItems": maxCustom, "items": obj{"type": "string"},
					"x-reason": "must be a list of at most " + strconv.Itoa(maxCustom) + " of the job's property names"},
			},
			"additionalProperties": unknown("unknown field: a custom provider has name, type and properties")}}
	return obj{"type": []string{"object", "null"}, "x-reason": "must be an object of job name to its links",
		"description":   "per BOSH job (catalog bosh), how its links are wired, as a manifest's consumes and provides say it",
		"propertyNames": name("job"), "additionalProperties": job}
}
