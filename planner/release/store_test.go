package release_test

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // BOSH's release index records sha1.
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

func TestImportSharedReleases(t *testing.T) {
	s, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, name, version string
		jobs, packages      []string
	}{
		{"dummy-release.tgz", "dummy", "0.2-dev",
			[]string{"dummy", "dummy_with_bad_package", "dummy_with_package", "dummy_with_properties", "multi-monit-dummy"},
			[]string{"bad_package", "dummy_package"}},
		{"release_with_prestart_script-1.tgz", "release_with_prestart_script", "1",
			[]string{"job_1_with_pre_start_script"}, []string{}},
	} {
		f, err := os.Open(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		rel, created, err := s.Import(context.Background(), f)
		_ = f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !created {
			t.Errorf("%s: not reported as new", tc.file)
		}
		sum := rel.Summary()
		if sum.Name != tc.name || sum.Version != tc.version || !reflect.DeepEqual(sum.Jobs, tc.jobs) || !reflect.DeepEqual(sum.Packages, tc.packages) {
			t.Errorf("%s: got %+v", tc.file, sum)
		}
	}
	// The !binary sha1 of the old release decodes to hex.
	rel, err := s.Get("dummy", "")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := rel.Package("dummy_package"); p.SHA1 != "42ade2b5b3495a989a8ffeeacc7e08c2387d29ba" {
		t.Errorf("dummy_package sha1 %q", p.SHA1)
	}
	spec := rel.Specs["dummy_with_properties"]
	if p := spec.Properties["dummy_with_properties.echo_value"]; !p.HasDefault || p.Default != 10.1 {
		t.Errorf("echo_value default %+v", p)
	}
	if len(spec.Templates) != 1 || spec.Templates[0].Dest != "bin/dummy_with_properties_ctl" || !strings.Contains(spec.Templates[0].Text, "spec.release.name") {
		t.Errorf("templates %+v", spec.Templates)
	}
	list, err := s.List(context.Background())
	if err != nil || len(list) != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	// Uploading the same release again stores nothing new.
	f, _ := os.Open("testdata/dummy-release.tgz")
	defer func() { _ = f.Close() }()
	if _, created, err := s.Import(context.Background(), f); err != nil || created {
		t.Errorf("second upload: created %v err %v", created, err)
	}
	// The stray file in the dummy archive is not kept.
	if _, err := os.Stat(filepath.Join(s.Dir(), "dummy", "0.2-dev", "dummy-release.tgz")); !os.IsNotExist(err) {
		t.Errorf("stray file kept: %v", err)
	}
}

func good() releasetest.Release {
	return releasetest.Release{Name: "r", Version: "1",
		Jobs:     []releasetest.Job{{Name: "j", Spec: "---\nname: j\ntemplates:\n  ctl.erb: bin/ctl\npackages: [p]\n", Monit: "", Templates: map[string]string{"ctl.erb": "x"}}},
		Packages: []releasetest.Package{{Name: "p", Files: map[string]string{"packaging": "true"}}}}
}

func TestImportRefuses(t *testing.T) {
	tamper := good()
	tamper.Tamper = "jobs/j.tgz"
	omit := good()
	omit.Omit = "packages/p.tgz"
	escape := good()
	escape.Extra = map[string]string{"../../etc/evil": "x"}
	noTemplate := good()
	noTemplate.Jobs[0].Templates = nil
	noPackaging := good()
	noPackaging.Packages[0].Files = map[string]string{"src/main.c": "int main(){}"}
	nested := good()
	nested.Packages[0].Files = map[string]string{"src/packaging": "true"}
	compiled := releasetest.TarGz(map[string]string{"release.MF": "---\nname: r\nversion: '1'\ncompiled_packages:\n- name: p\n  version: '1'\n" +
		"  sha1: 0123456789012345678901234567890123456789\n  stemcell: ubuntu-jammy/1.0\n  dependencies: []\n" +
		"jobs:\n- name: j\n  version: '1'\n  sha1: 0123456789012345678901234567890123456789\n"})
	badStemcell := releasetest.TarGz(map[string]string{"release.MF": "---\nname: r\nversion: '1'\ncompiled_packages:\n- name: p\n  version: '1'\n" +
		"  sha1: 0123456789012345678901234567890123456789\n  stemcell: jammy\n  dependencies: []\n" +
		"jobs:\n- name: j\n  version: '1'\n  sha1: 0123456789012345678901234567890123456789\n"})
	tamperedCompiled := compiledRelease()
	tamperedCompiled.Tamper = "compiled_packages/p.tgz"
	shapeless := releasetest.TarGz(map[string]string{"release.MF": "---\nname: r\nversion: '1'\npackages: {p: 1}\njobs: [1]\n"})
	cycle := good()
	cycle.Packages = append(cycle.Packages, releasetest.Package{Name: "q", Deps: []string{"q2"}, Files: map[string]string{"packaging": "true"}},
		releasetest.Package{Name: "q2", Deps: []string{"q"}, Files: map[string]string{"packaging": "true"}})
	for _, tc := range []struct {
		name string
		body []byte
		file string
		want string
	}{
		{"tampered job", releasetest.Build(tamper), "jobs/j.tgz", "does not match release.MF"},
		{"missing package", releasetest.Build(omit), "packages/p.tgz", "missing from the archive"},
		{"escaping path", releasetest.Build(escape), "./../../etc/evil", "escapes the archive"},
		{"template not in job", releasetest.Build(noTemplate), "jobs/j.tgz", "templates/ctl.erb"},
		{"package cycle", releasetest.Build(cycle), "release.MF", "cycle"},
		{"no packaging", releasetest.Build(noPackaging), "packages/p.tgz", "package p has no packaging script"},
		{"packaging not at the root", releasetest.Build(nested), "packages/p.tgz", "package p has no packaging script"},
		{"compiled release without its package", compiled, "compiled_packages/p.tgz", "missing from the archive"},
		{"compiled package of no stemcell", badStemcell, "release.MF", `compiled package p: stemcell "jammy" is not OS/VERSION`},
		{"tampered compiled package", releasetest.Build(tamperedCompiled), "compiled_packages/p.tgz", "does not match release.MF"},
		{"values of the wrong kind", shapeless, "release.MF", "line 4: want a list here, found a mapping; line 5: want a mapping here, found the value `1`"},
		{"not gzip", []byte("hello"), "", "not a gzip"},
		{"not a release", releasetest.TarGz(map[string]string{"README": "hi"}), "", "no release.MF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := importRefused(t, tc.body, tc.file, tc.want); strings.Contains(err.Error(), "yaml:") {
				t.Errorf("%q shows the YAML parser's words", err)
			}
		})
	}
}

// compiledRelease is good() compiled: its package p holds what packaging
// installed, with no packaging script.
func compiledRelease() releasetest.Release {
	r := good()
	r.Stemcell = "ubuntu-jammy/1.18"
	r.Packages[0].Files = map[string]string{"bin/p": "#!/bin/sh\necho compiled\n"}
	return r
}

// A compiled release is stored as it came: its packages, which have no
// packaging script, are served from compiled_packages/ with the stemcell
// they were compiled on; in a shared store, by another API process too.
func TestImportCompiled(t *testing.T) {
	ctx := context.Background()
	plain, _ := release.NewStore(t.TempDir())
	res := bustest.Start(t, bus.ServerOptions{}).Res
	a, errA := release.NewSharedStore(ctx, t.TempDir(), release.Limits{}, res.Releases, res.Engine, nil)
	b, errB := release.NewSharedStore(ctx, t.TempDir(), release.Limits{}, res.Releases, res.Engine, nil)
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		into, served *release.Store
	}{{"plain", plain, plain}, {"shared", a, b}} {
		t.Run(tc.name, func(t *testing.T) {
			rel, created, err := tc.into.Import(ctx, bytes.NewReader(releasetest.Build(compiledRelease())))
			if err != nil || !created {
				t.Fatalf("import %v %v", created, err)
			}
			p, ok := rel.Package("p")
			if !ok || !p.Compiled() || p.Stemcell != "ubuntu-jammy/1.18" || p.File() != "compiled_packages/p.tgz" {
				t.Fatalf("package %+v", p)
			}
			file, err := tc.served.PackageFile(ctx, "r", "1", "p")
			if err != nil {
				t.Fatalf("package file: %v", err)
			}
			h := sha1.New() //nolint:gosec
			bs, _ := os.ReadFile(file)
			h.Write(bs)
			if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA1 {
				t.Errorf("served %s, sha1 %s, want %s", file, got, p.SHA1)
			}
		})
	}
}

func TestConflictAndLatest(t *testing.T) {
	s, _ := release.NewStore(t.TempDir())
	ctx := context.Background()
	for _, v := range []string{"1.9", "1.10", "1.2"} {
		r := good()
		r.Version = v
		if _, _, err := s.Import(ctx, bytes.NewReader(releasetest.Build(r))); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := s.Get("r", "")
	if err != nil || rel.Version != "1.10" {
		t.Fatalf("latest %v %v", rel, err)
	}
	other := good()
	other.Version = "1.9"
	other.Jobs[0].Templates["ctl.erb"] = "changed"
	var c *release.Conflict
	if _, _, err := s.Import(ctx, bytes.NewReader(releasetest.Build(other))); !errors.As(err, &c) {
		t.Errorf("want conflict, got %v", err)
	}
	var nf *release.NotFound
	if _, err := s.Get("nope", ""); !errors.As(err, &nf) {
		t.Errorf("want not found, got %v", err)
	}
}

func TestPackageOrder(t *testing.T) {
	all := []release.Package{{Name: "app", Dependencies: []string{"lib", "ruby"}}, {Name: "lib", Dependencies: []string{"base"}},
		{Name: "ruby", Dependencies: []string{"base"}}, {Name: "base"}, {Name: "unused"}}
	got, err := release.PackageOrder(all, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if want := []string{"base", "lib", "ruby", "app"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("name: r\nversion: '1'\njobs:\n- name: j\n  version: a\n  sha1: !binary |-\n    MTZiYWYwYzI0ZTJkYWMyYTIxY2NkY2Q0NjU1YmU0MDNhNjAyZjU3Mw==\n"))
	f.Add([]byte("packages: [{name: a, dependencies: [a]}]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := release.ParseManifest(in)
		if err == nil && (m.Name == "" || strings.Contains(m.Name, "/") || len(m.Jobs) == 0) {
			t.Fatalf("accepted %q", in)
		}
	})
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("name: j\ntemplates: {a.erb: bin/a}\nproperties:\n  x.y: {default: [1, {a: b}]}\nconsumes: [{name: db, type: t}]\n"))
	f.Add([]byte("name: j\ntemplates: {../x: /etc/passwd}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		j, err := release.ParseSpec(in)
		if err != nil {
			return
		}
		for _, tp := range j.Templates {
			if strings.Contains(tp.Dest, "..") && strings.Contains("/"+tp.Dest+"/", "/../") || strings.HasPrefix(tp.Dest, "/") {
				t.Fatalf("accepted template destination %q", tp.Dest)
			}
		}
	})
}
