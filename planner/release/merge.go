package release

import (
	"fmt"
	"slices"
	"strings"
)

// Merge is one release made of the jobs and packages of several, as a
// deployment of several releases places them side by side: a job's and a
// package's name must say which release it comes from. A job in two of
// them is refused; a package in two is taken once when both are the same
// package (same fingerprint, or same SHA-1 where there is none), as
// /var/vcap/packages has room for one of each name, and refused else.
// The first release names the whole; JobFrom and PackageFrom say where
// each part comes from.
// One release is returned as it is.
func Merge(rels ...*Release) (*Release, error) {
	if len(rels) == 0 {
		return nil, fmt.Errorf("no release to merge")
	}
	if len(rels) == 1 {
		return rels[0], nil
	}
	out := &Release{Manifest: Manifest{Name: rels[0].Name, Version: rels[0].Version}, Specs: map[string]*Job{},
		from: map[string]*Release{}, pkgFrom: map[string]*Release{}, parts: rels}
	var names []string
	for _, r := range rels {
		ref := r.Name + "/" + r.Version
		if slices.Contains(names, r.Name) {
			return nil, fmt.Errorf("release %s is named twice", r.Name)
		}
		names = append(names, r.Name)
		for _, j := range r.Jobs {
			if prev, ok := out.from[j.Name]; ok {
				return nil, fmt.Errorf("job %s is in release %s/%s and in %s: the engine places jobs by name, so one name must say which", j.Name, prev.Name, prev.Version, ref)
			}
			out.from[j.Name] = r
			out.Jobs = append(out.Jobs, j)
			out.Specs[j.Name] = r.Specs[j.Name]
		}
		for _, p := range r.Packages {
			if prev, ok := out.pkgFrom[p.Name]; ok {
				q, _ := prev.Package(p.Name)
				if !samePackage(p, q) {
					return nil, fmt.Errorf("package %s of release %s differs from %s/%s's: /var/vcap/packages holds one package of a name", p.Name, ref, prev.Name, prev.Version)
				}
				continue
			}
			out.pkgFrom[p.Name] = r
			out.Packages = append(out.Packages, p)
		}
	}
	return out, nil
}

func samePackage(a, b Package) bool {
	if a.Fingerprint != "" || b.Fingerprint != "" {
		return a.Fingerprint == b.Fingerprint && a.Stemcell == b.Stemcell
	}
	return a.SHA1 == b.SHA1
}

// JobFrom is the release job comes from: r itself unless r was merged.
func (r *Release) JobFrom(job string) *Release {
	if f, ok := r.from[job]; ok {
		return f
	}
	return r
}

// PackageFrom is the release pkg comes from: r itself unless r was merged.
func (r *Release) PackageFrom(pkg string) *Release {
	if f, ok := r.pkgFrom[pkg]; ok {
		return f
	}
	return r
}

// Ref is "NAME/VERSION"; a merged release names every release in it.
func (r *Release) Ref() string {
	if len(r.parts) == 0 {
		return r.Name + "/" + r.Version
	}
	refs := make([]string, len(r.parts))
	for i, p := range r.parts {
		refs[i] = p.Name + "/" + p.Version
	}
	return strings.Join(refs, ", ")
}
