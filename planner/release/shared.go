package release

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // BOSH's release index records sha1; it is the format's checksum.
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
)

// A shared store keeps its releases in the bus's object store, so that
// every API process of a split engine lists, validates against and serves
// the same ones; its directory is a cache of them, laid out as a store
// without the bus keeps its releases (<name>/<version>/...).
//
// In the bucket a release is <name>/<version>/release.MF, put last, and
// its jobs and packages, each named with its sha1 (jobs/<job>.<sha1>.tgz,
// packages/<pkg>.<sha1>.tgz, compiled_packages/<pkg>.<sha1>.tgz): two processes that store the same version
// with other contents at once never mix their files, and whichever
// release.MF stays names only files of its own upload.

// getTimeout bounds the bus reads of Get, whose callers hold no context.
const getTimeout = 30 * time.Second

// NewSharedStore opens a store whose releases live in obs, with dir as its
// cache and lim (its zero fields: the defaults) for its uploads; claims is
// the bucket where an upload claims its version (claimVersion). Releases
// that dir holds from before the bus kept them are put in obs, once
// checked against their release.MF; where obs holds the same version with
// other contents, obs's wins.
func NewSharedStore(ctx context.Context, dir string, lim Limits, obs jetstream.ObjectStore, claims jetstream.KeyValue, log *slog.Logger) (*Store, error) {
	s, err := NewLimitedStore(dir, lim)
	if err != nil {
		return nil, err
	}
	s.obs, s.claims = obs, claims
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("release store: %w", err)
	}
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		for _, v := range s.versionsLocked(n.Name()) {
			moved, err := s.migrate(ctx, n.Name(), v)
			switch {
			case err != nil:
				log.Warn("release not moved to the bus; upload it again", "release", n.Name()+"/"+v, "err", err)
			case moved:
				log.Info("release moved to the bus", "release", n.Name()+"/"+v)
			}
		}
	}
	return s, nil
}

// migrate puts a release stored in the directory before the bus kept
// releases into obs, unless obs holds that version already.
func (s *Store) migrate(ctx context.Context, name, version string) (bool, error) {
	if _, err := s.busManifest(ctx, name, version); !errors.As(err, new(*NotFound)) {
		return false, err
	}
	dir := filepath.Join(s.dir, name, version)
	mf, err := readManifest(dir, s.lim)
	if err != nil {
		return false, err
	}
	m, err := ParseManifest(mf)
	if err != nil {
		return false, err
	}
	for _, f := range files(m) {
		got, err := fileSHA1(filepath.Join(dir, filepath.FromSlash(f.path)))
		if err != nil {
			return false, err
		}
		if got != f.sha1 {
			return false, fmt.Errorf("%s: sha1 %s does not match release.MF's %s", f.path, got, f.sha1)
		}
	}
	return true, s.put(ctx, dir, m, mf)
}

// stored is one file of a release: its path in the release's directory
// and its sha1 as release.MF records it.
type stored struct{ path, sha1 string }

func files(m *Manifest) []stored {
	var out []stored
	for _, j := range m.Jobs {
		out = append(out, stored{"jobs/" + j.Name + ".tgz", j.SHA1})
	}
	for _, p := range m.Packages {
		out = append(out, stored{p.File(), p.SHA1})
	}
	return out
}

func manifestObject(name, version string) string { return name + "/" + version + "/release.MF" }

func (f stored) object(name, version string) string {
	return name + "/" + version + "/" + strings.TrimSuffix(f.path, ".tgz") + "." + f.sha1 + ".tgz"
}

// put stores the release unpacked in dir in obs: its files, then its
// release.MF. When the bus fails halfway, what was put is taken out again.
func (s *Store) put(ctx context.Context, dir string, m *Manifest, mf []byte) error {
	var put []string
	undo := func() {
		// The undo must run even when ctx is what ended.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), getTimeout)
		defer cancel()
		for _, o := range put {
			_ = s.obs.Delete(ctx, o)
		}
	}
	for _, f := range files(m) {
		obj := f.object(m.Name, m.Version)
		if err := bus.RetryLong(ctx, func(ctx context.Context) error {
			return s.putFile(ctx, obj, filepath.Join(dir, filepath.FromSlash(f.path)))
		}); err != nil {
			undo()
			return err
		}
		put = append(put, obj)
	}
	if err := bus.Retry(ctx, func(ctx context.Context) error {
		_, err := s.obs.PutBytes(ctx, manifestObject(m.Name, m.Version), mf)
		return err
	}); err != nil {
		undo()
		return fmt.Errorf("release store: put %s/%s's release.MF in the bus: %w", m.Name, m.Version, err)
	}
	return nil
}

func (s *Store) putFile(ctx context.Context, obj, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: obj}, f); err != nil {
		return fmt.Errorf("release store: put %s in the bus: %w", obj, err)
	}
	return nil
}

// publish stores a verified upload, unpacked in tmp, in the bus, then
// keeps tmp as the cache of it.
func (s *Store) publish(ctx context.Context, tmp string, m *Manifest, mf []byte, specs map[string]*Job) (*Release, bool, error) {
	old, err := s.busManifest(ctx, m.Name, m.Version)
	switch {
	case err == nil && !bytes.Equal(old, mf):
		return nil, false, &Conflict{Name: m.Name, Version: m.Version}
	case err == nil:
		rel, err := s.open(ctx, m.Name, m.Version)
		return rel, false, err
	case !errors.As(err, new(*NotFound)):
		return nil, false, err
	}
	var unclaim func()
	if err := bus.Retry(ctx, func(ctx context.Context) (err error) {
		unclaim, err = s.claimVersion(ctx, m, mf)
		return err
	}); err != nil {
		return nil, false, err
	}
	if err := s.put(ctx, tmp, m, mf); err != nil {
		unclaim()
		return nil, false, err
	}
	// Another process may have stored the same version at the same time:
	// the release.MF that stayed is the release.
	won, err := s.busManifest(ctx, m.Name, m.Version)
	if err != nil {
		return nil, false, err
	}
	if !bytes.Equal(won, mf) {
		s.dropLost(ctx, m, won)
		return nil, false, &Conflict{Name: m.Name, Version: m.Version}
	}
	rel := &Release{Manifest: *m, Specs: specs, dir: filepath.Join(s.dir, m.Name, m.Version)}
	if err := s.install(tmp, rel.dir); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	s.cache[m.Name+"/"+m.Version] = rel
	s.mu.Unlock()
	return rel, true, nil
}

// staleClaim is how old a version's claim must be before an upload of
// other contents may take it over: its upload died before it stored the
// release.MF (a put of 8 GiB takes minutes, not an hour).
const staleClaim = time.Hour

// claimVersion makes this upload the one that stores m's version: the
// first upload to create the version's claim in the bus stores it, and an
// upload of other contents meanwhile is refused (Conflict) instead of both
// reading back their own release.MF and both saying they stored it. The
// same contents may be stored by either. The returned func gives the claim
// up, for an upload that failed.
func (s *Store) claimVersion(ctx context.Context, m *Manifest, mf []byte) (func(), error) {
	if s.claims == nil {
		return func() {}, nil
	}
	sum := sha256.Sum256(mf)
	want := hex.EncodeToString(sum[:])
	key := claimKey(m.Name, m.Version)
	rev, err := s.claims.Create(ctx, key, []byte(want))
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		if e, err = s.claims.Get(ctx, key); err == nil {
			switch {
			case string(e.Value()) == want:
				return func() {}, nil
			case time.Since(e.Created()) < staleClaim:
				return nil, &Conflict{Name: m.Name, Version: m.Version}
			}
			rev, err = s.claims.Update(ctx, key, []byte(want), e.Revision())
			if errors.Is(err, jetstream.ErrKeyExists) {
				return nil, &Conflict{Name: m.Name, Version: m.Version}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("release store: claim %s/%s in the bus: %w", m.Name, m.Version, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), getTimeout)
		defer cancel()
		_ = s.claims.Delete(ctx, key, jetstream.LastRevision(rev))
	}, nil
}

// claimKey is the bucket key of a version's claim: its name and version
// hashed, as a version may hold characters no key may ("1.0+dev.2").
func claimKey(name, version string) string {
	sum := sha256.Sum256([]byte(name + "/" + version))
	return "release-claim." + hex.EncodeToString(sum[:16])
}

// dropLost takes the files of an upload that lost to another one of the
// same version out of the bus, but those the other one names too.
func (s *Store) dropLost(ctx context.Context, lost *Manifest, wonMF []byte) {
	keep := map[string]bool{}
	if won, err := ParseManifest(wonMF); err == nil {
		for _, f := range files(won) {
			keep[f.object(won.Name, won.Version)] = true
		}
	}
	for _, f := range files(lost) {
		if o := f.object(lost.Name, lost.Version); !keep[o] {
			_ = s.obs.Delete(ctx, o)
		}
	}
}

// install moves a release's files from tmp to dest, in place of whatever
// dest held (a cache of other contents).
func (s *Store) install(tmp, dest string) error {
	s.fill.Lock()
	defer s.fill.Unlock()
	return s.moveLocked(tmp, dest)
}

// busManifest reads a release's release.MF from the bus, within its limit.
func (s *Store) busManifest(ctx context.Context, name, version string) (mf []byte, err error) {
	// A cluster electing the bucket's leader answers "not now" for a
	// moment: reads wait it out rather than fail an upload or a deploy.
	err = bus.Retry(ctx, func(ctx context.Context) (err error) {
		mf, err = s.readBusManifest(ctx, name, version)
		return err
	})
	return mf, err
}

func (s *Store) readBusManifest(ctx context.Context, name, version string) ([]byte, error) {
	obj := manifestObject(name, version)
	info, err := s.obs.GetInfo(ctx, obj)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, &NotFound{Name: name, Version: version}
	case err != nil:
		return nil, fmt.Errorf("release store: read %s from the bus: %w", obj, err)
	case int64(info.Size) > s.lim.yamlMax():
		return nil, fmt.Errorf("stored release %s/%s: %w", name, version, s.lim.tooBigYAML("release.MF"))
	}
	b, err := s.obs.GetBytes(ctx, obj)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, &NotFound{Name: name, Version: version}
	}
	if err != nil {
		return nil, fmt.Errorf("release store: read %s from the bus: %w", obj, err)
	}
	return b, nil
}

// busReleases lists the name/version of every release in the bus.
func (s *Store) busReleases(ctx context.Context) (map[string][]string, error) {
	infos, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release store: list the bus's releases: %w", err)
	}
	out := map[string][]string{}
	for _, i := range infos {
		parts := strings.Split(i.Name, "/")
		if len(parts) == 3 && parts[2] == "release.MF" && plainName(parts[0]) && plainName(parts[1]) {
			out[parts[0]] = append(out[parts[0]], parts[1])
		}
	}
	return out, nil
}

// cached opens a release from the bus into the cache: release.MF and the
// jobs at once (the planner reads them), packages when a node asks.
func (s *Store) cached(ctx context.Context, name, version string) (string, error) {
	mf, err := s.busManifest(ctx, name, version)
	if err != nil {
		return "", err
	}
	m, err := ParseManifest(mf)
	if err != nil {
		return "", fmt.Errorf("stored release %s/%s: %w", name, version, err)
	}
	dest := filepath.Join(s.dir, name, version)
	if b, err := readManifest(dest, s.lim); err == nil && bytes.Equal(b, mf) && jobsPresent(dest, m) {
		return dest, nil
	}
	tmp, err := os.MkdirTemp(s.dir, ".fetch-")
	if err != nil {
		return "", fmt.Errorf("release store: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := os.WriteFile(filepath.Join(tmp, "release.MF"), mf, 0o644); err != nil {
		return "", fmt.Errorf("release store: %w", err)
	}
	for _, f := range files(m) {
		if strings.HasPrefix(f.path, "jobs/") {
			if err := s.fetch(ctx, f.object(name, version), filepath.Join(tmp, filepath.FromSlash(f.path)), f.sha1); err != nil {
				return "", err
			}
		}
	}
	if err := s.install(tmp, dest); err != nil {
		return "", err
	}
	return dest, nil
}

func jobsPresent(dir string, m *Manifest) bool {
	for _, j := range m.Jobs {
		if _, err := os.Stat(filepath.Join(dir, "jobs", j.Name+".tgz")); err != nil {
			return false
		}
	}
	return true
}

// fetch copies one object of the bus to file, through a file of its own
// in file's directory, and checks its sha1 against release.MF's (sha; ""
// for an object release.MF does not list, whose digest the bus client
// checks as it reads).
func (s *Store) fetch(ctx context.Context, obj, file, sha string) error {
	info, err := s.obs.GetInfo(ctx, obj)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("release store: %s is missing from the bus: %w", obj, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("release store: read %s from the bus: %w", obj, err)
	}
	done, err := s.claim(obj, int64(info.Size))
	if err != nil {
		return err
	}
	defer done()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	r, err := s.obs.Get(ctx, obj)
	if err != nil {
		return fmt.Errorf("release store: read %s from the bus: %w", obj, err)
	}
	defer func() { _ = r.Close() }()
	f, err := os.CreateTemp(filepath.Dir(file), ".part-")
	if err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	h := sha1.New() //nolint:gosec
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("release store: read %s from the bus: %w", obj, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); sha != "" && got != sha {
		return fmt.Errorf("release store: %s in the bus has sha1 %s, release.MF says %s", obj, got, sha)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	return nil
}

func fileSHA1(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha1.New() //nolint:gosec
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
