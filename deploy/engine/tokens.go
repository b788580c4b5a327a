package engine

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// TokensFile is the file of named API tokens in the data dir: one line per
// token, "NAME sha256:HEX" (or the token itself in place of its hash),
// then optionally " role read|operate|deploy|admin" (admin when absent,
// as a line from before roles could do everything; write, the role that
// held every change before there were four, reads as admin too), " clusters NAME[,NAME...]" (every cluster when
// absent) and " revoked TIME" after a revoked one. Lines starting with #
// are comments.
//
//	alice   sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae role deploy
//	grafana sha256:5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5 role read
//	oncall  sha256:9b74c9897bac770ffc029102a200c5de5a1e0b2e4c9f5a1d4e4d4f0a4d4e4f0a role operate clusters prod,stage
//	ci      sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 revoked 2026-11-26T16:00:00Z
const TokensFile = "api-tokens"

var tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// TokenEntry is one line of the tokens file.
type TokenEntry struct {
	Name string
	Hash string // hex SHA-256 of the token
	Role api.Role
	// Clusters are the clusters the token reaches; nil for every one.
	Clusters []string
	Revoked  string // when it was revoked, "" while valid
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// ParseTokens reads the tokens file's text. A malformed line is an error
// that names it: a file half understood would let a revoked token in.
func ParseTokens(text string) ([]TokenEntry, error) {
	var out []TokenEntry
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f)%2 != 0 {
			return nil, fmt.Errorf("%s line %d: want \"NAME sha256:HEX [role ROLE] [clusters NAME,...] [revoked TIME]\"", TokensFile, n)
		}
		name := f[0]
		if !tokenNameRe.MatchString(name) || name == contract.ActorEngine || name == contract.ActorAdmin || name == contract.ActorAnonymous {
			return nil, fmt.Errorf("%s line %d: %q is not a usable token name (letters, digits, _.@-; not engine, admin or anonymous)", TokensFile, n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s line %d: the name %s is used twice", TokensFile, n, name)
		}
		seen[name] = true
		e := TokenEntry{Name: name, Role: api.RoleAdmin}
		if h, ok := strings.CutPrefix(f[1], "sha256:"); ok {
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%s line %d: not a SHA-256 in hex", TokensFile, n)
			}
			e.Hash = strings.ToLower(h)
		} else {
			if len(f[1]) < 16 {
				return nil, fmt.Errorf("%s line %d: a token must be at least 16 characters", TokensFile, n)
			}
			e.Hash = hashToken(f[1])
		}
		if err := e.options(f[2:]); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", TokensFile, n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// options reads a line's words after the hash: "role ROLE", "clusters
// NAME[,NAME...]" and "revoked TIME", each at most once.
func (e *TokenEntry) options(words []string) error {
	seen := map[string]bool{}
	for i := 0; i < len(words); i += 2 {
		k, v := words[i], words[i+1]
		if seen[k] {
			return fmt.Errorf("%q given twice", k)
		}
		seen[k] = true
		switch k {
		case "role":
			r, err := api.ParseRole(v)
			if err != nil {
				return err
			}
			e.Role = r
		case "clusters":
			cs, err := ParseClusters(v)
			if err != nil {
				return err
			}
			e.Clusters = cs
		case "revoked":
			e.Revoked = v
		default:
			return fmt.Errorf("%q: want \"role ROLE\", \"clusters NAME,...\" or \"revoked TIME\" after the hash", contract.Clip(k))
		}
	}
	return nil
}

// ParseClusters reads a token's reach: cluster names, comma-separated,
// each once.
func ParseClusters(list string) ([]string, error) {
	var out []string
	for c := range strings.SplitSeq(list, ",") {
		if err := contract.CheckClusterName(c); err != nil {
			return nil, fmt.Errorf("clusters: %w", err)
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("clusters: %s named twice", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// FormatTokens writes entries back as the file's text.
func FormatTokens(entries []TokenEntry) string {
	var b strings.Builder
	b.WriteString("# Named API tokens: NAME sha256:HEX [role read|operate|deploy|admin] [clusters NAME,...] [revoked TIME]. Manage with `deployment-engine token`.\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%s sha256:%s role %s", e.Name, e.Hash, e.Role)
		if e.Clusters != nil {
			fmt.Fprintf(&b, " clusters %s", strings.Join(e.Clusters, ","))
		}
		if e.Revoked != "" {
			fmt.Fprintf(&b, " revoked %s", e.Revoked)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TokenFile answers the API's token lookups from the tokens file, read
// again whenever it changes, so a revocation holds from the next request.
type TokenFile struct {
	Path string

	mu      sync.Mutex
	mod     time.Time
	size    int64
	entries []TokenEntry
	err     error
}

// Lookup names the holder of tok, its role and reach; a revoked or
// unknown token is refused, and so is every token while the file does not
// parse.
func (f *TokenFile) Lookup(tok string) (api.Grant, bool) {
	if tok == "" {
		return api.Grant{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f.entries, f.err, f.mod, f.size = nil, nil, time.Time{}, 0
	case err != nil:
		f.err = err
	case !st.ModTime().Equal(f.mod) || st.Size() != f.size:
		b, rerr := os.ReadFile(f.Path)
		if rerr != nil {
			f.err = rerr
			break
		}
		f.entries, f.err = ParseTokens(string(b))
		f.mod, f.size = st.ModTime(), st.Size()
	}
	if f.err != nil {
		return api.Grant{}, false
	}
	h := []byte(hashToken(tok))
	for _, e := range f.entries {
		if subtle.ConstantTimeCompare(h, []byte(e.Hash)) == 1 {
			return api.Grant{Name: e.Name, Role: e.Role, Clusters: slices.Clone(e.Clusters)}, e.Revoked == ""
		}
	}
	return api.Grant{}, false
}

// AddToken makes a new token named name with role, reaching clusters (nil:
// every one), in the file at path and returns it: the file keeps only its
// hash.
func AddToken(path, name string, role api.Role, clusters []string) (string, error) {
	entries, err := readTokens(path)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name == name {
			return "", fmt.Errorf("a token named %s exists already (revoked ones keep their name)", name)
		}
	}
	tok := bus.RandomSecret()
	entries = append(entries, TokenEntry{Name: name, Hash: hashToken(tok), Role: role, Clusters: clusters})
	if _, err := ParseTokens(FormatTokens(entries)); err != nil {
		return "", err
	}
	return tok, writeTokens(path, entries)
}

// RevokeToken marks the token named name revoked.
func RevokeToken(path, name string) error {
	entries, err := readTokens(path)
	if err != nil {
		return err
	}
	for i := range entries {
		if entries[i].Name == name {
			if entries[i].Revoked == "" {
				entries[i].Revoked = time.Now().UTC().Format(time.RFC3339)
			}
			return writeTokens(path, entries)
		}
	}
	return fmt.Errorf("no token named %s", name)
}

// ListTokens reads the file's entries.
func ListTokens(path string) ([]TokenEntry, error) { return readTokens(path) }

func readTokens(path string) ([]TokenEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseTokens(string(b))
}

func writeTokens(path string, entries []TokenEntry) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(FormatTokens(entries)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
