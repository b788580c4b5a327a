// Package validate names every problem in a cluster config from a client,
// as it decodes it. It never panics and never accepts an invalid config: the
// fuzz target holds both.
package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Catalog is what validation needs from a catalog: its component rules.
type Catalog interface {
	Validate(cfg contract.Config) []contract.Problem
}

// Catalogs finds a catalog by name; ok is false for an unknown name.
type Catalogs func(name string) (Catalog, bool)

var (
	domainRe = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	userRe   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Option tunes validation.
type Option func(*options)

type options struct {
	webhooks contract.WebhookPolicy
}

// Webhooks is the policy webhook URLs are checked against (default: the
// zero policy, no network allowed beyond the defaults).
func Webhooks(p contract.WebhookPolicy) Option {
	return func(o *options) { o.webhooks = p }
}

// Config decodes b and checks it against its catalog. It returns the
// config and every problem found; the config is valid only when no problem
// is returned.
func Config(b []byte, catalogs Catalogs, opts ...Option) (contract.Config, []contract.Problem) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var ps problems
	cfg := decode(b, &ps)
	if len(ps) > 0 && cfg.Components == nil {
		return cfg, ps.sorted()
	}
	checkProperties(cfg.Properties, &ps)
	checkNodeKeys(cfg, &ps)
	checkNodeUsers(cfg, &ps)
	checkWebhooks(cfg.Properties.Notify, o.webhooks, &ps)
	checkComponents(cfg.Components, &ps)
	if cat, ok := catalogs(cfg.CatalogName()); !ok {
		ps.add("properties.catalog", "", "", fmt.Sprintf("unknown catalog %q", contract.Clip(cfg.CatalogName())))
	} else {
		ps = append(ps, cat.Validate(cfg)...)
	}
	return cfg, ps.sorted()
}

type problems []contract.Problem

func (ps *problems) add(path, comp, ip, reason string) {
	*ps = append(*ps, contract.Problem{Path: path, Component: comp, IP: ip, Reason: reason})
}

func (ps problems) sorted() []contract.Problem {
	if len(ps) == 0 {
		return nil
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
	return ps
}

func decode(b []byte, ps *problems) contract.Config {
	var cfg contract.Config
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		ps.add("", "", "", "malformed JSON: "+jsonError(b, err))
		return cfg
	}
	if top == nil {
		ps.add("", "", "", "the body must be a JSON object with \"components\" and \"properties\"")
		return cfg
	}
	for k := range top {
		if k != "components" && k != "properties" {
			ps.add(k, "", "", fmt.Sprintf("unknown field %q: a config has only \"components\" and \"properties\"", contract.Clip(k)))
		}
	}
	cfg.Components = map[string][]string{}
	if raw, ok := top["components"]; !ok || isNull(raw) {
		ps.add("components", "", "", "missing: name each component and the IPs it goes on")
	} else {
		var comps map[string]json.RawMessage
		if err := json.Unmarshal(raw, &comps); err != nil {
			ps.add("components", "", "", "must be an object of component name to a list of IPs")
		}
		for name, raw := range comps {
			var ips []string
			if err := json.Unmarshal(raw, &ips); err != nil {
				ps.add("components."+name, name, "", "must be a list of IP strings")
				continue
			}
			cfg.Components[name] = ips
		}
	}
	if raw, ok := top["properties"]; !ok || isNull(raw) {
		ps.add("properties", "", "", "missing: the config needs its properties (domain, home, root or key, ...)")
	} else {
		decodeProperties(raw, &cfg.Properties, ps)
	}
	return cfg
}

func decodeProperties(raw json.RawMessage, p *contract.Properties, ps *problems) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(raw, &props); err != nil {
		ps.add("properties", "", "", "must be an object")
		return
	}
	strs := map[string]*string{
		"domain": &p.Domain, "home": &p.Home, "user": &p.User, "password": &p.Password,
		"root": &p.Root, "key": &p.Key, "catalog": &p.Catalog, "release": &p.Release, "deployment": &p.Deployment,
	}
	nums := map[string]*contract.Flex{"disksize": &p.Disksize, "checkdisk": &p.Checkdisk, "adduser": &p.Adduser}
	for k, v := range props {
		path := "properties." + k
		if isNull(v) {
			continue
		}
		if dst, ok := strs[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				ps.add(path, "", "", "must be a string")
			}
			continue
		}
		switch k {
		case "jobs":
			if err := json.Unmarshal(v, &p.Jobs); err != nil {
				ps.add(path, "", "", "must be an object of job name to its property tree")
			}
			continue
		case "node_jobs":
			const bad = "must be an object of node IP to an object of job name to its property tree"
			if err := json.Unmarshal(v, &p.NodeJobs); err != nil {
				ps.add(path, "", "", bad)
				continue
			}
			for _, ip := range contract.SortedKeys(p.NodeJobs) {
				if err := contract.CheckNodeIP(ip); err != nil {
					ps.add(path+"."+contract.Clip(ip), "", "", err.Error()+": node_jobs are by node IP")
					continue
				}
				jobs, ok := p.NodeJobs[ip].(map[string]any)
				if !ok {
					ps.add(path+"."+ip, "", ip, bad)
					continue
				}
				for _, job := range contract.SortedKeys(jobs) {
					if _, ok := jobs[job].(map[string]any); !ok {
						ps.add(path+"."+ip+"."+contract.Clip(job), job, ip, bad)
					}
				}
			}
			continue
		case "global":
			if err := json.Unmarshal(v, &p.Global); err != nil {
				ps.add(path, "", "", "must be an object: a manifest's global property tree")
			}
			continue
		case "releases":
			const bad = `must be a list of uploaded releases, each "NAME" or "NAME/VERSION"`
			if err := json.Unmarshal(v, &p.Releases); err != nil || len(p.Releases) > 32 {
				ps.add(path, "", "", bad)
				continue
			}
			for i, r := range p.Releases {
				if r == "" || len(r) > 256 {
					ps.add(fmt.Sprintf("%s[%d]", path, i), "", "", bad)
				}
			}
			continue
		case "secret_properties":
			if err := json.Unmarshal(v, &p.SecretProperties); err != nil {
				ps.add(path, "", "", `must be a list of places in jobs and global ("jobs.<job>.a.b")`)
			}
			continue
		case "links":
			decodeLinks(v, p, ps)
			continue
		case "azs":
			if err := json.Unmarshal(v, &p.AZs); err != nil {
				ps.add(path, "", "", "must be an object of zone name to a list of IPs")
			}
			continue
		case "node_keys":
			if err := json.Unmarshal(v, &p.NodeKeys); err != nil {
				ps.add(path, "", "", `must be an object of node IP to the path of its SSH key on the control machine`)
			}
			continue
		case "node_users":
			if err := json.Unmarshal(v, &p.NodeUsers); err != nil {
				ps.add(path, "", "", `must be an object of node IP to the user the engine logs in as there (sudo without a password)`)
			}
			continue
		case "persistent_disks":
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p.PersistentDisks); err != nil {
				ps.add(path, "", "", `must be an object of node IP to {"size_mb", "device"}`)
			}
			for _, ip := range contract.SortedKeys(p.PersistentDisks) {
				if err := contract.CheckNodeIP(ip); err != nil {
					ps.add(path+"."+contract.Clip(ip), "", "", err.Error()+": persistent_disks are by node IP")
				} else if why := p.PersistentDisks[ip].Problem(); why != "" {
					ps.add(path+"."+ip, "", ip, why)
				}
			}
			continue
		case "update":
			var u contract.UpdateConfig
			if err := json.Unmarshal(v, &u); err != nil {
				ps.add(path, "", "", `want {"canaries", "max_in_flight", "canary_watch_time", "update_watch_time", "auto_revert", "components": {"<name>": {...}}}: `+err.Error())
				continue
			}
			for _, pr := range u.Problems(path) {
				ps.add(pr.Path, "", "", pr.Reason)
			}
			for name, cu := range u.Components {
				for _, pr := range cu.Problems(path + ".components." + name) {
					ps.add(pr.Path, name, "", pr.Reason)
				}
			}
			p.Update = &u
			continue
		}
		if dst, ok := nums[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				ps.add(path, "", "", "must be a whole number >= 0, as a number or a string")
			}
			continue
		}
		if k == "heal" || k == "notify" || k == "gateway" {
			decodeObjectProperty(k, v, p, ps)
			continue
		}
		ps.add(path, "", "", fmt.Sprintf("unknown property %q", contract.Clip(k)))
	}
}

// checkWebhooks refuses a URL that is not http(s) or names an address
// webhooks may not reach; a host name's addresses are checked when the
// notifier dials them.
func checkWebhooks(n *contract.NotifyConfig, policy contract.WebhookPolicy, ps *problems) {
	if n == nil {
		return
	}
	for i, w := range n.Webhooks {
		if w.URL == contract.Redacted {
			continue
		}
		if err := policy.CheckURL(w.URL); err != nil {
			reason, _ := strings.CutPrefix(err.Error(), contract.ErrWebhookAddress.Error()+": ")
			ps.add(fmt.Sprintf("properties.notify.webhooks[%d].url", i), "", "", reason)
		}
	}
}

func checkProperties(p contract.Properties, ps *problems) {
	if p.Domain == "" {
		ps.add("properties.domain", "", "", "missing: the cluster's domain, e.g. cf.local")
	} else if len(p.Domain) > 253 || !domainRe.MatchString(p.Domain) {
		ps.add("properties.domain", "", "", "not a valid domain name")
	}
	if p.Home == "" {
		ps.add("properties.home", "", "", "missing: the control machine's IP as the nodes reach it")
	} else if reason := badIP(p.Home); reason != "" {
		ps.add("properties.home", "", p.Home, reason)
	}
	if p.Root == "" && p.Key == "" && len(p.NodeKeys) == 0 {
		ps.add("properties.root", "", "", "missing: the nodes' root password, or a key property with an SSH private key")
	}
	for name, f := range map[string]contract.Flex{"checkdisk": p.Checkdisk, "adduser": p.Adduser} {
		if f.Set && f.N != 0 && f.N != 1 {
			ps.add("properties."+name, "", "", "must be 0 or 1")
		}
	}
	if p.Checkdisk.N == 1 && !p.Disksize.Set {
		ps.add("properties.disksize", "", "", "missing: checkdisk is 1, so give the minimum disk in GB")
	}
	if p.Disksize.N > 1<<20 {
		ps.add("properties.disksize", "", "", "larger than any disk (GB)")
	}
	if p.Adduser.N == 1 {
		if p.User == "" {
			ps.add("properties.user", "", "", "missing: adduser is 1, so name the user to create")
		} else if !userRe.MatchString(p.User) || p.User == "root" {
			ps.add("properties.user", "", "", "not a valid user name (lowercase letters, digits, _ and -; not root)")
		}
		if p.Password == "" {
			ps.add("properties.password", "", "", "missing: adduser is 1, so give the new user's password")
		}
	}
	if badKey(p.Key) {
		ps.add("properties.key", "", "", "must be an absolute path on the control machine or the PEM text of a private key")
	}
	checkGateway(p, ps)
}

// maxNodeKeys bounds properties.node_keys.
const maxNodeKeys = 4096

// checkNodeKeys checks the nodes' own keys: each by IP (a node the
// config no longer has keeps its key, to be logged in to for a removal),
// a path on the control machine (the PEM text of a key would be shown as
// it is: only properties.key is kept secret).
func checkNodeKeys(cfg contract.Config, ps *problems) {
	nodes := cfg.Nodes()
	if p := cfg.Properties; p.Root == "" && p.Key == "" && len(p.NodeKeys) > 0 {
		for _, ip := range nodes {
			if _, ok := p.NodeKeys[ip]; !ok {
				ps.add("properties.root", "", ip, "missing: "+ip+" has no key of its own (node_keys): give the nodes' root password, or a key property")
				break
			}
		}
	}
	perNode(ps, "node_keys", "keys", cfg.Properties.NodeKeys, func(k string) string {
		if !strings.HasPrefix(k, "/") || strings.Contains(k, "PRIVATE KEY") || len(k) > 4096 {
			return "must be the absolute path of a key file on the control machine (a key's text goes in properties.key alone, which is kept secret)"
		}
		return ""
	})
}

// checkNodeUsers checks the users some nodes are logged in to as: each
// by IP, a user name.
func checkNodeUsers(cfg contract.Config, ps *problems) {
	perNode(ps, "node_users", "users", cfg.Properties.NodeUsers, func(u string) string {
		if !userRe.MatchString(u) {
			return "not a user name (lowercase letters, digits, _ and -, at most 32)"
		}
		return ""
	})
}

// perNode checks properties.<name>, a value by node IP: at most
// maxNodeKeys of them (what: their noun), each keyed by an IP, each value
// one bad passes (it says what is wrong, "" for nothing).
func perNode(ps *problems, name, what string, m map[string]string, bad func(string) string) {
	if len(m) > maxNodeKeys {
		ps.add("properties."+name, "", "", fmt.Sprintf("%d %s; at most %d", len(m), what, maxNodeKeys))
		return
	}
	for _, ip := range contract.SortedKeys(m) {
		path := "properties." + name + "." + contract.Clip(ip)
		if contract.CheckNodeIP(ip) != nil {
			ps.add(path, "", "", name+" are by node IP")
		} else if why := bad(m[ip]); why != "" {
			ps.add(path, "", ip, why)
		}
	}
}

// badKey tells whether a key property is neither empty, nor the redaction
// marker, nor a path or PEM text.
func badKey(k string) bool {
	return k != "" && k != contract.Redacted && !strings.Contains(k, "PRIVATE KEY") && !strings.HasPrefix(k, "/")
}

// checkGateway checks the jump host: an IPv4 address, a user name, a key
// (its own, else the nodes' key) and a TCP port.
func checkGateway(p contract.Properties, ps *problems) {
	g := p.Gateway
	if g == nil {
		return
	}
	const path = "properties.gateway"
	if g.Host == "" {
		ps.add(path+".host", "", "", "missing: the gateway's IP as the control machine reaches it")
	} else if reason := badIP(g.Host); reason != "" {
		ps.add(path+".host", "", g.Host, reason)
	}
	if g.User != "" && !userRe.MatchString(g.User) {
		ps.add(path+".user", "", "", "not a valid user name (lowercase letters, digits, _ and -)")
	}
	switch {
	case g.Key == "" && p.Key == "":
		ps.add(path+".key", "", "", "missing: the SSH private key for the gateway (a path on the control machine or its PEM text), or a key property the gateway also accepts")
	case badKey(g.Key):
		ps.add(path+".key", "", "", "must be an absolute path on the control machine or the PEM text of a private key")
	}
	if g.Port < 0 || g.Port > 65535 {
		ps.add(path+".port", "", "", "must be a TCP port, 1 to 65535 (22 when absent)")
	}
}

func checkComponents(comps map[string][]string, ps *problems) {
	for name, ips := range comps {
		if !contract.ValidComponentName(name) {
			ps.add("components."+name, name, "", "not a valid component name (lowercase letters, digits, _ and -, starting with a letter)")
			continue
		}
		seen := map[string]bool{}
		for i, ip := range ips {
			path := fmt.Sprintf("components.%s[%d]", name, i)
			if reason := badIP(ip); reason != "" {
				ps.add(path, name, ip, reason)
				continue
			}
			if seen[ip] {
				ps.add(path, name, ip, "listed twice for this component")
			}
			seen[ip] = true
		}
	}
}

// badIP says what is wrong with ip as a node's address, or "".
func badIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil || !a.Is4():
		return "not an IPv4 address"
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "not a node's address"
	}
	return ""
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonError says where JSON went wrong, by line and column.
func jsonError(b []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		return fmt.Sprintf("expected %s at %q, got a JSON %s", te.Type, contract.Clip(te.Field), te.Value)
	}
	if off < 0 {
		return err.Error()
	}
	line, col := 1, 1
	for i := int64(0); i < off-1 && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%s (line %d, column %d)", err.Error(), line, col)
}

// decodeObjectProperty reads the heal, notify and gateway properties.
func decodeObjectProperty(k string, v json.RawMessage, p *contract.Properties, ps *problems) {
	path := "properties." + k
	switch k {
	case "heal":
		var h contract.HealConfig
		if err := json.Unmarshal(v, &h); err != nil {
			ps.add(path, "", "", err.Error())
			return
		}
		p.Heal = &h
	case "gateway":
		var g contract.Gateway
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			ps.add(path, "", "", `want {"host": IP, "user", "key", "port"}: `+err.Error())
			return
		}
		p.Gateway = &g
	case "notify":
		var n contract.NotifyConfig
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&n); err != nil {
			ps.add(path, "", "", `want {"webhooks": [{"url", "secret", "format", "events", "name"}], "down_after_s"}: `+err.Error())
			return
		}
		for i, w := range n.Webhooks {
			wp := fmt.Sprintf("%s.webhooks[%d]", path, i)
			if w.Format != "" && w.Format != "json" && w.Format != "slack" {
				ps.add(wp+".format", "", "", `must be "json" or "slack"`)
			}
		}
		if n.DownAfterS < 0 {
			ps.add(path+".down_after_s", "", "", "must be >= 0")
		}
		p.Notify = &n
	}
}
