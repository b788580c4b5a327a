package release

import (
	"strings"
	"testing"
)

func rel(name, version string, jobs []string, pkgs ...Package) *Release {
	r := &Release{Manifest: Manifest{Name: name, Version: version, Packages: pkgs}, Specs: map[string]*Job{}}
	for _, j := range jobs {
		r.Jobs = append(r.Jobs, JobRef{Name: j})
		r.Specs[j] = &Job{Name: j}
	}
	return r
}

func TestMerge(t *testing.T) {
	a := rel("app", "3", []string{"web", "worker"}, Package{Name: "ruby", Fingerprint: "f1"}, Package{Name: "app", Fingerprint: "f2"})
	b := rel("bpm", "1.4", []string{"bpm"}, Package{Name: "bpm", SHA1: "s1"}, Package{Name: "ruby", Fingerprint: "f1"})
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "app" || m.Version != "3" || len(m.Jobs) != 3 || len(m.Specs) != 3 || len(m.Packages) != 3 {
		t.Fatalf("merged %+v", m.Manifest)
	}
	for job, want := range map[string]*Release{"web": a, "worker": a, "bpm": b} {
		if got := m.JobFrom(job); got != want {
			t.Errorf("job %s from %s, want %s", job, got.Name, want.Name)
		}
	}
	for pkg, want := range map[string]*Release{"ruby": a, "app": a, "bpm": b} {
		if got := m.PackageFrom(pkg); got != want {
			t.Errorf("package %s from %s, want %s", pkg, got.Name, want.Name)
		}
	}
	if got := m.Ref(); got != "app/3, bpm/1.4" {
		t.Errorf("ref %q", got)
	}
	if one, _ := Merge(a); one != a || one.JobFrom("web") != a || a.Ref() != "app/3" {
		t.Error("one release is not itself")
	}

	for _, tc := range []struct {
		name string
		rels []*Release
		want string
	}{
		{"a job in two", []*Release{a, rel("other", "1", []string{"web"})}, "job web is in release app/3 and in other/1"},
		{"a package of one name, two contents", []*Release{a, rel("other", "1", nil, Package{Name: "ruby", Fingerprint: "f9"})},
			"package ruby of release other/1 differs from app/3's"},
		{"a release twice", []*Release{a, rel("app", "4", nil)}, "release app is named twice"},
		{"none", nil, "no release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Merge(tc.rels...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
