// Package bosh turns a BOSH release and a config into the engine's steps:
// per node, compile the packages its jobs need in dependency order (once
// per package version), and per job instance place the rendered templates
// under /var/vcap/jobs/<job>, register its monit file, run pre-start,
// start it through monit and run post-start. Templates are rendered on the
// control machine with Ruby's real ERB and BOSH's evaluation context
// (render.rb, fed JSON on stdin), in a box (box.go): templates are code.
package bosh

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/deployment-engine/engine/planner/release"
)

//go:embed render.rb
var renderScript string

// Ruby is the interpreter that renders templates: Debian's ruby.
var Ruby = "ruby"

// RenderTimeout bounds one call of the renderer, within its caller's
// context.
var RenderTimeout = 2 * time.Minute

// Spec is the template evaluation context of one job instance: BOSH's
// spec (name, index, id, az, bootstrap, address, ip, networks, release,
// deployment), its properties and its links.
type Spec map[string]any

// RenderJob is one job instance to render.
type RenderJob struct {
	Job  *release.Job
	Spec Spec
}

// RenderedFile is one rendered template.
type RenderedFile struct {
	Dest    string `json:"dest"`
	Content string `json:"content"`
}

// Rendered is a job instance's files and monit file, or why it failed.
type Rendered struct {
	Files []RenderedFile `json:"files"`
	Monit string         `json:"monit"`
	Error string         `json:"error"`
}

type renderIn struct {
	Jobs []renderInJob `json:"jobs"`
}

type renderInJob struct {
	Templates []renderTemplate `json:"templates"`
	Monit     string           `json:"monit"`
	Spec      Spec             `json:"spec"`
}

type renderTemplate struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Text   string `json:"text"`
}

// Render renders every job in one run of the renderer, in its box (see
// Box). A template that fails (an unknown property, a Ruby error) fails
// only its own job: its Rendered.Error says which template, where and why.
func Render(ctx context.Context, jobs []RenderJob) ([]Rendered, error) {
	in := renderIn{Jobs: make([]renderInJob, len(jobs))}
	for i, j := range jobs {
		rj := renderInJob{Monit: j.Job.Monit, Spec: j.Spec, Templates: []renderTemplate{}}
		for _, t := range j.Job.Templates {
			rj.Templates = append(rj.Templates, renderTemplate{Source: t.Source, Dest: t.Dest, Text: t.Text})
		}
		in.Jobs[i] = rj
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("render: encode input: %w", err)
	}
	stdout, err := runBoxed(ctx, body)
	if err != nil {
		return nil, fmt.Errorf("render templates: %w", err)
	}
	var out struct {
		Jobs []Rendered `json:"jobs"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		return nil, fmt.Errorf("render templates: bad answer from the renderer: %w", err)
	}
	if len(out.Jobs) != len(jobs) {
		return nil, fmt.Errorf("render templates: %d answers for %d jobs", len(out.Jobs), len(jobs))
	}
	return out.Jobs, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
