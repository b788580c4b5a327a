package catalog

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/deployment-engine/engine/services/contract"
)

var packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

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
	l := &loader{c: c, loaded: map[string]bool{}}
	l.checkCatalog(name)
	c.templates = template.New(name).Funcs(c.funcs()).Option("missingkey=error")
	for _, n := range contract.SortedKeys(c.Components) {
		l.checkComponent(n, c.Components[n])
	}
	order, cycle := topo(c.Components)
	if cycle != "" {
		l.bad("", "dependency cycle: %s", cycle)
	}
	c.Order = order
	if len(l.errs) > 0 {
		return nil, fmt.Errorf("catalog %s is invalid:\n  %w", name, joinLines(l.errs))
	}
	if c.sums, err = checksums(fsys); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	return c, nil
}

// loader validates a decoded catalog, parsing its templates as it goes and
// keeping every problem it finds.
type loader struct {
	c      *Catalog
	errs   []error
	loaded map[string]bool // templates parsed
}

// bad records a problem of catalog.json, of component comp unless "".
func (l *loader) bad(comp, format string, a ...any) {
	where := "catalog.json"
	if comp != "" {
		where += ": component " + comp
	}
	l.errs = append(l.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
}

// checkCatalog checks the fields that are the catalog's own.
func (l *loader) checkCatalog(dirName string) {
	c := l.c
	if c.Name != dirName {
		l.bad("", "name %q does not match its directory %q", c.Name, dirName)
	}
	if err := checkHardware(c.Default); err != "" {
		l.bad("", "default minimum: %s", err)
	}
	if len(c.Components) == 0 {
		l.bad("", "no components")
	}
	for _, p := range c.Nodes.check() {
		l.bad("", "%s", p)
	}
	if _, ok := c.Components[c.DNS]; c.DNS != "" && !ok {
		l.bad("", "dns names %q, which is no component", c.DNS)
	}
}

// template parses templates/tmpl once, for component comp.
func (l *loader) template(comp, tmpl string) {
	if tmpl == "" || l.loaded[tmpl] {
		return
	}
	if strings.Contains(tmpl, "..") || strings.HasPrefix(tmpl, "/") {
		l.bad(comp, "template %q must be a plain name under templates/", tmpl)
		return
	}
	text, err := fs.ReadFile(l.c.fsys, "templates/"+tmpl)
	if err != nil {
		l.bad(comp, "missing template templates/%s", tmpl)
		return
	}
	if _, err := l.c.templates.New(tmpl).Parse(string(text)); err != nil {
		l.bad(comp, "template %s: %v", tmpl, err)
		return
	}
	l.loaded[tmpl] = true
}

// checkComponent checks component n, names it and fills its defaults.
func (l *loader) checkComponent(n string, comp *Component) {
	if comp == nil {
		l.bad(n, "empty")
		return
	}
	comp.Name = n
	if !nameRe.MatchString(n) {
		l.bad(n, "bad name: lowercase letters, digits and _, starting with a letter")
	}
	if comp.Instances != One && comp.Instances != OneOrMore {
		l.bad(n, "instances must be %q or %q, not %q", One, OneOrMore, comp.Instances)
	}
	if comp.Min == nil {
		d := l.c.Default
		comp.Min = &d
	} else if err := checkHardware(*comp.Min); err != "" {
		l.bad(n, "minimum: %s", err)
	}
	if comp.Process == "" {
		l.bad(n, "no monit process name")
	}
	for _, req := range append(append([]string{}, comp.Requires...), comp.ReconfigureOn...) {
		if _, ok := l.c.Components[req]; !ok {
			l.bad(n, "unknown dependency %q", req)
		}
	}
	for _, p := range comp.Packages {
		if !packageRe.MatchString(p) {
			l.bad(n, "bad package name %q", p)
		}
	}
	l.checkFiles(n, comp)
	if comp.Install == "" {
		l.bad(n, "no install template")
	}
	if comp.Monit == "" {
		l.bad(n, "no monit template")
	}
	for _, t := range []string{comp.Install, comp.Monit, comp.Reload, comp.Remove, comp.Drain, comp.Ready, comp.Check} {
		l.template(n, t)
	}
	if (comp.Drain == "") != (comp.Ready == "") {
		l.bad(n, "drain and ready come together")
	}
	if comp.Update != nil {
		for _, p := range comp.Update.Problems("update") {
			l.bad(n, "%s: %s", p.Path, p.Reason)
		}
	}
	l.checkHealth(n, comp.Health)
}

// checkFiles checks component n's files, reading their modes, and parses
// their templates.
func (l *loader) checkFiles(n string, comp *Component) {
	paths := map[string]bool{}
	for i := range comp.Files {
		f := &comp.Files[i]
		if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") {
			l.bad(n, "file path %q must be absolute and plain", f.Path)
		}
		if paths[f.Path] {
			l.bad(n, "file %s listed twice", f.Path)
		}
		paths[f.Path] = true
		mode, err := strconv.ParseUint(f.RawMode, 8, 32)
		if f.RawMode == "" {
			mode, err = 0o644, nil
		}
		if err != nil || mode > 0o777 {
			l.bad(n, "file %s: mode %q is not an octal permission", f.Path, f.RawMode)
		}
		f.Mode = fs.FileMode(mode)
		if f.Template == "" {
			l.bad(n, "file %s has no template", f.Path)
		}
		l.template(n, f.Template)
	}
}

// checkHealth parses component n's health checks, each a template.
func (l *loader) checkHealth(n string, h *Health) {
	if h == nil {
		return
	}
	for i, t := range []string{h.HTTP, h.TCP, h.Command} {
		if t == "" {
			continue
		}
		name := fmt.Sprintf("health.%s.%d", n, i)
		if _, err := l.c.templates.New(name).Parse(t); err != nil {
			l.bad(n, "health: %v", err)
		}
	}
}
