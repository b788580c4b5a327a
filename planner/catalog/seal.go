package catalog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A catalog's SHA256SUMS sits beside its files: whoever can change a file
// can change its line too. So the engine seals the sums of every catalog it
// reads from a directory when it is installed — an HMAC-SHA256, under a key
// only the engine holds, of the catalog's name and sums — and keeps the
// seal in its data dir. A later load must find the same sums. Embedded
// catalogs are part of the binary and need no seal.

// Seals are the engine's seals of the catalogs it approved, one file per
// catalog (<name>.json, 0600) in one directory.
type Seals struct {
	dir string
	key []byte
}

// NewSeals keeps seals in dir under key (at least 32 bytes).
func NewSeals(dir string, key []byte) (*Seals, error) {
	if len(key) < 32 {
		return nil, errors.New("catalog seals: the key is shorter than 32 bytes")
	}
	return &Seals{dir: dir, key: key}, nil
}

// seal is a seal file: the sums the catalog was approved with and their MAC.
type seal struct {
	V       int               `json:"v"`
	Catalog string            `json:"catalog"`
	Sums    map[string]string `json:"sums"`
	MAC     string            `json:"hmac"`
}

// UnapprovedError is a catalog whose files are not the ones approved.
type UnapprovedError struct {
	Catalog string
	// Changes names each file that differs from the approved catalog:
	// "templates/x was changed", "... was added", "... is missing".
	Changes []string
	// Seal is the seal's file.
	Seal string
}

func (e *UnapprovedError) Error() string {
	return fmt.Sprintf("catalog %s is not the one approved for this engine (%s): restore its files; or, if the change is yours, "+
		"approve it by removing %s and restarting the engine, which seals the catalog as it finds it",
		e.Catalog, strings.Join(e.Changes, "; "), e.Seal)
}

// Check verifies that c, read from a directory, is the catalog that was
// approved. A catalog without a seal is sealed as it is and first is true:
// installing a catalog is starting the engine with it, and approving a
// change is removing its seal before a restart.
func (s *Seals) Check(c *Catalog) (first bool, err error) {
	p := s.path(c.Name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return true, s.approve(c)
	}
	if err != nil {
		return false, fmt.Errorf("catalog %s: read its seal: %w", c.Name, err)
	}
	var sl seal
	if err := json.Unmarshal(b, &sl); err != nil || sl.V != 1 || sl.Catalog != c.Name || !hmac.Equal([]byte(sl.MAC), []byte(s.mac(c.Name, sl.Sums))) {
		return false, fmt.Errorf("catalog %s: its seal %s does not verify under this engine's key (damaged, or made by another engine): "+
			"check the catalog's files, remove the seal and restart the engine to seal the catalog again", c.Name, p)
	}
	if changes := diffSums(sl.Sums, c.sums); len(changes) > 0 {
		return false, &UnapprovedError{Catalog: c.Name, Changes: changes, Seal: p}
	}
	return false, nil
}

// approve seals c as it is now.
func (s *Seals) approve(c *Catalog) error {
	if err := c.Verify(); err != nil {
		return fmt.Errorf("catalog %s: %w", c.Name, err)
	}
	b, _ := json.MarshalIndent(seal{V: 1, Catalog: c.Name, Sums: c.sums, MAC: s.mac(c.Name, c.sums)}, "", "  ")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("catalog %s: seal: %w", c.Name, err)
	}
	// Written aside and renamed: a crash leaves the old seal or the new.
	tmp, err := os.CreateTemp(s.dir, "."+c.Name+".*")
	if err != nil {
		return fmt.Errorf("catalog %s: seal: %w", c.Name, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Sync(), tmp.Close(), os.Rename(tmp.Name(), s.path(c.Name))); err != nil {
		return fmt.Errorf("catalog %s: seal: %w", c.Name, err)
	}
	return nil
}

func (s *Seals) path(name string) string { return filepath.Join(s.dir, name+".json") }

// mac is the HMAC of a catalog's name and its sums, one "<sum>  <file>"
// line each, sorted by file: the same sums always give the same MAC.
func (s *Seals) mac(name string, sums map[string]string) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "deployment-engine catalog seal v1\n%s\n", name)
	m.Write(sumLines(sums))
	return hex.EncodeToString(m.Sum(nil))
}
