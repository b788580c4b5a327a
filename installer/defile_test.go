package installer

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deployment-engine/engine/services/kit"
)

// deFile runs the chain script's de_file for content at path with mode,
// claiming sum (the content's own when empty), and returns its control
// lines. The content comes as text (an argument), or as base64 on stdin.
// pre, when given, runs first.
func deFile(t *testing.T, text bool, path, mode string, content []byte, sum string, pre ...string) string {
	t.Helper()
	if sum == "" {
		h := sha256.Sum256(content)
		sum = hex.EncodeToString(h[:])
	}
	script := "DE_N=N\n" + chainFuncs + fmt.Sprintf("de_file 3 1 %s %s %s <<'EOF'\n%s\nEOF\nde_files\n", kit.ShellQuote(path), mode, sum,
		wrap76(base64.StdEncoding.EncodeToString(content)))
	if text {
		// The umask the file was written under is the shell's again.
		script = "DE_N=N\numask 027\n" + chainFuncs + fmt.Sprintf("de_file 3 1 %s %s %s %s\nde_files\n[ \"$(umask)\" = 0027 ] || echo umask $(umask)\n",
			kit.ShellQuote(path), mode, sum, kit.ShellQuote(string(content)))
	}
	out, err := exec.Command("bash", "-c", strings.Join(pre, "")+script).Output()
	if err != nil {
		t.Fatalf("de_file: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func fileState(t *testing.T, path string) (string, os.FileMode, uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.Mode(), fi.Sys().(*syscall.Stat_t).Ino
}

// de_file installs a file with its content and mode, leaves alone one the
// node has already (content and mode), and refuses, with the size and
// hash it got, a transfer that does not match its SHA-256.
func TestDeFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("modes with special bits need root")
	}
	for _, text := range []bool{false, true} {
		t.Run(map[bool]string{false: "base64", true: "text"}[text], func(t *testing.T) { testDeFile(t, text) })
	}
}

func testDeFile(t *testing.T, text bool) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, mode string
		want       os.FileMode
	}{
		{"plain.conf", "644", 0o644},
		{"secret.conf", "600", 0o600},
		{"group.conf", "640", 0o640},
		{"run.sh", "755", 0o755},
		{"setuid", "4755", 0o755 | os.ModeSetuid},
		{"sub dir/with space", "644", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if got := deFile(t, text, p, tc.mode, []byte("v1 of "+tc.name+"\n"), ""); got != "N sent 3 1" {
				t.Fatalf("first install: marks %q", got)
			}
			body, mode, ino := fileState(t, p)
			if body != "v1 of "+tc.name+"\n" || mode != tc.want {
				t.Fatalf("installed %q mode %v, want mode %v", body, mode, tc.want)
			}
			// The same file again: nothing written.
			if got := deFile(t, text, p, tc.mode, []byte(body), ""); got != "" {
				t.Errorf("same file: marks %q, want none", got)
			}
			if _, mode2, ino2 := fileState(t, p); ino2 != ino || mode2 != mode {
				t.Errorf("same file was rewritten (inode %d → %d, mode %v → %v)", ino, ino2, mode, mode2)
			}
			// The same content under another mode: installed with that mode.
			other := os.FileMode(0o600)
			if tc.want == other {
				other = 0o644
			}
			if err := os.Chmod(p, other); err != nil {
				t.Fatal(err)
			}
			if got := deFile(t, text, p, tc.mode, []byte(body), ""); got != "N sent 3 1" {
				t.Errorf("other mode: marks %q", got)
			}
			if _, mode3, _ := fileState(t, p); mode3 != tc.want {
				t.Errorf("mode after a mode change %v, want %v", mode3, tc.want)
			}
			// A new content replaces it.
			if got := deFile(t, text, p, tc.mode, []byte("v2\n"), ""); got != "N sent 3 1" {
				t.Errorf("change: marks %q", got)
			}
			if body, mode, _ := fileState(t, p); body != "v2\n" || mode != tc.want {
				t.Errorf("after the change %q mode %v", body, mode)
			}
			if _, err := os.Lstat(p + ".de-tmp"); err == nil {
				t.Error("a temporary file was left")
			}
		})
	}

	t.Run("awkward bytes", func(t *testing.T) {
		// Quotes, expansions, a carriage return, bytes that are no UTF-8,
		// no newline at the end; and nothing at all. None is run: x stays
		// away.
		for i, content := range []string{"it's $(touch x) `touch x` \\ \"$HOME\" \r\n\xff\xfe\x01 end", ""} {
			p := filepath.Join(dir, fmt.Sprintf("awkward-%d", i))
			if got := deFile(t, text, p, "644", []byte(content), ""); got != "N sent 3 1" {
				t.Fatalf("marks %q", got)
			}
			if body, _, _ := fileState(t, p); body != content {
				t.Errorf("installed %q, want %q", body, content)
			}
		}
		if _, err := os.Stat("x"); err == nil {
			t.Error("the file's content ran")
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		p := filepath.Join(dir, "corrupt.conf")
		if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte("twelve bytes"))
		got := deFile(t, text, p, "644", []byte("twelve bytes"), strings.Repeat("0", 64))
		if want := "N badfile 3 " + p + " 12 " + hex.EncodeToString(h[:]); got != want {
			t.Errorf("marks %q, want %q", got, want)
		}
		if body, _, _ := fileState(t, p); body != "old\n" {
			t.Errorf("the node's file became %q", body)
		}
		if _, err := os.Lstat(p + ".de-tmp"); err == nil {
			t.Error("the bad transfer was left")
		}
	})

	t.Run("new file in place", func(t *testing.T) {
		// A file the node does not have is written where it goes: no mv.
		// One it has is replaced by a move.
		mv, err := exec.LookPath("mv")
		if err != nil {
			t.Skip("no mv")
		}
		bin := t.TempDir()
		moved := filepath.Join(bin, "moved")
		if err := os.WriteFile(filepath.Join(bin, "mv"), []byte("#!/bin/sh\necho \"$@\" >> "+moved+"\nexec "+mv+" \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		pre := "PATH=" + bin + ":$PATH\n"
		p := filepath.Join(dir, "fresh.conf")
		if got := deFile(t, text, p, "640", []byte("v1\n"), "", pre); got != "N sent 3 1" {
			t.Fatalf("marks %q", got)
		}
		if body, mode, _ := fileState(t, p); body != "v1\n" || mode != 0o640 {
			t.Errorf("installed %q mode %v", body, mode)
		}
		if b, err := os.ReadFile(moved); err == nil {
			t.Errorf("a new file was moved into place: mv %s", b)
		}
		if got := deFile(t, text, p, "640", []byte("v2\n"), "", pre); got != "N sent 3 1" {
			t.Fatalf("marks %q", got)
		}
		if b, _ := os.ReadFile(moved); strings.Count(string(b), "\n") != 1 {
			t.Errorf("a changed file: mv ran %q, want once", b)
		}
		// A new file that does not check out is not left where it goes.
		bad := filepath.Join(dir, "fresh-corrupt.conf")
		if got := deFile(t, text, bad, "644", []byte("x"), strings.Repeat("0", 64), pre); !strings.HasPrefix(got, "N badfile 3 "+bad+" 1 ") {
			t.Errorf("marks %q", got)
		}
		if _, err := os.Lstat(bad); err == nil {
			t.Error("a new file that did not check out was left")
		}
	})

	t.Run("stale temporary", func(t *testing.T) {
		// An earlier run killed mid-write left its temporary file, mode 0700.
		p := filepath.Join(dir, "stale.conf")
		if err := os.WriteFile(p+".de-tmp", []byte("half"), 0o700); err != nil {
			t.Fatal(err)
		}
		if got := deFile(t, text, p, "644", []byte("whole\n"), ""); got != "N sent 3 1" {
			t.Fatalf("marks %q", got)
		}
		if body, mode, _ := fileState(t, p); body != "whole\n" || mode != 0o644 {
			t.Errorf("installed %q mode %v over a stale temporary file", body, mode)
		}
	})

	t.Run("symlink in place", func(t *testing.T) {
		// A link to a file of the same content is replaced by the file.
		target := filepath.Join(dir, "target.conf")
		p := filepath.Join(dir, "link.conf")
		if err := os.WriteFile(target, []byte("same\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if got := deFile(t, text, p, "644", []byte("same\n"), ""); got != "N sent 3 1" {
			t.Fatalf("marks %q", got)
		}
		if _, mode, _ := fileState(t, p); mode != 0o644 {
			t.Errorf("mode %v, want a plain file 0644", mode)
		}
	})
}

// A step's files are checked by one sha256sum, those they replace with
// them: each new one is installed, each changed one moved into place, an
// unchanged one left alone. A file that does not check out stops the step
// with the files after it not installed and no temporary file left; where
// sha256sum cannot hash every file, each is hashed apart, as before.
func TestDeFilesOneHash(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("modes need root")
	}
	real, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("no sha256sum")
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	type file struct{ name, content, claimed string }
	run := func(t *testing.T, dir, skip string, files []file) (string, []string) {
		t.Helper()
		bin := t.TempDir()
		calls := filepath.Join(bin, "calls")
		// skip plays a file sha256sum cannot read: the line it matches is
		// missing.
		wrapper := "#!/bin/bash\necho \"$*\" >> " + calls + "\n" + real + " \"$@\" | { if [ -n \"$SKIP\" ]; then grep -v -- \"$SKIP\"; else cat; fi; }\n"
		if err := os.WriteFile(filepath.Join(bin, "sha256sum"), []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
		script := "DE_N=N\nPATH=" + bin + ":$PATH\nexport SKIP=" + kit.ShellQuote(skip) + "\n" + chainFuncs
		for i, f := range files {
			claimed := f.claimed
			if claimed == "" {
				claimed = sum(f.content)
			}
			script += fmt.Sprintf("de_file 3 %d %s 644 %s %s\n", i, kit.ShellQuote(filepath.Join(dir, f.name)), claimed, kit.ShellQuote(f.content))
		}
		out, err := exec.Command("bash", "-c", script+"de_files\necho rc=$?\n").Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		b, _ := os.ReadFile(calls)
		return strings.TrimSpace(string(out)), strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	write := func(t *testing.T, p, content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "(none)"
		}
		return string(b)
	}
	noTemps := func(t *testing.T, dir string) {
		t.Helper()
		if m, _ := filepath.Glob(filepath.Join(dir, "*.de-tmp")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}

	t.Run("new, changed, unchanged", func(t *testing.T) {
		for _, skip := range []string{"", "/changed$"} {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "changed"), "old\n")
			write(t, filepath.Join(dir, "same"), "same\n")
			marks, calls := run(t, dir, skip, []file{{"new", "new\n", ""}, {"changed", "changed\n", ""}, {"same", "same\n", ""}, {"other", "x", ""}})
			if want := "N sent 3 0\nN sent 3 1\nN sent 3 3\nrc=0"; marks != want {
				t.Errorf("skip %q: marks %q, want %q", skip, marks, want)
			}
			if want := map[string]int{"": 1, "/changed$": 1 + 4}[skip]; len(calls) != want {
				t.Errorf("skip %q: sha256sum ran %d times (%q), want %d", skip, len(calls), calls, want)
			}
			for name, want := range map[string]string{"new": "new\n", "changed": "changed\n", "same": "same\n", "other": "x"} {
				if got := read(filepath.Join(dir, name)); got != want {
					t.Errorf("skip %q: %s holds %q, want %q", skip, name, got, want)
				}
			}
			noTemps(t, dir)
		}
	})

	t.Run("a bad file among good ones", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "later-changed"), "old\n")
		marks, _ := run(t, dir, "", []file{{"first", "first\n", ""}, {"bad", "bad\n", strings.Repeat("0", 64)},
			{"later-new", "later\n", ""}, {"later-changed", "later\n", ""}})
		if want := "N sent 3 0\nN badfile 3 " + filepath.Join(dir, "bad") + " 4 " + sum("bad\n"); marks != want {
			t.Errorf("marks %q, want %q", marks, want)
		}
		for name, want := range map[string]string{"first": "first\n", "bad": "(none)", "later-new": "(none)", "later-changed": "old\n"} {
			if got := read(filepath.Join(dir, name)); got != want {
				t.Errorf("%s holds %q, want %q", name, got, want)
			}
		}
		noTemps(t, dir)
	})
}
