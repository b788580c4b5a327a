package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // BOSH's release index records sha1; it is the format's checksum.
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// unpack writes the archive's release.MF, jobs and packages under dir and
// returns each one's sha1. Every limit is checked as the bytes come: the
// compressed ones as read from r, the unpacked ones as gunzip hands them
// to the tar reader, each entry by the size its header declares before a
// byte of it is written, and the disk's free space before each write.
func (s *Store) unpack(ctx context.Context, r io.Reader, dir string) (map[string]string, error) {
	u := &upload{lim: s.lim}
	tr, err := u.open(r)
	if err != nil {
		return nil, err
	}
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
			return nil, u.broken("", err)
		}
		name, act, err := u.admit(h, entries)
		switch {
		case err != nil:
			return nil, err
		case act == skipEntry:
			continue
		case act == discardEntry:
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return nil, u.broken(name, err)
			}
			continue
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
			return nil, u.broken(name, err)
		}
		sums[name] = sum
	}
	return sums, nil
}

// upload is an uploaded tarball being read, with the counters that hold
// it to the store's limits.
type upload struct {
	lim   Limits
	in    *counter // compressed bytes, as read
	out   *counter // unpacked bytes, as gunzip hands them on
	entry string   // the entry being read, for the refusal
}

// open reads r as a gzip-compressed tar, counting both sides.
func (u *upload) open(r io.Reader) (*tar.Reader, error) {
	lim := u.lim
	u.in = &counter{r: r, check: func(n int64) *TooLarge {
		if n > lim.Upload {
			return lim.tooBigUpload()
		}
		return nil
	}}
	gz, err := gzip.NewReader(u.in)
	if err != nil {
		if u.in.err != nil {
			return nil, u.in.err
		}
		return nil, &BadRelease{Reason: "not a gzip-compressed tarball"}
	}
	u.out = &counter{r: gz, check: func(n int64) *TooLarge {
		switch {
		case n > lim.Unpacked:
			return lim.tooBigUnpacked(u.entry)
		case n > expansionAllowance && (n-expansionAllowance)/lim.Expansion > u.in.n:
			return lim.tooBigExpansion()
		}
		return nil
	}}
	return tar.NewReader(u.out), nil
}

// broken is the refusal of an archive gzip or tar could not read. A limit
// passed surfaces as whatever error gzip or tar make of it; the counters
// know which it was.
func (u *upload) broken(file string, err error) error {
	if u.in.err != nil {
		return u.in.err
	}
	if u.out.err != nil {
		return u.out.err
	}
	return &BadRelease{File: file, Reason: "broken tarball: " + err.Error()}
}

// entryAction is what unpack does with one entry of the archive.
type entryAction int

const (
	skipEntry    entryAction = iota // a directory, or the archive's root
	discardEntry                    // read past: no part of a release
	keepEntry                       // release.MF, a job or a package
)

// admit judges the archive's entry number i by its header: its name,
// cleaned, and what to do with it, or why the archive is refused.
func (u *upload) admit(h *tar.Header, i int) (string, entryAction, error) {
	lim := u.lim
	name := strings.TrimPrefix(h.Name, "./")
	if i >= lim.Files {
		return "", 0, lim.tooManyFiles(name)
	}
	if name == "" || name == "." || name == "./" {
		return name, skipEntry, nil
	}
	if bad(strings.TrimSuffix(name, "/")) {
		return "", 0, &BadRelease{File: h.Name, Reason: "path escapes the archive"}
	}
	name = path.Clean(name)
	u.entry = name
	switch {
	case h.Typeflag == tar.TypeDir:
		return name, skipEntry, nil
	case h.Typeflag != tar.TypeReg:
		return "", 0, &BadRelease{File: name, Reason: "only plain files belong in a release, not links or devices"}
	case sparse(h.PAXRecords):
		return "", 0, &BadRelease{File: name, Reason: "a sparse file does not belong in a release"}
	}
	// Only the index, jobs and packages (compiled or not) are kept;
	// anything else (a license, a stray file) is read past.
	dir, base := path.Split(name)
	if name != "release.MF" && !((dir == "jobs/" || dir == "packages/" || dir == "compiled_packages/") && strings.HasSuffix(base, ".tgz")) {
		return name, discardEntry, nil
	}
	switch {
	case name == "release.MF" && h.Size > lim.yamlMax():
		return "", 0, lim.tooBigYAML(name)
	case dir == "jobs/" && h.Size > lim.jobMax():
		return "", 0, lim.tooBigJob(name)
	case u.out.n+h.Size > lim.Unpacked:
		return "", 0, lim.tooBigUnpacked(name)
	}
	return name, keepEntry, nil
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
