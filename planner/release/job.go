package release

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deployment-engine/engine/planner/manifest/patch"
)

// Property is one property a job's spec declares.
type Property struct {
	Description string `json:"description,omitempty"`
	Default     any    `json:"default,omitempty"`
	HasDefault  bool   `json:"has_default"`
}

// Link is a link a job consumes or provides.
type Link struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Optional   bool     `json:"optional,omitempty"`
	Properties []string `json:"properties,omitempty"`
}

// Template is one ERB template and where it lands under the job's dir.
type Template struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Text   string `json:"-"`
}

// Job is a job's spec (job.MF) with its templates and monit file.
type Job struct {
	Name       string              `json:"name"`
	Version    string              `json:"version,omitempty"`
	Templates  []Template          `json:"templates"`
	Packages   []string            `json:"packages"`
	Properties map[string]Property `json:"properties"`
	Consumes   []Link              `json:"consumes,omitempty"`
	Provides   []Link              `json:"provides,omitempty"`
	Monit      string              `json:"-"`
	specSize   int64
}

type rawSpec struct {
	Name       string               `yaml:"name"`
	Templates  yaml.Node            `yaml:"templates"`
	Packages   []string             `yaml:"packages"`
	Properties map[string]yaml.Node `yaml:"properties"`
	Consumes   []Link               `yaml:"consumes"`
	Provides   []Link               `yaml:"provides"`
}

// ParseSpec reads a job spec (job.MF, or a source release's jobs/X/spec).
func ParseSpec(b []byte) (*Job, error) {
	var raw rawSpec
	if err := unmarshalYAML(b, &raw); err != nil {
		return nil, err
	}
	j := &Job{Name: raw.Name, Packages: raw.Packages, Properties: map[string]Property{}, Consumes: raw.Consumes, Provides: raw.Provides}
	if j.Packages == nil {
		j.Packages = []string{}
	}
	if !plainName(j.Name) {
		return nil, fmt.Errorf("job name %q is not a plain name", j.Name)
	}
	if raw.Templates.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(raw.Templates.Content); i += 2 {
			src, dst := raw.Templates.Content[i].Value, raw.Templates.Content[i+1].Value
			if bad(src) || bad(dst) {
				return nil, fmt.Errorf("template %q → %q: a path must stay inside the job", src, dst)
			}
			j.Templates = append(j.Templates, Template{Source: src, Dest: dst})
		}
	} else if raw.Templates.Kind != 0 && !(raw.Templates.Kind == yaml.ScalarNode && raw.Templates.Tag == "!!null") {
		return nil, errors.New("templates must be a map of source to destination")
	}
	for name, n := range raw.Properties {
		var p struct {
			Description string    `yaml:"description"`
			Default     yaml.Node `yaml:"default"`
		}
		if n.Kind == yaml.MappingNode {
			if err := n.Decode(&p); err != nil {
				return nil, fmt.Errorf("property %s: %w", name, err)
			}
		}
		prop := Property{Description: p.Description}
		if p.Default.Kind != 0 {
			var v any
			if err := p.Default.Decode(&v); err != nil {
				return nil, fmt.Errorf("property %s default: %w", name, err)
			}
			prop.Default, prop.HasDefault = patch.Normalize(v), true // string keys only, as JSON needs
		}
		j.Properties[name] = prop
	}
	for _, l := range append(append([]Link{}, j.Consumes...), j.Provides...) {
		if l.Name == "" || l.Type == "" {
			return nil, fmt.Errorf("job %s: every link needs a name and a type", j.Name)
		}
	}
	return j, nil
}

// bad tells whether a path in an archive or spec would leave its root.
func bad(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return true
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// ReadJob reads a job tarball: job.MF, monit and every template it lists,
// each file within its limit and the tarball unpacked within 4 times
// lim.Text; anything else in the tarball is read past, not kept. A file
// or tarball past its limit is a *TooLarge naming the file inside the job.
func ReadJob(r io.Reader, lim Limits) (*Job, error) {
	lim = lim.WithDefaults()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a gzip tarball: %w", err)
	}
	out := &counter{r: gz, check: func(n int64) *TooLarge {
		if n > lim.jobMax() {
			return lim.tooBigJob("")
		}
		return nil
	}}
	tr := tar.NewReader(out)
	files := map[string]string{}
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if out.err != nil {
			return nil, out.err
		}
		if err != nil {
			return nil, fmt.Errorf("read tarball: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if entries >= lim.Files {
			return nil, lim.tooManyFiles(name)
		}
		if name == "" || name == "." {
			continue
		}
		if bad(strings.TrimSuffix(name, "/")) {
			return nil, fmt.Errorf("path %q escapes the job", h.Name)
		}
		name = path.Clean(name)
		switch {
		case h.Typeflag == tar.TypeDir:
			continue
		case h.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("%s: only plain files belong in a job, not links or devices", name)
		case sparse(h.PAXRecords):
			return nil, fmt.Errorf("%s: a sparse file does not belong in a job", name)
		}
		// Only job.MF, monit and templates are ever read; the spec says
		// which templates, and it may come last, so every one is kept
		// until then.
		if name != "job.MF" && name != "monit" && !strings.HasPrefix(name, "templates/") {
			continue // tar.Next reads past it, through the counter
		}
		switch {
		case name == "job.MF" && h.Size > lim.yamlMax():
			return nil, lim.tooBigYAML(name)
		case h.Size > lim.Text:
			return nil, lim.tooBigText(name)
		}
		// The header's size, checked above, is what the entry holds.
		var b strings.Builder
		b.Grow(int(h.Size))
		_, err = io.Copy(&b, tr)
		if out.err != nil {
			return nil, out.err
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		files[name] = b.String()
	}
	mf, ok := files["job.MF"]
	if !ok {
		return nil, errors.New("no job.MF")
	}
	j, err := ParseSpec([]byte(mf))
	if err != nil {
		return nil, fmt.Errorf("job.MF: %w", err)
	}
	j.specSize = int64(len(mf))
	monit, ok := files["monit"]
	if !ok {
		return nil, errors.New("no monit file")
	}
	j.Monit = monit
	var missing []string
	for i, t := range j.Templates {
		b, ok := files["templates/"+t.Source]
		if !ok {
			missing = append(missing, "templates/"+t.Source)
			continue
		}
		j.Templates[i].Text = b
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("job.MF lists templates it does not hold: %s", strings.Join(missing, ", "))
	}
	return j, nil
}

// size is about what j keeps in memory: its spec's text, monit file and
// templates.
func (j *Job) size() int64 {
	n := j.specSize + int64(len(j.Monit))
	for _, t := range j.Templates {
		n += int64(len(t.Text))
	}
	return n
}
