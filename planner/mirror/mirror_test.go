package mirror

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
