package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// The release routes: the real tarballs of the BOSH project upload and
// list; a tampered one is refused with the file named and leaves nothing
// behind; packages are served read-only to nodes without a token.
func TestReleaseRoutes(t *testing.T) {
	dir := t.TempDir()
	base, stop := engineUnderTest(t, dir)
	defer stop()
	E := base + "/deployment-engine"

	if code, _, _ := do(t, "POST", E+"/releases", "x", false); code != 401 {
		t.Errorf("upload without token: %d", code)
	}
	for _, f := range []string{"dummy-release.tgz", "release_with_prestart_script-1.tgz"} {
		b, err := os.ReadFile(filepath.Join("../../planner/release/testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		code, body, _ := do(t, "POST", E+"/releases", string(b), true)
		if code != 201 {
			t.Fatalf("upload %s: %d %s", f, code, body)
		}
		if code, _, _ := do(t, "POST", E+"/releases", string(b), true); code != 200 {
			t.Errorf("upload %s again: %d, want 200", f, code)
		}
	}
	code, body, _ := do(t, "GET", E+"/releases", "", true)
	var list []struct {
		Name, Version string
		Jobs          []string
		Packages      []string
	}
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list) != 2 || list[0].Name != "dummy" || len(list[0].Jobs) != 5 {
		t.Fatalf("list: %d %s", code, body)
	}

	tampered := releasetest.Build(releasetest.Release{Name: "t", Version: "1", Tamper: "jobs/j.tgz",
		Jobs: []releasetest.Job{{Name: "j", Spec: "name: j\ntemplates: {}\n", Monit: ""}}})
	code, body, _ = do(t, "POST", E+"/releases", string(tampered), true)
	if code != 400 || !strings.Contains(string(body), "jobs/j.tgz") {
		t.Errorf("tampered: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "releases", "t")); !os.IsNotExist(err) {
		t.Errorf("tampered release stored: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "releases"))
	if len(entries) != 2 {
		t.Errorf("release store holds %d entries, want the 2 releases", len(entries))
	}

	code, body, _ = do(t, "GET", base+"/releases/dummy/0.2-dev/packages/dummy_package.tgz", "", false)
	if code != 200 || len(body) == 0 {
		t.Errorf("package for nodes: %d", code)
	}
	for _, p := range []string{"/releases/dummy/0.2-dev/release.MF", "/releases/dummy/0.2-dev/jobs/dummy.tgz", "/releases/../api-token"} {
		if code, _, _ := do(t, "GET", base+p, "", false); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code, _, _ := do(t, "PUT", base+"/releases/dummy/0.2-dev/packages/dummy_package.tgz", "x", false); code != 405 {
		t.Errorf("PUT to the release files: %d", code)
	}
}
