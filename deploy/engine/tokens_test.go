package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/api"
)

func TestParseTokens(t *testing.T) {
	h := strings.Repeat("ab", 32)
	cases := []struct {
		name, text string
		want       []TokenEntry
		err        string
	}{
		{"hashed and plain, write by default", "# c\nalice sha256:" + h + "\nbob 0123456789abcdef0123\n",
			[]TokenEntry{{Name: "alice", Hash: h, Role: api.RoleWrite}, {Name: "bob", Hash: hashToken("0123456789abcdef0123"), Role: api.RoleWrite}}, ""},
		{"revoked", "ci sha256:" + h + " revoked 2026-11-26T16:00:00Z\n", []TokenEntry{{Name: "ci", Hash: h, Role: api.RoleWrite, Revoked: "2026-11-26T16:00:00Z"}}, ""},
		{"read-only", "grafana sha256:" + h + " role read\n", []TokenEntry{{Name: "grafana", Hash: h, Role: api.RoleRead}}, ""},
		{"read-only, revoked", "g sha256:" + h + " revoked 2026-11-26T16:00:00Z role read\n",
			[]TokenEntry{{Name: "g", Hash: h, Role: api.RoleRead, Revoked: "2026-11-26T16:00:00Z"}}, ""},
		{"unknown role", "a sha256:" + h + " role admin\n", nil, "want read or write"},
		{"role twice", "a sha256:" + h + " role read role write\n", nil, "given twice"},
		{"unknown word", "a sha256:" + h + " scope all\n", nil, "want \"role"},
		{"bad hash", "alice sha256:zz\n", nil, "not a SHA-256"},
		{"short plain token", "alice short\n", nil, "at least 16"},
		{"reserved name", "engine sha256:" + h + "\n", nil, "not a usable token name"},
		{"twice", "a sha256:" + h + "\na sha256:" + h + "\n", nil, "used twice"},
		{"stray words", "a sha256:" + h + " x\n", nil, "want"},
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
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			// What FormatTokens writes reads back the same.
			if again, err := ParseTokens(FormatTokens(got)); err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("formatted and parsed again: %+v, %v", again, err)
			}
		})
	}
}

func TestTokenFileAddRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFile)
	f := &TokenFile{Path: path}
	if _, _, ok := f.Lookup("anything"); ok {
		t.Fatal("a token accepted without a file")
	}
	alice, err := AddToken(path, "alice", api.RoleWrite)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := AddToken(path, "ci", api.RoleRead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddToken(path, "ci", api.RoleWrite); err == nil {
		t.Fatal("a second ci token was made")
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), alice) {
		t.Fatal("the file holds a token in clear")
	}
	for tok, want := range map[string]TokenEntry{alice: {Name: "alice", Role: api.RoleWrite}, ci: {Name: "ci", Role: api.RoleRead}} {
		if got, role, ok := f.Lookup(tok); !ok || got != want.Name || role != want.Role {
			t.Fatalf("lookup %s: %q %v %v", want.Name, got, role, ok)
		}
	}
	// A revocation holds from the next lookup, even within the same
	// second as the file's last change.
	time.Sleep(10 * time.Millisecond)
	if err := RevokeToken(path, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Lookup(ci); ok {
		t.Fatal("a revoked token is still accepted")
	}
	if got, _, ok := f.Lookup(alice); !ok || got != "alice" {
		t.Fatal("revoking ci lost alice")
	}
	// A file that no longer parses lets nobody in.
	if err := os.WriteFile(path, []byte("garbage line here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Lookup(alice); ok {
		t.Fatal("a token accepted from a broken file")
	}
}
