package engine

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/catalog"
)

// A catalog from --catalog DIR is held to the sums it was installed with:
// a file changed together with its SHA256SUMS line stops the next start,
// naming the file and how to approve the change.
func TestServeRefusesAChangedCatalog(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "starter")
	if err := os.CopyFS(root, os.DirFS("../../planner/catalog/catalogs/starter")); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	o := Options{DataDir: data, CatalogDir: dir, NoAgents: true}
	_, stop := engineStop(t, o)
	stop()
	if fi, err := os.Stat(filepath.Join(data, CatalogSealsDir, "starter.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seal after the first start: %v %v", fi, err)
	}

	if err := os.WriteFile(filepath.Join(root, "templates", "haproxy.cfg"), []byte("global\n  # changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sums, err := catalog.Sums(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, catalog.SumsFile), sums, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Listen, o.Logger = "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))
	o.Ready = func(string) {
		t.Error("the engine started with a changed catalog")
		cancel()
	}
	err = Serve(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "templates/haproxy.cfg was changed") || !strings.Contains(err.Error(), "starter.json") {
		t.Fatalf("serve with a changed catalog: %v", err)
	}
}
