package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
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
	// from and pkgFrom name, in a merged release, the release each job
	// and package comes from; parts are the releases merged (Merge).
	from, pkgFrom map[string]*Release
	parts         []*Release
}

// Summary is how the API lists a release: the contract's type, which the
// API's OpenAPI document describes.
type Summary = contract.ReleaseSummary

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
// release.MF, jobs/<job>.tgz and packages/<package>.tgz (or
// compiled_packages/<package>.tgz) as uploaded. A
// shared store (NewSharedStore) keeps them in the bus, the directory as
// its cache.
type Store struct {
	dir string
	lim Limits
	obs jetstream.ObjectStore // nil: the directory is the store
	// claims is where an upload to obs claims its version (claimVersion).
	claims jetstream.KeyValue

	mu    sync.Mutex // guards cache, never held through I/O
	cache map[string]*Release

	// fill lets one fetch or upload at a time replace a release's
	// directory.
	fill sync.Mutex

	// parse lets one upload at a time verify (parse and read its jobs).
	parse sync.Mutex

	// claimed is the disk space uploads have claimed for entries they are
	// writing (claim).
	spaceMu sync.Mutex
	claimed int64
}

// NewStore opens (and creates) a store with the default limits.
func NewStore(dir string) (*Store, error) { return NewLimitedStore(dir, Limits{}) }

// NewLimitedStore opens (and creates) a store whose uploads are held to
// lim (its zero fields: the defaults).
func NewLimitedStore(dir string, lim Limits) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	return &Store{dir: dir, lim: lim.WithDefaults(), cache: map[string]*Release{}}, nil
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
// passes, and an upload past the store's limits is cut off where it
// passes them. Errors are *BadRelease, *TooLarge, *NoSpace, *Conflict or
// the store's own.
func (s *Store) Import(ctx context.Context, r io.Reader) (rel *Release, created bool, err error) {
	tmp, err := os.MkdirTemp(s.dir, ".incoming-")
	if err != nil {
		return nil, false, fmt.Errorf("release store: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	sums, err := s.unpack(ctx, r, tmp)
	if err != nil {
		return nil, false, err
	}
	mfBytes, err := readManifest(tmp, s.lim)
	if err != nil {
		return nil, false, &BadRelease{Reason: "no release.MF in the archive (is this a release tarball?)"}
	}
	m, specs, err := s.verify(tmp, mfBytes, sums)
	if err != nil {
		return nil, false, err
	}
	// Only what release.MF lists is kept.
	keep := map[string]bool{"release.MF": true}
	for _, p := range m.Packages {
		keep[p.File()] = true
	}
	for _, j := range m.Jobs {
		keep["jobs/"+j.Name+".tgz"] = true
	}
	for f := range sums {
		if !keep[f] {
			_ = os.Remove(filepath.Join(tmp, f))
		}
	}

	if s.obs != nil {
		return s.publish(ctx, tmp, m, mfBytes, specs)
	}
	return s.keep(ctx, tmp, m, mfBytes, specs)
}

// keep stores a verified upload, unpacked in tmp, in the directory.
func (s *Store) keep(ctx context.Context, tmp string, m *Manifest, mf []byte, specs map[string]*Job) (*Release, bool, error) {
	dest := filepath.Join(s.dir, m.Name, m.Version)
	s.fill.Lock()
	old, err := os.ReadFile(filepath.Join(dest, "release.MF"))
	if err == nil {
		s.fill.Unlock()
		if !bytes.Equal(old, mf) {
			return nil, false, &Conflict{Name: m.Name, Version: m.Version}
		}
		rel, err := s.open(ctx, m.Name, m.Version)
		return rel, false, err
	}
	err = s.moveLocked(tmp, dest)
	s.fill.Unlock()
	if err != nil {
		return nil, false, err
	}
	rel := &Release{Manifest: *m, Specs: specs, dir: dest}
	s.mu.Lock()
	s.cache[m.Name+"/"+m.Version] = rel
	s.mu.Unlock()
	return rel, true, nil
}

// moveLocked moves a release's files from tmp to dest, in place of
// whatever dest held. The caller holds s.fill.
func (s *Store) moveLocked(tmp, dest string) error {
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	return nil
}

// verify parses an unpacked upload's release.MF, checks every job and
// package against it and reads the jobs. One upload at a time does: it is
// the part that takes memory (tens of MiB at the limits).
func (s *Store) verify(dir string, mf []byte, sums map[string]string) (*Manifest, map[string]*Job, error) {
	s.parse.Lock()
	defer s.parse.Unlock()
	m, err := ParseManifest(mf)
	if err != nil {
		return nil, nil, &BadRelease{File: "release.MF", Reason: err.Error()}
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
		if err := check(p.File(), p.SHA1); err != nil {
			return nil, nil, err
		}
	}
	for _, j := range m.Jobs {
		if err := check("jobs/"+j.Name+".tgz", j.SHA1); err != nil {
			return nil, nil, err
		}
	}
	if err := checkPackaging(dir, m, s.lim); err != nil {
		return nil, nil, err
	}
	specs, err := readJobs(dir, m, s.lim)
	if err != nil {
		return nil, nil, err
	}
	for _, j := range m.Jobs {
		file, spec := "jobs/"+j.Name+".tgz", specs[j.Name]
		if spec.Name != j.Name {
			return nil, nil, &BadRelease{File: file, Reason: fmt.Sprintf("job.MF names job %q, release.MF %q", spec.Name, j.Name)}
		}
		for _, p := range spec.Packages {
			if _, ok := (&Release{Manifest: *m}).Package(p); !ok {
				return nil, nil, &BadRelease{File: file, Reason: fmt.Sprintf("job needs package %q, which the release does not have", p)}
			}
		}
	}
	return m, specs, nil
}

// readJobs reads the specs, monit files and templates of m's jobs from a
// release's directory, each job within the limits of what one keeps in
// memory and all of them within those of a release.
func readJobs(dir string, m *Manifest, lim Limits) (map[string]*Job, error) {
	specs := map[string]*Job{}
	var kept int64
	for _, j := range m.Jobs {
		file := "jobs/" + j.Name + ".tgz"
		spec, err := readJobFile(filepath.Join(dir, filepath.FromSlash(file)), lim)
		var tl *TooLarge
		switch {
		case errors.As(err, &tl):
			tl.File = strings.TrimSuffix(file+": "+tl.File, ": ")
			return nil, tl
		case err != nil:
			return nil, &BadRelease{File: file, Reason: err.Error()}
		}
		if kept += spec.size(); kept > lim.jobsMax() {
			return nil, lim.tooBigJobs()
		}
		spec.Version = j.Version
		specs[j.Name] = spec
	}
	return specs, nil
}

// readManifest reads dir's release.MF, within its limit: one stored by an
// engine before the limits may be larger.
func readManifest(dir string, lim Limits) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, "release.MF"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, lim.yamlMax()+1))
	if err == nil && int64(len(b)) > lim.yamlMax() {
		return nil, lim.tooBigYAML("release.MF")
	}
	return b, err
}

func readJobFile(p string, lim Limits) (*Job, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return ReadJob(f, lim)
}

// List returns every stored release, by name then version.
func (s *Store) List(ctx context.Context) ([]Summary, error) {
	all, err := s.releases(ctx)
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, name := range sortedKeys(all) {
		for _, v := range all[name] {
			rel, err := s.open(ctx, name, v)
			if err != nil {
				continue
			}
			out = append(out, rel.Summary())
		}
	}
	return out, nil
}

// releases lists the versions of every stored release, oldest first.
func (s *Store) releases(ctx context.Context) (map[string][]string, error) {
	if s.obs != nil {
		all, err := s.busReleases(ctx)
		for _, vs := range all {
			sortVersions(vs)
		}
		return all, err
	}
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	all := map[string][]string{}
	for _, n := range names {
		if n.IsDir() && !strings.HasPrefix(n.Name(), ".") {
			all[n.Name()] = s.versionsLocked(n.Name())
		}
	}
	return all, nil
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Store) versionsLocked(name string) []string {
	vs, _ := os.ReadDir(filepath.Join(s.dir, name))
	var out []string
	for _, v := range vs {
		if v.IsDir() && !strings.HasPrefix(v.Name(), ".") {
			out = append(out, v.Name())
		}
	}
	sortVersions(out)
	return out
}

// Get opens a stored release; version "" is the latest. Its reads of the
// bus take up to getTimeout.
func (s *Store) Get(name, version string) (*Release, error) {
	ctx, cancel := context.WithTimeout(context.Background(), getTimeout)
	defer cancel()
	if !plainName(name) || (version != "" && !plainName(version)) {
		return nil, &NotFound{Name: name, Version: version}
	}
	if version == "" {
		all, err := s.releases(ctx)
		if err != nil {
			return nil, err
		}
		vs := all[name]
		if len(vs) == 0 {
			return nil, &NotFound{Name: name}
		}
		version = vs[len(vs)-1]
	}
	return s.open(ctx, name, version)
}

// PackageFile is the local file of a stored release's package, fetched
// from the bus the first time it is asked for. A release, version or
// package the store does not hold is a *NotFound.
func (s *Store) PackageFile(ctx context.Context, name, version, pkg string) (string, error) {
	if !plainName(name) || !plainName(version) {
		return "", &NotFound{Name: name, Version: version}
	}
	rel, err := s.open(ctx, name, version)
	if err != nil {
		return "", err
	}
	p, ok := rel.Package(pkg)
	if !ok {
		return "", &NotFound{Name: name, Version: version}
	}
	file := filepath.Join(rel.dir, filepath.FromSlash(p.File()))
	if _, err := os.Stat(file); err == nil || s.obs == nil {
		return file, err
	}
	f := stored{p.File(), p.SHA1}
	if err := s.fetch(ctx, f.object(name, version), file, p.SHA1); err != nil {
		return "", err
	}
	return file, nil
}

// open reads a release into the store's memory, from the bus (through
// the directory's cache) or the directory. A release never changes once
// stored: one read is kept.
func (s *Store) open(ctx context.Context, name, version string) (*Release, error) {
	key := name + "/" + version
	s.mu.Lock()
	r, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	dir := filepath.Join(s.dir, name, version)
	if s.obs != nil {
		var err error
		if dir, err = s.cached(ctx, name, version); err != nil {
			return nil, err
		}
	}
	b, err := readManifest(dir, s.lim)
	var tl *TooLarge
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, &NotFound{Name: name, Version: version}
	case errors.As(err, &tl):
		return nil, fmt.Errorf("stored release %s/%s: %w", name, version, err)
	case err != nil:
		return nil, fmt.Errorf("release store: %w", err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("stored release %s/%s: %w", name, version, err)
	}
	specs, err := readJobs(dir, m, s.lim)
	if err != nil {
		return nil, fmt.Errorf("stored release %s/%s: %w", name, version, err)
	}
	rel := &Release{Manifest: *m, Specs: specs, dir: dir}
	s.mu.Lock()
	s.cache[key] = rel
	s.mu.Unlock()
	return rel, nil
}
