// Package catalog holds the catalogs: each component of a platform as its
// catalog defines it (its role, instance rule, hardware minimum, what it
// needs first, its packages, files, install script, monit check and log
// paths), with the templates that render its files and scripts for a
// cluster config.
//
// A catalog is a directory with catalog.json, its templates under
// templates/, and SHA256SUMS of every file. The catalogs the engine ships
// are embedded; --catalog DIR reads them from disk instead.
package catalog

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
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

// FilePaths are the paths of the files the engine renders for c.
func (c *Component) FilePaths() []string {
	out := make([]string, len(c.Files))
	for i, f := range c.Files {
		out[i] = f.Path
	}
	return out
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
