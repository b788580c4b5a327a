package mirror

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// nameRe, versionRe and archRe are what a package name, version and architecture may hold, as
// Debian policy allows them (the version's epoch colon aside): a file name
// made of them holds no path.
var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{0,127}$`)
	versionRe = regexp.MustCompile(`^[0-9A-Za-z.+~:-]{1,128}$`)
	archRe    = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

// debFields reads a package file's name, version and architecture with
// dpkg-deb, which also checks that it is a Debian package at all.
func debFields(ctx context.Context, path string) (name, version, arch string, err error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--showformat=${Package}\n${Version}\n${Architecture}\n", "--show", path).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", "", "", fmt.Errorf("mirror: %s is not a Debian package dpkg-deb can read: %s", filepath.Base(path), msg)
	}
	f := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(f) != 3 || !nameRe.MatchString(f[0]) || !versionRe.MatchString(f[1]) || !archRe.MatchString(f[2]) {
		return "", "", "", fmt.Errorf("mirror: %s: its name, version or architecture is not one Debian allows: %q", filepath.Base(path), out)
	}
	return f[0], f[1], f[2], nil
}

// Add puts Debian package files into the mirror at dir, named as Debian
// names them (a version's epoch left out of the name), and writes its
// index again: the nodes see them at their next apt update, and a patch
// (POST /patch) upgrades to them. Every file is checked before any is
// added; none is added when one is not a package.
func Add(ctx context.Context, dir string, debs []string) ([]string, error) {
	type deb struct{ src, name string }
	var all []deb
	for _, p := range debs {
		name, version, arch, err := debFields(ctx, p)
		if err != nil {
			return nil, err
		}
		if i := strings.IndexByte(version, ':'); i >= 0 {
			version = version[i+1:]
		}
		all = append(all, deb{p, fmt.Sprintf("%s_%s_%s.deb", name, version, arch)})
	}
	var added []string
	for _, d := range all {
		if err := copyFile(d.src, filepath.Join(dir, d.name)); err != nil {
			return added, err
		}
		added = append(added, d.name)
	}
	return added, index(ctx, dir)
}

// Remove takes every file of the named packages out of the mirror at dir
// and writes its index again; it answers the files removed.
func Remove(ctx context.Context, dir string, names []string) ([]string, error) {
	var removed []string
	for _, n := range names {
		if !nameRe.MatchString(n) {
			return removed, fmt.Errorf("mirror: %q is not a Debian package name", n)
		}
		files, _ := filepath.Glob(filepath.Join(dir, n+"_*.deb"))
		for _, f := range files {
			if name, _, _, err := debFields(ctx, f); err != nil || name != n {
				continue // another package whose name begins so
			}
			if err := os.Remove(f); err != nil {
				return removed, fmt.Errorf("mirror: %w", err)
			}
			removed = append(removed, filepath.Base(f))
		}
	}
	return removed, index(ctx, dir)
}

// copyFile copies src to dst through a temporary file renamed over it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("mirror: copy %s: %w", filepath.Base(src), err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mirror: %w", err)
	}
	return os.Rename(tmp, dst)
}
