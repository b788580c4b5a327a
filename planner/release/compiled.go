package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Compiled packages: a node that compiled a package puts the result on
// the engine, keyed by the package's fingerprint (its name, version, sha1
// and its dependencies' fingerprints) and the node's OS; another node of
// that OS fetches it instead of compiling again, as BOSH's director keeps
// compiled packages. They live in the store's directory under .compiled/
// (and, in a shared store, in the bus as compiled/<fp>/<os>.tgz). The first
// upload of a key stays: a compiled package never changes.

// compiledDir is below the store's directory; the leading dot keeps it
// out of the release listing.
const compiledDir = ".compiled"

var (
	fingerprintRe = regexp.MustCompile(`^[0-9a-f]{16,64}$`)
	osKeyRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// BadCompiled is a compiled package the store refuses.
type BadCompiled struct{ Reason string }

func (e *BadCompiled) Error() string { return "compiled package refused: " + e.Reason }

// CompiledKey checks a compiled package's key: fp a fingerprint (hex),
// osKey the OS a node compiled it on (debian-12-x86_64).
func CompiledKey(fp, osKey string) error {
	if !fingerprintRe.MatchString(fp) {
		return &BadCompiled{Reason: fmt.Sprintf("%q: a fingerprint is 16 to 64 hex digits", contract.Clip(fp))}
	}
	if !osKeyRe.MatchString(osKey) || strings.Contains(osKey, "..") {
		return &BadCompiled{Reason: fmt.Sprintf("%q: an OS is letters, digits, '.', '_' and '-' (debian-12-x86_64)", contract.Clip(osKey))}
	}
	return nil
}

func compiledObject(fp, osKey string) string { return "compiled/" + fp + "/" + osKey + ".tgz" }

func (s *Store) compiledFile(fp, osKey string) string {
	return filepath.Join(s.dir, compiledDir, fp, osKey+".tgz")
}

// CompiledFile is the local file of a compiled package; one the store
// does not hold is an error of fs.ErrNotExist.
func (s *Store) CompiledFile(ctx context.Context, fp, osKey string) (string, error) {
	if err := CompiledKey(fp, osKey); err != nil {
		return "", fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	file := s.compiledFile(fp, osKey)
	if _, err := os.Stat(file); err == nil || s.obs == nil {
		return file, err
	}
	// No sha1 to check it by: the bus client checks the object's digest.
	if err := s.fetch(ctx, compiledObject(fp, osKey), file, ""); err != nil {
		return "", err
	}
	return file, nil
}

// KeepCompiled stores the compiled package read from r under its key,
// once it is checked: a gzipped tarball within the store's limits whose
// every entry is a directory, a file or a link below the package's own
// directory (a node unpacks it as root). created is false when the key
// was stored already: the first upload stays, r is not read.
func (s *Store) KeepCompiled(ctx context.Context, fp, osKey string, r io.Reader) (created bool, err error) {
	if err := CompiledKey(fp, osKey); err != nil {
		return false, err
	}
	if _, err := s.CompiledFile(ctx, fp, osKey); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	file := s.compiledFile(fp, osKey)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return false, fmt.Errorf("release store: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".part-")
	if err != nil {
		return false, fmt.Errorf("release store: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	name := "compiled package " + fp + "/" + osKey
	n, err := io.Copy(tmp, io.LimitReader(r, s.lim.Upload+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("release store: read %s: %w", name, err)
	}
	if n > s.lim.Upload {
		t := s.lim.tooBigUpload()
		t.File = name
		return false, t
	}
	done, err := s.claim(name, n)
	if err != nil {
		return false, err
	}
	defer done()
	if err := checkCompiled(tmp.Name(), s.lim); err != nil {
		var t *TooLarge
		if errors.As(err, &t) {
			t.File = name
			return false, t
		}
		return false, &BadCompiled{Reason: fp + "/" + osKey + ": " + err.Error()}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return false, fmt.Errorf("release store: %w", err)
	}
	if s.obs != nil {
		if err := s.putFile(ctx, compiledObject(fp, osKey), tmp.Name()); err != nil {
			return false, err
		}
	}
	// A rename over a file another upload put meanwhile keeps one of two
	// checked uploads of the same package: either serves.
	if err := os.Rename(tmp.Name(), file); err != nil {
		return false, fmt.Errorf("release store: %w", err)
	}
	return true, nil
}

// checkCompiled reads a compiled package's tarball whole and refuses what
// a node must not unpack: no gzip or tar, entries past the limits, an
// absolute name or one with "..", a setuid or setgid file, a device, a fifo, a hard link out of
// the tarball, an entry below a symbolic link the tarball made.
func checkCompiled(file string, lim Limits) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	z, err := gzip.NewReader(f)
	if err != nil {
		return errors.New("not a gzipped tarball")
	}
	tr := tar.NewReader(z)
	links := map[string]bool{}
	var total int64
	for count := 0; ; count++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not a readable tarball: %v", err)
		}
		if count >= lim.Files {
			return fmt.Errorf("more than %d entries", lim.Files)
		}
		name := strings.TrimPrefix(h.Name, "./")
		clean := path.Clean(name)
		if name == "" || clean == "." {
			continue
		}
		if path.IsAbs(h.Name) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("entry %q is outside the package's directory", contract.Clip(h.Name))
		}
		for dir := path.Dir(clean); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return fmt.Errorf("entry %q is below the symbolic link %q", contract.Clip(h.Name), contract.Clip(dir))
			}
		}
		if h.Mode&(0o4000|0o2000) != 0 {
			return fmt.Errorf("entry %q is setuid or setgid", contract.Clip(h.Name))
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink:
			links[clean] = true
		case tar.TypeLink:
			t := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
			if path.IsAbs(h.Linkname) || t == ".." || strings.HasPrefix(t, "../") {
				return fmt.Errorf("hard link %q points outside the package's directory", contract.Clip(h.Name))
			}
		default:
			return fmt.Errorf("entry %q is neither a file, a directory nor a link", contract.Clip(h.Name))
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil {
			return fmt.Errorf("not a readable tarball: %v", err)
		}
		if total += n; total > lim.Unpacked {
			return lim.tooBigUnpacked("")
		}
	}
	return nil
}
