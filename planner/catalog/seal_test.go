package catalog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyStarter copies the embedded starter catalog into a directory, as an
// operator's --catalog DIR would hold it.
func copyStarter(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "starter"), mustSub(t, "catalogs/starter")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rewrite changes a file of the catalog and its SHA256SUMS line with it:
// what passes the sums beside the files.
func rewrite(t *testing.T, dir, file, text string) {
	t.Helper()
	root := filepath.Join(dir, "starter")
	if err := os.WriteFile(filepath.Join(root, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sums, err := Sums(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, SumsFile), sums, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSealsRefuseAChangedCatalog(t *testing.T) {
	dir := copyStarter(t)
	key := bytes.Repeat([]byte("k"), 32)
	seals, err := NewSeals(filepath.Join(t.TempDir(), "catalog-seals"), key)
	if err != nil {
		t.Fatal(err)
	}
	load := func() *Catalog {
		t.Helper()
		c, err := Load("starter", dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Installed: sealed on first sight, then loads untouched.
	if first, err := seals.Check(load()); err != nil || !first {
		t.Fatalf("first check: first=%v err=%v", first, err)
	}
	if fi, err := os.Stat(seals.path("starter")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seal file: %v %v", fi, err)
	}
	if first, err := seals.Check(load()); err != nil || first {
		t.Fatalf("untouched catalog: first=%v err=%v", first, err)
	}

	// A file and its sum changed together: the sums beside the files
	// agree, the seal does not.
	rewrite(t, dir, "templates/haproxy.cfg", "global\n  # changed\n")
	c := load()
	_, err = seals.Check(c)
	var ue *UnapprovedError
	if !errors.As(err, &ue) || strings.Join(ue.Changes, ";") != "templates/haproxy.cfg was changed" {
		t.Fatalf("changed catalog: %v", err)
	}
	for _, want := range []string{"catalog starter", "templates/haproxy.cfg was changed", "removing " + seals.path("starter")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	rewrite(t, dir, "templates/extra", "x")
	if _, err := seals.Check(load()); !errors.As(err, &ue) || strings.Join(ue.Changes, ";") != "templates/extra was added;templates/haproxy.cfg was changed" {
		t.Errorf("added file: %v", err)
	}

	// Approved by the operator (its seal removed): sealed again as it is.
	if err := os.Remove(seals.path("starter")); err != nil {
		t.Fatal(err)
	}
	c = load()
	if first, err := seals.Check(c); err != nil || !first {
		t.Fatalf("approving: first=%v err=%v", first, err)
	}
	if _, err := seals.Check(load()); err != nil {
		t.Fatalf("approved catalog: %v", err)
	}

	// A seal not made under this key is refused, whatever its sums say.
	other, _ := NewSeals(seals.dir, bytes.Repeat([]byte("o"), 32))
	if _, err := other.Check(c); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("seal under another key: %v", err)
	}
	b, _ := os.ReadFile(seals.path("starter"))
	forged := bytes.Replace(b, []byte(`"catalog.json": "`), []byte(`"catalog.json": "0`), 1)
	if bytes.Equal(forged, b) {
		t.Fatal("the seal does not list catalog.json")
	}
	if err := os.WriteFile(seals.path("starter"), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := seals.Check(c); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("edited seal: %v", err)
	}
}

func TestNewSealsWantsAKey(t *testing.T) {
	if _, err := NewSeals(t.TempDir(), []byte("short")); err == nil {
		t.Fatal("a 5-byte key was taken")
	}
}
