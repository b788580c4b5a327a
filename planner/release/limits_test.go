package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // the release format's checksum
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func sha(b []byte) string {
	h := sha1.Sum(b) //nolint:gosec
	return hex.EncodeToString(h[:])
}

// releaseOf is a gzip'd release tarball of the given jobs (name → job
// tarball) and no packages, with release.MF listing their sha1s.
func releaseOf(jobs map[string][]byte) []byte {
	mf := "name: r\nversion: '1'\npackages: []\njobs:\n"
	files := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		mf += fmt.Sprintf("- {name: %s, version: v, sha1: %s}\n", name, sha(jobs[name]))
		files["jobs/"+name+".tgz"] = string(jobs[name])
	}
	files["release.MF"] = mf
	return releasetest.TarGz(files)
}

// jobWithTemplates is a job tarball whose templates (t0.erb, t1.erb, ...)
// are each MiB mebibytes of zeros.
func jobWithTemplates(name string, n, mib int) []byte {
	spec := "name: " + name + "\ntemplates:\n"
	entries := []releasetest.Entry{{Name: "./monit", Data: []byte{}}}
	for i := range n {
		spec += fmt.Sprintf("  t%d.erb: bin/t%d\n", i, i)
		entries = append(entries, releasetest.Entry{Name: fmt.Sprintf("./templates/t%d.erb", i), MiB: mib})
	}
	return releasetest.Bomb(append([]releasetest.Entry{{Name: "./job.MF", Data: []byte(spec)}}, entries...)...)
}

// Every upload past a limit is refused with the limit and its flag named,
// leaves nothing in the store, and costs the heap far less than it
// unpacks to: each of these once stored or held hundreds of MB.
func TestImportBombs(t *testing.T) {
	// About 2 MB that unpacks to 2 GiB, as packages.
	var twoGiB []releasetest.Entry
	for i := range 32 {
		twoGiB = append(twoGiB, releasetest.Entry{Name: fmt.Sprintf("./packages/p%d.tgz", i), MiB: 64})
	}
	fourTemplates := map[string][]byte{}
	for i := range 4 {
		fourTemplates[fmt.Sprintf("j%d", i)] = jobWithTemplates(fmt.Sprintf("j%d", i), 1, 60)
	}
	manyJobs := map[string][]byte{}
	for i := range 40 {
		manyJobs[fmt.Sprintf("j%d", i)] = jobWithTemplates(fmt.Sprintf("j%d", i), 1, 1)
	}
	var strays []releasetest.Entry
	for i := range 11 {
		strays = append(strays, releasetest.Entry{Name: fmt.Sprintf("./stray%d", i), Data: []byte("x")})
	}
	for _, tc := range []struct {
		name string
		body []byte
		lim  release.Limits
		file string // the entry named, "" for the tarball
		flag string
		want string
	}{
		{"2 MB unpacking to 2 GiB", releasetest.Bomb(twoGiB...), release.Limits{}, "",
			"release-max-expansion", "more than 8 times its compressed size"},
		{"unpacked past the limit", releasetest.Bomb(twoGiB...), release.Limits{Expansion: 1 << 40, Unpacked: 256 << 20}, "packages/p3.tgz",
			"release-max-unpacked-mb", "unpacks to more than 256 MiB"},
		{"one package past the unpacked limit", releasetest.Bomb(releasetest.Entry{Name: "packages/p.tgz", MiB: 300}), release.Limits{Unpacked: 256 << 20}, "packages/p.tgz",
			"release-max-unpacked-mb", "unpacks to more than 256 MiB"},
		{"compressed past the limit", releasetest.Bomb(twoGiB...), release.Limits{Upload: 1 << 20, Expansion: 1 << 40}, "",
			"release-max-mb", "larger than 1 MiB"},
		{"release.MF of 512 MiB", releasetest.Bomb(releasetest.Entry{Name: "./release.MF", MiB: 512}), release.Limits{}, "release.MF",
			"release-max-text-kb", "larger than 256 KiB, the limit of release.MF and each job.MF"},
		{"job tarball of 8 MiB", releasetest.Bomb(releasetest.Entry{Name: "./jobs/j.tgz", MiB: 8}), release.Limits{}, "jobs/j.tgz",
			"release-max-text-kb", "the job is larger than 4 MiB"},
		{"4 templates of 60 MiB", releaseOf(fourTemplates), release.Limits{}, "jobs/j0.tgz: templates/t0.erb",
			"release-max-text-kb", "larger than 1 MiB, the limit of each template"},
		{"a job of 8 templates of 1 MiB", releaseOf(map[string][]byte{"j": jobWithTemplates("j", 8, 1)}), release.Limits{Text: 2 << 20}, "jobs/j.tgz",
			"release-max-text-kb", "the job is larger than 8 MiB"},
		{"40 jobs of 1 MiB", releaseOf(manyJobs), release.Limits{}, "",
			"release-max-text-kb", "together are larger than 32 MiB"},
		{"too many entries", releasetest.Bomb(strays...), release.Limits{Files: 10}, "stray10",
			"release-max-files", "more than 10 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := release.NewLimitedStore(dir, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			var err2 error
			heap := allocated(func() { _, _, err2 = s.Import(context.Background(), bytes.NewReader(tc.body)) })
			var tl *release.TooLarge
			if !errors.As(err2, &tl) {
				t.Fatalf("want TooLarge, got %v", err2)
			}
			if tl.File != tc.file || tl.Flag != tc.flag || !strings.Contains(err2.Error(), tc.want) || !strings.Contains(err2.Error(), "--"+tc.flag) {
				t.Errorf("got %q (file %q, flag %q), want file %q, flag %q and %q", err2, tl.File, tl.Flag, tc.file, tc.flag, tc.want)
			}
			if heap > 64<<20 {
				t.Errorf("%d MiB allocated", heap>>20)
			}
			t.Logf("%d KiB uploaded, %d KiB allocated", len(tc.body)>>10, heap>>10)
			emptyStore(t, dir)
		})
	}
}

// allocated runs f and answers the bytes it allocated: a bound on how far
// the heap grew while it ran, spikes too short to sample included.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func emptyStore(t *testing.T, dir string) {
	t.Helper()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the store holds %v", names)
	}
}

// importRefused imports body into a new store, which must refuse it as a
// BadRelease of file that says want, and store nothing.
func importRefused(t *testing.T, body []byte, file, want string) error {
	t.Helper()
	dir := t.TempDir()
	s, _ := release.NewStore(dir)
	_, _, err := s.Import(context.Background(), bytes.NewReader(body))
	var br *release.BadRelease
	if !errors.As(err, &br) {
		t.Fatalf("want BadRelease, got %v", err)
	}
	if br.File != file || !strings.Contains(err.Error(), want) {
		t.Errorf("got %q (file %q), want file %q and %q", err, br.File, file, want)
	}
	emptyStore(t, dir)
	return err
}

// An upload that would leave the disk with less than KeepFree is refused
// before its first file is written.
func TestImportNoSpace(t *testing.T) {
	dir := t.TempDir()
	s, err := release.NewLimitedStore(dir, release.Limits{KeepFree: 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Import(context.Background(), bytes.NewReader(releasetest.Build(good())))
	var ns *release.NoSpace
	if !errors.As(err, &ns) || ns.Need <= 0 || ns.Keep != 1<<60 || !strings.Contains(err.Error(), "free some space") {
		t.Fatalf("want NoSpace, got %v", err)
	}
	emptyStore(t, dir)
}

// The releases the BOSH project publishes upload under the default limits,
// from the shared copies when this machine has them.
func TestImportRealReleasesUnderDefaults(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/bosh-releases/*.tgz")
	if len(files) == 0 {
		files, _ = filepath.Glob("testdata/*.tgz")
	}
	s, err := release.NewLimitedStore(t.TempDir(), release.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, created, err := s.Import(context.Background(), bytes.NewReader(b)); err != nil || !created {
			t.Errorf("%s: created %v, %v", f, created, err)
		}
	}
}

// rawEntry is a tar header of any type, with content.
type rawEntry struct {
	hdr  tar.Header
	data string
}

func rawTarGz(entries ...rawEntry) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		_, _ = tw.Write([]byte(e.data))
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}

// sparseEntry is a GNU PAX sparse file (format 1.0) of realSize bytes that
// are all a hole: a few hundred bytes that the tar reader hands on as
// realSize zeros. Go's writer makes none, so its blocks are written here.
func sparseEntry(name string, realSize int64) []byte {
	block := func(name string, typ byte, size int) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR, ModTime: time.Unix(0, 0)})
		h := b.Bytes()[:512]
		h[156] = typ
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return h
	}
	record := func(k, v string) string {
		r := " " + k + "=" + v + "\n"
		n := len(r)
		for len(fmt.Sprint(n))+len(r) != n {
			n = len(fmt.Sprint(n)) + len(r)
		}
		return fmt.Sprint(n) + r
	}
	pax := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", name) + record("GNU.sparse.realsize", fmt.Sprint(realSize))
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	var out []byte
	out = append(out, block("PaxHeaders/x", 'x', len(pax))...)
	out = append(out, pad([]byte(pax))...)
	sparseMap := pad([]byte("0\n")) // no data: the whole file is a hole
	out = append(out, block("GNUSparseFile/x", '0', len(sparseMap))...)
	return append(out, sparseMap...)
}

// Hostile entries: paths that leave the archive or the job, links,
// devices and sparse files, in the release tarball and in a job's.
func TestImportHostileEntries(t *testing.T) {
	reg := func(name, data string) rawEntry {
		return rawEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, data: data}
	}
	typed := func(name string, typ byte, link string) rawEntry {
		return rawEntry{hdr: tar.Header{Name: name, Typeflag: typ, Linkname: link, Devmajor: 1, Devminor: 3}}
	}
	jobWith := func(e rawEntry) []byte {
		return releaseOf(map[string][]byte{"j": rawTarGz(reg("./job.MF", "name: j\ntemplates: {ctl.erb: bin/ctl}\n"), reg("./monit", ""), e)})
	}
	sparseRelease := func(name string) []byte {
		var tarball []byte
		tarball = append(tarball, sparseEntry(name, 1<<30)...)
		return gz(append(tarball, make([]byte, 1024)...))
	}
	for _, tc := range []struct {
		name string
		body []byte
		file string
		want string
	}{
		{"absolute path", rawTarGz(reg("/etc/evil", "x")), "/etc/evil", "escapes the archive"},
		{"dot-dot inside", rawTarGz(reg("jobs/../../evil", "x")), "jobs/../../evil", "escapes the archive"},
		{"backslash", rawTarGz(reg(`..\evil`, "x")), `..\evil`, "escapes the archive"},
		{"symlink", rawTarGz(typed("jobs/j.tgz", tar.TypeSymlink, "/etc/shadow")), "jobs/j.tgz", "not links or devices"},
		{"hard link", rawTarGz(typed("release.MF", tar.TypeLink, "/etc/shadow")), "release.MF", "not links or devices"},
		{"character device", rawTarGz(typed("packages/p.tgz", tar.TypeChar, "")), "packages/p.tgz", "not links or devices"},
		{"block device", rawTarGz(typed("packages/p.tgz", tar.TypeBlock, "")), "packages/p.tgz", "not links or devices"},
		{"fifo", rawTarGz(typed("packages/p.tgz", tar.TypeFifo, "")), "packages/p.tgz", "not links or devices"},
		{"sparse package of 1 GiB", sparseRelease("packages/p.tgz"), "packages/p.tgz", "sparse file"},
		{"symlink template in a job", jobWith(typed("./templates/ctl.erb", tar.TypeSymlink, "/etc/shadow")), "jobs/j.tgz", "not links or devices"},
		{"hard link template in a job", jobWith(typed("./templates/ctl.erb", tar.TypeLink, "/etc/shadow")), "jobs/j.tgz", "not links or devices"},
		{"template escaping the job", jobWith(reg("./templates/../../ctl.erb", "x")), "jobs/j.tgz", "escapes the job"},
		{"absolute template", jobWith(reg("/templates/ctl.erb", "x")), "jobs/j.tgz", "escapes the job"},
	} {
		t.Run(tc.name, func(t *testing.T) { importRefused(t, tc.body, tc.file, tc.want) })
	}
}

// A job spec whose mapping repeats one key thousands of times once made
// yaml.v3 build an error for every pair (1.8 GB for 62 KB); it is refused
// at the first repeat. Refusals list a few problems, not thousands.
func TestParseHostileYAML(t *testing.T) {
	dup := "name: j\nproperties: {" + strings.Repeat("a: [a,a,a,a,a,a],", 62<<10/18) + "}\n"
	heap := allocated(func() {
		_, err := release.ParseSpec([]byte(dup))
		if err == nil || !strings.Contains(err.Error(), `mapping key "a" already defined`) {
			t.Errorf("repeated keys: %v", err)
		}
	})
	if heap > 64<<20 {
		t.Errorf("a 62 KB spec allocated %d MiB", heap>>20)
	}
	wide := "name: j\nproperties: {"
	for i := range 5000 {
		wide += fmt.Sprintf("k%d: {},", i)
	}
	if _, err := release.ParseSpec([]byte(wide + "}\n")); err == nil || !strings.Contains(err.Error(), "more than 4096 keys") {
		t.Errorf("5,000 keys: %v", err)
	}
	many := "name: r\nversion: '1'\npackages:\n" + strings.Repeat("- {name: a}\n", 5000)
	if _, err := release.ParseManifest([]byte(many)); err == nil || len(err.Error()) > 2000 || !strings.Contains(err.Error(), "more") {
		t.Errorf("5,000 bad packages: %d bytes of error: %.200v", len(fmt.Sprint(err)), err)
	}
	typeErrs := "name: r\nversion: '1'\njobs: [" + strings.Repeat("a,", 50000) + "]\n"
	if _, err := release.ParseManifest([]byte(typeErrs)); err == nil || len(err.Error()) > 4000 {
		t.Errorf("50,000 type errors: %d bytes of error", len(fmt.Sprint(err)))
	}
}

func FuzzImport(f *testing.F) {
	for _, p := range []string{"testdata/dummy-release.tgz", "testdata/release_with_prestart_script-1.tgz"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(releasetest.Build(good()))
	f.Add(releasetest.Bomb(releasetest.Entry{Name: "./release.MF", MiB: 1}))
	lim := release.Limits{Upload: 1 << 20, Unpacked: 4 << 20, Text: 64 << 10, Files: 100}
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		s, err := release.NewLimitedStore(dir, lim)
		if err != nil {
			t.Fatal(err)
		}
		rel, _, err := s.Import(context.Background(), bytes.NewReader(in))
		if err != nil {
			emptyStore(t, dir)
			return
		}
		// What was stored is only the index, jobs and packages it lists.
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			r, _ := filepath.Rel(filepath.Join(dir, rel.Name, rel.Version), p)
			if r != "release.MF" && !strings.HasPrefix(r, "jobs/") && !strings.HasPrefix(r, "packages/") {
				t.Errorf("stored %s", p)
			}
			return nil
		})
	})
}

func FuzzReadJob(f *testing.F) {
	f.Add(releasetest.TarGz(map[string]string{"job.MF": "name: j\ntemplates: {a.erb: bin/a}\n", "monit": "", "templates/a.erb": "x"}))
	f.Add(rawTarGz(rawEntry{hdr: tar.Header{Name: "templates/a", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}}))
	lim := release.Limits{Text: 4 << 10}
	f.Fuzz(func(t *testing.T, in []byte) {
		j, err := release.ReadJob(bytes.NewReader(in), lim)
		if err != nil {
			return
		}
		if int64(len(j.Monit)) > lim.Text {
			t.Fatalf("monit of %d bytes kept", len(j.Monit))
		}
		for _, tp := range j.Templates {
			if int64(len(tp.Text)) > lim.Text {
				t.Fatalf("template %s of %d bytes kept", tp.Source, len(tp.Text))
			}
		}
	})
}

// A release.MF stored before the limits, past them, is not read whole into
// memory when the release is opened.
func TestOpenStoredPastLimits(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "r", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r", "1", "release.MF"), bytes.Repeat([]byte("#"), 300<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := release.NewStore(dir)
	var tl *release.TooLarge
	if _, err := s.Get("r", "1"); !errors.As(err, &tl) || tl.File != "release.MF" {
		t.Errorf("want TooLarge for release.MF, got %v", err)
	}
}
