package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // BOSH's release index records sha1; it is the format's checksum.
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// BadRelease is a tarball the engine refuses: File names the part at
// fault ("" for the archive as a whole).
type BadRelease struct {
	File   string
	Reason string
}

func (e *BadRelease) Error() string {
	if e.File == "" {
		return "not a valid BOSH release: " + e.Reason
	}
	return "not a valid BOSH release: " + e.File + ": " + e.Reason
}

// Conflict is a release whose name and version are stored with other
// contents.
type Conflict struct{ Name, Version string }

func (e *Conflict) Error() string {
	return fmt.Sprintf("release %s/%s is already stored with different contents; give the new one another version", e.Name, e.Version)
}

// NotFound is a release or version the store does not hold.
type NotFound struct{ Name, Version string }

func (e *NotFound) Error() string {
	if e.Version == "" {
		return fmt.Sprintf("no release %q has been uploaded", e.Name)
	}
	return fmt.Sprintf("release %s has no version %q uploaded", e.Name, e.Version)
}

// Release is a stored, verified release.
type Release struct {
	Manifest
	// Specs holds each job's spec, templates and monit file.
	Specs map[string]*Job `json:"-"`
	dir   string
}

// Summary is how the API lists a release.
type Summary struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Jobs     []string `json:"jobs"`
	Packages []string `json:"packages"`
}

// Summary lists r's job and package names.
func (r *Release) Summary() Summary {
	s := Summary{Name: r.Name, Version: r.Version, Jobs: []string{}, Packages: []string{}}
	for _, j := range r.Jobs {
		s.Jobs = append(s.Jobs, j.Name)
	}
	for _, p := range r.Packages {
		s.Packages = append(s.Packages, p.Name)
	}
	return s
}

// Package returns the index entry of a package.
func (r *Release) Package(name string) (Package, bool) {
	for _, p := range r.Packages {
		if p.Name == name {
			return p, true
		}
	}
	return Package{}, false
}

// Store keeps releases under a directory: <dir>/<name>/<version>/ holds
// release.MF, jobs/<job>.tgz and packages/<package>.tgz as uploaded.
type Store struct {
	dir   string
	mu    sync.Mutex
	cache map[string]*Release
}

// NewStore opens (and creates) a store.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	return &Store{dir: dir, cache: map[string]*Release{}}, nil
}

// Dir is the store's directory; the engine serves it read-only to nodes.
func (s *Store) Dir() string { return s.dir }

// PackageURLPath is where a package's tarball is served, below the
// store's URL prefix.
func PackageURLPath(rel, version, pkg string) string {
	return rel + "/" + version + "/packages/" + pkg + ".tgz"
}

// Import reads a release tarball from r as a stream, checks every job and
// package against release.MF and stores it. created is false when the
// same release was already stored. Nothing is stored unless every check
// passes. Errors are *BadRelease, *Conflict or the store's own.
func (s *Store) Import(ctx context.Context, r io.Reader) (rel *Release, created bool, err error) {
	tmp, err := os.MkdirTemp(s.dir, ".incoming-")
	if err != nil {
		return nil, false, fmt.Errorf("release store: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	sums, err := unpack(ctx, r, tmp)
	if err != nil {
		return nil, false, err
	}
	mfBytes, err := os.ReadFile(filepath.Join(tmp, "release.MF"))
	if err != nil {
		return nil, false, &BadRelease{Reason: "no release.MF in the archive (is this a release tarball?)"}
	}
	m, err := ParseManifest(mfBytes)
	if err != nil {
		return nil, false, &BadRelease{File: "release.MF", Reason: err.Error()}
	}
	check := func(file, want string) error {
		got, ok := sums[file]
		if !ok {
			return &BadRelease{File: file, Reason: "listed in release.MF but missing from the archive"}
		}
		if got != want {
			return &BadRelease{File: file, Reason: fmt.Sprintf("sha1 %s does not match release.MF's %s", got, want)}
		}
		return nil
	}
	for _, p := range m.Packages {
		if err := check("packages/"+p.Name+".tgz", p.SHA1); err != nil {
			return nil, false, err
		}
	}
	specs := map[string]*Job{}
	for _, j := range m.Jobs {
		file := "jobs/" + j.Name + ".tgz"
		if err := check(file, j.SHA1); err != nil {
			return nil, false, err
		}
		spec, err := readJobFile(filepath.Join(tmp, file))
		if err != nil {
			return nil, false, &BadRelease{File: file, Reason: err.Error()}
		}
		if spec.Name != j.Name {
			return nil, false, &BadRelease{File: file, Reason: fmt.Sprintf("job.MF names job %q, release.MF %q", spec.Name, j.Name)}
		}
		for _, p := range spec.Packages {
			if _, ok := (&Release{Manifest: *m}).Package(p); !ok {
				return nil, false, &BadRelease{File: file, Reason: fmt.Sprintf("job needs package %q, which the release does not have", p)}
			}
		}
		spec.Version = j.Version
		specs[j.Name] = spec
	}
	// Only what release.MF lists is kept.
	keep := map[string]bool{"release.MF": true}
	for _, p := range m.Packages {
		keep["packages/"+p.Name+".tgz"] = true
	}
	for _, j := range m.Jobs {
		keep["jobs/"+j.Name+".tgz"] = true
	}
	for f := range sums {
		if !keep[f] {
			_ = os.Remove(filepath.Join(tmp, f))
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	dest := filepath.Join(s.dir, m.Name, m.Version)
	if old, err := os.ReadFile(filepath.Join(dest, "release.MF")); err == nil {
		if !bytes.Equal(old, mfBytes) {
			return nil, false, &Conflict{Name: m.Name, Version: m.Version}
		}
		rel, err := s.openLocked(m.Name, m.Version)
		return rel, false, err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, false, fmt.Errorf("release store: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, false, fmt.Errorf("release store: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, false, fmt.Errorf("release store: %w", err)
	}
	rel = &Release{Manifest: *m, Specs: specs, dir: dest}
	s.cache[m.Name+"/"+m.Version] = rel
	return rel, true, nil
}

// unpack writes the archive's files under dir and returns each one's sha1.
func unpack(ctx context.Context, r io.Reader, dir string) (map[string]string, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, &BadRelease{Reason: "not a gzip-compressed tarball"}
	}
	tr := tar.NewReader(gz)
	sums := map[string]string{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &BadRelease{Reason: "broken tarball: " + err.Error()}
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "" || name == "." || name == "./" {
			continue
		}
		if bad(strings.TrimSuffix(name, "/")) {
			return nil, &BadRelease{File: h.Name, Reason: "path escapes the archive"}
		}
		name = path.Clean(name)
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, &BadRelease{File: name, Reason: "only plain files belong in a release, not links or devices"}
		}
		// Only the index, jobs and packages are kept; anything else
		// (a license, a stray file) is read past.
		dir1, base := path.Split(name)
		wanted := name == "release.MF" || ((dir1 == "jobs/" || dir1 == "packages/") && strings.HasSuffix(base, ".tgz"))
		if !wanted {
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return nil, &BadRelease{Reason: "broken tarball: " + err.Error()}
			}
			continue
		}
		if _, dup := sums[name]; dup {
			return nil, &BadRelease{File: name, Reason: "appears twice in the archive"}
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(dir1)), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		h1 := sha1.New() //nolint:gosec
		_, err = io.Copy(io.MultiWriter(f, h1), tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, &BadRelease{File: name, Reason: "broken tarball: " + err.Error()}
		}
		sums[name] = hex.EncodeToString(h1.Sum(nil))
	}
	return sums, nil
}

func readJobFile(p string) (*Job, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return ReadJob(f)
}

// List returns every stored release, by name then version.
func (s *Store) List() ([]Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	out := []Summary{}
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		for _, v := range s.versionsLocked(n.Name()) {
			rel, err := s.openLocked(n.Name(), v)
			if err != nil {
				continue
			}
			out = append(out, rel.Summary())
		}
	}
	return out, nil
}

func (s *Store) versionsLocked(name string) []string {
	vs, _ := os.ReadDir(filepath.Join(s.dir, name))
	var out []string
	for _, v := range vs {
		if v.IsDir() && !strings.HasPrefix(v.Name(), ".") {
			out = append(out, v.Name())
		}
	}
	sort.Slice(out, func(i, j int) bool { return CompareVersions(out[i], out[j]) < 0 })
	return out
}

// Get opens a stored release; version "" is the latest.
func (s *Store) Get(name, version string) (*Release, error) {
	if !plainName(name) || (version != "" && !plainName(version)) {
		return nil, &NotFound{Name: name, Version: version}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == "" {
		vs := s.versionsLocked(name)
		if len(vs) == 0 {
			return nil, &NotFound{Name: name}
		}
		version = vs[len(vs)-1]
	}
	return s.openLocked(name, version)
}

func (s *Store) openLocked(name, version string) (*Release, error) {
	if r, ok := s.cache[name+"/"+version]; ok {
		return r, nil
	}
	dir := filepath.Join(s.dir, name, version)
	b, err := os.ReadFile(filepath.Join(dir, "release.MF"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotFound{Name: name, Version: version}
	}
	if err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("stored release %s/%s: %w", name, version, err)
	}
	rel := &Release{Manifest: *m, Specs: map[string]*Job{}, dir: dir}
	for _, j := range m.Jobs {
		spec, err := readJobFile(filepath.Join(dir, "jobs", j.Name+".tgz"))
		if err != nil {
			return nil, fmt.Errorf("stored release %s/%s: job %s: %w", name, version, j.Name, err)
		}
		spec.Version = j.Version
		rel.Specs[j.Name] = spec
	}
	s.cache[name+"/"+version] = rel
	return rel, nil
}

// CompareVersions orders BOSH versions: numeric segments as numbers,
// others as text ("1.10" after "1.9", "0.2-dev" after "0.1-dev").
func CompareVersions(a, b string) int {
	sa, sb := splitVersion(a), splitVersion(b)
	for i := 0; i < len(sa) && i < len(sb); i++ {
		na, ea := strconv.Atoi(sa[i])
		nb, eb := strconv.Atoi(sb[i])
		switch {
		case ea == nil && eb == nil:
			if na != nb {
				return cmpInt(na, nb)
			}
		case ea == nil:
			return 1
		case eb == nil:
			return -1
		default:
			if c := strings.Compare(sa[i], sb[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(sa), len(sb))
}

func splitVersion(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '+' })
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
