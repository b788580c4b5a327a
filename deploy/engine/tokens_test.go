package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTokens(t *testing.T) {
	h := strings.Repeat("ab", 32)
	cases := []struct {
		name, text string
		want       int
		err        string
	}{
		{"hashed and plain", "# c\nalice sha256:" + h + "\nbob 0123456789abcdef0123\n", 2, ""},
		{"revoked", "ci sha256:" + h + " revoked 2026-11-26T16:00:00Z\n", 1, ""},
		{"bad hash", "alice sha256:zz\n", 0, "not a SHA-256"},
		{"short plain token", "alice short\n", 0, "at least 16"},
		{"reserved name", "engine sha256:" + h + "\n", 0, "not a usable token name"},
		{"twice", "a sha256:" + h + "\na sha256:" + h + "\n", 0, "used twice"},
		{"stray words", "a sha256:" + h + " x\n", 0, "want"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTokens(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

func TestTokenFileAddRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFile)
	f := &TokenFile{Path: path}
	if _, ok := f.Lookup("anything"); ok {
		t.Fatal("a token accepted without a file")
	}
	alice, err := AddToken(path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := AddToken(path, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddToken(path, "ci"); err == nil {
		t.Fatal("a second ci token was made")
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), alice) {
		t.Fatal("the file holds a token in clear")
	}
	for tok, name := range map[string]string{alice: "alice", ci: "ci"} {
		if got, ok := f.Lookup(tok); !ok || got != name {
			t.Fatalf("lookup %s: %q %v", name, got, ok)
		}
	}
	// A revocation holds from the next lookup, even within the same
	// second as the file's last change.
	time.Sleep(10 * time.Millisecond)
	if err := RevokeToken(path, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Lookup(ci); ok {
		t.Fatal("a revoked token is still accepted")
	}
	if got, ok := f.Lookup(alice); !ok || got != "alice" {
		t.Fatal("revoking ci lost alice")
	}
	// A file that no longer parses lets nobody in.
	if err := os.WriteFile(path, []byte("garbage line here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Lookup(alice); ok {
		t.Fatal("a token accepted from a broken file")
	}
}
