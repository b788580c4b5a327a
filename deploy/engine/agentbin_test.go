package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The engine hashes the agent binary once, and serves the file it opened:
// a binary replaced on disk afterwards is not served under the old
// digest. A missing binary is an error that names its path and the flag.
func TestOpenAgentBinary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "de-agent")
	bin := []byte("\x7fELF the agent")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := openAgentBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.f.Close()
	sum := sha256.Sum256(bin)
	if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(bin)) {
		t.Fatalf("sha256 %s, %d bytes", a.SHA256, a.Size)
	}
	// Replaced as a build or an install replaces it.
	if err := os.WriteFile(path+".new", []byte("another build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(a.Content, 0, a.Size))
	if err != nil || string(got) != string(bin) {
		t.Fatalf("serves %q (%v)", got, err)
	}

	for _, bad := range []string{filepath.Join(dir, "missing"), dir} {
		if _, err := openAgentBinary(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "--agent-binary") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
