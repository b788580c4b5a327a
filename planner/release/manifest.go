// Package release is the engine's store of BOSH releases. It reads the
// tarballs (the release.MF index, jobs/<name>.tgz with a job.MF spec, a
// monit file and ERB templates, packages/<name>.tgz with sources and a
// packaging script, or, in a compiled release, compiled_packages/<name>.tgz
// with what a packaging script installed), checks them and keeps them.
// Everything the engine installs from a release went through Import, which
// checks every job and package against the sha1 the index records.
package release

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Package is one package of a release's index.
type Package struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	SHA1         string   `json:"sha1"`
	Fingerprint  string   `json:"fingerprint,omitempty"`
	Dependencies []string `json:"dependencies"`
	// Stemcell is set for a package of a compiled release: the stemcell
	// (OS/version) it was compiled on. Its tarball holds the installed
	// files, to be unpacked, not compiled.
	Stemcell string `json:"stemcell,omitempty"`
}

// Compiled tells whether p comes compiled (from a compiled release).
func (p Package) Compiled() bool { return p.Stemcell != "" }

// File is p's tarball in the release: compiled_packages/<name>.tgz for a
// compiled package, packages/<name>.tgz for one with its sources.
func (p Package) File() string {
	if p.Compiled() {
		return "compiled_packages/" + p.Name + ".tgz"
	}
	return "packages/" + p.Name + ".tgz"
}

// JobRef is one job of a release's index.
type JobRef struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA1        string `json:"sha1"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Manifest is release.MF.
type Manifest struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Packages []Package `json:"packages"`
	Jobs     []JobRef  `json:"jobs"`
}

// scalar is a YAML string that old releases write as base64 under the
// local tag !binary (Ruby's Psych did so for every non-UTF-8-safe string).
type scalar string

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a scalar", n.Line)
	}
	if n.Tag == "!binary" || n.Tag == "!!binary" {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return fmt.Errorf("line %d: bad !binary value: %w", n.Line, err)
		}
		*s = scalar(b)
		return nil
	}
	*s = scalar(n.Value)
	return nil
}

type rawPackage struct {
	Name         scalar   `yaml:"name"`
	Version      scalar   `yaml:"version"`
	SHA1         scalar   `yaml:"sha1"`
	Fingerprint  scalar   `yaml:"fingerprint"`
	Dependencies []scalar `yaml:"dependencies"`
	Stemcell     scalar   `yaml:"stemcell"`
}

type rawManifest struct {
	Name     scalar       `yaml:"name"`
	Version  scalar       `yaml:"version"`
	Packages []rawPackage `yaml:"packages"`
	Jobs     []struct {
		Name        scalar `yaml:"name"`
		Version     scalar `yaml:"version"`
		SHA1        scalar `yaml:"sha1"`
		Fingerprint scalar `yaml:"fingerprint"`
	} `yaml:"jobs"`
	// CompiledPackages is what a compiled release has in place of
	// packages: each compiled on a stemcell.
	CompiledPackages []rawPackage `yaml:"compiled_packages"`
}

func (p rawPackage) parse() Package {
	pk := Package{Name: string(p.Name), Version: string(p.Version), SHA1: strings.ToLower(string(p.SHA1)), Fingerprint: string(p.Fingerprint),
		Dependencies: []string{}, Stemcell: string(p.Stemcell)}
	for _, d := range p.Dependencies {
		pk.Dependencies = append(pk.Dependencies, string(d))
	}
	return pk
}

// stemcellRe is a compiled package's stemcell, as "ubuntu-jammy/1.18".
var stemcellRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)

// Names of releases, jobs, packages and versions become file names.
var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$`)
	sha1Re    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	versionRe = nameRe
)

func plainName(s string) bool { return nameRe.MatchString(s) && !strings.Contains(s, "..") }

// ParseManifest reads release.MF and checks that it names what a release
// needs in a form the engine can store.
func ParseManifest(b []byte) (*Manifest, error) {
	var raw rawManifest
	if err := unmarshalYAML(b, &raw); err != nil {
		return nil, err
	}
	m := &Manifest{Name: string(raw.Name), Version: string(raw.Version)}
	var errs []string
	if !plainName(m.Name) {
		errs = append(errs, fmt.Sprintf("release name %q is not a plain name", m.Name))
	}
	if !versionRe.MatchString(m.Version) || strings.Contains(m.Version, "..") {
		errs = append(errs, fmt.Sprintf("release version %q is not a plain version", m.Version))
	}
	seen := map[string]bool{}
	for _, p := range raw.Packages {
		pk := p.parse()
		pk.Stemcell = "" // a source package, whatever it says
		errs = append(errs, checkEntry("package", pk.Name, pk.Version, pk.SHA1, seen)...)
		m.Packages = append(m.Packages, pk)
	}
	for _, p := range raw.CompiledPackages {
		pk := p.parse()
		errs = append(errs, checkEntry("compiled package", pk.Name, pk.Version, pk.SHA1, seen)...)
		if !stemcellRe.MatchString(pk.Stemcell) {
			errs = append(errs, fmt.Sprintf("compiled package %s: stemcell %q is not OS/VERSION", pk.Name, pk.Stemcell))
		}
		m.Packages = append(m.Packages, pk)
	}
	seen = map[string]bool{}
	for _, j := range raw.Jobs {
		jr := JobRef{Name: string(j.Name), Version: string(j.Version), SHA1: strings.ToLower(string(j.SHA1)), Fingerprint: string(j.Fingerprint)}
		errs = append(errs, checkEntry("job", jr.Name, jr.Version, jr.SHA1, seen)...)
		m.Jobs = append(m.Jobs, jr)
	}
	pkgs := map[string]bool{}
	for _, p := range m.Packages {
		pkgs[p.Name] = true
	}
	for _, p := range m.Packages {
		for _, d := range p.Dependencies {
			if !pkgs[d] {
				errs = append(errs, fmt.Sprintf("package %s depends on %q, which the release does not have", p.Name, d))
			}
		}
	}
	if len(m.Jobs) == 0 {
		errs = append(errs, "no jobs")
	}
	if len(errs) == 0 {
		if _, err := PackageOrder(m.Packages, namesOf(m.Packages)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(joinErrors(errs))
	}
	return m, nil
}

// maxErrors is how many problems one refusal lists: a hostile index can
// hold thousands, and the answer should stay readable and small.
const maxErrors = 10

func joinErrors(errs []string) string {
	if len(errs) <= maxErrors {
		return strings.Join(errs, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(errs[:maxErrors], "; "), len(errs)-maxErrors)
}

// maxYAMLKeys bounds the keys of one mapping in release.MF or a job spec;
// the largest real one, a spec's properties, runs to a few hundred.
const maxYAMLKeys = 4096

// unmarshalYAML decodes b into v, first as a tree that is checked for what
// would make yaml.v3's decoder spend time and memory out of proportion to
// b: it compares a mapping's keys pairwise and reports every pair that
// repeats, so a 62 KB spec of one key repeated took 1.8 GB. A mapping with
// a repeated key or very many keys is refused before that; of the
// decoder's own errors, the first few are kept.
func unmarshalYAML(b []byte, v any) error {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	if err := checkYAML(&n); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	err := n.Decode(v)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// The decoder names the Go type it wanted, struct tags and all:
		// say what kind of YAML value belongs there instead.
		errs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			errs[i] = plainTypeError(e)
		}
		return &shapeError{joinErrors(errs)}
	}
	if err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	return nil
}

// shapeError is YAML whose values are not of the kind their place wants.
type shapeError struct{ msg string }

func (e *shapeError) Error() string { return e.msg }

// typeErrRe is one of yaml.v3's type errors: "line N: cannot unmarshal
// !!TAG [`VALUE`] into GO-TYPE".
var typeErrRe = regexp.MustCompile("^(line [0-9]+): cannot unmarshal (!!?[A-Za-z]+)( `[^`]*`)? into (.*)$")

// plainTypeError rewrites a yaml.v3 type error without its Go type.
func plainTypeError(e string) string {
	m := typeErrRe.FindStringSubmatch(e)
	if m == nil {
		return e
	}
	want := "a single value"
	switch goType := m[4]; {
	case strings.HasPrefix(goType, "[]"):
		want = "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.HasPrefix(goType, "release."):
		want = "a mapping"
	}
	got := map[string]string{"!!map": "a mapping", "!!seq": "a list"}[m[2]]
	if got == "" {
		got = "the value" + m[3]
	}
	return fmt.Sprintf("%s: want %s here, found %s", m[1], want, got)
}

func checkYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		if len(n.Content) > 2*maxYAMLKeys {
			return fmt.Errorf("line %d: a mapping of more than %d keys", n.Line, maxYAMLKeys)
		}
		type key struct {
			kind  yaml.Kind
			value string
		}
		seen := make(map[key]int, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			if line, dup := seen[key{k.Kind, k.Value}]; dup {
				return fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, line)
			}
			seen[key{k.Kind, k.Value}] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkYAML(c); err != nil {
			return err
		}
	}
	return nil
}

func checkEntry(kind, name, version, sha1 string, seen map[string]bool) []string {
	var errs []string
	if !plainName(name) {
		errs = append(errs, fmt.Sprintf("%s name %q is not a plain name", kind, name))
	}
	if seen[name] {
		errs = append(errs, fmt.Sprintf("%s %s listed twice", kind, name))
	}
	seen[name] = true
	if version == "" {
		errs = append(errs, fmt.Sprintf("%s %s has no version", kind, name))
	}
	if !sha1Re.MatchString(sha1) {
		errs = append(errs, fmt.Sprintf("%s %s: sha1 %q is not 40 hex digits", kind, name, sha1))
	}
	return errs
}

func namesOf(ps []Package) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// PackageOrder returns want and everything it depends on, each after its
// dependencies (alphabetical among those ready at once), or names a cycle
// or a missing package.
func PackageOrder(all []Package, want []string) ([]Package, error) {
	byName := map[string]Package{}
	for _, p := range all {
		byName[p.Name] = p
	}
	need := map[string]bool{}
	var walk func(n string, path []string) error
	walk = func(n string, path []string) error {
		p, ok := byName[n]
		if !ok {
			return fmt.Errorf("package %q is not in the release", n)
		}
		for _, q := range path {
			if q == n {
				return fmt.Errorf("package dependency cycle: %s → %s", strings.Join(path, " → "), n)
			}
		}
		if need[n] {
			return nil
		}
		for _, d := range p.Dependencies {
			if err := walk(d, append(path, n)); err != nil {
				return err
			}
		}
		need[n] = true
		return nil
	}
	for _, n := range want {
		if err := walk(n, nil); err != nil {
			return nil, err
		}
	}
	done := map[string]bool{}
	var out []Package
	for len(out) < len(need) {
		var round []string
		for n := range need {
			if done[n] {
				continue
			}
			ready := true
			for _, d := range byName[n].Dependencies {
				if !done[d] {
					ready = false
				}
			}
			if ready {
				round = append(round, n)
			}
		}
		sort.Strings(round)
		for _, n := range round {
			done[n] = true
			out = append(out, byName[n])
		}
	}
	return out, nil
}
