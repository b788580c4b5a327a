package bosh

import (
	"context"
	"slices"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// errandRelease has a db job and a smoke errand (bin/run) that consumes
// its link and reads a property.
func errandRelease() releasetest.Release {
	r := linkedRelease()
	r.Name = "witherrand"
	r.Jobs = append(r.Jobs, releasetest.Job{Name: "smoke", Spec: `---
name: smoke
templates:
  run.erb: bin/run
packages: [base]
consumes:
- name: db
  type: database
properties:
  fail_on: {default: -1}
`, Monit: "", Templates: map[string]string{"run.erb": "#!/bin/bash\necho index <%= spec.index %> db <%= link('db').p('port') %>\nexit <%= spec.index == p('fail_on') ? 3 : 0 %>\n"}})
	return r
}

func TestErrandIsPlacedNeverStarted(t *testing.T) {
	needRuby(t)
	rel := load(t, errandRelease())
	if !IsErrand(rel.Specs["smoke"]) || IsErrand(rel.Specs["db"]) || IsErrand(nil) {
		t.Fatal("IsErrand: want smoke alone")
	}
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1"}, "smoke": {"10.0.0.1", "10.0.0.2"}}, nil, nil)
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string { return "http://home/" + p.Name }})
	if err != nil {
		t.Fatal(err)
	}
	var smoke []string
	for _, s := range plan.Steps {
		if s.Spec.Component == "smoke" && s.Spec.Action != "compile" {
			smoke = append(smoke, s.Spec.ID)
			// Its apply waits for db's start, as any consumer's does.
			if s.Spec.Action == "apply" && !slices.Contains(s.After, "10.0.0.1/db/start") {
				t.Errorf("%s after %v: want db's start", s.Spec.ID, s.After)
			}
		}
	}
	want := []string{"10.0.0.1/smoke/apply", "10.0.0.2/smoke/apply"}
	if !slices.Equal(smoke, want) {
		t.Errorf("smoke's steps %v, want %v: an errand is placed, never registered with monit nor started", smoke, want)
	}
	for _, in := range plan.Instances {
		if in.Errand != (in.Job == "smoke") {
			t.Errorf("%s on %s: Errand %v", in.Job, in.Node, in.Errand)
		}
	}
}
