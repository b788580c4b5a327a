package mirror

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildDeb makes a small Debian package of name and version in dir,
// under file name as.
func buildDeb(t *testing.T, dir, name, version, as string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pkg")
	for p, body := range map[string]string{
		"DEBIAN/control":                 fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: e2e <e2e@example.invalid>\nDescription: a test package\n", name, version),
		"usr/share/" + name + "/version": version + "\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, as)
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out
}

// Packages added to the mirror are named as Debian names them, whatever
// their file was called, and indexed; a file that is no package is refused
// before anything is added; removing a package removes every version of
// it, and of no other.
func TestAddAndRemove(t *testing.T) {
	ctx := context.Background()
	mirror, src := t.TempDir(), t.TempDir()
	if err := index(ctx, mirror); err != nil {
		t.Fatal(err)
	}
	v1 := buildDeb(t, src, "de-probe", "1.0", "v1.deb")
	v2 := buildDeb(t, src, "de-probe", "1:1.1", "..%2f..%2fetc%2fpasswd.deb")
	other := buildDeb(t, src, "de-probe-tools", "2.0", "tools.deb")
	junk := filepath.Join(src, "junk.deb")
	if err := os.WriteFile(junk, []byte("not a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Add(ctx, mirror, []string{v1, junk}); err == nil || !strings.Contains(err.Error(), "junk.deb is not a Debian package") {
		t.Fatalf("a junk file: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(mirror, "*.deb")); len(m) != 0 {
		t.Fatalf("a refused add left %v", m)
	}
	added, err := Add(ctx, mirror, []string{v1, v2, other})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(added, " "); got != "de-probe_1.0_all.deb de-probe_1.1_all.deb de-probe-tools_2.0_all.deb" {
		t.Errorf("added %s", got)
	}
	pkgs := func() string {
		b, err := os.ReadFile(filepath.Join(mirror, "Packages"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, want := range []string{"Version: 1.0\n", "Version: 1:1.1\n", "Package: de-probe-tools\n"} {
		if !strings.Contains(pkgs(), want) {
			t.Errorf("the index lacks %q:\n%s", want, pkgs())
		}
	}
	rel, _ := os.ReadFile(filepath.Join(mirror, "Release"))
	removed, err := Remove(ctx, mirror, []string{"de-probe"})
	if err != nil || strings.Join(removed, " ") != "de-probe_1.0_all.deb de-probe_1.1_all.deb" {
		t.Fatalf("removed %v: %v", removed, err)
	}
	if p := pkgs(); strings.Contains(p, "Package: de-probe\n") || !strings.Contains(p, "Package: de-probe-tools\n") {
		t.Errorf("after the removal the index reads:\n%s", p)
	}
	if rel2, _ := os.ReadFile(filepath.Join(mirror, "Release")); string(rel2) == string(rel) {
		t.Error("the Release file did not follow the index")
	}
	if _, err := Remove(ctx, mirror, []string{"../x"}); err == nil {
		t.Error("a name with a path was taken")
	}
}
