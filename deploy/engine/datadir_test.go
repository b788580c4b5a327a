package engine

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The data dir ends 0700 whatever mode it had, and one owned by another
// user is refused.
func TestSecureDataDir(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mode := range []os.FileMode{0o755, 0o711, 0o700} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := secureDataDir(dir, log); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
			t.Errorf("a dir of mode %04o became %04o, want 0700", mode, fi.Mode().Perm())
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := secureDataDir(dir, log); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a dir of another user: %v", err)
	}
}
