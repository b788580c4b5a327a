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
		{"hashed and plain, admin without a role, as before roles", "# c\nalice sha256:" + h + "\nbob 0123456789abcdef0123\n",
			[]TokenEntry{{Name: "alice", Hash: h, Role: api.RoleAdmin}, {Name: "bob", Hash: hashToken("0123456789abcdef0123"), Role: api.RoleAdmin}}, ""},
		{"revoked", "ci sha256:" + h + " revoked 2026-11-26T16:00:00Z\n", []TokenEntry{{Name: "ci", Hash: h, Role: api.RoleAdmin, Revoked: "2026-11-26T16:00:00Z"}}, ""},
		{"read-only", "grafana sha256:" + h + " role read\n", []TokenEntry{{Name: "grafana", Hash: h, Role: api.RoleRead}}, ""},
		{"read-only, revoked", "g sha256:" + h + " revoked 2026-11-26T16:00:00Z role read\n",
			[]TokenEntry{{Name: "g", Hash: h, Role: api.RoleRead, Revoked: "2026-11-26T16:00:00Z"}}, ""},
		{"write, as written before there were four roles, reads as admin", "a sha256:" + h + " role write\n",
			[]TokenEntry{{Name: "a", Hash: h, Role: api.RoleAdmin}}, ""},
		{"operate", "a sha256:" + h + " role operate\n", []TokenEntry{{Name: "a", Hash: h, Role: api.RoleOperate}}, ""},
		{"admin", "a sha256:" + h + " role admin\n", []TokenEntry{{Name: "a", Hash: h, Role: api.RoleAdmin}}, ""},
		{"clusters", "a sha256:" + h + " clusters prod,stage role operate\n",
			[]TokenEntry{{Name: "a", Hash: h, Role: api.RoleOperate, Clusters: []string{"prod", "stage"}}}, ""},
		{"one cluster, revoked", "a sha256:" + h + " role read clusters default revoked 2026-11-26T16:00:00Z\n",
			[]TokenEntry{{Name: "a", Hash: h, Role: api.RoleRead, Clusters: []string{"default"}, Revoked: "2026-11-26T16:00:00Z"}}, ""},
		{"unknown role", "a sha256:" + h + " role root\n", nil, "want read, operate, deploy or admin"},
		{"role twice", "a sha256:" + h + " role read role write\n", nil, "given twice"},
		{"clusters twice", "a sha256:" + h + " clusters a clusters b\n", nil, "given twice"},
		{"a cluster named twice", "a sha256:" + h + " clusters a,a\n", nil, "a named twice"},
		{"an empty cluster", "a sha256:" + h + " clusters a,\n", nil, "not a cluster name"},
		{"a bad cluster", "a sha256:" + h + " clusters Prod\n", nil, "not a cluster name"},
		{"a wildcard", "a sha256:" + h + " clusters *\n", nil, "not a cluster name"},
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
	if _, ok := f.Lookup("anything"); ok {
		t.Fatal("a token accepted without a file")
	}
	alice, err := AddToken(path, "alice", api.RoleDeploy, nil)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := AddToken(path, "ci", api.RoleRead, []string{"prod", "stage"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddToken(path, "ci", api.RoleDeploy, nil); err == nil {
		t.Fatal("a second ci token was made")
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), alice) {
		t.Fatal("the file holds a token in clear")
	}
	for tok, want := range map[string]api.Grant{
		alice: {Name: "alice", Role: api.RoleDeploy},
		ci:    {Name: "ci", Role: api.RoleRead, Clusters: []string{"prod", "stage"}},
	} {
		if got, ok := f.Lookup(tok); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("lookup %s: %+v %v", want.Name, got, ok)
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
	if got, ok := f.Lookup(alice); !ok || got.Name != "alice" {
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

// A file written before there were four roles and a reach keeps its
// tokens and all they could do: role write and no role read as admin,
// on every cluster.
func TestTokenFileFromBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFile)
	alice, bob, grafana := "alice-0123456789abcdef", "bob-0123456789abcdef", "grafana-0123456789abcdef"
	old := "# Named API tokens: NAME sha256:HEX [role read|write] [revoked TIME]. Manage with `deployment-engine token`.\n" +
		"alice sha256:" + hashToken(alice) + " role write\n" +
		"bob sha256:" + hashToken(bob) + "\n" +
		"grafana sha256:" + hashToken(grafana) + " role read\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &TokenFile{Path: path}
	for tok, want := range map[string]api.Grant{
		alice:   {Name: "alice", Role: api.RoleAdmin},
		bob:     {Name: "bob", Role: api.RoleAdmin},
		grafana: {Name: "grafana", Role: api.RoleRead},
	} {
		if got, ok := f.Lookup(tok); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("lookup %s: %+v %v", want.Name, got, ok)
		}
	}
}
