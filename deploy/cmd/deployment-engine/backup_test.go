package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/deploy/engine"
	"github.com/deployment-engine/engine/deploy/engine/enginetest"
)

// serveOn runs the engine on dir and points the client commands at it
// until the returned stop is called.
func serveOn(t *testing.T, dir string) (stop func()) {
	t.Helper()
	addr, stop := enginetest.Start(t, testToken, engine.Options{DataDir: dir})
	t.Setenv("DE_SERVER", "http://"+addr)
	return stop
}

// cancel of a deployment the engine does not know is exit 1 with the 404;
// backup refuses a data dir an engine serves, a damaged backup is refused
// whole, and a backup taken from a stopped engine brings its config back
// after the store is wiped.
func TestCLICancelBackupRestore(t *testing.T) {
	dir := t.TempDir()
	stop := serveOn(t, dir)
	if r := cli(t, "cancel", "d-20990101-000000-abcdef"); r.code != exitFailed || !strings.Contains(r.stderr, "HTTP 404") {
		t.Fatalf("cancel of an unknown deployment: %+v", r)
	}
	if r := cli(t, "cancel"); r.code != exitUsage {
		t.Fatalf("cancel without an id: %+v", r)
	}
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	bak := filepath.Join(t.TempDir(), "engine.bak")
	if r := cli(t, "backup", bak, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("backup of a running engine's data dir: %+v", r)
	}
	stop()
	if r := cli(t, "backup", bak, "--data", dir); r.code != 0 || !strings.Contains(r.stdout, "KV_DE_CONFIG") {
		t.Fatalf("backup: %+v", r)
	}
	// A damaged copy is refused whole, and leaves nothing behind.
	b, err := os.ReadFile(bak)
	if err != nil {
		t.Fatal(err)
	}
	b[dataOffset(t, b, "KV_DE_CONFIG.snap")+10] ^= 0x20
	damaged := filepath.Join(t.TempDir(), "damaged.bak")
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "restore", damaged, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "the backup is damaged, nothing was changed") {
		t.Fatalf("restore of a damaged backup: %+v", r)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "restore-undo-*")); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	if err := os.RemoveAll(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "restore", bak, "--data", dir); r.code != 0 || !strings.Contains(r.stdout, "DE_EVENTS") {
		t.Fatalf("restore: %+v", r)
	}
	if r := cli(t, "restore", "--data", dir); r.code != 2 {
		t.Fatalf("restore without a file: %+v", r)
	}
	defer serveOn(t, dir)()
	if r := cli(t, "config", "get"); r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.3") {
		t.Fatalf("config after restore: %+v", r)
	}
}

// dataOffset is where entry's data begins in the tar b.
func dataOffset(t *testing.T, b []byte, entry string) int64 {
	t.Helper()
	r := bytes.NewReader(b)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the backup: %v", entry, err)
		}
		if h.Name == entry {
			return r.Size() - int64(r.Len())
		}
	}
}
