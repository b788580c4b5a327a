package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// release upload streams a tarball with a progress bar and names what the
// engine stored; a file that is no release fails with the engine's reason;
// release list shows what is stored.
func TestCLIRelease(t *testing.T) {
	data := startEngine(t)
	dummy := "../../../planner/release/testdata/dummy-release.tgz"

	r := cli(t, "release", "upload", dummy)
	if r.code != exitOK || !strings.Contains(r.stdout, "release dummy/0.2-dev uploaded: jobs dummy, dummy_with_bad_package") {
		t.Fatalf("upload: %+v", r)
	}
	// Not a terminal: one progress line per tenth, ending at 100%.
	if !strings.Contains(r.stderr, "100%") || !strings.Contains(r.stderr, "[##############################]") {
		t.Errorf("no progress bar: %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "releases", "dummy", "0.2-dev", "jobs", "dummy.tgz")); err != nil {
		t.Errorf("not stored: %v", err)
	}
	if r := cli(t, "release", "upload", dummy); r.code != exitOK || !strings.Contains(r.stdout, "already stored") {
		t.Errorf("upload again: %+v", r)
	}

	junk := filepath.Join(t.TempDir(), "junk.tgz")
	if err := os.WriteFile(junk, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "release", "upload", junk); r.code != exitFailed || !strings.Contains(r.stderr, "not a valid BOSH release") {
		t.Errorf("upload junk: %+v", r)
	}
	if r := cli(t, "release", "upload", filepath.Join(t.TempDir(), "missing.tgz")); r.code != exitUsage {
		t.Errorf("upload a missing file: %+v", r)
	}

	r = cli(t, "release", "list")
	if r.code != exitOK || !strings.Contains(r.stdout, "dummy") || !strings.Contains(r.stdout, "0.2-dev") || !strings.Contains(r.stdout, "bad_package,dummy_package") {
		t.Errorf("list: %+v", r)
	}
	if r := cli(t, "release", "list", "--json"); r.code != exitOK || !strings.Contains(r.stdout, `"name": "dummy"`) && !strings.Contains(r.stdout, `"name":"dummy"`) {
		t.Errorf("list --json: %+v", r)
	}
	if r := cli(t, "release"); r.code != exitUsage {
		t.Errorf("release without a subcommand: %+v", r)
	}
}
