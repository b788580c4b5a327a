package catalog

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Input is what a component's templates are rendered from.
type Input struct {
	// Config is the cluster config; secrets in it are redacted before
	// templates see it.
	Config    contract.Config
	Node      string // this instance's IP
	Index     int    // its position in the component's IP list
	Component string
	Engine    string // the engine's id
	MirrorURL string
}

// RenderedFile is a file ready for a node.
type RenderedFile struct {
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Rendered is everything one component instance needs.
type Rendered struct {
	Files                                 []RenderedFile
	Install, Monit, Reload, Remove, Check string
}

// data is what templates see.
type data struct {
	Config     contract.Config
	Props      contract.Properties
	Node       string
	Index      int
	Component  string
	Engine     string
	MirrorURL  string
	Release    string
	Components map[string][]string
	Order      []string
	// Target, TargetIndex and TargetComponent name the instance a drain
	// or ready script acts on.
	Target          string
	TargetIndex     int
	TargetComponent string
}

// IPs returns the IPs of a component, empty when the config has none.
func (d data) IPs(comp string) []string { return d.Components[comp] }

// Others returns the IPs of comp other than this node.
func (d data) Others(comp string) []string {
	var out []string
	for _, ip := range d.Components[comp] {
		if ip != d.Node {
			out = append(out, ip)
		}
	}
	return out
}

func (c *Catalog) funcs() template.FuncMap {
	return template.FuncMap{
		"join":  strings.Join,
		"add":   func(a, b int) int { return a + b },
		"quote": kit.ShellQuote,
		"first": func(l []string) string {
			if len(l) == 0 {
				return ""
			}
			return l[0]
		},
		"trimv": func(s string) string { return strings.TrimPrefix(s, "v") },
		// job is a component's job name in a release: vars job.<release>.<comp>,
		// then job.<comp>, then the component's own name.
		"job": c.Job,
	}
}

// Job is a component's job name in a release ("v194"): vars
// job.<release>.<comp>, then job.<comp>, then the component's own name.
func (c *Catalog) Job(release, comp string) string {
	for _, k := range []string{"job." + release + "." + comp, "job." + comp} {
		if v, ok := c.Vars[k]; ok {
			return v
		}
	}
	return comp
}

// Render renders every file and script of one component instance.
func (c *Catalog) Render(in Input) (*Rendered, error) {
	comp, ok := c.Components[in.Component]
	if !ok {
		return nil, fmt.Errorf("catalog %s has no component %q", c.Name, in.Component)
	}
	d := c.data(in)
	out := &Rendered{}
	run := func(name string) (string, error) {
		if name == "" {
			return "", nil
		}
		var b bytes.Buffer
		if err := c.templates.ExecuteTemplate(&b, name, d); err != nil {
			return "", fmt.Errorf("render %s of %s: %w", name, in.Component, err)
		}
		return b.String(), nil
	}
	for _, f := range comp.Files {
		s, err := run(f.Template)
		if err != nil {
			return nil, err
		}
		out.Files = append(out.Files, RenderedFile{Path: f.Path, Mode: f.Mode, Content: []byte(s)})
	}
	var err error
	for _, p := range []struct {
		dst  *string
		name string
	}{{&out.Install, comp.Install}, {&out.Monit, comp.Monit}, {&out.Reload, comp.Reload}, {&out.Remove, comp.Remove}, {&out.Check, comp.Check}} {
		if *p.dst, err = run(p.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// data is what in's templates see; secrets are redacted.
func (c *Catalog) data(in Input) data {
	cfg := in.Config.Redact()
	d := data{Config: cfg, Props: cfg.Properties, Node: in.Node, Index: in.Index, Component: in.Component,
		Engine: in.Engine, MirrorURL: in.MirrorURL, Components: cfg.Components, Release: cfg.Properties.Release, Order: c.Order}
	if d.Release == "" {
		d.Release = c.Properties["release"].Default
	}
	return d
}

// ManifestProperties are the global properties of the BOSH manifest the
// catalog renders (a manifest.yml among a component's files) for cfg, as
// a release's jobs read them: rendered for the first of the catalog's
// components that the config places; nil when none renders a manifest.
func (c *Catalog) ManifestProperties(in Input) (map[string]any, error) {
	for _, comp := range c.Order {
		ips := in.Config.Components[comp]
		if len(ips) == 0 {
			continue
		}
		in.Node, in.Component = ips[0], comp
		r, err := c.Render(in)
		if err != nil {
			return nil, fmt.Errorf("render the %s manifest: %w", c.Name, err)
		}
		var props map[string]any
		for _, f := range r.Files {
			if path.Base(f.Path) != "manifest.yml" {
				continue
			}
			var m struct {
				Properties map[string]any `yaml:"properties"`
			}
			if err := yaml.Unmarshal(f.Content, &m); err != nil {
				return nil, fmt.Errorf("the %s manifest: %w", c.Name, err)
			}
			props = m.Properties
		}
		return props, nil
	}
	return nil, nil
}
