package logsvc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

func TestNamesRefused(t *testing.T) {
	e := newEnv(t, map[string][]string{"evil": {"10.0.0.1"}, "alias": {"10.0.0.1"}, "hard": {"10.0.0.1"}})
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("outside the store\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Planted in the store before the service starts.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(e.dir, 0o750))
	must(os.Symlink(outside, filepath.Join(e.dir, "evil_0.log")))
	must(os.Symlink("local.log", filepath.Join(e.dir, "alias_0.log")))
	must(os.Symlink("..", filepath.Join(e.dir, "up.log")))
	// A hard link to a file outside the store (same file system).
	hard := filepath.Join(filepath.Dir(e.dir), "hard-secret")
	must(os.WriteFile(hard, []byte("linked into the store\n"), 0o600))
	must(os.Link(hard, filepath.Join(e.dir, "hard_0.log")))
	must(os.Mkdir(filepath.Join(e.dir, "dir.log"), 0o750))
	must(syscall.Mkfifo(filepath.Join(e.dir, "fifo.log"), 0o600))
	must(os.WriteFile(filepath.Join(e.dir, "LOUD.log"), []byte("x\n"), 0o600))
	e.start()

	bad := []string{
		"", ".", "..", "/", "../local.log", "../../etc/passwd", "/etc/passwd", "/local.log",
		"local.log/", "local.log/..", "./local.log", "web_0.log/../local.log",
		"..%2f..%2fetc%2fpasswd", "%2e%2e%2fetc%2fpasswd", "%252e%252e%252fetc%252fpasswd",
		"..%5c..%5cwindows", "..\\..\\etc\\passwd", "local.log\x00", "local\x00.log", "\x00",
		"local.log\n", " local.log", "LOCAL.LOG", "Local.log", ".ingest-seq", ".hidden.log",
		"web_0.log.0", "web_0.log.100", "web_0.log.01", "web_0.txt", "web_0", "web_0.log.1.2",
		"a/b.log", "a\\b.log", "1web.log", "-web.log", "_web.log", "wéb.log", "web\u2215x.log",
		strings.Repeat("a", 82) + ".log", "~/.ssh/id_rsa", "file:///etc/passwd",
	}
	for _, name := range bad {
		if ValidName(name) {
			t.Errorf("ValidName(%q) = true", name)
		}
		rep := e.request(subject.LogsRead(), contract.LogRead{Name: name})
		if rep.Code != 400 {
			t.Errorf("read %q: %d %s, want 400", name, rep.Code, rep.Body)
		}
	}
	// Well-formed names that are not regular files in the store: 404.
	for _, name := range []string{"evil_0.log", "alias_0.log", "hard_0.log", "up.log", "dir.log", "fifo.log", "nope.log", "web_0.log.1"} {
		if rep := e.request(subject.LogsRead(), contract.LogRead{Name: name}); rep.Code != 404 {
			t.Errorf("read %q: %d %s, want 404", name, rep.Code, rep.Body)
		}
	}
	if rep := e.request(subject.LogsRead(), contract.LogRead{Name: "local.log", Offset: -1}); rep.Code != 400 {
		t.Errorf("read at offset -1: %d", rep.Code)
	}
	if rep := e.request(subject.LogsRead(), []byte(`{"name": `)); rep.Code != 400 {
		t.Errorf("read with bad JSON: %d", rep.Code)
	}
	var names []string
	_ = json.Unmarshal(e.request(subject.LogsList(), nil).Body, &names)
	if got := strings.Join(names, " "); got != "local.log" {
		t.Errorf("list shows %q; want only local.log", got)
	}

	// Lines for instances whose file is a planted symlink are not written
	// through it.
	e.publish(subject.Log("d-1", "10.0.0.1", "evil"), logLine("d-1", "10.0.0.1", "evil", "", 1, "through the link?"))
	e.publish(subject.Log("d-1", "10.0.0.1", "alias"), logLine("d-1", "10.0.0.1", "alias", "", 1, "into local.log?"))
	e.publish(subject.Log("d-1", "10.0.0.1", "hard"), logLine("d-1", "10.0.0.1", "hard", "", 1, "through the hard link?"))
	e.publish(subject.EngineEvent("config"), map[string]any{"v": 1, "kind": "config", "message": "done"})
	e.waitLines(1)
	if b, _ := os.ReadFile(outside); string(b) != "outside the store\n" {
		t.Errorf("file outside the store changed: %q", b)
	}
	if b, _ := os.ReadFile(hard); string(b) != "linked into the store\n" {
		t.Errorf("hard-linked file changed: %q", b)
	}
	if got := e.file("local.log"); strings.Contains(got, "?") || !strings.Contains(got, "engine config: done") {
		t.Errorf("local.log: %q", got)
	}
}

// FuzzName: no name ValidName accepts can resolve outside the store.
func FuzzName(f *testing.F) {
	for _, s := range []string{"local.log", "web_0.log", "web_0.log.1", "../x.log", "a/../../b.log", "..", "x.log\x00", "%2e%2e%2f.log"} {
		f.Add(s)
	}
	dir := f.TempDir()
	st, err := openStore(dir, 1<<20, 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.close() })
	f.Fuzz(func(t *testing.T, name string) {
		if !ValidName(name) {
			if _, _, err := st.read(name, 0, 0); err == nil {
				t.Fatalf("read(%q) accepted a refused name", name)
			}
			return
		}
		if !filepath.IsLocal(name) || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
			t.Fatalf("accepted %q, which is not a plain local file name", name)
		}
		p := filepath.Join(dir, name)
		if filepath.Dir(p) != filepath.Clean(dir) {
			t.Fatalf("accepted %q, which resolves to %s outside %s", name, p, dir)
		}
	})
}
