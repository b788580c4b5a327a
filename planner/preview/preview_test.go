package preview

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// The node scripts run here with bash on real files, and what they print
// parses back into what is on disk.
func TestNodeReadScripts(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a conf"), filepath.Join(dir, "gone")
	if err := os.WriteFile(a, []byte("line 1\nsecret: <redacted>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", FilesScript([]string{a, b}, map[string]string{"web.start": "test -e " + b, "db.start": "test -e '" + a + "'"})).Output()
	if err != nil {
		t.Fatal(err)
	}
	r := ParseRead(string(out), true)
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	if got := string(r.Files[a]); got != "line 1\nsecret: <redacted>\n" {
		t.Errorf("content of %s read as %q", a, got)
	}
	if _, ok := r.Files[b]; ok {
		t.Errorf("a missing file read as present")
	}
	if len(r.Lapsed) != 1 || r.Lapsed[0] != "web.start" {
		t.Errorf("lapsed markers %v, want web.start alone", r.Lapsed)
	}
	if cut := ParseRead(strings.TrimSuffix(string(out), "end\n"), true); cut.Err == "" {
		t.Errorf("an answer without its last line was taken as complete")
	}
	m := ParseRead("monit yes\nmarker web.upload 0123abcd\nmarker _node.prepare ffee\n", false)
	if !m.Monit || m.Markers["web.upload"] != "0123abcd" || m.Markers["_node.prepare"] != "ffee" {
		t.Errorf("markers read as %+v", m)
	}
}

func TestDriftAndDescribe(t *testing.T) {
	written := steps.File("/etc/x.conf", 0o644, []byte("a\nb\nc\n"))
	tests := []struct {
		name      string
		node      map[string][]byte
		wantDrift string // found, "" for none
	}{
		{"as written", map[string][]byte{"/etc/x.conf": []byte("a\nb\nc\n")}, ""},
		{"changed by hand", map[string][]byte{"/etc/x.conf": []byte("a\nB\nc\n")}, sha([]byte("a\nB\nc\n"))},
		{"removed", map[string][]byte{}, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drift("web", []contract.StepFile{written}, Read{Files: tt.node}, contract.OutputRedactor{})
			if tt.wantDrift == "" {
				if len(d) != 0 {
					t.Fatalf("drift %+v", d)
				}
				return
			}
			if len(d) != 1 || d[0].Found != tt.wantDrift || d[0].Want != written.SHA256 {
				t.Fatalf("drift %+v, want found %s", d, tt.wantDrift)
			}
			if tt.wantDrift != "missing" && !strings.Contains(d[0].Diff, "-b\n+B\n") {
				t.Errorf("drift diff:\n%s", d[0].Diff)
			}
		})
	}

	newer := steps.File("/etc/x.conf", 0o644, []byte("a\nb2\nc\n"))
	s := &steps.Step{Spec: contract.Step{ID: "n/web/upload", Component: "web", Action: "upload", Files: []contract.StepFile{newer, steps.File("/etc/new", 0o644, []byte("n\n"))}, Hash: "h2"}}
	old := contract.Step{Files: []contract.StepFile{written}, Hash: "h1"}
	var a contract.PlanAction
	describe(&a, s, &old, "h1", Read{}, contract.OutputRedactor{})
	if len(a.Files) != 2 {
		t.Fatalf("files %+v", a.Files)
	}
	if d := a.Files[0].Diff; !strings.HasPrefix(d, "--- a/etc/x.conf\n+++ b/etc/x.conf\n") || !strings.Contains(d, "-b\n+b2\n") {
		t.Errorf("diff of a changed file:\n%s", d)
	}
	if d := a.Files[1].Diff; !strings.HasPrefix(d, "--- /dev/null\n+++ b/etc/new\n") {
		t.Errorf("diff of a new file:\n%s", d)
	}
}

// What a node answers is outside input: any of it parses without a crash,
// and a file's content is what its base64 said.
func FuzzParseRead(f *testing.F) {
	f.Add("monit yes\nmarker web.upload 0a1b\nfile /etc/x\taGVsbG8K\nmissing /etc/y\nend\n")
	f.Add("file /etc/x\t!!!\nmarker\nfile\n")
	f.Fuzz(func(t *testing.T, out string) {
		r := ParseRead(out, true)
		for p, b := range r.Files {
			if strings.ContainsAny(p, "\n") {
				t.Fatalf("path %q holds a newline", p)
			}
			_ = b
		}
	})
}

// A diff redacts each side before it is made: a secret of several lines
// goes whole, and a change of secrets alone shows none of them.
func TestShownDiff(t *testing.T) {
	key := "-----BEGIN KEY-----\nabc\n-----END KEY-----"
	red := contract.Config{Properties: contract.Properties{Key: key}}.OutputRedactor("OldPw-123", "NewPw-456")
	for _, tc := range []struct {
		name, before, after, want string
	}{
		{"key of several lines", "", "key:\n" + key + "\n", "+key:\n+<redacted>\n"},
		{"secrets alone changed", "pw=OldPw-123\n", "pw=NewPw-456\n", "(only secrets changed: not shown)\n"},
		{"secret and more", "a=1\npw=OldPw-123\n", "a=2\npw=NewPw-456\n", "-a=1\n+a=2\n pw=<redacted>\n"},
	} {
		got := shownDiff(red, "/f", []byte(tc.before), []byte(tc.after), tc.before != "")
		if !strings.Contains(got, tc.want) || strings.Contains(got, "Pw-") || strings.Contains(got, "abc") {
			t.Errorf("%s: got\n%s\nwant it to hold\n%s", tc.name, got, tc.want)
		}
	}
}

// Why a step would run: what changed, or that it never ran on the node.
func TestDescribeWhy(t *testing.T) {
	reload := "x " + steps.ReloadOrRestart + " y"
	for _, c := range []struct {
		action, script, have, want string
	}{
		{"upload", "", "", "files to write"},
		{"upload", "", "h1", "rendered files differ from what the engine last wrote"},
		{"install", "", "", "install packages and run the install script"},
		{"install", "", "h1", "install script or packages changed"},
		{"register", "", "", "register with monit"},
		{"register", "", "h1", "monit check changed: monit reloads"},
		{"start", "", "", "start under monit"},
		{"start", "", "h1", "restart (or reload) the running process: what it runs from changed"},
		{"start", reload, "h1", "reload the running process (restart if the reload fails): what it runs from changed"},
		{"drain-web", "", "h1", "take web out of haproxy before it changes"},
		{"prepare", "", "", "prepare: not applied on this node yet"},
		{"prepare", "", "h1", "prepare changed"},
	} {
		s := &steps.Step{Spec: contract.Step{Component: "haproxy", Action: c.action, Script: c.script}}
		var a contract.PlanAction
		describe(&a, s, nil, c.have, Read{}, contract.OutputRedactor{})
		if a.Why != c.want {
			t.Errorf("%s (have %q): why %q, want %q", c.action, c.have, a.Why, c.want)
		}
	}
}

// A node in maintenance has its actions held, and those another node runs
// for its instances; held actions are counted apart from the changes, and
// the plan's id changes with what is held.
func TestBuildHoldsNodesInMaintenance(t *testing.T) {
	step := func(node, comp, action, forNode string) *steps.Step {
		return &steps.Step{Spec: contract.Step{ID: steps.ID(node, comp, action), Node: node, Component: comp, Action: action, Key: comp + "." + action, Hash: "h"}, For: forNode}
	}
	planned := []*steps.Step{
		step("10.0.0.1", "web", "upload", ""), step("10.0.0.1", "web", "start", ""),
		step("10.0.0.2", "web", "upload", ""), step("10.0.0.2", "web", "start", ""),
		step("10.0.0.3", "lb", "drain-web-10.0.0.1", "10.0.0.1"), step("10.0.0.3", "lb", "drain-web-10.0.0.2", "10.0.0.2"),
	}
	nodes := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	reads := map[string]Read{}
	for _, ip := range nodes {
		reads[ip] = Read{Markers: map[string]string{"web.upload": "old", "web.start": "old"}}
	}
	why := "maintenance: disk swap (by alice)"
	free := Build(nodes, reads, planned, nil, nil, "c", contract.OutputRedactor{})
	p := Build(nodes, reads, planned, nil, map[string]string{"10.0.0.1": why}, "c", contract.OutputRedactor{})
	if free.Changes != 6 || free.Held != 0 || p.Changes != 3 || p.Held != 3 {
		t.Fatalf("changes %d held %d free; %d held %d with 10.0.0.1 in maintenance", free.Changes, free.Held, p.Changes, p.Held)
	}
	if p.ID == free.ID {
		t.Error("the plan's id does not change with the nodes held")
	}
	for _, n := range p.Nodes {
		if (n.IP == "10.0.0.1") != (n.Held == why) {
			t.Errorf("node %s held %q", n.IP, n.Held)
		}
		for _, a := range n.Actions {
			want := n.IP == "10.0.0.1" || a.Action == "drain-web-10.0.0.1"
			if a.Held != want {
				t.Errorf("%s held %v, want %v", a.Step, a.Held, want)
			}
		}
	}
}

// A start step whose marker matches is no change, unless the node said
// its Holds lapsed (its process is gone): then the plan shows it, saying
// why.
func TestBuildShowsLapsedStart(t *testing.T) {
	start := &steps.Step{Spec: contract.Step{ID: steps.ID("10.0.0.1", "web", "start"), Node: "10.0.0.1", Component: "web", Action: "start", Key: "web.start", Hash: "h"}}
	nodes := []string{"10.0.0.1"}
	kept := Build(nodes, map[string]Read{"10.0.0.1": {Markers: map[string]string{"web.start": "h"}}}, []*steps.Step{start}, nil, nil, "c", contract.OutputRedactor{})
	gone := Build(nodes, map[string]Read{"10.0.0.1": {Markers: map[string]string{"web.start": "h"}, Lapsed: []string{"web.start"}}}, []*steps.Step{start}, nil, nil, "c", contract.OutputRedactor{})
	if kept.Changes != 0 || gone.Changes != 1 {
		t.Fatalf("changes %d with the process running, %d with it gone", kept.Changes, gone.Changes)
	}
	if a := gone.Nodes[0].Actions[0]; a.Step != start.Spec.ID || !strings.Contains(a.Why, "process gone") {
		t.Errorf("the start of a process gone: %+v", a)
	}
}

// MarkersScript reads each marker's hash with the shell's builtins, in the
// POSIX shell and in bash alike: a marker as the installer writes it, one
// without its newline, an empty one.
func TestMarkersScript(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"web.start": "4f2a d-1\n", "web.upload": "9c0e d-2", "web.install": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := strings.ReplaceAll(MarkersScript, nodefs.Applied, dir)
	for _, sh := range []string{"sh", "bash"} {
		out, err := exec.Command(sh, "-c", script).Output()
		if err != nil {
			t.Fatalf("%s: %v", sh, err)
		}
		got := ParseRead(string(out), false).Markers
		want := map[string]string{"web.start": "4f2a", "web.upload": "9c0e", "web.install": ""}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: markers %v, want %v\n%s", sh, got, want, out)
		}
	}
}
