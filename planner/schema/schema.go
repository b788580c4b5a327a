// Package schema describes a config as a JSON Schema (draft 2020-12) for
// the loaded catalogs.
//
// It is published at /deployment-engine/config/schema: editors (the console's among them)
// check a config with it as it is typed. It says what the engine's
// validation says wherever a schema can; what it cannot (a node's
// hardware, a key file's content, a BOSH release's jobs) the engine still
// checks on POST. Where a rule fails, "x-reason" is the sentence to show
// and "x-at" the property it names, in the engine's problem paths.
package schema

import (
	"sort"
	"strings"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

const (
	ipv4Pattern = `^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$`
	// Addresses no node has: unspecified, multicast, broadcast.
	notNodePattern = `^(0\.0\.0\.0|22[4-9]\..*|23[0-9]\..*|255\.255\.255\.255)$`
	domainPattern  = `^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`
	// A whole number >= 0 written as a string, as contract.Flex reads it.
	flexPattern = `^\s*[0-9]+(\.0*)?\s*$`
	maxDiskGB   = 1 << 20
)

type obj = map[string]any

// ipSchema is a node's IPv4 address.
func ipSchema() obj {
	return obj{"type": "string", "allOf": []any{
		obj{"pattern": ipv4Pattern, "x-reason": "not an IPv4 address"},
		obj{"not": obj{"pattern": notNodePattern}, "x-reason": "not a node's address"},
	}}
}

// flexSchema is a whole number >= 0, as a JSON number or a string.
func flexSchema(reason string) obj {
	return obj{"type": []string{"integer", "string", "null"}, "pattern": flexPattern, "minimum": 0, "x-reason": reason}
}

// zeroOrOne is a flex that must be 0 or 1.
func zeroOrOne() obj {
	return obj{"type": []string{"integer", "string", "null"}, "anyOf": []any{
		obj{"type": "null"}, obj{"enum": []any{0, 1}}, obj{"type": "string", "pattern": `^\s*[01](\.0*)?\s*$`},
	}, "x-reason": "must be 0 or 1"}
}

// isOne matches a flex set to 1.
func isOne() obj {
	return obj{"anyOf": []any{obj{"const": 1}, obj{"type": "string", "pattern": `^\s*1(\.0*)?\s*$`}}}
}

// nullable lets a property be null: the engine reads null as absent.
func nullable(s obj) obj {
	switch t := s["type"].(type) {
	case string:
		s["type"] = []string{t, "null"}
	case []string:
		s["type"] = append(t, "null")
	}
	return s
}

func healSchema() obj {
	n := func() obj {
		return obj{"type": []string{"integer", "null"}, "minimum": 0, "x-reason": "numbers must be >= 0"}
	}
	return obj{"type": []string{"object", "boolean", "null"}, "x-reason": `want true, false or {"enabled", "off", "backoff_s", "max_backoff_s", "max_attempts", "grace_s", "meltdown"}`,
		"properties": obj{
			"enabled": nullable(obj{"type": "boolean"}), "off": nullable(obj{"type": "array", "items": obj{"type": "string"}}),
			"backoff_s": n(), "max_backoff_s": n(), "max_attempts": n(), "grace_s": n(),
			"meltdown": obj{"type": []string{"object", "null"}, "additionalProperties": obj{"not": obj{}, "x-reason": "unknown field"}, "properties": obj{
				"time_threshold_s":  n(),
				"percent_threshold": obj{"type": []string{"integer", "null"}, "minimum": 0, "maximum": 100, "x-reason": "percent_threshold must be 0 to 100"},
				"minimum_down":      n(),
			}},
		},
		"additionalProperties": obj{"not": obj{}, "x-reason": "unknown field"},
	}
}

// updateSchema is properties.update: how changes to running instances
// roll out, globally and per component.
func updateSchema() obj {
	settings := func() obj {
		return obj{
			"canaries":          obj{"type": []string{"integer", "null"}, "minimum": 0, "x-reason": "want a number >= 0"},
			"max_in_flight":     obj{"type": []string{"integer", "string", "null"}, "pattern": `^\s*([1-9][0-9]*|[0-9.]+%)\s*$`, "minimum": 1, "x-reason": "want a number >= 1 or a percentage in (0, 100]"},
			"canary_watch_time": obj{"type": []string{"string", "null"}, "pattern": `^\s*[0-9]+\s*(-\s*[0-9]+\s*)?$`, "x-reason": `want "low-high" in ms`},
			"update_watch_time": obj{"type": []string{"string", "null"}, "pattern": `^\s*[0-9]+\s*(-\s*[0-9]+\s*)?$`, "x-reason": `want "low-high" in ms`},
			"auto_revert":       nullable(obj{"type": "boolean"}),
		}
	}
	top := settings()
	top["components"] = obj{"type": []string{"object", "null"}, "additionalProperties": obj{"type": "object", "properties": settings()}}
	return obj{"type": []string{"object", "null"}, "x-reason": `want {"canaries", "max_in_flight", "canary_watch_time", "update_watch_time", "auto_revert", "components": {"<name>": {...}}}`,
		"properties": top}
}

func notifySchema() obj {
	return obj{"type": []string{"object", "null"}, "x-reason": `want {"webhooks": [{"url", "secret", "format", "events", "name"}], "down_after_s"}`,
		"properties": obj{
			"webhooks": nullable(obj{"type": "array", "items": obj{
				"type":     "object",
				"required": []string{"url"},
				"properties": obj{
					"url":    obj{"type": "string", "pattern": `^(https?://[^/?#\s]+|<redacted>$)`, "x-reason": "must be an http:// or https:// URL"},
					"format": obj{"enum": []any{"", "json", "slack"}, "x-reason": `must be "json" or "slack"`},
					"name":   obj{"type": "string"}, "secret": obj{"type": "string"},
					"events": nullable(obj{"type": "array", "items": obj{"type": "string"}}),
				},
				"additionalProperties": obj{"not": obj{}, "x-reason": "unknown field"},
			}}),
			"down_after_s": obj{"type": []string{"integer", "null"}, "minimum": 0, "x-reason": "must be >= 0"},
		},
		"additionalProperties": obj{"not": obj{}, "x-reason": "unknown field"},
	}
}

// gatewaySchema is the jump host: an IPv4 host, a user, a key (a path
// or PEM text; the nodes' key when absent) and a TCP port.
func gatewaySchema() obj {
	keyReason := "must be an absolute path on the control machine or the PEM text of a private key"
	return obj{"type": []string{"object", "null"}, "x-reason": `want {"host": IP, "user", "key", "port"}`,
		"description": "a jump host every SSH connection to a node goes through, as OpenSSH's ProxyJump",
		"required":    []string{"host"},
		"properties": obj{
			"host": obj{"type": "string", "description": "the gateway's IP as the control machine reaches it",
				"allOf": ipSchema()["allOf"], "x-reason": "missing: the gateway's IP as the control machine reaches it"},
			"user": obj{"type": []string{"string", "null"}, "pattern": `^(|[a-z_][a-z0-9_-]{0,31})$`,
				"description": "who the engine logs in to the gateway as (root when absent)",
				"x-reason":    "not a valid user name (lowercase letters, digits, _ and -)"},
			"key": obj{"type": []string{"string", "null"}, "pattern": `^(|/.*|<redacted>)$|PRIVATE KEY`,
				"description": "the SSH private key for the gateway: a path on the control machine or its PEM text (properties.key when absent)",
				"x-reason":    keyReason},
			"port": obj{"type": []string{"integer", "null"}, "minimum": 0, "maximum": 65535,
				"description": "the gateway's sshd port (22 when absent)", "x-reason": "must be a TCP port, 1 to 65535 (22 when absent)"},
		},
		"additionalProperties": obj{"not": obj{}, "x-reason": "unknown field"},
	}
}

// Config is the JSON Schema of a config for these catalogs, and for BOSH
// releases: configs whose catalog is releases name an uploaded release,
// whose jobs only the engine can check.
func Config(catalogs map[string]*catalog.Catalog, releases string) map[string]any {
	names := make([]string, 0, len(catalogs))
	for n := range catalogs {
		names = append(names, n)
	}
	sort.Strings(names)
	ipList := obj{"type": "array", "uniqueItems": true, "items": ipSchema(), "x-reason": "must be a list of IP strings"}
	var perCatalog []any
	for _, n := range names {
		perCatalog = append(perCatalog, catalogRule(n, catalogs[n]))
	}
	return obj{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         "/deployment-engine/config/schema",
		"title":       "Deployment Engine cluster config",
		"description": "Which components go on which IPs, and the cluster's properties (the manual's config).",
		"type":        "object",
		"x-reason":    `the body must be a JSON object with "components" and "properties"`,
		"required":    []string{"components", "properties"},
		"properties": obj{
			"components": obj{
				"type":                 "object",
				"x-reason":             "must be an object of component name to a list of IPs",
				"allOf":                []any{obj{"minProperties": 1, "x-reason": "no components: place at least one"}},
				"propertyNames":        obj{"pattern": contract.ComponentNamePattern, "x-reason": "not a valid component name (lowercase letters, digits, _ and -, starting with a letter)"},
				"additionalProperties": ipList,
			},
			"properties": propertiesSchema(names, releases),
		},
		"additionalProperties": obj{"not": obj{}, "x-reason": `unknown field: a config has only "components" and "properties"`},
		"allOf":                append(perCatalog, releaseRule(releases)),
	}
}

// propertiesSchema is the schema of a config's properties, whose catalog
// is one of names or releases.
func propertiesSchema(names []string, releases string) obj {
	catalogNames := []any{"", nil, releases}
	for _, n := range names {
		catalogNames = append(catalogNames, n)
	}
	all := strings.Join(append(append([]string{}, names...), releases), ", ")
	str := func(desc string) obj {
		o := obj{"type": []string{"string", "null"}, "x-reason": "must be a string"}
		if desc != "" {
			o["description"] = desc
		}
		return o
	}
	props := obj{
		"domain": obj{"type": "string", "pattern": domainPattern, "maxLength": 253, "x-reason": "not a valid domain name", "description": "the cluster's domain: *.<domain> must resolve to haproxy"},
		"home": obj{"type": "string", "description": "the control machine's IP as the nodes reach it",
			"allOf": ipSchema()["allOf"]},
		"disksize": func() obj {
			s := flexSchema("must be a whole number >= 0 (GB), as a number or a string")
			s["allOf"] = []any{obj{"maximum": maxDiskGB, "x-reason": "larger than any disk (GB)"}}
			return s
		}(),
		"checkdisk": zeroOrOne(),
		"adduser":   zeroOrOne(),
		"user":      str(""),
		"password":  str(""),
		"root":      str("the nodes' root SSH password"),
		"key": obj{"type": []string{"string", "null"}, "pattern": `^(|/.*|<redacted>)$|PRIVATE KEY`,
			"x-reason": "must be an absolute path on the control machine or the PEM text of a private key"},
		"catalog": obj{"type": []string{"string", "null"}, "enum": catalogNames,
			"description": "the catalog: " + all + " (cloudfoundry when absent)",
			"x-reason":    "unknown catalog (there are: " + all + ")"},
		"release": str("the release to install: one the catalog lists, or an uploaded BOSH release (catalog bosh)"),
		"deployment": obj{"type": []string{"string", "null"}, "maxLength": 253, "x-reason": "must be a string",
			"description": "the BOSH deployment's name its jobs see as spec.deployment (a manifest's name; catalog bosh): the release's name when absent"},
		"releases": obj{"type": []string{"array", "null"}, "maxItems": 32, "x-reason": `must be a list of uploaded releases, each "NAME" or "NAME/VERSION"`,
			"items":       obj{"type": "string", "minLength": 1, "maxLength": 256, "x-reason": `must be a list of uploaded releases, each "NAME" or "NAME/VERSION"`},
			"description": "further uploaded BOSH releases whose jobs the config places beside release's (catalog bosh): a job's name says which release it comes from"},
		"jobs": obj{"type": []string{"object", "null"}, "x-reason": "must be an object of job name to its property tree",
			"description": "per BOSH job, its properties (catalog bosh)"},
		"node_jobs": obj{"type": []string{"object", "null"}, "x-reason": "must be an object of node IP to an object of job name to its property tree",
			"description": "per node, per BOSH job, a property tree in place of the job's own in jobs (catalog bosh): a manifest's job with other properties in another instance group",
			"additionalProperties": obj{"type": "object", "x-reason": "must be an object of node IP to an object of job name to its property tree",
				"additionalProperties": obj{"type": "object", "x-reason": "must be an object of node IP to an object of job name to its property tree"}}},
		"global": obj{"type": []string{"object", "null"}, "x-reason": "must be an object: a manifest's global property tree",
			"description": "a BOSH manifest's global properties (catalog bosh): each job reads what its spec declares from its own tree in jobs first, then from this one"},
		"secret_properties": obj{"type": []string{"array", "null"}, "items": obj{"type": "string", "maxLength": 1024}, "maxItems": 10000,
			"x-reason":    `must be a list of places in jobs and global ("jobs.<job>.a.b")`,
			"description": "places in jobs, node_jobs and global whose values are secrets whatever their names (where a manifest's variables went): redacted, kept and sealed"},
		"links": linksSchema(),
		"azs": obj{"type": []string{"object", "null"}, "additionalProperties": obj{"type": []string{"array", "null"}, "items": obj{"type": "string"}, "x-reason": "must be an object of zone name to a list of IPs"},
			"x-reason": "must be an object of zone name to a list of IPs"},
		"persistent_disks": obj{"type": []string{"object", "null"}, "x-reason": `must be an object of node IP to {"size_mb", "device"}`,
			"description": "per node of BOSH jobs, its persistent disk at /var/vcap/store: a directory of its own disk, or device, formatted ext4 when it holds no filesystem and mounted",
			"additionalProperties": obj{"type": "object", "x-reason": `must be an object of node IP to {"size_mb", "device"}`, "additionalProperties": false,
				"properties": obj{"size_mb": obj{"type": "integer", "minimum": 0, "maximum": 1 << 24, "x-reason": "size_mb must be from 0 to 16777216"},
					"device": obj{"type": "string", "pattern": `^/dev/[A-Za-z0-9][A-Za-z0-9._/-]{0,126}$`, "x-reason": "device is not a block device's path (/dev/...)"}}}},
		"heal":    healSchema(),
		"notify":  notifySchema(),
		"update":  updateSchema(),
		"gateway": gatewaySchema(),
	}
	return obj{
		"type":                 "object",
		"x-reason":             "must be an object",
		"properties":           props,
		"additionalProperties": obj{"not": obj{}, "x-reason": "unknown property"},
		"required":             []string{"domain", "home"},
		"allOf": []any{
			obj{"anyOf": []any{
				obj{"required": []string{"root"}, "properties": obj{"root": obj{"type": "string", "minLength": 1}}},
				obj{"required": []string{"key"}, "properties": obj{"key": obj{"type": "string", "minLength": 1}}},
			}, "x-at": "root", "x-reason": "missing: the nodes' root password, or a key property with an SSH private key"},
			// The gateway's key is the nodes' when it gives none.
			obj{"if": obj{"required": []string{"gateway"}, "properties": obj{"gateway": obj{"type": "object",
				"anyOf": []any{obj{"not": obj{"required": []string{"key"}}}, obj{"properties": obj{"key": obj{"enum": []any{"", nil}}}}}}}},
				"then": obj{"required": []string{"key"}, "properties": obj{"key": obj{"type": "string", "minLength": 1}}},
				"x-at": "gateway.key", "x-reason": "missing: the SSH private key for the gateway, or a key property the gateway also accepts"},
			obj{"if": obj{"required": []string{"checkdisk"}, "properties": obj{"checkdisk": isOne()}},
				"then": obj{"required": []string{"disksize"}, "properties": obj{"disksize": obj{"not": obj{"type": "null"}}}},
				"x-at": "disksize", "x-reason": "missing: checkdisk is 1, so give the minimum disk in GB"},
			obj{"if": obj{"required": []string{"adduser"}, "properties": obj{"adduser": isOne()}},
				"then": obj{"required": []string{"user", "password"}, "properties": obj{
					"user":     obj{"type": "string", "pattern": `^[a-z_][a-z0-9_-]{0,31}$`, "not": obj{"const": "root"}, "x-reason": "not a valid user name (lowercase letters, digits, _ and -; not root)"},
					"password": obj{"type": "string", "minLength": 1, "x-reason": "missing: adduser is 1, so give the new user's password"},
				}}},
		},
	}
}

// catalogRule holds a config of catalog n to its components (how many
// instances each, what each requires) and releases.
func catalogRule(n string, c *catalog.Catalog) obj {
	compProps := obj{}
	requires := obj{}
	for _, comp := range c.Order {
		if r := c.Components[comp].Requires; len(r) > 0 {
			requires[comp] = r
		}
		cs := obj{"minItems": 1, "description": c.Components[comp].Role,
			"x-reason": comp + " (" + c.Components[comp].Role + ") needs at least one instance"}
		if c.Components[comp].Instances == catalog.One {
			cs["maxItems"] = 1
			cs["x-reason"] = comp + " (" + c.Components[comp].Role + ") needs exactly one instance"
		}
		compProps[comp] = cs
	}
	release := obj{"enum": []any{"", nil}, "x-reason": "catalog " + n + " has no releases to choose from"}
	if p, ok := c.Properties["release"]; ok {
		values := []any{"", nil}
		for _, v := range p.Values {
			values = append(values, v)
		}
		release = obj{"enum": values, "x-reason": "must be one of " + strings.Join(p.Values, ", ")}
	}
	is := obj{"properties": obj{"catalog": obj{"const": n}}, "required": []string{"catalog"}}
	if n == "cloudfoundry" {
		// The default catalog: also when the config names none.
		is = obj{"anyOf": []any{
			obj{"not": obj{"required": []string{"catalog"}}},
			obj{"properties": obj{"catalog": obj{"enum": []any{n, "", nil}}}},
		}}
	}
	return obj{
		"if": obj{"required": []string{"properties"}, "properties": obj{"properties": is}},
		"then": obj{"properties": obj{
			"components": obj{
				"properties":           compProps,
				"dependentRequired":    requires,
				"additionalProperties": obj{"not": obj{}, "x-reason": "unknown component in catalog " + n + " (it has: " + strings.Join(c.Order, ", ") + ")"},
			},
			"properties": obj{"properties": obj{"release": release,
				"releases": obj{"maxItems": 0, "x-reason": "catalog " + n + " deploys its own components: releases is for catalog bosh"}}},
		}},
	}
}

// releaseRule asks of a BOSH release's config only that it names the
// release: its jobs are checked by the engine.
func releaseRule(releases string) obj {
	return obj{
		"if": obj{"required": []string{"properties"}, "properties": obj{"properties": obj{
			"required": []string{"catalog"}, "properties": obj{"catalog": obj{"const": releases}}}}},
		"then": obj{"properties": obj{"properties": obj{
			"required": []string{"release"},
			"properties": obj{"release": obj{"type": "string", "minLength": 1,
				"x-reason": `missing: name the uploaded release as "NAME" or "NAME/VERSION"`}},
		}}},
	}
}
