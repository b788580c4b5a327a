// Package preview shows what a deployment would change on each node, from
// its steps, the node's step markers and the files the node holds.
package preview

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// Read is what a plan read on one node.
type Read struct {
	Err     string
	Monit   bool
	Markers map[string]string // marker key → hash
	Files   map[string][]byte // path → content; absent: no such file
	// Lapsed are the marker keys whose step's Holds failed on the node:
	// the step runs again though its marker matches (a start step whose
	// process went).
	Lapsed []string
	Raw    string // for the plan id
}

// redact takes every secret red knows out of what plan shows: what the
// nodes answered, the scripts, and the diffs (whose sides were redacted
// already, see shownDiff: this catches the rest).
func redact(plan *contract.Plan, red contract.OutputRedactor) {
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

// firstOr is why a step runs: first when it never ran on the node (isNew),
// else changed.
func firstOr(isNew bool, first, changed string) string {
	if isNew {
		return first
	}
	return changed
}

// describe says what a step that would run does, and why; its diffs show
// no secret red knows.
func describe(a *contract.PlanAction, s *steps.Step, old *contract.Step, have string, r Read, red contract.OutputRedactor) {
	spec := s.Spec
	isNew := have == ""
	switch spec.Action {
	case "remove":
		a.Why = "the config no longer places " + spec.Component + " on this node: monit stops it and forgets it"
		return
	case "upload":
		a.Why = firstOr(isNew, "files to write", "rendered files differ from what the engine last wrote")
	case "install":
		a.Why = firstOr(isNew, "install packages and run the install script", "install script or packages changed")
		a.Packages = steps.PackagesOf(spec.Script)
	case "register":
		a.Why = firstOr(isNew, "register with monit", "monit check changed: monit reloads")
	case "watch":
		a.Why = "watch it healthy (monit, and the catalog's health check) before the rollout goes on"
		return
	case "start":
		again := "restart (or reload) the running process: what it runs from changed"
		if strings.Contains(spec.Script, steps.ReloadOrRestart) {
			again = "reload the running process (restart if the reload fails): what it runs from changed"
		}
		a.Why = firstOr(isNew, "start under monit", again)
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
		a.Why = firstOr(isNew, spec.Action+": not applied on this node yet", spec.Action+" changed")
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
			before, had = r.Files[f.Path]
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
func drift(comp string, files []contract.StepFile, r Read, red contract.OutputRedactor) []contract.PlanDrift {
	var out []contract.PlanDrift
	for _, f := range files {
		if f.LocalPath != "" {
			continue
		}
		got, ok := r.Files[f.Path]
		switch {
		case !ok && r.Files != nil:
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

// MarkersScript is nodefs.MarkersScript: every plan reads every node's
// markers with it.
const MarkersScript = nodefs.MarkersScript

// FilesScript prints each path's content, base64 on one line, or that it
// is missing; then the marker keys of holds (key → its step's Holds) whose
// command fails.
func FilesScript(paths []string, holds map[string]string) string {
	var b strings.Builder
	sort.Strings(paths)
	for _, p := range paths {
		q := kit.ShellQuote(p)
		fmt.Fprintf(&b, "if [ -f %[1]s ]; then printf 'file %%s\\t' %[1]s; base64 -w0 < %[1]s; echo; else printf 'missing %%s\\n' %[1]s; fi\n", q)
	}
	for _, k := range contract.SortedKeys(holds) {
		fmt.Fprintf(&b, "if ! { %s; } >/dev/null 2>&1; then echo 'lapsed %s'; fi\n", holds[k], k)
	}
	b.WriteString("echo end\n")
	return b.String()
}

// ParseRead reads what markersScript and filesScript print; wantEnd says
// that the output must end with filesScript's last line.
func ParseRead(output string, wantEnd bool) Read {
	r := Read{Markers: map[string]string{}, Raw: output}
	complete := false
	for _, line := range strings.Split(output, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "monit":
			r.Monit = rest == "yes"
		case "marker":
			if k, h, ok := strings.Cut(rest, " "); ok {
				r.Markers[k] = h
			}
		case "file":
			if r.Files == nil {
				r.Files = map[string][]byte{}
			}
			if path, enc, ok := strings.Cut(rest, "\t"); ok {
				b, err := base64.StdEncoding.DecodeString(enc)
				if err == nil {
					r.Files[path] = b
				}
			} else {
				r.Files[rest] = []byte{}
			}
		case "missing":
			if r.Files == nil {
				r.Files = map[string][]byte{}
			}
		case "lapsed":
			r.Lapsed = append(r.Lapsed, rest)
		case "end":
			complete = true
		}
	}
	if wantEnd && !complete {
		r.Err = "not read: the node's answer was cut short"
	}
	return r
}

// Build is the plan of a deployment of planned on nodes, read as reads,
// where written holds the steps the engine last wrote that the nodes'
// markers point at (step id@hash) and config stands for the config in the
// plan's id. held are the nodes in maintenance, and why: their actions,
// and those another node runs for their instances, are shown held and
// counted apart. Nothing it shows holds a secret red knows.
func Build(nodes []string, reads map[string]Read, planned []*steps.Step, written map[string]contract.Step, held map[string]string, config string, red contract.OutputRedactor) *contract.Plan {
	byNode := map[string][]*steps.Step{}
	for _, s := range planned {
		byNode[s.Spec.Node] = append(byNode[s.Spec.Node], s)
	}
	out := &contract.Plan{V: contract.Version, Nodes: []contract.PlanNode{}}
	id := sha256.New()
	fmt.Fprintf(id, "config %s\n", config)
	for _, ip := range nodes {
		r := reads[ip]
		n := contract.PlanNode{IP: ip, Error: r.Err, Held: held[ip], Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}}
		fmt.Fprintf(id, "node %s\n%s\n", ip, r.Raw)
		if n.Held != "" {
			fmt.Fprintf(id, "held %s\n", ip)
		}
		if r.Err != "" {
			fmt.Fprintf(id, "unread %s\n", ip)
		}
		added := map[string]bool{}
		for _, s := range byNode[ip] {
			if s.Spec.Action != "remove" {
				fmt.Fprintf(id, "step %s %s\n", s.Spec.ID, s.Spec.Hash)
			}
			have := r.Markers[nodefs.MarkerName(s.Spec.Key)]
			old, known := written[s.Spec.ID+"@"+have]
			if !known && have == s.Spec.Hash {
				// The same hash: the engine wrote what it renders now.
				old, known = s.Spec, true
			}
			if known && have != "" {
				n.Drift = append(n.Drift, drift(s.Spec.Component, old.Files, r, red)...)
			}
			lapsed := slices.Contains(r.Lapsed, nodefs.MarkerName(s.Spec.Key))
			if have == s.Spec.Hash && s.Spec.Action != "remove" && !lapsed {
				continue
			}
			comp := s.Spec.Component
			if s.Spec.Action == "upload" && have == "" && !added[comp] && comp != steps.NodeComponent {
				added[comp] = true
				n.Actions = append(n.Actions, contract.PlanAction{Component: comp, Action: "add", Step: steps.ID(ip, comp, "add"),
					Why: fmt.Sprintf("the config places %s on %s and the node has never had it", comp, ip), Held: n.Held != ""})
			}
			a := contract.PlanAction{Component: comp, Action: s.Spec.Action, Step: s.Spec.ID, Held: n.Held != "" || held[s.For] != ""}
			var oldp *contract.Step
			if known {
				oldp = &old
			}
			describe(&a, s, oldp, have, r, red)
			if lapsed {
				a.Why = fmt.Sprintf("unchanged, but monit reports %s's process gone on %s: the deploy starts it", comp, ip)
			}
			n.Actions = append(n.Actions, a)
		}
		for _, a := range n.Actions {
			if a.Held {
				out.Held++
			} else {
				out.Changes++
			}
		}
		out.Drifted += len(n.Drift)
		out.Nodes = append(out.Nodes, n)
	}
	out.ID = hex.EncodeToString(id.Sum(nil))[:24]
	redact(out, red)
	return out
}
