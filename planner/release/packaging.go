package release

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// checkPackaging refuses a release with a package that has no packaging
// script: it would pass upload and planning and fail on every node at
// compile time. Each package's tarball is read (headers only, within the
// release's limits) until its packaging file shows.
func checkPackaging(dir string, m *Manifest, lim Limits) error {
	for _, p := range m.Packages {
		if p.Compiled() {
			continue // installed as compiled, never compiled
		}
		file := p.File()
		ok, err := hasPackaging(filepath.Join(dir, filepath.FromSlash(file)), lim)
		var tl *TooLarge
		if errors.As(err, &tl) {
			tl.File = strings.TrimSuffix(file+": "+tl.File, ": ")
			return tl
		}
		if err != nil {
			return &BadRelease{File: file, Reason: fmt.Sprintf("package %s: %v", p.Name, err)}
		}
		if !ok {
			return &BadRelease{File: file, Reason: fmt.Sprintf("package %s has no packaging script: a package is compiled by running its packaging file", p.Name)}
		}
	}
	return nil
}

// hasPackaging tells whether a package tarball holds a plain file named
// packaging at its root.
func hasPackaging(file string, lim Limits) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return false, fmt.Errorf("not a gzip tarball: %w", err)
	}
	// A package unpacks within what the whole release may.
	out := &counter{r: gz, check: func(n int64) *TooLarge {
		if n > lim.Unpacked {
			return lim.tooBigUnpacked("")
		}
		return nil
	}}
	tr := tar.NewReader(out)
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if out.err != nil {
			return false, out.err
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read tarball: %w", err)
		}
		if entries >= lim.Files {
			return false, lim.tooManyFiles(h.Name)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) == "packaging" && h.Typeflag == tar.TypeReg {
			return true, nil
		}
	}
}
