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

	"github.com/nats-io/nats.go/jetstream"
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
// release.MF, jobs/<job>.tgz and packages/<package>.tgz as uploaded. A
// shared store (NewSharedStore) keeps them in the bus, the directory as
// its cache.
type Store struct {
	dir string
	lim Limits
	obs jetstream.ObjectStore // nil: the directory is the store

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
		if err := check("packages/"+p.Name+".tgz", p.SHA1); err != nil {
			return nil, nil, err
		}
	}
	for _, j := range m.Jobs {
		if err := check("jobs/"+j.Name+".tgz", j.SHA1); err != nil {
			return nil, nil, err
		}
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

// unpack writes the archive's release.MF, jobs and packages under dir and
// returns each one's sha1. Every limit is checked as the bytes come: the
// compressed ones as read from r, the unpacked ones as gunzip hands them
// to the tar reader, each entry by the size its header declares before a
// byte of it is written, and the disk's free space before each write.
func (s *Store) unpack(ctx context.Context, r io.Reader, dir string) (map[string]string, error) {
	lim := s.lim
	var entry string // the entry being read, for the refusal
	in := &counter{r: r, check: func(n int64) *TooLarge {
		if n > lim.Upload {
			return lim.tooBigUpload()
		}
		return nil
	}}
	gz, err := gzip.NewReader(in)
	if err != nil {
		if in.err != nil {
			return nil, in.err
		}
		return nil, &BadRelease{Reason: "not a gzip-compressed tarball"}
	}
	out := &counter{r: gz, check: func(n int64) *TooLarge {
		switch {
		case n > lim.Unpacked:
			return lim.tooBigUnpacked(entry)
		case n > expansionAllowance && (n-expansionAllowance)/lim.Expansion > in.n:
			return lim.tooBigExpansion()
		}
		return nil
	}}
	// A limit passed surfaces as whatever error gzip or tar make of it;
	// the counters know which it was.
	broken := func(file string, err error) error {
		if in.err != nil {
			return in.err
		}
		if out.err != nil {
			return out.err
		}
		return &BadRelease{File: file, Reason: "broken tarball: " + err.Error()}
	}
	tr := tar.NewReader(out)
	sums := map[string]string{}
	for entries := 0; ; entries++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, broken("", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if entries >= lim.Files {
			return nil, lim.tooManyFiles(name)
		}
		if name == "" || name == "." || name == "./" {
			continue
		}
		if bad(strings.TrimSuffix(name, "/")) {
			return nil, &BadRelease{File: h.Name, Reason: "path escapes the archive"}
		}
		name = path.Clean(name)
		entry = name
		switch {
		case h.Typeflag == tar.TypeDir:
			continue
		case h.Typeflag != tar.TypeReg:
			return nil, &BadRelease{File: name, Reason: "only plain files belong in a release, not links or devices"}
		case sparse(h.PAXRecords):
			return nil, &BadRelease{File: name, Reason: "a sparse file does not belong in a release"}
		}
		// Only the index, jobs and packages are kept; anything else
		// (a license, a stray file) is read past.
		dir1, base := path.Split(name)
		wanted := name == "release.MF" || ((dir1 == "jobs/" || dir1 == "packages/") && strings.HasSuffix(base, ".tgz"))
		if !wanted {
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return nil, broken(name, err)
			}
			continue
		}
		switch {
		case name == "release.MF" && h.Size > lim.yamlMax():
			return nil, lim.tooBigYAML(name)
		case dir1 == "jobs/" && h.Size > lim.jobMax():
			return nil, lim.tooBigJob(name)
		case out.n+h.Size > lim.Unpacked:
			return nil, lim.tooBigUnpacked(name)
		}
		if _, dup := sums[name]; dup {
			return nil, &BadRelease{File: name, Reason: "appears twice in the archive"}
		}
		sum, err := s.write(dir, name, h.Size, tr)
		if err != nil {
			var nospace *NoSpace
			if errors.As(err, &nospace) {
				return nil, err
			}
			return nil, broken(name, err)
		}
		sums[name] = sum
	}
	return sums, nil
}

// write copies one entry of n bytes from r to name under dir, once the
// disk has room for it, and returns its sha1.
func (s *Store) write(dir, name string, n int64, r io.Reader) (string, error) {
	done, err := s.claim(name, n)
	if err != nil {
		return "", err
	}
	defer done()
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(path.Dir(name))), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	h := sha1.New() //nolint:gosec
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// claim reserves n bytes of the store's file system for an entry about to
// be written, counting what other uploads have claimed and not yet
// written, or answers *NoSpace when that would leave less than
// Limits.KeepFree. done gives the claim back once the bytes are on disk
// (or not written), where the file system counts them itself.
func (s *Store) claim(file string, n int64) (done func(), err error) {
	s.spaceMu.Lock()
	defer s.spaceMu.Unlock()
	free, err := freeSpace(s.dir)
	if err != nil {
		return nil, err
	}
	if avail := free - s.claimed; avail-n < s.lim.KeepFree {
		return nil, &NoSpace{File: file, Need: n, Free: max(avail, 0), Keep: s.lim.KeepFree}
	}
	s.claimed += n
	return func() {
		s.spaceMu.Lock()
		s.claimed -= n
		s.spaceMu.Unlock()
	}, nil
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

func sortVersions(vs []string) {
	sort.Slice(vs, func(i, j int) bool { return CompareVersions(vs[i], vs[j]) < 0 })
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
	file := filepath.Join(rel.dir, "packages", p.Name+".tgz")
	if _, err := os.Stat(file); err == nil || s.obs == nil {
		return file, err
	}
	f := stored{"packages/" + p.Name + ".tgz", p.SHA1}
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
