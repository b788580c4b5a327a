package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

// entry is one entry of a test tarball.
type entry struct {
	name, link string
	typ        byte
	body       string
}

func tarball(t *testing.T, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	tw := tar.NewWriter(z)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const fp = "0123456789abcdef0123456789abcdef"

func TestKeepCompiled(t *testing.T) {
	s, err := release.NewLimitedStore(t.TempDir(), release.Limits{Upload: 4096, Unpacked: 1000, Files: 5})
	if err != nil {
		t.Fatal(err)
	}
	good := tarball(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./bin/", typ: tar.TypeDir},
		entry{name: "./bin/run", typ: tar.TypeReg, body: "#!/bin/sh\necho hi\n"},
		entry{name: "./lib", link: "/var/vcap/packages/other/lib", typ: tar.TypeSymlink},
		entry{name: "./run2", link: "bin/run", typ: tar.TypeLink})
	created, err := s.KeepCompiled(t.Context(), fp, "debian-12-x86_64", bytes.NewReader(good))
	if err != nil || !created {
		t.Fatalf("KeepCompiled = %v, %v; want a new entry", created, err)
	}
	file, err := s.CompiledFile(t.Context(), fp, "debian-12-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, good) {
		t.Fatalf("the stored file is not the upload")
	}
	// The first upload stays: a second is not read.
	other := tarball(t, entry{name: "x", typ: tar.TypeReg, body: "other"})
	if created, err := s.KeepCompiled(t.Context(), fp, "debian-12-x86_64", bytes.NewReader(other)); err != nil || created {
		t.Fatalf("second KeepCompiled = %v, %v; want kept already", created, err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, good) {
		t.Fatalf("a second upload replaced the first")
	}
	if _, err := s.CompiledFile(t.Context(), fp, "ubuntu-22.04-x86_64"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("another OS: %v, want fs.ErrNotExist", err)
	}

	for _, tc := range []struct {
		name, fp, os string
		body         []byte
		want         string
	}{
		{"fingerprint with a slash", "../../etc", "debian-12", good, "fingerprint is 16 to 64 hex"},
		{"os with a dot dot", fp, "..", good, "an OS is letters"},
		{"os with a slash", fp, "a/b", good, "an OS is letters"},
		{"not gzip", fp, "os1", []byte("plain text"), "not a gzipped tarball"},
		{"truncated", fp, "os2", good[:len(good)/2], "not a readable tarball"},
		{"absolute name", fp, "os3", tarball(t, entry{name: "/etc/passwd", typ: tar.TypeReg, body: "x"}), "outside the package's directory"},
		{"dot dot", fp, "os4", tarball(t, entry{name: "a/../../x", typ: tar.TypeReg, body: "x"}), "outside the package's directory"},
		{"below its own symlink", fp, "os5", tarball(t, entry{name: "etc", link: "/etc", typ: tar.TypeSymlink},
			entry{name: "etc/cron.d/x", typ: tar.TypeReg, body: "x"}), `below the symbolic link "etc"`},
		{"device", fp, "os6", tarball(t, entry{name: "sda", typ: tar.TypeBlock}), "neither a file, a directory nor a link"},
		{"setuid", fp, "os12", func() []byte {
			var b bytes.Buffer
			z := gzip.NewWriter(&b)
			tw := tar.NewWriter(z)
			_ = tw.WriteHeader(&tar.Header{Name: "su", Typeflag: tar.TypeReg, Mode: 0o4755})
			_ = tw.Close()
			_ = z.Close()
			return b.Bytes()
		}(), "setuid or setgid"},
		{"fifo", fp, "os7", tarball(t, entry{name: "p", typ: tar.TypeFifo}), "neither a file"},
		{"hard link out", fp, "os8", tarball(t, entry{name: "h", link: "../../etc/shadow", typ: tar.TypeLink}), "points outside"},
		{"too many entries", fp, "os9", tarball(t, entry{name: "1", typ: tar.TypeDir}, entry{name: "2", typ: tar.TypeDir},
			entry{name: "3", typ: tar.TypeDir}, entry{name: "4", typ: tar.TypeDir}, entry{name: "5", typ: tar.TypeDir},
			entry{name: "6", typ: tar.TypeDir}), "more than 5 entries"},
		{"unpacks too large", fp, "os10", tarball(t, entry{name: "big", typ: tar.TypeReg, body: strings.Repeat("0", 1001)}), "unpacks to more than"},
		{"upload too large", fp, "os11", bytes.Repeat([]byte{1}, 4097), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := s.KeepCompiled(t.Context(), tc.fp, tc.os, bytes.NewReader(tc.body))
			if err == nil || created {
				t.Fatalf("KeepCompiled = %v, %v; want refused", created, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			var bad *release.BadCompiled
			var big *release.TooLarge
			if !errors.As(err, &bad) && !errors.As(err, &big) {
				t.Fatalf("error %T is neither BadCompiled nor TooLarge", err)
			}
			if _, err := s.CompiledFile(t.Context(), fp, tc.os); err == nil {
				t.Fatalf("a refused upload is served")
			}
		})
	}
}

// In a shared store a compiled package one API process kept is served by
// another, from the bus, whole.
func TestCompiledSharedThroughTheBus(t *testing.T) {
	res := bustest.Start(t, bus.ServerOptions{}).Res
	a, err := release.NewSharedStore(t.Context(), t.TempDir(), release.Limits{}, res.Releases, res.Engine, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := release.NewSharedStore(t.Context(), t.TempDir(), release.Limits{}, res.Releases, res.Engine, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := tarball(t, entry{name: "bin/tool", typ: tar.TypeReg, body: strings.Repeat("compiled\n", 50000)})
	if _, err := b.CompiledFile(t.Context(), fp, "debian-12-x86_64"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before any put: %v, want fs.ErrNotExist", err)
	}
	if created, err := a.KeepCompiled(t.Context(), fp, "debian-12-x86_64", bytes.NewReader(body)); err != nil || !created {
		t.Fatalf("KeepCompiled = %v, %v", created, err)
	}
	file, err := b.CompiledFile(t.Context(), fp, "debian-12-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, body) {
		t.Fatalf("the other process serves %d bytes, want the %d put", len(got), len(body))
	}
	if created, err := b.KeepCompiled(t.Context(), fp, "debian-12-x86_64", bytes.NewReader([]byte("x"))); err != nil || created {
		t.Fatalf("a second put through the other process: %v, %v; want kept already", created, err)
	}
}
