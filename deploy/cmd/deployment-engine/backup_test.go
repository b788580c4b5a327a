package main

import (
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
// backup refuses a data dir an engine serves, and a backup taken from a
// stopped engine brings its config back after the store is wiped.
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
