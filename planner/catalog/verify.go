package catalog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// SumsFile lists the SHA-256 of every other file of a catalog.
const SumsFile = "SHA256SUMS"

// hashAll hashes every file of fsys but SumsFile.
func hashAll(fsys fs.FS) (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || p == SumsFile {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	return out, err
}

// checksums returns the sums a catalog must keep: its SHA256SUMS when it
// has one, else the files as they are now (a --catalog directory without
// sums is then held to what it was when the engine started).
func checksums(fsys fs.FS) (map[string]string, error) {
	b, err := fs.ReadFile(fsys, SumsFile)
	if err != nil {
		return hashAll(fsys)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		sum, file, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("%s line %d: want '<sha256>  <file>'", SumsFile, n)
		}
		out[file] = sum
	}
	return out, nil
}

// Sums renders the SHA256SUMS of a catalog's files.
func Sums(fsys fs.FS) ([]byte, error) {
	all, err := hashAll(fsys)
	if err != nil {
		return nil, err
	}
	return sumLines(all), nil
}

// sumLines renders sums as SHA256SUMS lines ("<sum>  <file>"), sorted by file.
func sumLines(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.Bytes()
}

// Verify checks that every file of the catalog still matches its
// checksum, and that none was added or removed.
func (c *Catalog) Verify() error {
	now, err := hashAll(c.fsys)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if bad := diffSums(c.sums, now); len(bad) > 0 {
		return fmt.Errorf("integrity check failed: %s", strings.Join(bad, "; "))
	}
	return nil
}

// diffSums names each file whose sum in now differs from want.
func diffSums(want, now map[string]string) []string {
	var out []string
	for f, sum := range want {
		switch got, ok := now[f]; {
		case !ok:
			out = append(out, f+" is missing")
		case got != sum:
			out = append(out, f+" was changed")
		}
	}
	for f := range now {
		if _, ok := want[f]; !ok {
			out = append(out, f+" was added")
		}
	}
	sort.Strings(out)
	return out
}
