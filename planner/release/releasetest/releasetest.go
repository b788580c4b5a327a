// Package releasetest builds BOSH release tarballs in the release format
// for tests: release.MF with each job's and package's sha1, jobs/*.tgz
// with job.MF, monit and templates/, packages/*.tgz with a packaging script.
package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // the release format's checksum
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Job is a job to put in a release. Spec is job.MF's text; Templates maps
// a template's source name to its text.
type Job struct {
	Name      string
	Spec      string
	Monit     string
	Templates map[string]string
}

// Package is a package to put in a release; Files holds packaging and its
// sources.
type Package struct {
	Name string
	Deps []string
	// Files maps a path inside the package to its content.
	Files map[string]string
}

// Release describes a release tarball.
type Release struct {
	Name, Version string
	Jobs          []Job
	Packages      []Package
	// Tamper, when set, changes the named file's bytes after its sha1 went
	// into release.MF ("jobs/x.tgz").
	Tamper string
	// Extra adds raw archive entries (name → content), e.g. a path that
	// escapes the archive.
	Extra map[string]string
	// Omit leaves a listed file out of the archive.
	Omit string
	// Stemcell, when set, makes it a compiled release: its packages are
	// compiled_packages compiled on that stemcell ("ubuntu-jammy/1.18"),
	// their Files what packaging installed.
	Stemcell string
}

// Build returns the release as a gzip'd tarball.
func Build(r Release) []byte {
	var mf strings.Builder
	files := map[string][]byte{}
	kind, stemcell := "packages", ""
	if r.Stemcell != "" {
		kind, stemcell = "compiled_packages", "  stemcell: "+r.Stemcell+"\n"
	}
	fmt.Fprintf(&mf, "---\nname: %s\nversion: '%s'\n%s:\n", r.Name, r.Version, kind)
	if len(r.Packages) == 0 {
		mf.Reset()
		fmt.Fprintf(&mf, "---\nname: %s\nversion: '%s'\n%s: []\n", r.Name, r.Version, kind)
	}
	for _, p := range r.Packages {
		b := TarGz(p.Files)
		files[kind+"/"+p.Name+".tgz"] = b
		deps := "[]"
		if len(p.Deps) > 0 {
			deps = "[" + strings.Join(p.Deps, ", ") + "]"
		}
		fmt.Fprintf(&mf, "- name: %s\n  version: %s\n  fingerprint: %s\n  sha1: %s\n  dependencies: %s\n%s", p.Name, sum(b)[:12], sum(b), sum(b), deps, stemcell)
	}
	mf.WriteString("jobs:\n")
	for _, j := range r.Jobs {
		f := map[string]string{"job.MF": j.Spec, "monit": j.Monit}
		for k, v := range j.Templates {
			f["templates/"+k] = v
		}
		b := TarGz(f)
		files["jobs/"+j.Name+".tgz"] = b
		fmt.Fprintf(&mf, "- name: %s\n  version: %s\n  fingerprint: %s\n  sha1: %s\n", j.Name, sum(b)[:12], sum(b), sum(b))
	}
	if r.Tamper != "" {
		b := append([]byte(nil), files[r.Tamper]...)
		b[len(b)/2] ^= 0xff
		files[r.Tamper] = b
	}
	if r.Omit != "" {
		delete(files, r.Omit)
	}
	out := map[string]string{"release.MF": mf.String()}
	for k, v := range files {
		out[k] = string(v)
	}
	for k, v := range r.Extra {
		out[k] = v
	}
	return TarGz(out)
}

func sum(b []byte) string {
	h := sha1.Sum(b) //nolint:gosec
	return hex.EncodeToString(h[:])
}

// TarGz archives files (path → content) in name order; a packaging file or
// anything under bin/ gets mode 0755.
func TarGz(files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if n == "packaging" || strings.Contains(n, "bin/") {
			mode = 0o755
		}
		_ = tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: mode, Size: int64(len(files[n])), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(files[n]))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// Entry is one file of a tarball that Bomb builds: Data, or else MiB
// mebibytes of zeros.
type Entry struct {
	Name string
	Data []byte
	MiB  int
}

// zeroMember is one gzip member of 1 MiB of zeros, about 1 KB. gzip
// members concatenate into one stream, so a bomb of any size is built from
// copies of it without compressing gigabytes.
var zeroMember = sync.OnceValue(func() []byte { return gzipped(make([]byte, 1<<20)) })

// Bomb returns a gzip'd tarball of entries, cheaply however much it
// unpacks to: 2 GiB of zeros weigh about 2 MB.
func Bomb(entries ...Entry) []byte {
	var out bytes.Buffer
	for _, e := range entries {
		size := int64(len(e.Data))
		if e.Data == nil {
			size = int64(e.MiB) << 20
		}
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: e.Name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		_, _ = tw.Write(e.Data)
		_ = tw.Flush() // pads Data to a whole block
		out.Write(gzipped(b.Bytes()))
		if e.Data != nil {
			continue
		}
		// Zeros come in whole blocks: no padding.
		for range e.MiB {
			out.Write(zeroMember())
		}
	}
	out.Write(gzipped(make([]byte, 1024))) // the end of the archive
	return out.Bytes()
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}
