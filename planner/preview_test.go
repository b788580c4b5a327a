package planner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// The node scripts run here with bash on real files, and what they print
// parses back into what is on disk.
func TestNodeReadScripts(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a conf"), filepath.Join(dir, "gone")
	if err := os.WriteFile(a, []byte("line 1\nsecret: <redacted>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", filesScript([]string{a, b})).Output()
	if err != nil {
		t.Fatal(err)
	}
	r := parseRead(string(out), true)
	if r.err != "" {
		t.Fatal(r.err)
	}
	if got := string(r.files[a]); got != "line 1\nsecret: <redacted>\n" {
		t.Errorf("content of %s read as %q", a, got)
	}
	if _, ok := r.files[b]; ok {
		t.Errorf("a missing file read as present")
	}
	if cut := parseRead(strings.TrimSuffix(string(out), "end\n"), true); cut.err == "" {
		t.Errorf("an answer without its last line was taken as complete")
	}
	m := parseRead("monit yes\nmarker web.upload 0123abcd\nmarker _node.prepare ffee\n", false)
	if !m.monit || m.markers["web.upload"] != "0123abcd" || m.markers["_node.prepare"] != "ffee" {
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
			d := drift("web", []contract.StepFile{written}, nodeRead{files: tt.node}, contract.OutputRedactor{})
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
	describe(&a, s, &old, "h1", nodeRead{}, contract.OutputRedactor{})
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
		r := parseRead(out, true)
		for p, b := range r.files {
			if strings.ContainsAny(p, "\n") {
				t.Fatalf("path %q holds a newline", p)
			}
			_ = b
		}
	})
}
