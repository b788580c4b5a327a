package execd

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

const nonce = "NONCE0123456789abcdef"

func chainRequest(steps ...nodeexec.ChainStep) nodeexec.Request {
	req := newRequest("", nil)
	req.Chain = &nodeexec.Chain{Nonce: nonce, Steps: steps}
	return req
}

// step is a chain step whose Run records its run as the installer's does
// (the record's format is checked in the installer's tests) and evals its
// script.
func step(key, script string) nodeexec.ChainStep {
	return nodeexec.ChainStep{Key: key, Hash: "h-" + key, Deployment: "d1", Secs: 10, Script: script,
		Run:  `read -r _ _ _ _ pg _ < /proc/$$/stat; echo "$pg $DE_UNTIL" > "$DE_ROOT` + nodefs.Run + `/` + key + `.pgid"; s=$DE_S; unset -v DE_S DE_UNTIL; eval "$s"`,
		Reap: `echo "reaped $1"`}
}

func file(p string, mode uint32, content string) nodeexec.ChainFile {
	sum := sha256.Sum256([]byte(content))
	return nodeexec.ChainFile{Path: p, Mode: mode, SHA256: hex.EncodeToString(sum[:]), Content: []byte(content)}
}

// marks are the control lines of a chain's stdout, without the nonce.
func marks(out string) []string {
	var m []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, nonce+" "); ok {
			m = append(m, rest)
		}
	}
	return m
}

// The agent runs a chain itself as the chain script does: control lines
// in order, markers read (a step whose marker holds its hash does not
// run), files installed with their modes and left alone when the node has
// them, the chain stopped by a failing step and by a file that does not
// check out.
func TestChainRuns(t *testing.T) {
	root := t.TempDir()
	b := newExecBed(t, Options{Root: root})
	b.e.env = append(b.e.env, "DE_ROOT="+root)
	conf := "/etc/svc/svc.conf"
	run := func(steps ...nodeexec.ChainStep) (*result, []string) {
		t.Helper()
		res := b.run(t, chainRequest(steps...))
		if res.code == nil || *res.code != 0 {
			t.Fatalf("chain status %v %q, want 0", res.code, res.err)
		}
		if got, want := marks(res.stderr.String()), marks(res.stdout.String()); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("stderr's control lines %q differ from stdout's %q", got, want)
		}
		return res, marks(res.stdout.String())
	}
	upload := step("c.upload", "cat "+root+conf+"\n")
	upload.Files = []nodeexec.ChainFile{file(conf, 0o640, "port 1\n"), file("/usr/local/bin/svc", 0o4755, "#!/bin/sh\n")}
	start := step("c.start", "echo started; echo to-stderr >&2\n")
	res, m := run(upload, start)
	if want := []string{"begin 0", "sent 0 0", "sent 0 1", "exit 0 0", "begin 1", "exit 1 0", "end"}; strings.Join(m, "|") != strings.Join(want, "|") {
		t.Fatalf("marks %q, want %q", m, want)
	}
	if !strings.Contains(res.stdout.String(), "port 1\n"+nonce+" exit 0 0") || !strings.Contains(res.stderr.String(), "to-stderr\n"+nonce+" exit 1 0") {
		t.Errorf("a step's lines are not before its end: %q / %q", res.stdout.String(), res.stderr.String())
	}
	for p, want := range map[string]os.FileMode{conf: 0o640, "/usr/local/bin/svc": 0o755 | os.ModeSetuid} {
		fi, err := os.Stat(root + p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want mode %v", p, fi.Mode(), err, want)
		}
	}
	before, _ := os.Stat(root + conf)

	// Marked as done: the same chain runs nothing, and says how each ended.
	for _, k := range []string{"c.upload", "c.start"} {
		writeNode(t, root, nodefs.Applied+"/"+k, "h-"+k+" d1\n")
	}
	upload.Deployment = "d2"
	if _, m := run(upload, start); strings.Join(m, "|") != "begin 0|done 0 unchanged|begin 1|done 1 succeeded|end" {
		t.Errorf("marked steps: %q", m)
	}

	// A new content for the same file, the other left alone; a failing
	// step stops the chain.
	upload.Hash = "h2"
	upload.Files[0] = file(conf, 0o640, "port 2\n")
	failing := step("c.fail", "exit 3\n")
	after := step("c.after", "touch "+root+"/ran\n")
	_, m = run(upload, failing, after)
	if want := "begin 0|sent 0 0|exit 0 0|begin 1|exit 1 3"; strings.Join(m, "|") != want {
		t.Errorf("marks %q, want %q", m, want)
	}
	if b, _ := os.ReadFile(root + conf); string(b) != "port 2\n" {
		t.Errorf("the file holds %q", b)
	}
	if after, _ := os.Stat(root + conf); os.SameFile(before, after) {
		t.Error("the changed file was not replaced")
	}
	if _, err := os.Stat(root + "/ran"); err == nil {
		t.Error("a step after the failing one ran")
	}
	if b, _ := os.ReadFile(root + nodefs.Applied + "/c.upload"); len(b) != 0 {
		t.Errorf("the step that sent files left its old marker %q", b)
	}

	// A file whose content does not match its hash stops the chain before
	// the step runs, and leaves the node's file as it was.
	bad := step("c.bad", "touch "+root+"/ran\n")
	bad.Files = []nodeexec.ChainFile{file(conf, 0o640, "port 3\n")}
	bad.Files[0].Content = []byte("port 4\n")
	if _, m := run(bad); len(m) != 2 || !strings.HasPrefix(m[1], "badfile 0 "+conf+" 7 ") {
		t.Errorf("marks %q, want a badfile", m)
	}
	if b, _ := os.ReadFile(root + conf); string(b) != "port 2\n" {
		t.Errorf("the file holds %q after a bad transfer", b)
	}
	if _, err := os.Stat(root + "/ran"); err == nil {
		t.Error("the step of a bad transfer ran")
	}

	// A step with nothing to run: its marker, no shell.
	noop := step("c.noop", "")
	noop.Noop, noop.Run = true, "touch "+root+"/ran"
	if _, m := run(noop); strings.Join(m, "|") != "begin 0|exit 0 0|end" {
		t.Errorf("a step with nothing to run: marks %q", m)
	}
	if b, _ := os.ReadFile(root + nodefs.Applied + "/c.noop"); string(b) != "h-c.noop d1\n" {
		t.Errorf("its marker holds %q", b)
	}
	if _, err := os.Stat(root + "/ran"); err == nil {
		t.Error("a step with nothing to run started a shell")
	}

	// A claim on a node another engine owns stops the chain.
	writeNode(t, root, nodefs.Owner, "e-other\n")
	claim := step("c.claim", "touch "+root+"/ran\n")
	claim.Claim, claim.Engine = true, "e-mine"
	if _, m := run(claim); strings.Join(m, "|") != "begin 0|owner 0 e-other" {
		t.Errorf("marks %q, want the owner's", m)
	}
}

func writeNode(t *testing.T, root, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A step past its deadline gets TERM, then KILL 5 s later, and is reaped;
// a step whose lock another run holds does not run, and ends as flock's
// wait does (75); Holds that fail forget the marker, so the step runs.
func TestChainDeadlineLockAndHolds(t *testing.T) {
	root := t.TempDir()
	b := newExecBed(t, Options{Root: root})
	b.e.env = append(b.e.env, "DE_ROOT="+root)

	slow := step("c.slow", "trap '' TERM; sleep 30\n")
	slow.Secs = 1
	start := time.Now()
	res := b.run(t, chainRequest(slow))
	if m := marks(res.stdout.String()); strings.Join(m, "|") != "begin 0|exit 0 137" || !strings.Contains(res.stdout.String(), "reaped ") {
		t.Errorf("a step that ignores TERM past its deadline: marks %q output %q", m, res.stdout.String())
	}
	if d := time.Since(start); d < 6*time.Second || d > 15*time.Second {
		t.Errorf("the deadline and its grace took %s, want about 6 s", d)
	}

	writeNode(t, root, nodefs.Run+"/c.locked.lock", "")
	held, err := os.OpenFile(root+nodefs.Run+"/c.locked.lock", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	lockWaitWas := lockWait
	lockWait = 300 * time.Millisecond
	defer func() { lockWait = lockWaitWas }()
	locked := step("c.locked", "touch "+root+"/ran\n")
	if res := b.run(t, chainRequest(locked)); strings.Join(marks(res.stdout.String()), "|") != "begin 0|exit 0 75" {
		t.Errorf("a step whose lock is held: %q", res.stdout.String())
	}
	if _, err := os.Stat(root + "/ran"); err == nil {
		t.Error("a step ran without its lock")
	}

	held2 := step("c.held", "echo ran\n")
	held2.Holds = "false"
	writeNode(t, root, nodefs.Applied+"/c.held", "h-c.held d1\n")
	if res := b.run(t, chainRequest(held2)); strings.Join(marks(res.stdout.String()), "|") != "begin 0|exit 0 0|end" {
		t.Errorf("a step whose Holds fail: %q", res.stdout.String())
	}
	// Holds are not asked about a marker of another hash: the step runs.
	other := step("c.other", "echo ran\n")
	other.Holds = "touch " + root + "/holds-asked"
	writeNode(t, root, nodefs.Applied+"/c.other", "h-older d1\n")
	if res := b.run(t, chainRequest(other)); strings.Join(marks(res.stdout.String()), "|") != "begin 0|exit 0 0|end" {
		t.Errorf("a step of a new hash: %q", res.stdout.String())
	}
	if _, err := os.Stat(root + "/holds-asked"); err == nil {
		t.Error("Holds ran for a marker of another hash")
	}
}
