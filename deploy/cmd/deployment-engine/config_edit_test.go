package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// config edit opens the stored config (secrets redacted) in $EDITOR and
// submits what the editor left; the stored secret survives the marker.
func TestCLIConfigEdit(t *testing.T) {
	startEngine(t)
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	dir := t.TempDir()
	seen := filepath.Join(dir, "seen.json")
	// The editor keeps a copy of what it was given and changes the domain.
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", "cp \"$1\" "+seen+"; sed -i s/test.local/edited.local/")
	r := cli(t, "config", "edit", "--check=false")
	if r.code != exitOK || !strings.Contains(r.stdout, "config stored") {
		t.Fatalf("config edit: %+v", r)
	}
	given, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(given), "s3cret") || !strings.Contains(string(given), `"root": "<redacted>"`) {
		t.Errorf("the editor was given secrets or no marker:\n%s", given)
	}
	r = cli(t, "config", "get")
	var cfg struct{ Properties map[string]any }
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &cfg) != nil || cfg.Properties["domain"] != "edited.local" || cfg.Properties["root"] != "<redacted>" {
		t.Fatalf("after edit: %+v", r)
	}

	// An editor that changes nothing sends nothing.
	t.Setenv("EDITOR", "true")
	if r := cli(t, "config", "edit"); r.code != exitOK || !strings.Contains(r.stdout, "unchanged") {
		t.Errorf("unchanged edit: %+v", r)
	}
	// A refused edit, with nobody at the terminal: exit 1 naming the problem.
	t.Setenv("EDITOR", "cp \"$1\" "+seen+"2; sed -i s/edited.local/bad..domain/")
	r = cli(t, "config", "edit", "--check=false")
	if r.code != exitFailed || !strings.Contains(r.stderr, "properties.domain") {
		g, _ := os.ReadFile(seen + "2")
		t.Errorf("refused edit: %+v\n%s", r, g)
	}

	// The schema and the precheck are a command away.
	r = cli(t, "config", "schema")
	var sch map[string]any
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &sch) != nil || sch["$schema"] == nil {
		t.Errorf("config schema: %+v", r)
	}
	// No sshd answers on these loopback addresses: each node is a problem.
	r = cli(t, "precheck")
	if r.code != exitFailed || !strings.Contains(r.stdout, "0 node(s) answered; 2 problem(s)") || !strings.Contains(r.stdout, "127.0.0.3") ||
		!strings.Contains(r.stdout, "not reachable: refused") {
		t.Errorf("precheck: %+v", r)
	}
}

// With someone at the terminal, a refused edit opens again with the
// engine's problems on top, and the fixed config is stored.
func TestCLIConfigEditReopensRefused(t *testing.T) {
	startEngine(t)
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	// stdin is a terminal: the slave of a new pseudo-terminal.
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	stdin := os.Stdin
	os.Stdin = tty
	defer func() { os.Stdin = stdin }()

	// The editor breaks the domain the first time; given the problems,
	// it keeps what it was shown and fixes it.
	dir := t.TempDir()
	shown := filepath.Join(dir, "shown.json")
	editor := filepath.Join(dir, "editor")
	script := "#!/bin/sh\nif grep -q refused \"$1\"; then cp \"$1\" " + shown + "; sed -i s/bad..domain/fixed.local/ \"$1\"\n" +
		"else sed -i s/test.local/bad..domain/ \"$1\"; fi\n"
	if err := os.WriteFile(editor, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VISUAL", editor)
	r := cli(t, "config", "edit", "--check=false")
	if r.code != exitOK || !strings.Contains(r.stdout, "config stored") {
		t.Fatalf("config edit: %+v", r)
	}
	given, err := os.ReadFile(shown)
	if err != nil {
		t.Fatalf("the refused config was not opened again: %v", err)
	}
	if !strings.Contains(string(given), "// The engine refused this config") || !strings.Contains(string(given), "properties.domain") {
		t.Errorf("reopened without the problem on top:\n%s", given)
	}
	r = cli(t, "config", "get")
	var cfg struct{ Properties map[string]any }
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &cfg) != nil || cfg.Properties["domain"] != "fixed.local" {
		t.Fatalf("after the second edit: %+v", r)
	}
}
