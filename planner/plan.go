package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// NodeComponent names the steps that belong to a node rather than to one
// of its components.
const NodeComponent = steps.NodeComponent

type planStep = steps.Step

type planInput struct {
	cfg       contract.Config
	cat       *catalog.Catalog
	engine    string
	id        string
	mirrorURL string
	// previous placement (node → components) of the last deployment, for scale-in
	previous map[string][]string
	agent    *agentPlan
	timeout  time.Duration
	// agentComps, when set, lists each node's components for its agent
	// (a release's jobs) instead of the catalog's.
	agentComps map[string][]contract.AgentComponent
	// digest is the keyed digest of a secret's value (Planner.digest).
	digest func(name, value string) string
	// noMonit marks the nodes that have no monit: the mirror step gives
	// them the mirror's.
	noMonit map[string]bool
}

type agentPlan struct {
	binary  string
	natsURL string
	pass    func(ip string) string
	ca      string
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

var stepID = steps.ID

// buildPlan renders every component's files and scripts from the config
// and orders them: per node the base steps first, per component upload →
// install → register → start, and a component's install after every
// instance of what it requires has started. Components that reconfigure on
// others' instances start one node at a time.
func buildPlan(in planInput) ([]*planStep, error) {
	var steps []*planStep
	byID := map[string]*planStep{}
	add := func(s *planStep) {
		finish(in, s)
		steps = append(steps, s)
		byID[s.Spec.ID] = s
	}
	placement := placementOf(in.cfg)
	order := map[string]int{}
	for i, c := range in.cat.Order {
		order[c] = i
	}
	nodes := in.cfg.Nodes()
	base := map[string]string{} // node → its last base step
	for _, ip := range nodes {
		prev := ""
		for i, b := range baseSteps(in, ip) {
			if prev != "" {
				b.After = append(b.After, prev)
			}
			b.Prio = i - 100
			add(b)
			prev = b.Spec.ID
		}
		base[ip] = prev
	}

	for _, name := range in.cat.Order {
		comp := in.cat.Components[name]
		ips := in.cfg.Components[name]
		var prevStart string
		for idx, ip := range ips {
			r, err := in.cat.Render(catalog.Input{Config: in.cfg.Redact(), Node: ip, Index: idx, Component: name, Engine: in.engine, MirrorURL: in.mirrorURL})
			if err != nil {
				return nil, fmt.Errorf("render %s for %s: %w", name, ip, err)
			}
			// A node's steps go action by action (every upload, then every
			// install...) where nothing orders them otherwise, so that its
			// register steps all come before its first start, which has
			// monit read them with one reload.
			prio, stride := order[name]*10, 10*(len(order)+1)
			files := stepFiles(r.Files)
			// The check is no part of the hash: it validates the files, which are.
			upload := &planStep{Spec: contract.Step{Node: ip, Component: name, Action: "upload", Files: files,
				Script: checkScript(r.Check), Hash: hashOf(filesHash(files))}, After: []string{base[ip]}, Prio: prio}
			install := &planStep{Spec: contract.Step{Node: ip, Component: name, Action: "install",
				Script: installScript(comp.Packages, r.Install), TimeoutS: int(in.timeout / time.Second)}, Prio: prio + stride}
			install.Spec.Hash = hashOf(install.Spec.Script)
			install.After = []string{stepID(ip, name, "upload")}
			for _, req := range comp.Requires {
				for _, rip := range in.cfg.Components[req] {
					install.After = append(install.After, stepID(rip, req, "start"))
				}
			}
			monitFile := []contract.StepFile{stepFile("/etc/monit/conf.d/"+name, 0o600, []byte(r.Monit))}
			register := &planStep{Spec: contract.Step{Node: ip, Component: name, Action: "register", Files: monitFile,
				Script: registerScript(comp.Process), Hash: hashOf(r.Monit)}, After: []string{stepID(ip, name, "install")}, Prio: prio + 2*stride}
			start := &planStep{Spec: contract.Step{Node: ip, Component: name, Action: "start",
				Script: startScript(comp.Process, r.Reload),
				Hash:   hashOf(upload.Spec.Hash, install.Spec.Hash, register.Spec.Hash)},
				After: []string{stepID(ip, name, "register")}, Prio: prio + 3*stride}
			if len(comp.ReconfigureOn) > 0 && prevStart != "" {
				// One node at a time, each after the previous is healthy.
				start.After = append(start.After, prevStart)
			}
			prevStart = stepID(ip, name, "start")
			add(upload)
			add(install)
			add(register)
			add(start)
		}
	}

	// Scale-in: what the last deployment placed and the config no longer has.
	for _, ip := range contract.SortedKeys(in.previous) {
		for _, name := range in.previous[ip] {
			if contains(placement[ip], name) {
				continue
			}
			comp := in.cat.Components[name]
			if comp == nil {
				continue
			}
			rm := &planStep{Spec: contract.Step{Node: ip, Component: name, Action: "remove",
				Script: removeScript(name, comp.Process), Hash: hashOf("remove", name, time.Now().String())}, Prio: -200}
			// Dependents first drop the leaving instance, then it goes.
			for _, other := range in.cat.Order {
				if oc := in.cat.Components[other]; oc != nil && contains(oc.ReconfigureOn, name) {
					for _, oip := range in.cfg.Components[other] {
						rm.After = append(rm.After, stepID(oip, other, "start"))
					}
				}
			}
			if b, ok := base[ip]; ok {
				rm.After = append(rm.After, b)
			}
			add(rm)
		}
	}

	for _, s := range steps {
		for _, a := range s.After {
			if byID[a] == nil {
				return nil, fmt.Errorf("plan: step %s waits for unknown step %s", s.Spec.ID, a)
			}
		}
	}
	return steps, nil
}

func placementOf(cfg contract.Config) map[string][]string {
	out := map[string][]string{}
	for _, name := range contract.SortedKeys(cfg.Components) {
		for _, ip := range cfg.Components[name] {
			out[ip] = append(out[ip], name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stepFile(path string, mode fs.FileMode, content []byte) contract.StepFile {
	sum := sha256.Sum256(content)
	return contract.StepFile{Path: path, Mode: uint32(mode.Perm()), Content: content, SHA256: hex.EncodeToString(sum[:])}
}

func stepFiles(files []catalog.RenderedFile) []contract.StepFile {
	out := make([]contract.StepFile, 0, len(files))
	for _, f := range files {
		out = append(out, stepFile(f.Path, f.Mode, f.Content))
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
