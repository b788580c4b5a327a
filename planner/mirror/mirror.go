// Package mirror gathers the Debian packages a catalog needs into a flat
// apt repository that the engine serves to its nodes: only the control
// machine needs the outside world.
package mirror

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/catalog"
)

// SourcesList is the apt source line that points a node at the mirror.
func SourcesList(mirrorURL string) string {
	return "deb [trusted=yes] " + mirrorURL + " ./\n"
}

// Packages lists every Debian package a catalog installs, and monit, which
// deployments install on nodes that lack it; sorted.
func Packages(cat *catalog.Catalog) []string {
	seen := map[string]bool{"monit": true}
	out := []string{"monit"}
	for _, c := range cat.Components {
		for _, p := range c.Packages {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Sync downloads into dir the catalog's packages and every dependency a
// fresh node of this machine's distribution lacks, then writes the
// repository's index (Packages, Packages.gz, Release). A fresh node is taken to
// have the distribution's required and important packages; what it lacks
// beyond them is fetched. Running it again downloads only what is new.
func Sync(ctx context.Context, cat *catalog.Catalog, dir string, log *slog.Logger) error {
	pkgs := Packages(cat)
	// apt reads a relative Dir:: path below its own directories.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o755); err != nil {
		return fmt.Errorf("mirror: create %s: %w", dir, err)
	}
	for _, tool := range []string{"apt-get", "dpkg-scanpackages"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("mirror: %s not found: install apt and dpkg-dev (make deps does)", tool)
		}
	}
	if len(pkgs) == 0 {
		log.Info("catalog installs no packages; writing an empty index", "catalog", cat.Name)
		return index(ctx, dir)
	}
	status, err := freshStatus(dir)
	if err != nil {
		return err
	}
	start := time.Now()
	log.Info("gathering packages", "catalog", cat.Name, "packages", strings.Join(pkgs, " "), "dir", dir)
	args := []string{"install", "--download-only", "-y", "-q", "--no-install-recommends",
		"-o", "Dir::Cache::archives=" + dir, "-o", "Dir::State::status=" + status,
		"-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"}
	cmd := exec.CommandContext(ctx, "apt-get", append(args, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mirror: apt-get download failed (is the control machine online and `apt-get update` done?): %v\n%s", err, tail(out, 20))
	}
	if err := index(ctx, dir); err != nil {
		return err
	}
	n, size := count(dir)
	log.Info("mirror ready", "debs", n, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// freshStatus writes a dpkg status file holding what every fresh install
// of the distribution has: the essential, required and important packages
// of this machine, with everything they depend on.
func freshStatus(dir string) (string, error) {
	b, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		return "", fmt.Errorf("mirror: read dpkg status: %w", err)
	}
	stanzas := map[string]string{}
	deps := map[string][]string{}
	provides := map[string][]string{}
	var queue []string
	for _, stanza := range strings.Split(string(b), "\n\n") {
		f := fields(stanza)
		name := f["Package"]
		if name == "" || !strings.Contains(f["Status"], "installed") || strings.Contains(f["Status"], "not-installed") {
			continue
		}
		stanzas[name] = strings.TrimSpace(stanza)
		for _, p := range strings.Split(f["Provides"], ",") {
			if w := strings.Fields(p); len(w) > 0 {
				provides[w[0]] = append(provides[w[0]], name)
			}
		}
		for _, key := range []string{"Depends", "Pre-Depends"} {
			for _, d := range strings.Split(f[key], ",") {
				// The first alternative, without version or architecture.
				// Every alternative: the one installed here is kept.
				for _, alt := range strings.Split(d, "|") {
					if w := strings.Fields(alt); len(w) > 0 {
						deps[name] = append(deps[name], strings.Split(w[0], ":")[0])
					}
				}
			}
		}
		if f["Essential"] == "yes" || f["Priority"] == "required" || f["Priority"] == "important" {
			queue = append(queue, name)
		}
	}
	keep := map[string]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if keep[n] {
			continue
		}
		if stanzas[n] == "" {
			queue = append(queue, provides[n]...)
			continue
		}
		keep[n] = true
		for _, d := range deps[n] {
			queue = append(queue, d)
			queue = append(queue, provides[d]...)
		}
	}
	var out strings.Builder
	for _, n := range sortedKeys(keep) {
		out.WriteString(stanzas[n])
		out.WriteString("\n\n")
	}
	path := filepath.Join(dir, ".fresh-status")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		return "", fmt.Errorf("mirror: write status: %w", err)
	}
	return path, nil
}

// fields parses one stanza's top-level fields.
func fields(stanza string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(stanza, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// index writes Packages, Packages.gz and a Release that lists both. With
// no Release, apt asks for every compression it knows (Packages.xz, .bz2,
// .lzma) before the one served, and prints each 404 as an Err line in the
// deploy log of a healthy node.
func index(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "-m", ".", "/dev/null")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("mirror: dpkg-scanpackages: %v: %s", err, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), out, 0o644); err != nil {
		return err
	}
	gz := exec.CommandContext(ctx, "gzip", "-9nkf", "Packages")
	gz.Dir = dir
	if b, err := gz.CombinedOutput(); err != nil {
		return fmt.Errorf("mirror: gzip Packages: %v: %s", err, b)
	}
	return writeRelease(dir, "Packages", "Packages.gz")
}

// releaseDate is every Release's Date. apt wants one; a fixed date long
// past is never "not valid yet" on a node whose clock is behind, nor older
// than the Release a node fetched before (the Packages' hashes tell a new
// index apart).
const releaseDate = "Sat, 01 Jan 2000 00:00:00 UTC"

// writeRelease writes dir's Release: the SHA-256 and size of each index.
func writeRelease(dir string, indexes ...string) error {
	var b strings.Builder
	b.WriteString("Date: " + releaseDate + "\nSHA256:\n")
	for _, name := range indexes {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		fmt.Fprintf(&b, " %x %d %s\n", sha256.Sum256(data), len(data), name)
	}
	tmp := filepath.Join(dir, ".Release.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "Release"))
}

func count(dir string) (int, int64) {
	m, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	var size int64
	for _, f := range m {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	return len(m), size
}

func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
