package manifest

import (
	"encoding/binary"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/planner/manifest/patch"
	"github.com/deployment-engine/engine/services/contract"
)

// Target is what a manifest does not say and the engine needs: where the
// engine is as the machines see it, and how it logs in to them.
type Target struct {
	Home, Domain, User string
	Root, Key          string // root's password, or a key (a path or PEM)
}

// maxStaticIPs bounds what one range of static IPs may expand to.
const maxStaticIPs = 4096

// ToConfig turns an interpolated manifest, in BOSH's v2 schema
// (instance_groups) or v1 (jobs with templates, nise_bosh's), into the
// engine's config for the bosh catalog: the one release its jobs come
// from, each job a component on the static IPs of its instance groups,
// each job's properties, the zones and the update block. What the engine
// does not do yet is an error when it would change what runs (addons,
// several releases, instances without a machine) and a warning when it
// would not (stemcells, persistent disks, errands). A job's consumes and
// provides become the config's links.
func ToConfig(doc any, t Target) (contract.Config, []string, error) {
	cfg := contract.Config{Components: map[string][]string{}}
	root, ok := doc.(map[string]any)
	if !ok {
		return cfg, nil, fmt.Errorf("a manifest is a YAML map, found %s", patch.Kind(doc))
	}
	if refs := unresolved(root); len(refs) > 0 {
		return cfg, nil, fmt.Errorf("variables without a value: %s (give them with -v, -l or --vars-store)", strings.Join(refs, ", "))
	}
	name, _ := root["name"].(string)
	c := converter{cfg: &cfg, name: name, jobProps: map[string]any{}, jobGroup: map[string]string{}, ipGroup: map[string]string{}, linksGroup: map[string]string{}}
	c.cfg.Properties = contract.Properties{Catalog: "bosh", Home: t.Home, Domain: t.Domain, User: t.User, Root: t.Root, Key: t.Key}
	if c.cfg.Properties.Domain == "" {
		c.cfg.Properties.Domain = name
	}
	c.cfg.Properties.Deployment = name // spec.deployment, as BOSH gives it
	if err := c.top(root); err != nil {
		return cfg, c.warn, err
	}
	var groups []any
	v1 := false
	switch {
	case root["instance_groups"] != nil:
		groups, ok = root["instance_groups"].([]any)
	case root["jobs"] != nil:
		groups, ok = root["jobs"].([]any)
		v1 = true
	default:
		return cfg, c.warn, fmt.Errorf("the manifest has neither instance_groups (v2) nor jobs (v1)")
	}
	if !ok {
		return cfg, c.warn, fmt.Errorf("instance_groups (or v1's jobs) is a list")
	}
	global, _ := root["properties"].(map[string]any)
	if v1 && len(global) > 0 {
		c.cfg.Properties.Global = global
	} else if len(global) > 0 {
		c.warnf("properties at the top of a v2 manifest are not read: give them to each job")
	}
	addons, err := readAddons(root)
	if err != nil {
		return cfg, c.warn, err
	}
	if v1 && len(addons) > 0 {
		return cfg, c.warn, fmt.Errorf("addons go with a v2 manifest's instance_groups")
	}
	osOf := stemcellOS(root)
	for i, g := range groups {
		gm, ok := g.(map[string]any)
		if !ok {
			return cfg, c.warn, fmt.Errorf("instance group %d is %s, not a map", i, patch.Kind(g))
		}
		if gm, err = withAddons(name, gm, addons, osOf); err != nil {
			return cfg, c.warn, err
		}
		if err := c.group(gm, v1); err != nil {
			return cfg, c.warn, err
		}
	}
	if err := c.release(root); err != nil {
		return cfg, c.warn, err
	}
	if len(c.jobProps) > 0 {
		c.cfg.Properties.Jobs = c.jobProps
	}
	for _, ips := range c.cfg.Properties.AZs {
		sort.Strings(ips)
	}
	return cfg, c.warn, nil
}

type converter struct {
	name     string // the manifest's
	cfg      *contract.Config
	warn     []string
	jobProps map[string]any    // job → its properties
	jobGroup map[string]string // job → the first group that has it
	ipGroup  map[string]string // static IP → its group
	releases map[string]bool   // the releases jobs come from
	// linksGroup maps a job to the first group that has it, where its
	// consumes and provides were read.
	linksGroup map[string]string
}

func (c *converter) warnf(format string, a ...any) {
	c.warn = append(c.warn, fmt.Sprintf(format, a...))
}

// top reads the manifest's keys beside the instance groups.
func (c *converter) top(root map[string]any) error {
	known := map[string]bool{"name": true, "releases": true, "release": true, "stemcells": true, "update": true,
		"instance_groups": true, "jobs": true, "properties": true, "variables": true, "director_uuid": true,
		"networks": true, "resource_pools": true, "compilation": true, "addons": true}
	var unknown []string
	for k := range root {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		c.warnf("%s is not read", k)
	}
	if sc, ok := root["stemcells"].([]any); ok && len(sc) > 0 {
		c.warnf("stemcells are not installed: each machine's own OS stands in for them")
	}
	if u, ok := root["update"].(map[string]any); ok {
		s, err := updateSettings(u, "update")
		if err != nil {
			return err
		}
		c.cfg.Properties.Update = &contract.UpdateConfig{UpdateSettings: s}
	}
	return nil
}

// group reads one instance group (v1: one job).
func (c *converter) group(g map[string]any, v1 bool) error {
	name, _ := g["name"].(string)
	if name == "" {
		return fmt.Errorf("an instance group without a name")
	}
	where := "instance group " + name
	// An errand group's jobs are placed as any group's: a job with
	// bin/run is an errand, never started, run by errand run.
	if lc, _ := g["lifecycle"].(string); lc != "" && lc != "service" && lc != "errand" {
		return fmt.Errorf("%s: lifecycle is service or errand", where)
	}
	instances, ok := g["instances"].(int)
	if !ok || instances < 0 {
		return fmt.Errorf("%s: instances is a whole number >= 0", where)
	}
	ips, err := staticIPs(g, where)
	if err != nil {
		return err
	}
	if len(ips) != instances {
		return fmt.Errorf("%s: %d instances and %d static IPs; give each instance its machine as a static IP of its network, or deploy it with manifest deploy, which picks machines from the cloud config", where, instances, len(ips))
	}
	for _, ip := range ips {
		if other, dup := c.ipGroup[ip]; dup {
			return fmt.Errorf("%s: %s is a static IP of %s too", where, ip, other)
		}
		c.ipGroup[ip] = name
	}
	if azs, _ := g["azs"].([]any); len(azs) > 0 && len(ips) > 0 {
		if c.cfg.Properties.AZs == nil {
			c.cfg.Properties.AZs = map[string][]string{}
		}
		for i, ip := range ips { // BOSH spreads instances over the zones in turn
			az := fmt.Sprint(azs[i%len(azs)])
			c.cfg.Properties.AZs[az] = append(c.cfg.Properties.AZs[az], ip)
		}
	}
	if err := c.persistentDisk(g, ips, where); err != nil {
		return err
	}
	var upd *contract.UpdateSettings
	if u, ok := g["update"].(map[string]any); ok {
		s, err := updateSettings(u, where+": update")
		if err != nil {
			return err
		}
		upd = &s
	}
	jobs, groupProps, err := c.jobsOf(g, v1, where)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := c.job(j, ips, groupProps, upd, name); err != nil {
			return err
		}
	}
	return nil
}

// jobRef is one job of a group as the manifest gives it.
type jobRef struct {
	name, release string
	props         map[string]any
	links         *contract.JobLinks // consumes and provides, or nil
}

// jobsOf lists a group's jobs (v2's jobs, v1's templates) and the
// properties the group gives all of them.
func (c *converter) jobsOf(g map[string]any, v1 bool, where string) ([]jobRef, map[string]any, error) {
	key := "jobs"
	groupProps, _ := g["properties"].(map[string]any)
	if v1 {
		key = "templates" // the manifest's global properties go to properties.global
	}
	list, ok := g[key].([]any)
	if v1 && !ok && g["template"] != nil {
		// v1's older form: template, a name or a list of names.
		key = "template"
		names, isList := g["template"].([]any)
		if n, isName := g["template"].(string); isName {
			names, isList = []any{n}, true
		}
		list, ok = nil, isList
		for i, x := range names {
			n, isName := x.(string)
			if !isName {
				return nil, nil, fmt.Errorf("%s: template[%d] is %s, not a job's name", where, i, patch.Kind(x))
			}
			list = append(list, map[string]any{"name": n})
		}
	}
	if !ok || len(list) == 0 {
		return nil, nil, fmt.Errorf("%s: no %s", where, key)
	}
	var out []jobRef
	for i, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("%s: %s[%d] is %s, not a map", where, key, i, patch.Kind(x))
		}
		j := jobRef{}
		j.name, _ = m["name"].(string)
		j.release, _ = m["release"].(string)
		if j.name == "" {
			return nil, nil, fmt.Errorf("%s: %s[%d] has no name", where, key, i)
		}
		j.props, _ = m["properties"].(map[string]any)
		var err error
		if j.links, err = c.jobLinks(m, fmt.Sprintf("%s: job %s", where, j.name), c.name); err != nil {
			return nil, nil, err
		}
		out = append(out, j)
	}
	return out, groupProps, nil
}

func (c *converter) job(j jobRef, ips []string, groupProps map[string]any, upd *contract.UpdateSettings, group string) error {
	if c.releases == nil {
		c.releases = map[string]bool{}
	}
	c.releases[j.release] = true
	if err := c.setLinks(j.name, group, j.links); err != nil {
		return err
	}
	props := merge(groupProps, j.props)
	if _, seen := c.jobGroup[j.name]; seen {
		if !reflect.DeepEqual(c.jobProps[j.name], props) && !(len(props) == 0 && c.jobProps[j.name] == nil) {
			// Other properties than in its first group: this group's
			// machines get the job's tree of their own.
			if c.cfg.Properties.NodeJobs == nil {
				c.cfg.Properties.NodeJobs = map[string]any{}
			}
			if props == nil {
				props = map[string]any{}
			}
			for _, ip := range ips {
				on, _ := c.cfg.Properties.NodeJobs[ip].(map[string]any)
				if on == nil {
					on = map[string]any{}
					c.cfg.Properties.NodeJobs[ip] = on
				}
				on[j.name] = props
			}
		}
	} else {
		c.jobGroup[j.name] = group
		if len(props) > 0 {
			c.jobProps[j.name] = props
		}
	}
	c.cfg.Components[j.name] = append(c.cfg.Components[j.name], ips...)
	if upd != nil {
		u := c.cfg.Properties.Update
		if u == nil {
			u = &contract.UpdateConfig{}
			c.cfg.Properties.Update = u
		}
		if u.Components == nil {
			u.Components = map[string]contract.UpdateSettings{}
		}
		u.Components[j.name] = *upd
	}
	return nil
}

// release sets the config's release and releases: those jobs come from,
// in the order the manifest declares them.
func (c *converter) release(root map[string]any) error {
	declared := map[string]string{} // name → version
	var order []string              // as the manifest declares them
	var list []any
	if r, ok := root["releases"].([]any); ok {
		list = r
	} else if r, ok := root["release"].(map[string]any); ok { // v1's single release
		list = []any{r}
	}
	for _, x := range list {
		m, _ := x.(map[string]any)
		n, _ := m["name"].(string)
		if n == "" {
			return fmt.Errorf("releases: each has a name")
		}
		if _, dup := declared[n]; !dup {
			order = append(order, n)
		}
		declared[n] = fmt.Sprint(m["version"])
	}
	used := map[string]bool{}
	for r := range c.releases {
		if r == "" { // v1 templates may leave it out when there is one release
			if len(declared) != 1 {
				return fmt.Errorf("a job names no release, and the manifest declares %d", len(declared))
			}
			r = order[0]
		}
		if _, ok := declared[r]; !ok {
			return fmt.Errorf("release %s: jobs come from it and releases does not declare it", r)
		}
		used[r] = true
	}
	if len(used) == 0 {
		return fmt.Errorf("no instance group places a job")
	}
	// The first release the manifest declares names the deployment; the
	// others' jobs go beside its own (properties.releases).
	for _, n := range order {
		if !used[n] {
			continue
		}
		r, v := n, declared[n]
		if v != "latest" && v != "" && v != "<nil>" {
			r += "/" + v
		}
		if c.cfg.Properties.Release == "" {
			c.cfg.Properties.Release = r
		} else {
			c.cfg.Properties.Releases = append(c.cfg.Properties.Releases, r)
		}
	}
	return nil
}

// StaticIPs reads the static IPs of an instance group's networks,
// ranges expanded; where names the group in errors.
func StaticIPs(g map[string]any, where string) ([]string, error) { return staticIPs(g, where) }

// staticIPs reads the static IPs of a group's networks, ranges
// ("10.0.0.5 - 10.0.0.9") expanded.
func staticIPs(g map[string]any, where string) ([]string, error) {
	nets, _ := g["networks"].([]any)
	var out []string
	for _, n := range nets {
		m, _ := n.(map[string]any)
		list, _ := m["static_ips"].([]any)
		for _, x := range list {
			s := strings.TrimSpace(fmt.Sprint(x))
			ips, err := expandRange(s)
			if err != nil {
				return nil, fmt.Errorf("%s: static_ips %q: %w", where, s, err)
			}
			out = append(out, ips...)
			if len(out) > maxStaticIPs {
				return nil, fmt.Errorf("%s: more than %d static IPs", where, maxStaticIPs)
			}
		}
	}
	return out, nil
}

func expandRange(s string) ([]string, error) {
	a, b, isRange := strings.Cut(s, "-")
	first := net.ParseIP(strings.TrimSpace(a)).To4()
	if !isRange {
		if ip := net.ParseIP(s); ip != nil {
			return []string{ip.String()}, nil
		}
		return nil, fmt.Errorf("not an IP address")
	}
	last := net.ParseIP(strings.TrimSpace(b)).To4()
	if first == nil || last == nil {
		return nil, fmt.Errorf("a range is two IPv4 addresses, \"A - B\"")
	}
	lo, hi := binary.BigEndian.Uint32(first), binary.BigEndian.Uint32(last)
	if hi < lo || hi-lo >= maxStaticIPs {
		return nil, fmt.Errorf("a range runs upward over at most %d addresses", maxStaticIPs)
	}
	var out []string
	for v := lo; v <= hi; v++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, v)
		out = append(out, ip.String())
	}
	return out, nil
}

// updateSettings reads a BOSH update block; watch times may be numbers.
func updateSettings(u map[string]any, where string) (contract.UpdateSettings, error) {
	var s contract.UpdateSettings
	if v, ok := u["canaries"]; ok {
		n, ok := v.(int)
		if !ok || n < 0 {
			return s, fmt.Errorf("%s: canaries is a whole number >= 0", where)
		}
		s.Canaries = &n
	}
	if v, ok := u["max_in_flight"]; ok {
		s.MaxInFlight = fmt.Sprint(v)
		if _, err := contract.InFlight(s.MaxInFlight, 100); err != nil {
			return s, fmt.Errorf("%s: max_in_flight: %w", where, err)
		}
	}
	for key, dst := range map[string]*string{"canary_watch_time": &s.CanaryWatchTime, "update_watch_time": &s.UpdateWatchTime} {
		if v, ok := u[key]; ok {
			*dst = strings.ReplaceAll(fmt.Sprint(v), " ", "")
			if _, _, err := contract.WatchTime(*dst); err != nil {
				return s, fmt.Errorf("%s: %s: %w", where, key, err)
			}
		}
	}
	return s, nil
}

// merge is base with over's keys on top, maps merged deeply.
func merge(base, over map[string]any) map[string]any {
	if len(base) == 0 {
		return over
	}
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// unresolved lists the ((variables)) left in a document.
func unresolved(doc any) []string {
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				walk(k)
				walk(x)
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		case string:
			for _, m := range ref.FindAllStringSubmatch(t, -1) {
				seen[strings.TrimPrefix(m[1], "!")] = true
			}
		}
	}
	walk(doc)
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// persistentDisk gives each of a group's machines the persistent disk the
// group asks for: persistent_disk (MB), or persistent_disk_type and
// persistent_disk_pool (v1), whose sizes live in a cloud config's
// disk_types the engine does not read: a disk of unknown size.
func (c *converter) persistentDisk(g map[string]any, ips []string, where string) error {
	size, sized := g["persistent_disk"].(int)
	typed := g["persistent_disk_type"] != nil || g["persistent_disk_pool"] != nil
	switch {
	case g["persistent_disk"] != nil && (!sized || size < 0):
		return fmt.Errorf("%s: persistent_disk is a size in MB, a whole number >= 0", where)
	case size == 0 && !typed:
		return nil // no disk: BOSH's persistent_disk: 0 too
	}
	if c.cfg.Properties.PersistentDisks == nil {
		c.cfg.Properties.PersistentDisks = map[string]contract.PersistentDisk{}
	}
	for _, ip := range ips {
		c.cfg.Properties.PersistentDisks[ip] = contract.PersistentDisk{SizeMB: size}
	}
	return nil
}
