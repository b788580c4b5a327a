// Package catalog reads catalogs: what each component of a platform is
// (its role, instance rule, hardware minimum, what it needs first, its
// packages, files, install script, monit check and log paths) and renders
// its files and scripts from a cluster config.
//
// A catalog is a directory with catalog.json, its templates under
// templates/, and SHA256SUMS of every file. The catalogs the engine ships
// are embedded; --catalog DIR reads them from disk instead.
package catalog

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/deployment-engine/engine/services/contract"
)

//go:embed catalogs
var embedded embed.FS

// Hardware is a minimum: vCPUs, RAM and disk in MB.
type Hardware struct {
	CPU    int `json:"cpu"`
	RAMMB  int `json:"ram_mb"`
	DiskMB int `json:"disk_mb"`
}

// Rule is how many instances a component takes.
type Rule string

// Instance rules.
const (
	One       Rule = "one"
	OneOrMore Rule = "one-or-more"
)

// File is a file rendered onto a node.
type File struct {
	Path     string      `json:"path"`
	Mode     fs.FileMode `json:"-"`
	RawMode  string      `json:"mode"`
	Template string      `json:"template"`
}

// Component is one kind of thing a catalog installs.
type Component struct {
	Name      string    `json:"-"`
	Role      string    `json:"role"`
	Instances Rule      `json:"instances"`
	Min       *Hardware `json:"min,omitempty"`
	// Requires lists components whose every instance must run before this
	// one installs.
	Requires []string `json:"requires,omitempty"`
	Packages []string `json:"packages,omitempty"`
	Files    []File   `json:"files,omitempty"`
	// Install, Monit, Reload and Remove name templates.
	Install string   `json:"install"`
	Process string   `json:"process"`
	Monit   string   `json:"monit"`
	Logs    []string `json:"logs,omitempty"`
	// ReconfigureOn lists components whose instances this one's files
	// name: when they come or go, its files are rendered again and Reload
	// runs, one node at a time.
	ReconfigureOn []string `json:"reconfigure_on,omitempty"`
	Reload        string   `json:"reload,omitempty"`
	Remove        string   `json:"remove,omitempty"`
	// Check names a template of commands that validate the rendered files
	// once written, before anything installs or restarts: the upload
	// fails, and with it the instance's rollout, when they do.
	Check string `json:"check,omitempty"`
	// Health is how an instance is judged healthy beside monit's word.
	Health *Health `json:"health,omitempty"`
	// Update is how changes to its running instances roll out.
	Update *contract.UpdateSettings `json:"update,omitempty"`
	// Drain and Ready name templates that take an instance of a component
	// this one balances (one of ReconfigureOn) out of service before it
	// changes, and back once it is healthy.
	Drain string `json:"drain,omitempty"`
	Ready string `json:"ready,omitempty"`
}

// Property is a catalog's own config property, with the values it takes.
type Property struct {
	Values  []string `json:"values"`
	Default string   `json:"default"`
}

// Catalog is a loaded, validated catalog.
type Catalog struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Default     Hardware            `json:"default"`
	Properties  map[string]Property `json:"properties,omitempty"`
	// Vars are names a catalog's templates look up, e.g. a job's name in
	// each release ("job.v194.loggregator": "doppler").
	Vars       map[string]string     `json:"vars,omitempty"`
	Components map[string]*Component `json:"components"`
	// Nodes is what every node's system must be.
	Nodes NodeSystem `json:"nodes"`
	// DNS names the component that the config's domain, and every name
	// under it, must resolve to on the nodes (the manual's *.<domain> ⇔
	// haproxy); "" checks no DNS.
	DNS string `json:"dns,omitempty"`
	// Order lists components so that each comes after what it requires.
	Order []string `json:"-"`

	fsys      fs.FS
	templates *template.Template
	sums      map[string]string
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Names lists the embedded catalogs.
func Names() []string {
	entries, _ := fs.ReadDir(embedded, "catalogs")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Load reads catalog name from dir, or the embedded one when dir is "".
func Load(name, dir string) (*Catalog, error) {
	if !nameRe.MatchString(name) {
		return nil, fmt.Errorf("catalog name %q: lowercase letters, digits and _ only", name)
	}
	if dir == "" {
		sub, err := fs.Sub(embedded, "catalogs/"+name)
		if err != nil {
			return nil, err
		}
		if _, err := fs.Stat(sub, "catalog.json"); err != nil {
			return nil, fmt.Errorf("no embedded catalog %q (have %s)", name, strings.Join(Names(), ", "))
		}
		return LoadFS(sub, name)
	}
	return LoadFS(os.DirFS(path.Join(dir, name)), name)
}

// LoadFS reads and validates a catalog from fsys (its root holds
// catalog.json). Every problem is reported, each naming its file and
// component.
func LoadFS(fsys fs.FS, name string) (*Catalog, error) {
	b, err := fs.ReadFile(fsys, "catalog.json")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: read catalog.json: %w", name, err)
	}
	c := &Catalog{}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("catalog %s: catalog.json: %w", name, err)
	}
	c.fsys = fsys
	if c.Name == "" {
		c.Name = name
	}
	var errs []error
	bad := func(comp, format string, a ...any) {
		where := "catalog.json"
		if comp != "" {
			where += ": component " + comp
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
	}
	if c.Name != name {
		bad("", "name %q does not match its directory %q", c.Name, name)
	}
	if err := checkHardware(c.Default); err != "" {
		bad("", "default minimum: %s", err)
	}
	if len(c.Components) == 0 {
		bad("", "no components")
	}
	for _, p := range c.Nodes.check() {
		bad("", "%s", p)
	}
	if _, ok := c.Components[c.DNS]; c.DNS != "" && !ok {
		bad("", "dns names %q, which is no component", c.DNS)
	}
	c.templates = template.New(name).Funcs(c.funcs()).Option("missingkey=error")
	loaded := map[string]bool{}
	loadTemplate := func(comp, tmpl string) {
		if tmpl == "" || loaded[tmpl] {
			return
		}
		if strings.Contains(tmpl, "..") || strings.HasPrefix(tmpl, "/") {
			bad(comp, "template %q must be a plain name under templates/", tmpl)
			return
		}
		text, err := fs.ReadFile(fsys, "templates/"+tmpl)
		if err != nil {
			bad(comp, "missing template templates/%s", tmpl)
			return
		}
		if _, err := c.templates.New(tmpl).Parse(string(text)); err != nil {
			bad(comp, "template %s: %v", tmpl, err)
			return
		}
		loaded[tmpl] = true
	}
	for _, n := range contract.SortedKeys(c.Components) {
		comp := c.Components[n]
		if comp == nil {
			bad(n, "empty")
			continue
		}
		comp.Name = n
		if !nameRe.MatchString(n) {
			bad(n, "bad name: lowercase letters, digits and _, starting with a letter")
		}
		if comp.Instances != One && comp.Instances != OneOrMore {
			bad(n, "instances must be %q or %q, not %q", One, OneOrMore, comp.Instances)
		}
		if comp.Min == nil {
			d := c.Default
			comp.Min = &d
		} else if err := checkHardware(*comp.Min); err != "" {
			bad(n, "minimum: %s", err)
		}
		if comp.Process == "" {
			bad(n, "no monit process name")
		}
		for _, req := range append(append([]string{}, comp.Requires...), comp.ReconfigureOn...) {
			if _, ok := c.Components[req]; !ok {
				bad(n, "unknown dependency %q", req)
			}
		}
		for _, p := range comp.Packages {
			if !regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`).MatchString(p) {
				bad(n, "bad package name %q", p)
			}
		}
		paths := map[string]bool{}
		for i := range comp.Files {
			f := &comp.Files[i]
			if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") {
				bad(n, "file path %q must be absolute and plain", f.Path)
			}
			if paths[f.Path] {
				bad(n, "file %s listed twice", f.Path)
			}
			paths[f.Path] = true
			mode, err := strconv.ParseUint(f.RawMode, 8, 32)
			if f.RawMode == "" {
				mode, err = 0o644, nil
			}
			if err != nil || mode > 0o777 {
				bad(n, "file %s: mode %q is not an octal permission", f.Path, f.RawMode)
			}
			f.Mode = fs.FileMode(mode)
			if f.Template == "" {
				bad(n, "file %s has no template", f.Path)
			}
			loadTemplate(n, f.Template)
		}
		if comp.Install == "" {
			bad(n, "no install template")
		}
		if comp.Monit == "" {
			bad(n, "no monit template")
		}
		for _, t := range []string{comp.Install, comp.Monit, comp.Reload, comp.Remove, comp.Drain, comp.Ready, comp.Check} {
			loadTemplate(n, t)
		}
		if (comp.Drain == "") != (comp.Ready == "") {
			bad(n, "drain and ready come together")
		}
		if comp.Update != nil {
			for _, p := range comp.Update.Problems("update") {
				bad(n, "%s: %s", p.Path, p.Reason)
			}
		}
		if h := comp.Health; h != nil {
			for i, t := range []string{h.HTTP, h.TCP, h.Command} {
				if t == "" {
					continue
				}
				name := fmt.Sprintf("health.%s.%d", n, i)
				if _, err := c.templates.New(name).Parse(t); err != nil {
					bad(n, "health: %v", err)
				}
			}
		}
	}
	order, cycle := topo(c.Components)
	if cycle != "" {
		bad("", "dependency cycle: %s", cycle)
	}
	c.Order = order
	if len(errs) > 0 {
		return nil, fmt.Errorf("catalog %s is invalid:\n  %w", name, joinLines(errs))
	}
	if c.sums, err = checksums(fsys); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	return c, nil
}

func checkHardware(h Hardware) string {
	switch {
	case h.CPU < 1:
		return fmt.Sprintf("cpu %d: need at least 1", h.CPU)
	case h.RAMMB < 1:
		return fmt.Sprintf("ram_mb %d: need at least 1", h.RAMMB)
	case h.DiskMB < 1:
		return fmt.Sprintf("disk_mb %d: need at least 1", h.DiskMB)
	}
	return ""
}

// topo orders components in rounds: first every component that requires
// nothing, then those whose requirements are all placed, alphabetically
// within a round; or it names a cycle.
func topo(comps map[string]*Component) ([]string, string) {
	done := map[string]bool{}
	var order []string
	for len(order) < len(comps) {
		var round []string
		for _, n := range contract.SortedKeys(comps) {
			if done[n] {
				continue
			}
			ready := true
			if c := comps[n]; c != nil {
				for _, r := range c.Requires {
					if _, known := comps[r]; known && !done[r] {
						ready = false
					}
				}
			}
			if ready {
				round = append(round, n)
			}
		}
		if len(round) == 0 {
			return nil, findCycle(comps, done)
		}
		for _, n := range round {
			done[n] = true
		}
		order = append(order, round...)
	}
	return order, ""
}

// findCycle names one cycle among the components not yet placed.
func findCycle(comps map[string]*Component, done map[string]bool) string {
	state := map[string]int{}
	var stack []string
	var visit func(n string) string
	visit = func(n string) string {
		if state[n] == 2 || done[n] {
			return ""
		}
		if state[n] == 1 {
			i := len(stack) - 1
			for i > 0 && stack[i] != n {
				i--
			}
			return strings.Join(append(append([]string{}, stack[i:]...), n), " → ")
		}
		state[n] = 1
		stack = append(stack, n)
		if c := comps[n]; c != nil {
			reqs := append([]string(nil), c.Requires...)
			sort.Strings(reqs)
			for _, r := range reqs {
				if _, ok := comps[r]; ok {
					if cyc := visit(r); cyc != "" {
						return cyc
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return ""
	}
	for _, n := range contract.SortedKeys(comps) {
		if cyc := visit(n); cyc != "" {
			return cyc
		}
	}
	return "unresolvable requirements"
}

type lines []error

func (l lines) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n  ")
}

func joinLines(errs []error) error { return lines(errs) }
