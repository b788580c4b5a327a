package mirror

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
)

// Sync for the starter catalog yields a repository from which apt, with
// the mirror as its only source and a fresh node's package set, resolves
// every package the catalog installs. It reaches Debian's mirror, so it
// is skipped with -short.
func TestSyncStarter(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads packages")
	}
	if os.Getuid() != 0 {
		t.Fatal("mirror sync needs root to run apt-get: run the tests as root")
	}
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	// A relative path, as `--data ./data` gives: apt must not read it below
	// its own directories. Kept between runs: a second sync downloads nothing.
	t.Chdir(os.TempDir())
	dir := "de-mirror-test"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Sync(context.Background(), cat, dir, log); err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Packages(cat) {
		if !strings.Contains(string(idx), "Package: "+p+"\n") {
			t.Errorf("mirror index lacks %s", p)
		}
	}
	// Resolve against the mirror alone, as a fresh node would.
	src := filepath.Join(t.TempDir(), "sources.list")
	_ = os.WriteFile(src, []byte(SourcesList("file://"+dir)), 0o644)
	state := t.TempDir()
	lists := filepath.Join(state, "lists")
	_ = os.MkdirAll(filepath.Join(lists, "partial"), 0o755)
	opts := []string{"-o", "Dir::Etc::sourcelist=" + src, "-o", "Dir::Etc::sourceparts=-", "-o", "Dir::State::lists=" + lists,
		"-o", "Dir::State::status=" + filepath.Join(dir, ".fresh-status"), "-o", "Debug::NoLocking=1", "-o", "Dir::Cache=" + state}
	if out, err := exec.Command("apt-get", append(opts, "update")...).CombinedOutput(); err != nil {
		t.Fatalf("apt-get update from the mirror: %v\n%s", err, out)
	}
	args := append(opts, "install", "--simulate", "--no-install-recommends", "-y")
	out, err := exec.Command("apt-get", append(args, Packages(cat)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("a fresh node cannot install the starter packages from the mirror alone: %v\n%s", err, out)
	}
}

// The index a node's apt reads asks for no file the mirror lacks: a
// healthy deploy's log shows no Err line (apt prints one per 404).
func TestIndexAsksForNothingMissing(t *testing.T) {
	for _, tool := range []string{"apt-get", "dpkg-scanpackages", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: make deps installs it", tool)
		}
	}
	dir := t.TempDir()
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := "Package: de-test\nVersion: 1.0\nArchitecture: all\nMaintainer: engine <engine@localhost>\nDescription: a test package\n"
	if err := os.WriteFile(filepath.Join(pkg, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "--build", pkg, filepath.Join(dir, "de-test_1.0_all.deb")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	if err := index(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var missing []string
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(dir, filepath.Clean("/"+r.URL.Path))); err != nil {
			mu.Lock()
			missing = append(missing, r.URL.Path)
			mu.Unlock()
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	src := filepath.Join(t.TempDir(), "sources.list")
	if err := os.WriteFile(src, []byte(SourcesList(srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	lists := filepath.Join(state, "lists")
	_ = os.MkdirAll(filepath.Join(lists, "partial"), 0o755)
	opts := []string{"-o", "Dir::Etc::sourcelist=" + src, "-o", "Dir::Etc::sourceparts=-", "-o", "Dir::State::lists=" + lists,
		"-o", "Debug::NoLocking=1", "-o", "Dir::Cache=" + state, "-o", "APT::Sandbox::User=root"}
	for round := range 2 { // the second, as a re-deploy's, from what the first kept
		out, err := exec.Command("apt-get", append(opts, "update")...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "Err:") || strings.Contains(string(out), "W: ") {
			t.Fatalf("apt-get update from the mirror, round %d: %v\n%s", round+1, err, out)
		}
	}
	// A flat repository's signatures are optional, and the mirror is
	// trusted (SourcesList): only they may be missing.
	for _, p := range missing {
		if base := path.Base(p); base != "InRelease" && base != "Release.gpg" {
			t.Errorf("apt asked for %s, which the mirror does not have", p)
		}
	}
	out, err := exec.Command("apt-get", append(opts, "install", "--simulate", "-y", "de-test")...).CombinedOutput()
	if err != nil {
		t.Fatalf("the indexed package does not resolve: %v\n%s", err, out)
	}
}
