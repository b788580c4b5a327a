package bosh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// BOSH's layout on a node.
const (
	VcapDir     = "/var/vcap"
	PackagesDir = VcapDir + "/packages"
	JobsDir     = VcapDir + "/jobs"
	LogDir      = VcapDir + "/sys/log"
	RunDir      = VcapDir + "/sys/run"
)

// Step is one step of a release's plan, with the steps it waits for (by
// id: node/component/action) and its priority among a node's ready steps.
type Step struct {
	Spec  contract.Step
	After []string
	Prio  int
}

// ID is a step's id, as the planner writes it.
func ID(node, comp, action string) string { return node + "/" + comp + "/" + action }

// PlanInput is what a release's plan is made from.
type PlanInput struct {
	Deployment *Deployment
	// PackageURL is where nodes fetch a package's tarball.
	PackageURL func(p release.Package) string
	// CompiledURL, when set, is where the engine keeps a package compiled,
	// by its fingerprint (the package, version and sha1, and its
	// dependencies'): each job's packages are compiled by its first
	// instance's node, and fetched from there by the others (compileOnce).
	CompiledURL func(fp string) string
	// Base maps a node to the id of its last base step (prepare, agent).
	Base map[string]string
	// NodeComponent names a node's own steps.
	NodeComponent string
	// CompileTimeout bounds compiling one level of a job's packages
	// (packageLevels).
	CompileTimeout time.Duration
}

// Plan is a release's steps, and per node the jobs with their processes
// (for the node agent).
type Plan struct {
	Steps     []Step
	Instances []Instance
	// Packages lists per node the packages compiled there, in order.
	Packages map[string][]string
}

// MakePlan renders the deployment and orders its steps: per node a layout
// step, then the packages its jobs need (dependencies first), then per
// job instance apply (files in place, the old version drained and
// stopped), pre-start, register (monit) and start (then post-start):
// monit starts a process it learns of, so it learns of it only after
// pre-start. A job that consumes a link applies after every instance of
// its provider has started.
func MakePlan(ctx context.Context, in PlanInput) (*Plan, error) {
	d := in.Deployment
	insts, ps, err := RenderAll(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		reasons := make([]string, len(ps))
		for i, p := range ps {
			reasons[i] = p.Reason
		}
		return nil, fmt.Errorf("render: %s", strings.Join(reasons, "; "))
	}
	b := &planBuilder{in: in, d: d, plan: &Plan{Instances: insts, Packages: map[string][]string{}},
		layout: map[string]string{}, compile: map[string]string{}, closure: map[string][]release.Package{}}
	nodeJobs := map[string][]string{}
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, ip := range d.Jobs[job] {
			nodeJobs[ip] = append(nodeJobs[ip], job)
		}
	}
	for _, ip := range contract.SortedKeys(nodeJobs) {
		if err := b.nodeSteps(ip, nodeJobs[ip]); err != nil {
			return nil, err
		}
	}
	if in.CompiledURL != nil {
		b.compileOnce()
	}
	for _, inst := range insts {
		b.jobSteps(inst)
	}
	return b.plan, nil
}

// compileOnce gives each package one compiling step: the first compile
// step, by job and then by the job's instances, whose packages include
// it. That step's node compiles it and puts it on the engine; every later
// compile step that needs it runs after that one and fetches it (a node
// of another OS finds none for its own and compiles). A step waits only
// for earlier ones, so the waits make no cycle. A package that fails to
// compile fails once, not on every node.
func (b *planBuilder) compileOnce() {
	at := map[string]int{}
	for i, s := range b.plan.Steps {
		at[s.Spec.ID] = i
	}
	compiler := map[string]string{} // package → the step compiling it
	for _, job := range contract.SortedKeys(b.d.Jobs) {
		for _, ip := range b.d.Jobs[job] {
			id := b.compile[ip+"/"+job]
			if id == "" {
				continue
			}
			s := &b.plan.Steps[at[id]]
			for _, p := range b.closure[job] {
				switch first := compiler[p.Name]; {
				case first == "":
					compiler[p.Name] = id
				case first != id && !slices.Contains(s.After, first):
					s.After = append(s.After, first)
				}
			}
		}
	}
}

// planBuilder adds a release's steps to its plan, node by node, then job
// instance by job instance.
type planBuilder struct {
	in      PlanInput
	d       *Deployment
	plan    *Plan
	layout  map[string]string            // node → its layout step
	compile map[string]string            // node/job → the step compiling its packages
	closure map[string][]release.Package // job → its packages, in compile order
}

// add appends s to the plan under its id, and returns the id.
func (b *planBuilder) add(s Step) string {
	s.Spec.ID = ID(s.Spec.Node, s.Spec.Component, s.Spec.Action)
	b.plan.Steps = append(b.plan.Steps, s)
	return s.Spec.ID
}

// nodeSteps adds node ip's layout step, then a step compiling each
// package its jobs need, after the packages it depends on.
func (b *planBuilder) nodeSteps(ip string, jobs []string) error {
	d := b.d
	compileTimeout := int(b.in.CompileTimeout / time.Second)
	if compileTimeout == 0 {
		compileTimeout = 3600
	}
	// The layout records the node's disk size for its jobs' drains: a
	// changed size runs it again (its hash), before any job step.
	script := layoutScript(d.Disks[ip].SizeMB)
	layout := Step{Spec: contract.Step{Node: ip, Component: b.in.NodeComponent, Action: "vcap", Key: "bosh.vcap", Script: script, Hash: hashOf(script)}, Prio: -50}
	if base := b.in.Base[ip]; base != "" {
		layout.After = []string{base}
	}
	if dev := d.Disks[ip].Device; dev != "" {
		// The device is the store before anything is put in it.
		store := Step{Spec: contract.Step{Node: ip, Component: b.in.NodeComponent, Action: "store", Key: "bosh.store", Script: storeScript(dev),
			Hash: hashOf(storeScript(dev)), Holds: "mountpoint -q " + storeDir, TimeoutS: 600}, After: layout.After, Prio: -55}
		layout.After = []string{b.add(store)}
	}
	b.layout[ip] = b.add(layout)
	order, _, err := d.NodePackages(ip)
	if err != nil {
		return err
	}
	// A package's hash covers its dependencies' (their versions may
	// change under it); the node's packages, in compile order.
	hashes := map[string]string{}
	for _, p := range order {
		deps := []string{}
		for _, dep := range p.Dependencies {
			deps = append(deps, dep+"="+hashes[dep])
		}
		hashes[p.Name] = hashOf(p.Name, p.Version, p.SHA1, strings.Join(deps, ","))
		b.plan.Packages[ip] = append(b.plan.Packages[ip], p.Name)
	}
	// Each job's packages, with what they depend on, compile in one step
	// of the job's: level by level of their dependencies, a level's
	// packages at once. A package two jobs need is compiled by the first
	// and found compiled by the other, whose step runs after it.
	for i, job := range jobs {
		closure, err := release.PackageOrder(d.Release.Packages, d.JobPackages(job))
		if err != nil {
			return err
		}
		b.closure[job] = closure
		if len(closure) == 0 {
			continue
		}
		levels, all := packageLevels(closure), make([]string, len(closure))
		for k, p := range closure {
			all[k] = hashes[p.Name]
		}
		cache := func(release.Package) string { return "" }
		var secrets []string
		if b.in.CompiledURL != nil {
			cache = func(p release.Package) string { return b.in.CompiledURL(hashes[p.Name]) }
			secrets = []string{"upload"}
		}
		s := Step{Spec: contract.Step{Node: ip, Component: d.CompOf(job), Action: "compile", Key: "bosh.packages." + job,
			Hash: hashOf(all...), Script: compileScript(ip, levels, b.in.PackageURL, cache), SecretEnv: secrets, TimeoutS: compileTimeout * len(levels)},
			After: []string{b.layout[ip]}, Prio: i}
		b.compile[ip+"/"+job] = b.add(s)
	}
	return nil
}

// packageLevels groups packages given in compile order by their depth:
// level 0 depends on nothing, level n on packages of levels below n only.
func packageLevels(order []release.Package) [][]release.Package {
	depth := map[string]int{}
	var levels [][]release.Package
	for _, p := range order {
		lv := 0
		for _, dep := range p.Dependencies {
			lv = max(lv, depth[dep]+1)
		}
		depth[p.Name] = lv
		for len(levels) <= lv {
			levels = append(levels, nil)
		}
		levels[lv] = append(levels[lv], p)
	}
	return levels
}

// jobSteps adds a job instance's apply, pre-start, register and start,
// after its node's layout, its packages and its links' providers; an
// errand's instance gets its apply alone.
func (b *planBuilder) jobSteps(inst Instance) {
	d := b.d
	ip, job := inst.Node, inst.Job
	spec := d.Release.Specs[job]
	comp := d.CompOf(job)
	prio := 1000 + 10*jobOrder(d, job)
	apply := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "apply", Key: "bosh.job." + job + ".apply", Hash: inst.Hash,
		Files: inst.Files, Script: applyScript(job, inst.Hash, d.JobPackages(job))}, After: []string{b.layout[ip]}, Prio: prio}
	if c := b.compile[ip+"/"+job]; c != "" {
		apply.After = append(apply.After, c)
	}
	for _, prov := range d.linkProviders(job) {
		// An errand provider never starts: its instances are placed once
		// applied.
		ready := "start"
		if IsErrand(d.Release.Specs[prov]) {
			ready = "apply"
		}
		for _, pip := range d.Jobs[prov] {
			apply.After = append(apply.After, ID(pip, d.CompOf(prov), ready))
		}
	}
	b.add(apply)
	if IsErrand(spec) {
		// An errand is placed, never started: monit never learns of it,
		// and it runs only when asked (package errand).
		return
	}
	monitFile := stepFile("/etc/monit/conf.d/"+job, 0o600, []byte(inst.Monit))
	register := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "register", Key: "bosh.job." + job + ".register",
		Hash: hashOf(inst.Hash, inst.Monit), Files: []contract.StepFile{monitFile}, Script: registerScript(inst.Processes)},
		After: []string{ID(ip, comp, "pre-start")}, Prio: prio + 2}
	pre := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "pre-start", Key: "bosh.job." + job + ".pre-start",
		Hash: inst.Hash, Script: hookScript(job, "pre-start")}, After: []string{ID(ip, comp, "apply")}, Prio: prio + 1}
	start := Step{Spec: contract.Step{Node: ip, Component: comp, Action: "start", Key: "bosh.job." + job + ".start",
		Hash: inst.Hash, Script: startScript(job, inst.Processes), Holds: NotDown(inst.Processes...)}, After: []string{ID(ip, comp, "register")}, Prio: prio + 3}
	if inst.UsesBPM && job != BPMJob && slices.Contains(d.Jobs[BPMJob], ip) {
		// monit starts the job's processes through the job named bpm:
		// it is in place (its pre-start run) first.
		ready := "start"
		if IsErrand(d.Release.Specs[BPMJob]) {
			ready = "apply"
		}
		register.After = append(register.After, ID(ip, d.CompOf(BPMJob), ready))
	}
	b.add(pre)
	b.add(register)
	b.add(start)
}

// NodePackages lists the packages a node's jobs need, with their
// dependencies, each after what it depends on; owner names, for each
// package a job names itself, the first such job on the node.
func (d *Deployment) NodePackages(ip string) ([]release.Package, map[string]string, error) {
	var want []string
	owner := map[string]string{}
	for _, job := range d.NodeJobs(ip) {
		for _, p := range d.JobPackages(job) {
			if owner[p] == "" {
				owner[p] = job
				want = append(want, p)
			}
		}
	}
	order, err := release.PackageOrder(d.Release.Packages, want)
	return order, owner, err
}

// JobPackages are the packages the engine installs for job: its spec's,
// but none for the job named bpm, which the engine's stand-in replaces
// (bpm-release's packages build runc and bpm's Go binary, which nothing
// runs here).
func (d *Deployment) JobPackages(job string) []string {
	if job == BPMJob {
		return nil
	}
	return d.Release.Specs[job].Packages
}

// NodeJobs lists the jobs placed on a node, by name.
func (d *Deployment) NodeJobs(ip string) []string {
	var out []string
	for _, job := range contract.SortedKeys(d.Jobs) {
		for _, x := range d.Jobs[job] {
			if x == ip {
				out = append(out, job)
			}
		}
	}
	return out
}

func jobOrder(d *Deployment, job string) int {
	for i, j := range d.Release.Jobs {
		if j.Name == job {
			return i
		}
	}
	return 0
}

// IsErrand tells whether a job is an errand, as BOSH tells one: its
// templates include bin/run.
func IsErrand(job *release.Job) bool {
	if job == nil {
		return false
	}
	for _, t := range job.Templates {
		if t.Dest == "bin/run" {
			return true
		}
	}
	return false
}
