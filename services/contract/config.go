// Package contract holds every message type that crosses the bus. Bodies are
// JSON with a "v" field where they travel on their own; each type's doc comment
// carries an example.
package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Redacted replaces every secret in a config the engine hands out. Posting it
// back in a secret field keeps the stored secret.
const Redacted = "<redacted>"

// Config is the cluster description of SPEC, as posted to /deployment-engine/config.
//
//	{"components": {"haproxy": ["10.0.0.1"], "nats": ["10.0.0.2", "10.0.0.3"]},
//	 "properties": {"domain": "cf.local", "disksize": 15, "checkdisk": 1, "adduser": 1,
//	                "user": "vcap", "password": "pw", "root": "123456", "home": "10.0.0.100"}}
type Config struct {
	Components map[string][]string `json:"components"`
	Properties Properties          `json:"properties"`
}

// Properties are the config's cluster-wide settings. Numbers arrive as
// numbers or strings; Flex accepts both.
type Properties struct {
	Domain    string `json:"domain"`
	Home      string `json:"home"`
	Disksize  Flex   `json:"disksize"`
	Checkdisk Flex   `json:"checkdisk"`
	Adduser   Flex   `json:"adduser"`
	User      string `json:"user"`
	Password  string `json:"password,omitempty"`
	Root      string `json:"root,omitempty"`
	// Key is a path on the control machine or the PEM text of an SSH private
	// key for root; it may replace Root.
	Key string `json:"key,omitempty"`
	// NodeKeys give some nodes a key of their own, still for root:
	// {"IP": "/path/on/the/control/machine"} (a cloud config machine's
	// key); the engine offers it to that node in place of Key.
	NodeKeys map[string]string `json:"node_keys,omitempty"`
	// NodeUsers log in to some nodes as another user than root, who runs
	// every command of the engine through sudo, which must not ask for a
	// password (NOPASSWD): {"IP": "admin"} (a cloud config machine's
	// user, or its ssh.user).
	NodeUsers map[string]string `json:"node_users,omitempty"`
	Catalog   string            `json:"catalog,omitempty"`
	Release   string            `json:"release,omitempty"`
	// Releases are further uploaded BOSH releases ("NAME[/VERSION]") whose
	// jobs the config places beside Release's ("catalog": "bosh").
	Releases []string `json:"releases,omitempty"`
	// Deployment is the BOSH deployment's name its jobs see as
	// spec.deployment (a manifest's name); Release's name when empty.
	Deployment string `json:"deployment,omitempty"`
	// Heal tunes auto-heal (on when absent); Notify names webhooks.
	Heal   *HealConfig   `json:"heal,omitempty"`
	Notify *NotifyConfig `json:"notify,omitempty"`
	// Jobs holds each BOSH job's property tree ("catalog": "bosh"):
	// {"<job>": {"a": {"b": 1}}}.
	Jobs map[string]any `json:"jobs,omitempty"`
	// NodeJobs gives a job other properties on some nodes than Jobs
	// gives it, whole trees in place of its own: {"<IP>": {"<job>":
	// {...}}} (a manifest's job with other properties in another
	// instance group).
	NodeJobs map[string]any `json:"node_jobs,omitempty"`
	// Global is a BOSH manifest's global property tree ("catalog":
	// "bosh"), as v1 manifests have it: each job reads the properties its
	// spec declares from its own tree in Jobs first, then from this one.
	Global map[string]any `json:"global,omitempty"`
	// Links wires each BOSH job's links ("catalog": "bosh"): explicit
	// providers, aliases, links not consumed; see JobLinks.
	Links map[string]JobLinks `json:"links,omitempty"`
	// AZs puts nodes in availability zones for BOSH jobs: {"z2": ["IP"]};
	// a node in none is in z1.
	AZs map[string][]string `json:"azs,omitempty"`
	// PersistentDisks gives nodes of BOSH jobs a persistent disk at
	// /var/vcap/store: {"IP": {"size_mb": 1024, "device": "/dev/vdb"}}.
	PersistentDisks map[string]PersistentDisk `json:"persistent_disks,omitempty"`
	// Update says how changes to running instances roll out.
	Update *UpdateConfig `json:"update,omitempty"`
	// Gateway is the jump host every SSH connection to a node goes
	// through; nil connects to the nodes directly.
	Gateway *Gateway `json:"gateway,omitempty"`
	// SecretProperties names places in jobs, node_jobs and global
	// ("jobs.<job>.a.b", "node_jobs.<IP>.<job>.a.b", "global.a.b") whose values are secrets whatever their names: where
	// a manifest's variables went. They are redacted, kept and sealed as
	// properties named like secrets are.
	SecretProperties []string `json:"secret_properties,omitempty"`
}

// Flex is a non-negative integer that may be written as a JSON number or a
// string holding one ("15"). Set tells whether the field was present.
type Flex struct {
	N   int
	Set bool
}

// F returns a set Flex.
func F(n int) Flex { return Flex{N: n, Set: true} }

func (f Flex) MarshalJSON() ([]byte, error) {
	if !f.Set {
		return []byte("null"), nil
	}
	return []byte(strconv.Itoa(f.N)), nil
}

func (f *Flex) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = Flex{}
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		// A whole number written as 15.0 is still a whole number.
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fl != float64(int(fl)) {
			return fmt.Errorf("want a whole number, got %s", b)
		}
		n = int(fl)
	}
	if n < 0 {
		return fmt.Errorf("want a number >= 0, got %d", n)
	}
	*f = Flex{N: n, Set: true}
	return nil
}

// Secrets lists pointers to every secret field of p, by JSON path below
// properties. "gateway.key" is always there: without a gateway it points
// at an empty string of its own, so that callers comparing two configs'
// secrets by name never meet a missing one.
func (p *Properties) Secrets() map[string]*string {
	gwKey := new(string)
	if p.Gateway != nil {
		gwKey = &p.Gateway.Key
	}
	return map[string]*string{"password": &p.Password, "root": &p.Root, "key": &p.Key, "gateway.key": gwKey}
}

// Redact returns a copy of c with every non-empty secret replaced by Redacted.
func (c Config) Redact() Config {
	out := c.Clone()
	for _, s := range out.Properties.Secrets() {
		if *s != "" {
			*s = Redacted
		}
	}
	if n := out.Properties.Notify; n != nil {
		for i := range n.Webhooks {
			for _, s := range n.Webhooks[i].secrets() {
				if *s != "" {
					*s = Redacted
				}
			}
		}
	}
	for name, tree := range out.Properties.trees() {
		if *tree != nil {
			*tree = redactTree(*tree, false, name, out.Properties.secretAt).(map[string]any)
		}
	}
	return out
}

// trees are the BOSH property trees, by the name their places start with.
func (p *Properties) trees() map[string]*map[string]any {
	return map[string]*map[string]any{"jobs": &p.Jobs, "node_jobs": &p.NodeJobs, "global": &p.Global}
}

// SecretName tells whether a BOSH job property's key names a secret
// (password, secret, token, private_key, passphrase), as redaction reads it.
func SecretName(k string) bool { return secretName(k) }

// secretName tells whether a BOSH job property holds a secret by its name
// (nats.password, uaa.clients.x.secret, ssl.private_key, ...).
func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "secret", "token", "private_key", "passphrase"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// secretAt tells whether the property tree's value at path (see
// SecretProperties) is marked a secret.
func (p *Properties) secretAt(path string) bool {
	return slices.Contains(p.SecretProperties, path)
}

// redactTree copies a property tree with every non-empty value under a
// secret name, or at a place marked a secret, replaced by Redacted.
func redactTree(v any, secret bool, path string, marked func(string) bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			at := path + "." + k
			out[k] = redactTree(x, secret || secretName(k) || marked(at), at, marked)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = redactTree(x, secret, path, marked)
		}
		return out
	}
	if secret && v != nil && v != "" {
		return Redacted
	}
	return v
}

// MapSecrets returns a copy of c with f applied to each of its secret
// strings that is not empty: the properties' secrets (password, root,
// key, the gateway's key), each webhook's, and every string of a BOSH job
// property under a secret name (what Redact hides). Sealing at rest and opening use it, so that
// no secret source is left out of either.
func (c Config) MapSecrets(f func(string) (string, error)) (Config, error) {
	out := c.Clone()
	var err error
	apply := func(s *string) {
		if err == nil && *s != "" {
			*s, err = f(*s)
		}
	}
	for _, s := range out.Properties.Secrets() {
		apply(s)
	}
	if n := out.Properties.Notify; n != nil {
		for i := range n.Webhooks {
			for _, s := range n.Webhooks[i].secrets() {
				apply(s)
			}
		}
	}
	for name, tree := range out.Properties.trees() {
		if *tree != nil {
			*tree = mapTree(*tree, false, name, out.Properties.secretAt, func(s string) string {
				apply(&s)
				return s
			}).(map[string]any)
		}
	}
	return out, err
}

// mapTree copies a property tree with f applied to every string under a
// secret name or at a place marked a secret.
func mapTree(v any, secret bool, path string, marked func(string) bool, f func(string) string) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			at := path + "." + k
			out[k] = mapTree(x, secret || secretName(k) || marked(at), at, marked, f)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = mapTree(x, secret, path, marked, f)
		}
		return out
	case string:
		if secret {
			return f(t)
		}
	}
	return v
}

// keepTree puts back, wherever tree holds the redaction marker, the value
// at the same place in stored.
func keepTree(tree, stored any) any {
	switch t := tree.(type) {
	case map[string]any:
		old, _ := stored.(map[string]any)
		for k, x := range t {
			t[k] = keepTree(x, old[k])
		}
		return t
	case []any:
		old, _ := stored.([]any)
		for i, x := range t {
			var o any
			if i < len(old) {
				o = old[i]
			}
			t[i] = keepTree(x, o)
		}
		return t
	case string:
		if t == Redacted {
			return stored
		}
	}
	return tree
}

// secrets are a webhook's secret fields: its signing secret, and its URL
// when it is a Slack-style one (the URL is the credential there).
func (w *Webhook) secrets() []*string {
	if w.Format == "slack" {
		return []*string{&w.Secret, &w.URL}
	}
	return []*string{&w.Secret}
}

// KeepSecrets replaces every secret of c that holds the redaction marker
// with the same secret from stored.
func (c *Config) KeepSecrets(stored Config) {
	old := stored.Properties.Secrets()
	for name, s := range c.Properties.Secrets() {
		if *s == Redacted {
			*s = *old[name]
		}
	}
	storedTrees := stored.Properties.trees()
	for name, tree := range c.Properties.trees() {
		if *tree != nil {
			var old any
			if prev := *storedTrees[name]; prev != nil {
				old = prev
			}
			*tree = keepTree(*tree, old).(map[string]any)
		}
	}
	// A webhook's secrets are kept from the stored webhook at the same
	// position.
	if n := c.Properties.Notify; n != nil {
		for i := range n.Webhooks {
			var prev []*string
			if o := stored.Properties.Notify; o != nil && i < len(o.Webhooks) {
				prev = o.Webhooks[i].secrets()
			}
			for j, s := range n.Webhooks[i].secrets() {
				if *s == Redacted {
					*s = ""
					if j < len(prev) {
						*s = *prev[j]
					}
				}
			}
		}
	}
}

// Clone returns a deep copy of c.
func (c Config) Clone() Config {
	out := c
	out.Components = make(map[string][]string, len(c.Components))
	for k, v := range c.Components {
		out.Components[k] = append([]string(nil), v...)
	}
	out.Properties.SecretProperties = slices.Clone(c.Properties.SecretProperties)
	out.Properties.Links = cloneLinks(c.Properties.Links)
	if g := c.Properties.Gateway; g != nil {
		gc := *g
		out.Properties.Gateway = &gc
	}
	if h := c.Properties.Heal; h != nil {
		hc := *h
		hc.Off = append([]string(nil), h.Off...)
		out.Properties.Heal = &hc
	}
	if n := c.Properties.Notify; n != nil {
		nc := *n
		nc.Webhooks = make([]Webhook, len(n.Webhooks))
		for i, w := range n.Webhooks {
			w.Events = append([]string(nil), w.Events...)
			nc.Webhooks[i] = w
		}
		out.Properties.Notify = &nc
	}
	return out
}

// Nodes returns every distinct IP of the config, in a stable order: by
// component name, then position.
// InstancesOf is the nodes of component comp that ip names: all of them
// for "0.0.0.0", else ip alone; an error names a component the config
// lacks, or a node comp does not run on.
func (c Config) InstancesOf(comp, ip string) ([]string, error) {
	ips, ok := c.Components[comp]
	switch {
	case !ok:
		return nil, fmt.Errorf("the config has no component %q", Clip(comp))
	case ip == "0.0.0.0":
		return ips, nil
	case !slices.Contains(ips, ip):
		return nil, fmt.Errorf("component %s does not run on %s (it runs on %s)", comp, Clip(ip), strings.Join(ips, ", "))
	}
	return []string{ip}, nil
}

func (c Config) Nodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, comp := range SortedKeys(c.Components) {
		for _, ip := range c.Components[comp] {
			if !seen[ip] {
				seen[ip] = true
				out = append(out, ip)
			}
		}
	}
	return out
}

// CatalogName is the catalog the config names, cloudfoundry by default.
func (c Config) CatalogName() string {
	if c.Properties.Catalog == "" {
		return "cloudfoundry"
	}
	return c.Properties.Catalog
}

// ComponentNamePattern is the shape of a component's name (a BOSH job's
// name on the release path): lowercase letters, digits, '_' and '-'. A
// name travels as a NATS token, a file and monit check name and a log
// name: none of them may hold a dot, a slash, a space or a wildcard, and
// a leading letter keeps it from reading as a shell option.
const ComponentNamePattern = `^[a-z][a-z0-9_-]{0,63}$`

var componentNameRe = lazyRegexp(ComponentNamePattern)

// ValidComponentName tells whether name may name a component.
func ValidComponentName(name string) bool { return componentNameRe().MatchString(name) }

// PersistentDisk is a node's persistent disk, mounted at /var/vcap/store
// as BOSH mounts an instance's: without a device, a directory of the
// node's own disk; with one, that block device, formatted ext4 the first
// time (when it holds no filesystem) and mounted there. Either way it is
// kept across updates and re-deploys. SizeMB is the manifest's
// persistent_disk, which jobs read in BOSH_JOB_STATE.
type PersistentDisk struct {
	SizeMB int    `json:"size_mb,omitempty"`
	Device string `json:"device,omitempty"`
}

// deviceRe is the shape of a block device's path a config may name.
var deviceRe = lazyRegexp(`^/dev/[A-Za-z0-9][A-Za-z0-9._/-]{0,126}$`)

// Problem says what is wrong with the disk, "" when nothing is.
func (d PersistentDisk) Problem() string {
	switch {
	case d.SizeMB < 0 || d.SizeMB > 1<<24:
		return "size_mb must be from 0 to 16777216"
	case d.Device != "" && (!deviceRe().MatchString(d.Device) || strings.Contains(d.Device, "..")):
		return fmt.Sprintf("device %q is not a block device's path (/dev/...)", Clip(d.Device))
	}
	return ""
}

// lazyRegexp compiles expr when it is first used: a name's pattern with a
// bounded repetition ({0,127}) compiles to thousands of allocations, which
// every program that imports this package — the node agent, started on
// every node of a first deploy, among them — would pay at its start.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
