package bosh

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/contract"
)

// wiredRelease has two providers of one link type (db, backup), a
// consumer of it with an optional link nothing provides (app), and a job
// that consumes its own link (peer).
func wiredRelease() releasetest.Release {
	job := func(name, spec string) releasetest.Job {
		return releasetest.Job{Name: name, Spec: "---\nname: " + name + "\ntemplates: {}\npackages: []\n" + spec}
	}
	return releasetest.Release{Name: "wired", Version: "1", Jobs: []releasetest.Job{
		job("db", "provides:\n- {name: db, type: database, properties: [port]}\nproperties:\n  port: {default: 5432}\n"),
		job("backup", "provides:\n- {name: backup_db, type: database, properties: [port]}\n- {name: metrics, type: prometheus}\nproperties:\n  port: {default: 6432}\n"),
		job("app", "consumes:\n- {name: db, type: database}\n- {name: cache, type: redis, optional: true}\n"),
		job("peer", "provides:\n- {name: peers, type: peer}\nconsumes:\n- {name: peers, type: peer}\n"),
	}}
}

func TestResolveLinks(t *testing.T) {
	rel := load(t, wiredRelease())
	both := map[string][]string{"db": {"10.0.0.1"}, "backup": {"10.0.0.2"}, "app": {"10.0.0.3"}}
	from := func(f string) map[string]contract.JobLinks {
		return map[string]contract.JobLinks{"app": {Consumes: map[string]*contract.ConsumeLink{"db": {From: f}}}}
	}
	aliased := func(f string) map[string]contract.JobLinks {
		l := from(f)
		l["backup"] = contract.JobLinks{Provides: map[string]*contract.ProvideLink{"backup_db": {As: "secondary", Shared: true}}}
		return l
	}
	for _, tc := range []struct {
		name  string
		comps map[string][]string
		links map[string]contract.JobLinks
		want  map[string]string // consumer.link → provider job and port; "" when not consumed
		probs []string          // each problem's reason holds these
	}{
		{name: "implicit: the one provider of the type",
			comps: map[string][]string{"db": {"10.0.0.1"}, "app": {"10.0.0.3"}},
			want:  map[string]string{"app.db": "db 5432", "app.cache": ""}},
		{name: "implicit: two providers of the type are named",
			comps: both,
			probs: []string{`job app consumes link "db" of type database, and several links provide one (backup.backup_db, db.db): name one in properties.links.app.consumes.db.from`}},
		{name: "explicit from names a provided link", comps: both, links: from("backup_db"),
			want: map[string]string{"app.db": "backup 6432"}},
		{name: "explicit from names an alias", comps: both, links: aliased("secondary"),
			want: map[string]string{"app.db": "backup 6432"}},
		{name: "an alias hides the link's own name", comps: both, links: aliased("backup_db"),
			probs: []string{`job app consumes link "db" of type database from "backup_db", and no placed job provides a link called that; links of type database: backup.backup_db as secondary, db.db`}},
		{name: "from a link of another type", comps: both, links: from("metrics"),
			probs: []string{`from "metrics", and it is of another type (backup.metrics is prometheus); links of type database: backup.backup_db, db.db`}},
		{name: "two providers under one alias", comps: both,
			links: map[string]contract.JobLinks{
				"app":    {Consumes: map[string]*contract.ConsumeLink{"db": {From: "main"}}},
				"db":     {Provides: map[string]*contract.ProvideLink{"db": {As: "main"}}},
				"backup": {Provides: map[string]*contract.ProvideLink{"backup_db": {As: "main"}}}},
			probs: []string{`from "main", and several links are called that (backup.backup_db as main, db.db as main)`}},
		{name: "null: not consumed", comps: both,
			links: map[string]contract.JobLinks{"app": {Consumes: map[string]*contract.ConsumeLink{"db": nil}}},
			want:  map[string]string{"app.db": ""}},
		{name: "a required link without a provider",
			comps: map[string][]string{"app": {"10.0.0.3"}},
			probs: []string{`job app consumes link "db" of type database, and no job in the config provides one`}},
		{name: "a job consumes its own link",
			comps: map[string][]string{"peer": {"10.0.0.4", "10.0.0.5"}},
			want:  map[string]string{"peer.peers": "peer <nil>"}},
		{name: "a custom provider, aliased, fills an optional link", comps: both,
			links: map[string]contract.JobLinks{
				"app": {Consumes: map[string]*contract.ConsumeLink{"db": {From: "db"}}},
				"db": {Custom: []contract.CustomProvider{{Name: "conn", Type: "redis", Properties: []string{"port"}}},
					Provides: map[string]*contract.ProvideLink{"conn": {As: "cache"}}}},
			want: map[string]string{"app.db": "db 5432", "app.cache": "db 5432"}},
		{name: "a custom provider clashing or sharing what the spec lacks", comps: both,
			links: map[string]contract.JobLinks{
				"app": {Consumes: map[string]*contract.ConsumeLink{"db": {From: "db"}, "cache": nil}},
				"db":  {Custom: []contract.CustomProvider{{Name: "db", Type: "redis"}, {Name: "conn", Type: "redis", Properties: []string{"colour"}}}}},
			probs: []string{`custom_provider_definitions[0]: job db provides a link "db" already`,
				`custom_provider_definitions[1]: job db declares no property "colour" to share in link "conn" (it declares port)`}},
		{name: "wiring a link the job does not have", comps: both,
			links: map[string]contract.JobLinks{
				"app":  {Consumes: map[string]*contract.ConsumeLink{"db": {From: "db"}, "dbx": {From: "db"}}},
				"db":   {Provides: map[string]*contract.ProvideLink{"nope": {As: "x"}}},
				"peer": {}},
			probs: []string{`job app consumes no link "dbx" (it consumes db, cache)`, `job db provides no link "nope" (it provides db)`,
				`job peer is not placed by this config`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := contract.Config{Components: tc.comps, Properties: contract.Properties{Links: tc.links}}
			d, ps := NewDeployment(rel, cfg)
			var got []string
			for _, p := range ps {
				got = append(got, p.Path+": "+p.Reason)
			}
			if len(ps) != len(tc.probs) {
				t.Fatalf("%d problems, want %d:\n%s", len(ps), len(tc.probs), strings.Join(got, "\n"))
			}
			for i, w := range tc.probs {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: %q lacks %q", i, got[i], w)
				}
			}
			for key, want := range tc.want {
				job, name, _ := strings.Cut(key, ".")
				links := d.Spec(job, 0)["links"].(map[string]any)
				l, ok := links[name].(map[string]any)
				if want == "" {
					if ok {
						t.Errorf("%s: linked to %v, want none", key, l)
					}
					continue
				}
				if !ok {
					t.Fatalf("%s: no link in %v", key, links)
				}
				insts := l["instances"].([]map[string]any)
				props := l["properties"].(map[string]any)
				if g := insts[0]["name"].(string) + " " + fmtAny(props["port"]); g != want {
					t.Errorf("%s: linked to %q, want %q", key, g, want)
				}
				if len(insts) != len(tc.comps[insts[0]["name"].(string)]) {
					t.Errorf("%s: %d instances", key, len(insts))
				}
			}
		})
	}
}

func fmtAny(v any) string {
	if v == nil {
		return "<nil>"
	}
	return fmt.Sprint(v)
}

// Two jobs that consume each other's links (BOSH orders by instance
// group, not by links) plan without a step waiting on itself: one of them
// starts first.
func TestMutualLinksPlanWithoutCycle(t *testing.T) {
	needRuby(t)
	job := func(name, spec string) releasetest.Job {
		return releasetest.Job{Name: name, Spec: "---\nname: " + name + "\ntemplates: {}\npackages: []\n" + spec}
	}
	rel := load(t, releasetest.Release{Name: "mutual", Version: "1", Jobs: []releasetest.Job{
		job("a", "provides: [{name: la, type: x}]\nconsumes: [{name: lb, type: y}]\n"),
		job("b", "provides: [{name: lb, type: y}]\nconsumes: [{name: la, type: x}, {name: lc, type: z}]\n"),
		job("c", "provides: [{name: lc, type: z}]\nconsumes: [{name: lb, type: y}]\n"),
	}})
	d, ps := NewDeployment(rel, contract.Config{Components: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.2"}, "c": {"10.0.0.3"}}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	after := map[string][]string{}
	for _, s := range plan.Steps {
		after[ID(s.Spec.Node, s.Spec.Component, s.Spec.Action)] = s.After
	}
	state := map[string]int{} // 1: on the path, 2: done
	var visit func(id string, path []string)
	visit = func(id string, path []string) {
		switch state[id] {
		case 1:
			t.Fatalf("steps wait on each other: %s → %s", strings.Join(path, " → "), id)
		case 2:
			return
		}
		state[id] = 1
		for _, a := range after[id] {
			visit(a, append(path, id))
		}
		state[id] = 2
	}
	for _, id := range contract.SortedKeys(after) {
		visit(id, nil)
	}
	// Each still gets the other's link.
	for job, link := range map[string]string{"a": "lb", "b": "la", "c": "lb"} {
		if _, ok := d.Spec(job, 0)["links"].(map[string]any)[link]; !ok {
			t.Errorf("%s has no link %s", job, link)
		}
	}
}
