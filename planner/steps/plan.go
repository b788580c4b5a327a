package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// Builder builds the steps of one deployment: its fields are what they
// are built from, its methods the steps of each kind of deployment.
type Builder struct {
	Config    contract.Config
	Catalog   *catalog.Catalog
	Engine    string
	ID        string
	MirrorURL string
	// Previous is where the last deployment placed components (node →
	// components), Partial what deployments reached on a node without
	// starting it: what the config no longer places of either is removed.
	Previous, Partial map[string][]string
	// Agent, when set, installs the node agent on every node.
	Agent   *Agent
	Timeout time.Duration
	// Digest is the keyed digest of a secret's value, for the hash of a
	// step that sends it.
	Digest func(name, value string) string
	// NoMonit marks the nodes that have no monit: the mirror step gives
	// them the mirror's.
	NoMonit map[string]bool
	// agentComps, when set, lists each node's components for its agent
	// (a release's jobs) instead of the catalog's.
	agentComps map[string][]contract.AgentComponent
}

// Agent is how a deployment installs the node agent: the node fetches
// the binary of that SHA256 from URL, on the engine.
type Agent struct {
	URL      string
	SHA256   string
	NATSURL  string
	Password func(ip string) string
	CA       string
}

// Hash is the hash of parts, each told apart from the next.
func Hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// CatalogSteps renders every component's files and scripts from the
// config and orders them: per node the base steps first, per component
// upload → install → register → start, and a component's install after
// every instance of what it requires has started. Components that
// reconfigure on others' instances start one node at a time.
func (in Builder) CatalogSteps() ([]*Step, error) {
	return in.frame(in.componentSteps, in.catalogRemoval)
}

// agentBeforeStart moves each node's agent step just before the node's
// first start step in its chain: the agent's monit check is then read by
// the one reload the start steps need (a register asks for it), instead
// of a second reload after them, while the deployment is taken as done
// and monit re-reads its checks (status shows the instances initialising).
func agentBeforeStart(agents map[string]*Step, steps []*Step) {
	for _, s := range steps {
		if a := agents[s.Spec.Node]; a != nil && s.Spec.Action == "start" && s.Prio-1 < a.Prio {
			a.Prio = s.Prio - 1
		}
	}
}

// agentPrio puts the agent step after every other step of its node that
// is ready when it is: nothing waits for it, and it waits for nothing but
// the base steps. On a node with start steps it goes just before the
// first of them instead (agentBeforeStart).
const agentPrio = 1 << 30

// frame is the plan of every deployment: each node's base steps in a
// chain, then body's steps (given each node's last base step), then the
// removal of what the last deployment placed and the config no longer
// places, after its node's base steps. The agent step follows the base
// steps too (it needs monit, which the mirror step may install), and no
// step waits for it: nothing a component does needs the agent. Every step
// is stamped, and none may wait for a step not planned.
func (in Builder) frame(body func(base map[string]string) ([]*Step, error), removal func(ip, comp string) *Step) ([]*Step, error) {
	var out []*Step
	base := map[string]string{} // node → its last base step
	agents := map[string]*Step{}
	for _, ip := range in.Config.Nodes() {
		prev := ""
		for i, b := range baseSteps(in, ip) {
			if prev != "" {
				b.After = append(b.After, prev)
			}
			b.Prio = i - 100
			out = append(out, in.stamp(b))
			prev = b.Spec.ID
		}
		base[ip] = prev
		if in.Agent != nil {
			a := agentStep(in, ip)
			a.After, a.Prio = []string{prev}, agentPrio
			out = append(out, in.stamp(a))
			agents[ip] = a
		}
	}
	steps, err := body(base)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		out = append(out, in.stamp(s))
	}
	agentBeforeStart(agents, steps)
	placement := Placement(in.Config)
	left := in.Leftovers()
	for _, ip := range contract.SortedKeys(left) {
		for _, comp := range left[ip] {
			if slices.Contains(placement[ip], comp) {
				continue
			}
			rm := removal(ip, comp)
			if rm == nil {
				continue
			}
			if b, ok := base[ip]; ok {
				rm.After = append(rm.After, b)
			}
			out = append(out, in.stamp(rm))
		}
	}
	ids := map[string]bool{}
	for _, s := range out {
		ids[s.Spec.ID] = true
	}
	for _, s := range out {
		for _, a := range s.After {
			if !ids[a] {
				return nil, fmt.Errorf("plan: step %s waits for unknown step %s", s.Spec.ID, a)
			}
		}
	}
	return out, nil
}

// Leftovers is what earlier deployments left on the nodes, placed or half
// installed (Previous, then what Partial adds).
func (in Builder) Leftovers() map[string][]string {
	out := map[string][]string{}
	for _, m := range []map[string][]string{in.Previous, in.Partial} {
		for ip, comps := range m {
			for _, c := range comps {
				if !slices.Contains(out[ip], c) {
					out[ip] = append(out[ip], c)
				}
			}
		}
	}
	return out
}

// componentSteps are the steps of every instance of the catalog's
// components, in the catalog's order, each after its node's base steps.
func (in Builder) componentSteps(base map[string]string) ([]*Step, error) {
	order := map[string]int{}
	for i, c := range in.Catalog.Order {
		order[c] = i
	}
	var out []*Step
	for _, name := range in.Catalog.Order {
		var prevStart string
		for idx, ip := range in.Config.Components[name] {
			inst, err := in.instance(name, idx, ip, order, base[ip])
			if err != nil {
				return nil, err
			}
			if start := inst[3]; len(in.Catalog.Components[name].ReconfigureOn) > 0 && prevStart != "" {
				// One node at a time, each after the previous is healthy.
				start.After = append(start.After, prevStart)
			}
			prevStart = ID(ip, name, "start")
			out = append(out, inst...)
		}
	}
	return out, nil
}

// instance is the upload, install, register and start of component name
// on ip, its idx-th instance, after base.
func (in Builder) instance(name string, idx int, ip string, order map[string]int, base string) ([]*Step, error) {
	comp := in.Catalog.Components[name]
	r, err := in.Catalog.Render(catalog.Input{Config: in.Config.Redact(), Node: ip, Index: idx, Component: name, Engine: in.Engine, MirrorURL: in.MirrorURL})
	if err != nil {
		return nil, fmt.Errorf("render %s for %s: %w", name, ip, err)
	}
	// A node's steps go action by action (every upload, then every
	// install...) where nothing orders them otherwise, so that its
	// register steps all come before its first start, which has monit
	// read them with one reload.
	prio, stride := order[name]*10, 10*(len(order)+1)
	files := stepFiles(r.Files)
	// The check is no part of the hash: it validates the files, which are.
	upload := &Step{Spec: contract.Step{Node: ip, Component: name, Action: "upload", Files: files,
		Script: checkScript(r.Check), Hash: Hash(filesHash(files))}, After: []string{base}, Prio: prio}
	install := &Step{Spec: contract.Step{Node: ip, Component: name, Action: "install",
		Script: installScript(comp.Packages, r.Install), TimeoutS: int(in.Timeout / time.Second)}, Prio: prio + stride}
	install.Spec.Hash = Hash(install.Spec.Script)
	install.After = []string{ID(ip, name, "upload")}
	for _, req := range comp.Requires {
		for _, rip := range in.Config.Components[req] {
			install.After = append(install.After, ID(rip, req, "start"))
		}
	}
	monitFile := []contract.StepFile{File("/etc/monit/conf.d/"+name, 0o600, []byte(r.Monit))}
	register := &Step{Spec: contract.Step{Node: ip, Component: name, Action: "register", Files: monitFile,
		Script: registerScript(comp.Process), Hash: Hash(r.Monit), Bare: true}, After: []string{ID(ip, name, "install")}, Prio: prio + 2*stride}
	start := &Step{Spec: contract.Step{Node: ip, Component: name, Action: "start",
		Script: startScript(comp.Process, r.Reload), Holds: bosh.NotDown(comp.Process), Bare: strings.TrimSpace(r.Reload) == "",
		Hash: Hash(upload.Spec.Hash, install.Spec.Hash, register.Spec.Hash)},
		After: []string{ID(ip, name, "register")}, Prio: prio + 3*stride}
	return []*Step{upload, install, register, start}, nil
}

// catalogRemoval removes component name from ip (its monit check, the
// files the engine rendered for it and its markers): dependents first drop
// the leaving instance, then it goes. A component the catalog no longer
// has is left alone.
func (in Builder) catalogRemoval(ip, name string) *Step {
	comp := in.Catalog.Components[name]
	if comp == nil {
		return nil
	}
	rm := &Step{Spec: contract.Step{Node: ip, Component: name, Action: "remove",
		Script: removeScript(name, comp.Process, comp.FilePaths()), Hash: Hash("remove", name, time.Now().String())}, Prio: -200}
	for _, other := range in.Catalog.Order {
		if oc := in.Catalog.Components[other]; oc != nil && slices.Contains(oc.ReconfigureOn, name) {
			for _, oip := range in.Config.Components[other] {
				rm.After = append(rm.After, ID(oip, other, "start"))
			}
		}
	}
	return rm
}

// Placement is where cfg places its components: node → components.
func Placement(cfg contract.Config) map[string][]string {
	out := map[string][]string{}
	for _, name := range contract.SortedKeys(cfg.Components) {
		for _, ip := range cfg.Components[name] {
			out[ip] = append(out[ip], name)
		}
	}
	return out
}

// File is a step's file of content at path.
func File(path string, mode fs.FileMode, content []byte) contract.StepFile {
	sum := sha256.Sum256(content)
	return contract.StepFile{Path: path, Mode: uint32(mode.Perm()), Content: content, SHA256: hex.EncodeToString(sum[:])}
}

func stepFiles(files []catalog.RenderedFile) []contract.StepFile {
	out := make([]contract.StepFile, 0, len(files))
	for _, f := range files {
		out = append(out, File(f.Path, f.Mode, f.Content))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func filesHash(files []contract.StepFile) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s %o %s\n", f.Path, f.Mode, f.SHA256)
	}
	return b.String()
}

// stamp fills what every step of the deployment carries: its id, the
// deployment's, the engine's, its first attempt, and a timeout and a key
// where the step has none.
func (in Builder) stamp(s *Step) *Step {
	s.Spec.V = contract.Version
	s.Spec.Deployment = in.ID
	s.Spec.ID = ID(s.Spec.Node, s.Spec.Component, s.Spec.Action)
	s.Spec.Engine = in.Engine
	s.Spec.Attempt = 1
	if s.Spec.TimeoutS == 0 {
		s.Spec.TimeoutS = int(5 * time.Minute / time.Second)
	}
	if s.Spec.Key == "" {
		s.Spec.Key = s.Spec.Component + "." + s.Spec.Action
	}
	return s
}

// secretDigest is Digest, or nothing without one.
func (in Builder) secretDigest(name, value string) string {
	if in.Digest == nil {
		return ""
	}
	return in.Digest(name, value)
}

// Stamped is s stamped as the builder's deployment's step (its id,
// deployment, engine, first attempt), for a plan made outside this
// package (package errand).
func (in Builder) Stamped(s *Step) *Step { return in.stamp(s) }
