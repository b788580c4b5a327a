// Package manifestdeploy turns a BOSH deployment manifest into the
// engine's config on the machines of its cloud config: ops files applied,
// the manifest's variables generated once and kept sealed in the store,
// each instance placed on a machine, and the places its variables went
// marked secret so that no answer shows them.
package manifestdeploy

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/planner/cloudconfig"
	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

// Bounds on a request: it comes from outside.
const (
	maxOps  = 64
	maxVars = 4096
)

// Prior is what earlier deploys of the manifest left: the variables the
// engine generated, as declared then, the ones a person asked to have
// generated anew, and where the instances went.
type Prior struct {
	Vars       manifest.Vars
	Declared   map[string]Declared
	Regenerate []string
	Placement  cloudconfig.Placement
}

// Result is a manifest built for a deploy.
type Result struct {
	// Name is the manifest's name.
	Name   string
	Config contract.Config
	// Placement is each instance group's machines, by index.
	Placement cloudconfig.Placement
	// Kept is every generated variable to keep: those kept before and
	// those generated now. Generated names the new ones.
	Kept      manifest.Vars
	Generated []string
	// Declared is how each kept variable was declared when generated;
	// Regenerated names those generated anew as asked.
	Declared    map[string]Declared
	Regenerated []string
	Warnings    []string
}

// Build builds the manifest of in on cc's machines, keeping what prior
// deploys left; stored is the stored config, which a kept machine must
// still be in. No variable's value is in an error.
func Build(in contract.ManifestDeploy, cc contract.CloudConfig, prior Prior, stored contract.Config) (Result, error) {
	var res Result
	if len(in.Ops) > maxOps {
		return res, fmt.Errorf("%d ops files; at most %d", len(in.Ops), maxOps)
	}
	if len(in.Vars) > maxVars {
		return res, fmt.Errorf("%d variables given; at most %d", len(in.Vars), maxVars)
	}
	ops := make([]manifest.File, len(in.Ops))
	for i, o := range in.Ops {
		ops[i] = manifest.File{Name: fmt.Sprintf("ops[%d]", i), Data: []byte(o)}
	}
	doc, err := manifest.Patch(manifest.File{Name: "manifest", Data: []byte(in.Manifest)}, ops)
	if err != nil {
		return res, err
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return res, fmt.Errorf("a manifest is a YAML map of name, releases, instance_groups, …")
	}
	res.Name, _ = root["name"].(string)
	if res.Name == "" {
		return res, fmt.Errorf("the manifest has no name")
	}
	decl, err := manifest.Variables(doc)
	if err != nil {
		return res, err
	}
	// Kept values first (but those to be generated anew), the given ones
	// over them, then what is still missing generated once.
	drop := regenerated(decl, prior.Regenerate)
	vars := manifest.Vars{}
	res.Kept = manifest.Vars{}
	for k, v := range prior.Vars {
		if !drop[k] {
			vars[k], res.Kept[k] = v, v
		}
	}
	for k, v := range in.Vars {
		vars[k] = wholeNumbers(v)
	}
	if res.Generated, err = manifest.Generate(decl, vars); err != nil {
		return res, fmt.Errorf("generate variables: %w", err)
	}
	for _, n := range res.Generated {
		res.Kept[n] = vars[n]
	}
	res.declare(decl, prior, in.Vars, drop)
	doc, missing, err := manifest.Interpolate(doc, vars)
	if err != nil {
		return res, err
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("variables without a value: %s (declare them under variables to have them generated, or give them with -v or -l)", strings.Join(missing, ", "))
	}
	// The name may be a variable, as in name: ((deployment_name)).
	if res.Name, _ = doc.(map[string]any)["name"].(string); res.Name == "" {
		return res, fmt.Errorf("the manifest's name is empty once interpolated")
	}
	if err := res.place(doc.(map[string]any), cc, prior.Placement, stored); err != nil {
		return res, err
	}
	keys, users, err := checkLogins(cc, res.Placement)
	if err != nil {
		return res, err
	}
	cfg, warnings, err := manifest.ToConfig(doc, manifest.Target{Home: cc.Home, Key: cc.SSH.Key})
	res.Warnings = append(res.Warnings, warnings...)
	if err != nil {
		return res, err
	}
	cfg.Properties.NodeKeys, cfg.Properties.NodeUsers = keys, users
	cfg.Properties.AZs = zonesOf(cc, res.Placement)
	// A machine's persistent disk is the device the cloud config names
	// for it, else a directory of its own disk.
	for ip, d := range cfg.Properties.PersistentDisks {
		d.Device = cc.Disks[ip]
		cfg.Properties.PersistentDisks[ip] = d
	}
	cfg.Properties.SecretProperties = secretPlaces(cfg, secretValues(decl, vars, in.Vars))
	res.Config = cfg
	return res, nil
}

// place puts the instance groups on machines and writes each group's
// machines into it as its static IPs, as the config's conversion reads
// them.
func (res *Result) place(root map[string]any, cc contract.CloudConfig, prev cloudconfig.Placement, stored contract.Config) error {
	list, _ := root["instance_groups"].([]any)
	if list == nil {
		list, _ = root["jobs"].([]any) // v1
	}
	nodes := stored.Nodes()
	var groups []cloudconfig.Group
	byName := map[string]map[string]any{}
	for _, x := range list {
		g, _ := x.(map[string]any)
		name, _ := g["name"].(string)
		if name == "" {
			continue // the conversion names what is wrong with it
		}
		n, ok := g["instances"].(int)
		if !ok || n < 0 || n > 4096 {
			return fmt.Errorf("instance group %s: instances is a whole number from 0 to 4096", name)
		}
		static, err := manifest.StaticIPs(g, "instance group "+name)
		if err != nil {
			return err
		}
		if len(static) > 0 && len(static) != n {
			return fmt.Errorf("instance group %s: %d instances and %d static IPs: give each instance one, or none and the cloud config's machines are picked", name, n, len(static))
		}
		cg := cloudconfig.Group{Name: name, Instances: n, Static: static}
		azs, _ := g["azs"].([]any)
		for _, z := range azs {
			cg.AZs = append(cg.AZs, fmt.Sprint(z))
		}
		groups = append(groups, cg)
		byName[name] = g
	}
	// A machine is kept only while the stored config still has it: one
	// taken out of the config since is free again.
	kept := cloudconfig.Placement{}
	for g, ips := range prev {
		for _, ip := range ips {
			if !slices.Contains(nodes, ip) {
				ip = ""
			}
			kept[g] = append(kept[g], ip)
		}
	}
	var err error
	if res.Placement, err = cloudconfig.Place(cc, groups, kept); err != nil {
		return err
	}
	for _, cg := range groups {
		if len(cg.Static) > 0 {
			continue
		}
		g := byName[cg.Name]
		net := map[string]any{"name": "default"}
		if nets, _ := g["networks"].([]any); len(nets) > 0 {
			if m, ok := nets[0].(map[string]any); ok && m["name"] != nil {
				net["name"] = m["name"]
			}
		}
		ips := make([]any, len(res.Placement[cg.Name]))
		for i, ip := range res.Placement[cg.Name] {
			ips[i] = ip
		}
		net["static_ips"] = ips
		g["networks"] = []any{net}
	}
	return nil
}

// checkLogins refuses a placed machine the engine has no key for. It
// returns every machine of the cloud config with a key of its own (the
// config's node_keys) and every one logged in to as another user than
// root (node_users, who runs the engine's commands through sudo), placed
// or not: a machine the manifest no longer places is still logged in to,
// as before, to remove what it ran. The others log in as root with the
// cloud config's key.
func checkLogins(cc contract.CloudConfig, p cloudconfig.Placement) (keys, users map[string]string, err error) {
	for _, g := range sortedKeys(p) {
		for _, ip := range p[g] {
			if m, _ := cloudconfig.Machine(cc, ip); m.Key == "" {
				return nil, nil, fmt.Errorf("instance group %s: machine %s has no ssh key: give the cloud config's ssh.key, or the machine's own ({ip: %s, key: PATH})", g, ip, ip)
			}
		}
	}
	put := func(m *map[string]string, ip, v string) {
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[ip] = v
	}
	for _, az := range cc.AZs {
		for _, m := range az.Machines {
			if m.Key != "" && m.Key != cc.SSH.Key {
				put(&keys, m.IP, m.Key)
			}
			if u := cmp.Or(m.User, cc.SSH.User); u != "" && u != "root" {
				put(&users, m.IP, u)
			}
		}
	}
	return keys, users, nil
}

// zonesOf is the config's zones: each placed machine in its own.
func zonesOf(cc contract.CloudConfig, p cloudconfig.Placement) map[string][]string {
	out := map[string][]string{}
	for _, ips := range p {
		for _, ip := range ips {
			az := cloudconfig.AZOf(cc, ip)
			if !slices.Contains(out[az], ip) {
				out[az] = append(out[az], ip)
			}
		}
	}
	for _, ips := range out {
		sort.Strings(ips)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
