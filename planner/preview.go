package planner

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/micro"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/planner/validate"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/nodefs"
)

// The plan of a deployment is what a deploy would run, worked out without
// running it: the same steps are rendered, and each node's step markers
// (the hash of what the engine last applied there) say which of them
// would run. What the engine last wrote comes from the rendered steps it
// keeps per deployment; the node's files are read to find drift. Nothing
// is written: no bucket, stream or node file.

// nodeRead is what a plan read on one node.
type nodeRead struct {
	err     string
	monit   bool
	markers map[string]string // marker key → hash
	files   map[string][]byte // path → content; absent: no such file
	raw     string            // for the plan id
}

// planEndpoint answers de.cmd.deploy.plan.
func (p *Planner) planEndpoint(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.PlanRequest
	if len(req.Data()) > 0 {
		if err := kit.Decode(req, &in); err != nil {
			return 0, nil, err
		}
	}
	plan, err := p.planOf(ctx, in.Config)
	if err != nil {
		return 0, nil, err
	}
	return 200, plan, nil
}

// planOf plans a deployment of the posted config body, or of the stored
// config when body is empty. A secret posted as the redaction marker keeps
// the stored one, as in a config stored again.
func (p *Planner) planOf(ctx context.Context, body []byte) (*contract.Plan, error) {
	stored, had, err := p.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg, source := stored, "stored"
	if len(strings.TrimSpace(string(body))) > 0 {
		posted, problems := validate.Config(body, p.catalogsIn(ctx), validate.Webhooks(p.o.Webhooks))
		if len(problems) > 0 {
			return nil, rejected(problems)
		}
		for name, s := range posted.Properties.Secrets() {
			if *s == contract.Redacted && (!had || *stored.Properties.Secrets()[name] == "") {
				problems = append(problems, contract.Problem{Path: "properties." + name, Reason: "holds the redaction marker but no secret is stored to keep: send the real value"})
			}
		}
		if len(problems) > 0 {
			return nil, rejected(problems)
		}
		posted.KeepSecrets(stored)
		cfg, source = posted, "posted"
	} else if !had {
		return nil, errNoConfig
	}
	plan, err := p.plan(ctx, cfg, stored)
	if err != nil {
		return nil, err
	}
	plan.Config = source
	return plan, nil
}

// plan works out what a deployment of cfg would do now. What it shows
// passes the redaction of every secret it may hold: cfg's, stored's (the
// config stored, which the nodes may hold), the nodes' agent passwords and
// the secrets of the configs whose files it compares with.
func (p *Planner) plan(ctx context.Context, cfg, stored contract.Config) (*contract.Plan, error) {
	red := cfg.OutputRedactor(p.agentPasswords(cfg)...).Also(stored)
	cat, rel, err := p.sourceOf(cfg)
	if err != nil {
		return nil, err
	}
	previous, err := sched.LoadPlacement(ctx, p.o.Res)
	if err != nil {
		return nil, err
	}
	nodes := cfg.Nodes()
	for ip := range previous {
		if !slices.Contains(nodes, ip) {
			nodes = append(nodes, ip)
		}
	}
	sort.Strings(nodes)

	// First the markers (and monit, which decides the mirror step), then
	// the files of the steps the markers point at.
	reads := p.readNodes(ctx, nodes, func(string) string { return markersScript })
	noMonit := map[string]bool{}
	for ip, r := range reads {
		noMonit[ip] = r.err == "" && !r.monit
	}
	b := p.builderFor(cfg, cat, "plan", previous, noMonit)
	planned, err := p.stepsFor(ctx, b, rel)
	if err != nil {
		return nil, &kit.Error{Code: 500, Msg: "could not plan the deployment: " + red.Redact(err.Error())}
	}
	if rel == nil {
		markers := map[string]map[string]string{}
		for ip, r := range reads {
			if r.err == "" {
				markers[ip] = r.markers
			}
		}
		if planned, _, err = b.RolloutSteps(planned, markers, contract.UpdateSettings{}); err != nil {
			return nil, &kit.Error{Code: 500, Msg: "could not plan the rollout: " + red.Redact(err.Error())}
		}
	}
	byNode := map[string][]*steps.Step{}
	wanted := map[string]bool{} // step id@hash whose files the engine last wrote
	for _, s := range planned {
		byNode[s.Spec.Node] = append(byNode[s.Spec.Node], s)
		if h := reads[s.Spec.Node].markers[nodefs.MarkerName(s.Spec.Key)]; h != "" {
			wanted[s.Spec.ID+"@"+h] = true
		}
	}
	written, olds, err := p.writtenSteps(ctx, wanted)
	if err != nil {
		return nil, err
	}
	for _, old := range olds {
		red = red.Also(old)
	}
	paths := map[string][]string{}
	for _, s := range planned {
		add := func(fs []contract.StepFile) {
			for _, f := range fs {
				if f.LocalPath == "" && !slices.Contains(paths[s.Spec.Node], f.Path) {
					paths[s.Spec.Node] = append(paths[s.Spec.Node], f.Path)
				}
			}
		}
		add(s.Spec.Files)
		if old, ok := written[s.Spec.ID+"@"+reads[s.Spec.Node].markers[nodefs.MarkerName(s.Spec.Key)]]; ok {
			add(old.Files)
		}
	}
	files := p.readNodes(ctx, nodes, func(ip string) string { return filesScript(paths[ip]) })
	for ip, r := range reads {
		if f := files[ip]; f.err != "" && r.err == "" {
			r.err = f.err
		} else {
			r.files, r.raw = f.files, r.raw+f.raw
		}
		reads[ip] = r
	}

	out := &contract.Plan{V: contract.Version, Nodes: []contract.PlanNode{}}
	id := sha256.New()
	fmt.Fprintf(id, "config %s\n", p.configDigest(cfg))
	for _, ip := range nodes {
		r := reads[ip]
		n := contract.PlanNode{IP: ip, Error: r.err, Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}}
		fmt.Fprintf(id, "node %s\n%s\n", ip, r.raw)
		if r.err != "" {
			fmt.Fprintf(id, "unread %s\n", ip)
		}
		added := map[string]bool{}
		for _, s := range byNode[ip] {
			if s.Spec.Action != "remove" {
				fmt.Fprintf(id, "step %s %s\n", s.Spec.ID, s.Spec.Hash)
			}
			have := r.markers[nodefs.MarkerName(s.Spec.Key)]
			old, known := written[s.Spec.ID+"@"+have]
			if !known && have == s.Spec.Hash {
				// The same hash: the engine wrote what it renders now.
				old, known = s.Spec, true
			}
			if known && have != "" {
				n.Drift = append(n.Drift, drift(s.Spec.Component, old.Files, r, red)...)
			}
			if have == s.Spec.Hash && s.Spec.Action != "remove" {
				continue
			}
			comp := s.Spec.Component
			if s.Spec.Action == "upload" && have == "" && !added[comp] && comp != steps.NodeComponent {
				added[comp] = true
				n.Actions = append(n.Actions, contract.PlanAction{Component: comp, Action: "add", Step: steps.ID(ip, comp, "add"),
					Why: fmt.Sprintf("the config places %s on %s and the node has never had it", comp, ip)})
			}
			a := contract.PlanAction{Component: comp, Action: s.Spec.Action, Step: s.Spec.ID}
			var oldp *contract.Step
			if known {
				oldp = &old
			}
			describe(&a, s, oldp, have, r, red)
			n.Actions = append(n.Actions, a)
		}
		out.Changes += len(n.Actions)
		out.Drifted += len(n.Drift)
		out.Nodes = append(out.Nodes, n)
	}
	out.ID = hex.EncodeToString(id.Sum(nil))[:24]
	redactPlan(out, red)
	return out, nil
}

// agentPasswords are the NATS passwords of cfg's nodes' agents.
func (p *Planner) agentPasswords(cfg contract.Config) []string {
	a := p.o.Agent
	if a == nil || a.Password == nil {
		return nil
	}
	var out []string
	for _, ip := range cfg.Nodes() {
		out = append(out, a.Password(ip))
	}
	return out
}

// redactPlan takes every secret red knows out of what plan shows: what the
// nodes answered, the scripts, and the diffs (whose sides were redacted
// already, see shownDiff: this catches the rest).
func redactPlan(plan *contract.Plan, red contract.OutputRedactor) {
	for i := range plan.Nodes {
		n := &plan.Nodes[i]
		n.Error = red.Redact(n.Error)
		for j := range n.Actions {
			a := &n.Actions[j]
			a.Why, a.Script = red.Redact(a.Why), red.Redact(a.Script)
			for k := range a.Files {
				a.Files[k].Diff = red.Redact(a.Files[k].Diff)
			}
		}
		for j := range n.Drift {
			n.Drift[j].Diff = red.Redact(n.Drift[j].Diff)
		}
	}
}

// configDigest stands for cfg in a plan id: its redacted form and a keyed
// digest of each secret, so that a changed secret changes the id.
func (p *Planner) configDigest(cfg contract.Config) string {
	b, _ := json.Marshal(cfg.Redact())
	parts := []string{string(b)}
	secrets := cfg.Properties.Secrets()
	for _, name := range contract.SortedKeys(secrets) {
		parts = append(parts, name, p.digest(name, *secrets[name]))
	}
	return steps.Hash(parts...)
}

// describe says what a step that would run does, and why; its diffs show
// no secret red knows.
func describe(a *contract.PlanAction, s *steps.Step, old *contract.Step, have string, r nodeRead, red contract.OutputRedactor) {
	spec := s.Spec
	isNew := have == ""
	switch spec.Action {
	case "remove":
		a.Why = "the config no longer places " + spec.Component + " on this node: monit stops it and forgets it"
		return
	case "upload":
		a.Why = "rendered files differ from what the engine last wrote"
		if isNew {
			a.Why = "files to write"
		}
	case "install":
		a.Why = "install script or packages changed"
		if isNew {
			a.Why = "install packages and run the install script"
		}
		a.Packages = steps.PackagesOf(spec.Script)
	case "register":
		a.Why = "monit check changed: monit reloads"
		if isNew {
			a.Why = "register with monit"
		}
	case "watch":
		a.Why = "watch it healthy (monit, and the catalog's health check) before the rollout goes on"
		return
	case "start":
		a.Why = "restart (or reload) the running process: what it runs from changed"
		if strings.Contains(spec.Script, steps.ReloadOrRestart) {
			a.Why = "reload the running process (restart if the reload fails): what it runs from changed"
		}
		if isNew {
			a.Why = "start under monit"
		}
		return
	default:
		if t, ok := strings.CutPrefix(spec.Action, "drain-"); ok {
			a.Why = "take " + t + " out of " + spec.Component + " before it changes"
			return
		}
		if t, ok := strings.CutPrefix(spec.Action, "ready-"); ok {
			a.Why = "put " + t + " back into " + spec.Component + " once it is healthy"
			return
		}
		a.Why = spec.Action + " changed"
		if isNew {
			a.Why = spec.Action + ": not applied on this node yet"
		}
	}
	if spec.Component == steps.NodeComponent {
		a.Why = "node step " + spec.Action + ": " + a.Why
	}
	for _, f := range spec.Files {
		if f.LocalPath != "" {
			if !isNew {
				a.Files = append(a.Files, contract.PlanFile{Path: f.Path, Diff: "(binary " + f.Path + " is sent again)\n"})
			}
			continue
		}
		var before []byte
		var had bool
		if old != nil {
			for _, of := range old.Files {
				if of.Path == f.Path {
					before, had = of.Content, true
				}
			}
		}
		if !had {
			// The engine keeps no record of it: the node's file stands in.
			before, had = r.files[f.Path]
		}
		if had && sha(before) == f.SHA256 {
			continue
		}
		a.Files = append(a.Files, contract.PlanFile{Path: f.Path, Diff: shownDiff(red, f.Path, before, f.Content, had)})
	}
	if old != nil {
		for _, of := range old.Files {
			gone := true
			for _, f := range spec.Files {
				gone = gone && f.Path != of.Path
			}
			if gone && of.LocalPath == "" {
				a.Files = append(a.Files, contract.PlanFile{Path: of.Path, Diff: "(no longer rendered; left on the node)\n"})
			}
		}
	}
	if spec.Action == "install" || (spec.Action != "upload" && len(spec.Files) == 0) {
		if old != nil && old.Script != spec.Script {
			a.Script = shownDiff(red, "script", []byte(old.Script), []byte(spec.Script), true)
		} else if isNew || old == nil {
			a.Script = spec.Script
		}
	}
}

// drift lists the files of a step the engine last wrote that the node no
// longer holds as written; its diffs show no secret red knows.
func drift(comp string, files []contract.StepFile, r nodeRead, red contract.OutputRedactor) []contract.PlanDrift {
	var out []contract.PlanDrift
	for _, f := range files {
		if f.LocalPath != "" {
			continue
		}
		got, ok := r.files[f.Path]
		switch {
		case !ok && r.files != nil:
			out = append(out, contract.PlanDrift{Component: comp, Path: f.Path, Want: f.SHA256, Found: "missing"})
		case ok && sha(got) != f.SHA256:
			out = append(out, contract.PlanDrift{Component: comp, Path: f.Path, Want: f.SHA256, Found: sha(got),
				Diff: shownDiff(red, f.Path, f.Content, got, true)})
		}
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// shownDiff is the diff of two contents that differ as a plan shows it:
// with red's secrets taken out of each side first, so that a secret of
// several lines goes whole, and a change of secrets alone is said so.
func shownDiff(red contract.OutputRedactor, path string, before, after []byte, existed bool) string {
	b, a := red.Redact(string(before)), red.Redact(string(after))
	if existed && a == b {
		return "(only secrets changed: not shown)\n"
	}
	return unified(path, []byte(b), []byte(a), existed)
}

// unified is a git-style diff of one file; a file that did not exist
// comes from /dev/null.
func unified(path string, before, after []byte, existed bool) string {
	from := "a" + path
	if !strings.HasPrefix(path, "/") {
		from = "a/" + path
	}
	to := "b" + strings.TrimPrefix(from, "a")
	if !existed {
		from = "/dev/null"
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(before)), B: difflib.SplitLines(string(after)),
		FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("(no diff: %v)\n", err)
	}
	if d == "" {
		return "(mode or metadata only)\n"
	}
	return d
}

// writtenSteps finds, among the rendered steps kept per deployment, the
// ones the nodes' markers point at (step id@hash), newest deployment first,
// and the configs of the deployments they come from, whose secrets their
// files may hold.
func (p *Planner) writtenSteps(ctx context.Context, wanted map[string]bool) (map[string]contract.Step, []contract.Config, error) {
	out := map[string]contract.Step{}
	if len(wanted) == 0 {
		return out, nil, nil
	}
	keys, err := sched.DeploymentIDs(ctx, p.o.Res)
	if err != nil {
		return nil, nil, fmt.Errorf("list deployments: %w", err)
	}
	var cfgs []contract.Config
	var ids []string
	for _, k := range keys {
		if strings.HasPrefix(k, "d-") {
			ids = append(ids, k)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	for _, id := range ids {
		if len(out) == len(wanted) {
			break
		}
		specs, err := sched.StoredSteps(ctx, p.o.Res, id)
		if err != nil {
			continue
		}
		used := false
		for sid, s := range specs {
			key := sid + "@" + s.Hash
			if _, done := out[key]; wanted[key] && !done {
				out[key], used = s, true
			}
		}
		if !used {
			continue
		}
		if cfg, err := p.appliedConfig(ctx, id); err == nil {
			cfgs = append(cfgs, cfg)
		}
	}
	return out, cfgs, nil
}

const markersScript = `if command -v monit >/dev/null 2>&1; then echo "monit yes"; else echo "monit no"; fi
for f in ` + nodefs.Applied + `/*; do
  [ -f "$f" ] || continue
  printf 'marker %s %s\n' "${f##*/}" "$(cut -d' ' -f1 "$f")"
done
`

// filesScript prints each path's content, base64 on one line, or that it
// is missing.
func filesScript(paths []string) string {
	var b strings.Builder
	sort.Strings(paths)
	for _, p := range paths {
		q := kit.ShellQuote(p)
		fmt.Fprintf(&b, "if [ -f %[1]s ]; then printf 'file %%s\\t' %[1]s; base64 -w0 < %[1]s; echo; else printf 'missing %%s\\n' %[1]s; fi\n", q)
	}
	b.WriteString("echo end\n")
	return b.String()
}

// readNodes runs a read-only script on every node through the installer.
func (p *Planner) readNodes(ctx context.Context, nodes []string, script func(ip string) string) map[string]nodeRead {
	out := make(map[string]nodeRead, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ip := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := p.readNode(ctx, ip, script(ip))
			mu.Lock()
			out[ip] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (p *Planner) readNode(ctx context.Context, ip, script string) nodeRead {
	r := nodeRead{markers: map[string]string{}}
	x, err := nodeclient.Exec(ctx, p.o.NC, ip, script, p.o.ProbeTimeout)
	var answered *nodeclient.AnswerError
	if errors.As(err, &answered) {
		r.err = fmt.Sprintf("not read (%d): %s", answered.Code, answered.Msg)
		return r
	}
	if err != nil {
		r.err = "not read: " + err.Error()
		return r
	}
	if x.Error != "" || x.ExitCode != 0 {
		r.err = fmt.Sprintf("not read: %s (exit %d)", x.Error, x.ExitCode)
		return r
	}
	return parseRead(x.Output, strings.Contains(script, "echo end"))
}

// parseRead reads what markersScript and filesScript print; wantEnd says
// that the output must end with filesScript's last line.
func parseRead(output string, wantEnd bool) nodeRead {
	r := nodeRead{markers: map[string]string{}, raw: output}
	complete := false
	for _, line := range strings.Split(output, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "monit":
			r.monit = rest == "yes"
		case "marker":
			if k, h, ok := strings.Cut(rest, " "); ok {
				r.markers[k] = h
			}
		case "file":
			if r.files == nil {
				r.files = map[string][]byte{}
			}
			if path, enc, ok := strings.Cut(rest, "\t"); ok {
				b, err := base64.StdEncoding.DecodeString(enc)
				if err == nil {
					r.files[path] = b
				}
			} else {
				r.files[rest] = []byte{}
			}
		case "missing":
			if r.files == nil {
				r.files = map[string][]byte{}
			}
		case "end":
			complete = true
		}
	}
	if wantEnd && !complete {
		r.err = "not read: the node's answer was cut short"
	}
	return r
}

// errStalePlan is a deployment refused because what it would do is no
// longer what the plan said.
func errStalePlan(id, now string) error {
	return &kit.Error{Code: 409, Msg: fmt.Sprintf("plan %s is stale: the config, catalog or nodes changed since (the plan is now %s); plan again and review it", id, now)}
}

// markersOf reads the step markers of nodes; a node not read is missing.
func (p *Planner) markersOf(ctx context.Context, nodes []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for ip, r := range p.readNodes(ctx, nodes, func(string) string { return markersScript }) {
		if r.err == "" {
			out[ip] = r.markers
		}
	}
	return out
}
