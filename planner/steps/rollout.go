package steps

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A rollout changes the running instances of a component in batches: the
// canaries first, then max_in_flight at a time. Each instance is taken out
// of its balancers (drain) before anything of it changes, watched healthy
// after its start (watch), and put back (ready); the next batch waits for
// the whole of the one before. It is all steps of the deployment's DAG, so
// a failed canary or batch skips what comes after it: the instances not yet
// reached are left as they were, and still serve.

// Defaults of the update settings.
const (
	defaultCanaries  = 1
	defaultInFlight  = "1"
	defaultWatchTime = "1000-30000"
)

// rollout is what the rollout of one deployment is planned from (see
// RolloutSteps).
type rollout struct {
	in      Builder
	markers map[string]map[string]string
	query   contract.UpdateSettings
}

// Settings are one component's update settings, resolved.
type Settings struct {
	canaries          int
	inFlight          string
	canaryLow, canary int
	updateLow, update int
	autoRevert        bool
}

// SettingsFor resolves comp's settings: the query, the config's component
// and global settings, the catalog's (none for a release's job: cat nil),
// the defaults.
func SettingsFor(cat *catalog.Catalog, cfg contract.Config, comp string, query contract.UpdateSettings) Settings {
	u := query
	if up := cfg.Properties.Update; up != nil {
		u = u.Merge(up.Components[comp]).Merge(up.UpdateSettings)
	}
	if cat != nil {
		if c := cat.Components[comp]; c != nil && c.Update != nil {
			u = u.Merge(*c.Update)
		}
	}
	def := defaultCanaries
	u = u.Merge(contract.UpdateSettings{Canaries: &def, MaxInFlight: defaultInFlight, CanaryWatchTime: defaultWatchTime, UpdateWatchTime: defaultWatchTime})
	s := Settings{canaries: *u.Canaries, inFlight: u.MaxInFlight, autoRevert: u.AutoRevert != nil && *u.AutoRevert}
	var err error
	if s.canaryLow, s.canary, err = contract.WatchTime(u.CanaryWatchTime); err != nil {
		s.canaryLow, s.canary, _ = contract.WatchTime(defaultWatchTime)
	}
	if s.updateLow, s.update, err = contract.WatchTime(u.UpdateWatchTime); err != nil {
		s.updateLow, s.update, _ = contract.WatchTime(defaultWatchTime)
	}
	return s
}

// changes tells whether a deployment would change comp on ip: a step of
// it whose hash differs from the node's marker.
func (ro rollout) changes(steps []*Step, comp, ip string) bool {
	m, read := ro.markers[ip]
	for _, s := range steps {
		switch s.Spec.Action {
		case "upload", "install", "register", "start":
		default:
			continue // a rollout's own steps, or a removal
		}
		if s.Spec.Node == ip && s.Spec.Component == comp {
			if !read || m[nodefs.MarkerName(s.Spec.Key)] != s.Spec.Hash {
				return true
			}
		}
	}
	return false
}

// RolloutSteps adds to steps the rollout of every component with running
// instances that change, and returns the batches. markers are each node's
// step markers (marker key → hash); a node missing from it was not read
// and its instances count as changed. query overrides every other level
// of the update settings (deploy?canaries=&max_in_flight=).
func (in Builder) RolloutSteps(steps []*Step, markers map[string]map[string]string, query contract.UpdateSettings) ([]*Step, []contract.Batch, error) {
	if in.Catalog == nil {
		return steps, nil, nil
	}
	ro := rollout{in: in, markers: markers, query: query}
	byID := map[string]*Step{}
	for _, s := range steps {
		byID[s.Spec.ID] = s
	}
	var batches []contract.Batch
	for _, comp := range in.Catalog.Order {
		var running []string
		for _, ip := range in.Config.Components[comp] {
			if slices.Contains(in.Previous[ip], comp) && ro.changes(steps, comp, ip) {
				running = append(running, ip)
			}
		}
		if len(running) == 0 {
			continue
		}
		set := SettingsFor(in.Catalog, in.Config, comp, ro.query)
		groups, err := BatchesOf(running, set, len(in.Config.Components[comp]))
		if err != nil {
			return nil, nil, fmt.Errorf("rollout of %s: %w", comp, err)
		}
		added, bs, err := ro.batched(comp, groups, set, ro.update(comp, byID))
		if err != nil {
			return nil, nil, err
		}
		steps = append(steps, added...)
		batches = append(batches, bs...)
	}
	return steps, batches, nil
}

// update is the change a deployment makes to a running instance of comp:
// its upload, install, register and start (those of steps), the upload
// after its drains, or after the batch before when it has none.
func (ro rollout) update(comp string, byID map[string]*Step) instanceChange {
	return instanceChange{
		follows: func(ip string) (string, int, error) {
			upload, start := byID[ID(ip, comp, "upload")], byID[ID(ip, comp, "start")]
			if upload == nil || start == nil {
				return "", 0, fmt.Errorf("rollout of %s: no upload or start step on %s", comp, ip)
			}
			return start.Spec.ID, start.Prio, nil
		},
		wire: func(ip string, inst instance, gate []string) ([]*Step, []string) {
			upload := byID[ID(ip, comp, "upload")]
			upload.After = append(upload.After, inst.firstIDs()...)
			if len(inst.drains) == 0 {
				upload.After = append(upload.After, gate...)
			}
			var changed []string
			for _, s := range []string{upload.Spec.ID, ID(ip, comp, "install"), ID(ip, comp, "register"), ID(ip, comp, "start")} {
				if byID[s] != nil {
					changed = append(changed, s)
				}
			}
			return nil, changed
		},
	}
}

// RestartSteps restart comp's instances in groups, one batch a group: each
// instance out of its balancers, restarted by script, watched healthy and
// put back before the next batch starts.
func (in Builder) RestartSteps(comp string, groups [][]string, set Settings, script string) ([]*Step, []contract.Batch, error) {
	ro := rollout{in: in}
	return ro.batched(comp, groups, set, instanceChange{
		follows: func(ip string) (string, int, error) { return ID(ip, comp, "restart"), 0, nil },
		wire: func(ip string, inst instance, gate []string) ([]*Step, []string) {
			restart := in.stamp(&Step{Spec: contract.Step{Node: ip, Component: comp, Action: "restart",
				Script: script, TimeoutS: 180, Hash: Hash("restart", in.ID, ip)}})
			restart.After = append(inst.firstIDs(), gate...)
			return []*Step{restart}, []string{restart.Spec.ID}
		},
	})
}

// instanceChange is what a batched rollout changes on one instance.
type instanceChange struct {
	// follows names the step of the change that the instance's watch
	// follows, with its priority.
	follows func(ip string) (string, int, error)
	// wire orders the change after the instance's drains (inst) or the
	// batch before (gate): the steps it adds, and those of the batch that
	// change the instance, in order.
	wire func(ip string, inst instance, gate []string) ([]*Step, []string)
}

// batched lays out the change of comp's instances in groups, one batch a
// group, the first the canaries when set has any: each instance out of its
// balancers, changed, watched healthy and back; each batch after the whole
// of the one before.
func (ro rollout) batched(comp string, groups [][]string, set Settings, c instanceChange) ([]*Step, []contract.Batch, error) {
	var out []*Step
	var batches []contract.Batch
	var gate []string
	for k, group := range groups {
		canary := k == 0 && set.canaries > 0
		low, high := set.updateLow, set.update
		if canary {
			low, high = set.canaryLow, set.canary
		}
		b := contract.Batch{Component: comp, Index: k, Canary: canary, Nodes: group, State: contract.BatchPending}
		var next []string
		for _, ip := range group {
			follows, prio, err := c.follows(ip)
			if err != nil {
				return nil, nil, err
			}
			inst, err := ro.instanceSteps(comp, ip, gate, []string{follows}, low, high, prio)
			if err != nil {
				return nil, nil, err
			}
			added, changed := c.wire(ip, inst, gate)
			out = append(append(out, added...), inst.all()...)
			next = append(next, inst.gateIDs()...)
			b.Steps = append(b.Steps, inst.ids(inst.drains)...)
			b.Steps = append(b.Steps, changed...)
			b.Steps = append(append(b.Steps, inst.ids(inst.watch)...), inst.ids(inst.readies)...)
		}
		gate = next
		batches = append(batches, b)
	}
	return out, batches, nil
}

// BatchesOf groups the instances to change: the canaries, then batches
// of max_in_flight (of total, the component's instance count).
func BatchesOf(ips []string, s Settings, total int) ([][]string, error) {
	n, err := contract.InFlight(s.inFlight, total)
	if err != nil {
		return nil, err
	}
	var out [][]string
	rest := ips
	if c := min(s.canaries, len(rest)); c > 0 {
		out = append(out, rest[:c])
		rest = rest[c:]
	}
	for len(rest) > 0 {
		k := min(n, len(rest))
		out = append(out, rest[:k])
		rest = rest[k:]
	}
	return out, nil
}

// AutoRevert tells whether a halted rollout of the component re-applies
// the last good config.
func (s Settings) AutoRevert() bool { return s.autoRevert }

// InFlight is the component's max_in_flight.
func (s Settings) InFlight() string { return s.inFlight }

// instance is the rollout's own steps for one instance.
type instance struct {
	drains, watch, readies []*Step
}

func (i instance) all() []*Step {
	return append(append(append([]*Step{}, i.drains...), i.watch...), i.readies...)
}

func (i instance) ids(list []*Step) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Spec.ID)
	}
	return out
}

func (i instance) firstIDs() []string { return i.ids(i.drains) }

// gateIDs are the steps the next batch waits for.
func (i instance) gateIDs() []string {
	if len(i.readies) > 0 {
		return i.ids(i.readies)
	}
	return i.ids(i.watch)
}

// instanceSteps makes the drain (after gate), watch (after afterStart) and
// ready steps of comp on ip. Their hashes hold the deployment id: they run
// once in each deployment that changes the instance.
func (ro rollout) instanceSteps(comp, ip string, gate, afterStart []string, low, high, prio int) (instance, error) {
	in := ro.in
	var out instance
	idx := indexOf(in.Config.Components[comp], ip)
	check, err := in.Catalog.RenderHealth(catalog.Input{Config: in.Config, Node: ip, Index: idx, Component: comp, Engine: in.Engine, MirrorURL: in.MirrorURL})
	if err != nil {
		return out, err
	}
	proc := in.Catalog.Components[comp].Process
	watch := &Step{Spec: contract.Step{Node: ip, Component: comp, Action: "watch", Script: watchScript(proc, check, low, high),
		TimeoutS: high/1000 + 60}, After: afterStart, Prio: prio + 1}
	watch.Spec.Hash = Hash("watch", in.ID, ip, comp)
	out.watch = []*Step{ro.in.stamp(watch)}
	for _, lb := range in.Catalog.Balancers(comp) {
		for li, lip := range in.Config.Components[lb] {
			if !slices.Contains(in.Previous[lip], lb) {
				continue // a balancer not running yet has nothing to drain
			}
			bal, err := in.Catalog.RenderBalance(catalog.Input{Config: in.Config, Node: lip, Index: li, Component: lb, Engine: in.Engine, MirrorURL: in.MirrorURL}, comp, ip, idx)
			if err != nil {
				return out, err
			}
			tag := comp + "-" + ip
			drain := &Step{Spec: contract.Step{Node: lip, Component: lb, Action: "drain-" + tag, Script: "set -u\n" + bal.Drain, TimeoutS: 120}, After: gate, Prio: prio - 1}
			drain.Spec.Hash = Hash("drain", in.ID, tag)
			ready := &Step{Spec: contract.Step{Node: lip, Component: lb, Action: "ready-" + tag, Script: "set -u\n" + bal.Ready, TimeoutS: 120},
				After: []string{watch.Spec.ID}, Prio: prio + 2}
			ready.Spec.Hash = Hash("ready", in.ID, tag)
			drain.For, ready.For = ip, ip
			out.drains = append(out.drains, ro.in.stamp(drain))
			out.readies = append(out.readies, ro.in.stamp(ready))
		}
	}
	return out, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// watchScript waits low ms after a start, then requires the process OK in
// monit and the health check passing, trying until high ms have passed.
func watchScript(process string, check *catalog.Check, low, high int) string {
	var probe strings.Builder
	probe.WriteString("de_health() {\n  why=\"\"\n")
	fmt.Fprintf(&probe, "  de_mstat\n  if [ \"${ms%%%% *}\" != OK ]; then why=\"monit does not report %s OK\"; return 1; fi\n", process)
	if check != nil {
		if check.HTTPHost != "" {
			fmt.Fprintf(&probe, `  code=$(timeout 3 bash -c 'exec 6<>/dev/tcp/%[1]s/%[2]s && printf "GET %%s HTTP/1.0\r\nHost: %%s\r\nConnection: close\r\n\r\n" %[3]s %[1]s >&6 && read -r _ c _ <&6 && echo "$c"' 2>/dev/null)
  case "$code" in 2??|3??) ;; *) why="http://%[1]s:%[2]s%[4]s answered ${code:-nothing}"; return 1 ;; esac
`, check.HTTPHost, check.HTTPPort, kit.ShellQuote(check.HTTPPath), check.HTTPPath)
		}
		if check.TCPHost != "" {
			fmt.Fprintf(&probe, "  if ! timeout 3 bash -c 'exec 6<>/dev/tcp/%[1]s/%[2]s' 2>/dev/null; then why=\"%[1]s:%[2]s does not accept connections\"; return 1; fi\n", check.TCPHost, check.TCPPort)
		}
		if check.Command != "" {
			fmt.Fprintf(&probe, "  if ! timeout 10 bash -c %s >/dev/null 2>&1; then why=\"the health command failed\"; return 1; fi\n", kit.ShellQuote(check.Command))
		}
	}
	probe.WriteString("  return 0\n}\n")
	// The clock is bash's own where it has one: the watch runs on every
	// node of a rollout at once, and each date(1) is a process.
	return fmt.Sprintf(`set -u
p=%[6]s
%[7]s%[1]slow=%[2]d high=%[3]d
now_ms() { if [ -n "${EPOCHREALTIME:-}" ]; then de_now=$(( ${EPOCHREALTIME/[.,]/} / 1000 )); else de_now=$(date +%%s%%3N); fi; }
now_ms; t0=$de_now
[ "$low" -le 0 ] || de_nap %[4]s
while :; do
  if de_health; then now_ms; echo "%[5]s healthy $(( de_now - t0 )) ms after its start"; exit 0; fi
  now_ms; [ $(( de_now - t0 )) -ge $high ] && break
  de_nap 0.5
done
echo "%[5]s not healthy within $high ms of its start: $why" >&2
exit 1
`, probe.String(), low, high, strconv.FormatFloat(float64(low)/1000, 'f', 3, 64), process, kit.ShellQuote(process), monitStat)
}
