package nodefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMarkerName(t *testing.T) {
	cases := []struct{ key, want string }{
		{"nats.install", "nats.install"},
		{"bosh.job.web-1.apply", "bosh.job.web-1.apply"},
		{"a/b c;rm -rf /", "a_b_c_rm_-rf__"},
		{"$(x)*", "__x__"},
	}
	for _, c := range cases {
		if got := MarkerName(c.key); got != c.want {
			t.Errorf("MarkerName(%q) = %q, want %q", c.key, got, c.want)
		}
	}
	if got, want := Marker("nats.install"), "/var/lib/deployment-engine/applied/nats.install"; got != want {
		t.Errorf("Marker = %q, want %q", got, want)
	}
	if got, want := ClearMarkers("bosh.job.a b."), "rm -f /var/lib/deployment-engine/applied/bosh.job.a_b.*"; got != want {
		t.Errorf("ClearMarkers = %q, want %q", got, want)
	}
}

func TestOwnedElsewhere(t *testing.T) {
	cases := []struct {
		owner string
		want  bool
	}{{"", false}, {"\n", false}, {"e-1", false}, {"e-1\n", false}, {"e-2\n", true}}
	for _, c := range cases {
		if got := OwnedElsewhere(c.owner, "e-1"); got != c.want {
			t.Errorf("OwnedElsewhere(%q) = %v, want %v", c.owner, got, c.want)
		}
	}
}

// Unmark empties a marker that holds something and creates none: what
// every reader takes for no marker.
func TestUnmark(t *testing.T) {
	dir := t.TempDir()
	run := func(key string) {
		t.Helper()
		script := strings.ReplaceAll(Unmark(key), Applied, dir)
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
	}
	marker := filepath.Join(dir, "c.start")
	if err := os.WriteFile(marker, []byte("h1 d1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("c.start")
	if b, err := os.ReadFile(marker); err != nil || len(b) != 0 {
		t.Errorf("after Unmark the marker holds %q (%v), want nothing", b, err)
	}
	run("c.start") // empty already: left alone
	run("c.none")
	if _, err := os.Stat(filepath.Join(dir, "c.none")); !os.IsNotExist(err) {
		t.Errorf("Unmark created a marker for a step that had none: %v", err)
	}
}
