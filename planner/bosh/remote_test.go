package bosh

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/contract"
)

// remoteRelease has two providers of one type (pg, pgb) and a consumer
// of it (app).
func remoteRelease() releasetest.Release {
	job := func(name, spec string) releasetest.Job {
		return releasetest.Job{Name: name, Spec: "---\nname: " + name + "\ntemplates: {}\npackages: []\n" + spec}
	}
	return releasetest.Release{Name: "remote", Version: "1", Jobs: []releasetest.Job{
		job("pg", "provides:\n- {name: db, type: database, properties: [port, admin.password]}\nproperties:\n  port: {default: 5432}\n  admin.password: {}\n"),
		job("pgb", "provides:\n- {name: db, type: database, properties: [port]}\nproperties:\n  port: {default: 6432}\n"),
		job("app", "consumes:\n- {name: db, type: database}\n"),
	}}
}

// A link consumed from another deployment resolves against what that
// deployment shares, with its instances and properties as a local link
// has them; each refusal names the job, the link, the deployment and the
// candidates.
func TestRemoteLinks(t *testing.T) {
	rel := load(t, remoteRelease())
	// The providing deployment, dbs: pg shared as primary on two nodes,
	// pgb not shared (unless the case shares it).
	provider := func(shareBoth bool) []RemoteProvider {
		cfg := contract.Config{Components: map[string][]string{"pg": {"10.1.0.1", "10.1.0.2"}, "pgb": {"10.1.0.3"}},
			Properties: contract.Properties{Deployment: "dbs", AZs: map[string][]string{"z2": {"10.1.0.2"}},
				Jobs: map[string]any{"pg": map[string]any{"port": 7000, "admin": map[string]any{"password": "s3cret-pw"}}},
				Links: map[string]contract.JobLinks{
					"pg":  {Provides: map[string]*contract.ProvideLink{"db": {As: "primary", Shared: true}}},
					"pgb": {Provides: map[string]*contract.ProvideLink{"db": {As: "backup", Shared: shareBoth}}}}}}
		d, ps := NewDeployment(rel, cfg)
		if len(ps) > 0 {
			t.Fatalf("the provider's deployment: %+v", ps)
		}
		return d.SharedProviders(nil)
	}
	remote := func(shareBoth bool) Remote {
		return func(dep string) ([]RemoteProvider, error) {
			if dep != "dbs" {
				return nil, errors.New("this engine has no cluster " + dep + " (clusters sharing links: dbs)")
			}
			return provider(shareBoth), nil
		}
	}
	consume := func(c *contract.ConsumeLink) map[string]contract.JobLinks {
		return map[string]contract.JobLinks{"app": {Consumes: map[string]*contract.ConsumeLink{"db": c}}}
	}
	for _, tc := range []struct {
		name  string
		comps map[string][]string
		links map[string]contract.JobLinks
		o     Placing
		want  string // "job port addresses" of app's db link
		probs []string
	}{
		{name: "from a shared alias of another deployment", links: consume(&contract.ConsumeLink{From: "primary", Deployment: "dbs"}),
			o: Placing{Remote: remote(false)}, want: "pg 7000 10.1.0.1,10.1.0.2"},
		{name: "by type: the one shared provider of it", links: consume(&contract.ConsumeLink{Deployment: "dbs"}),
			o: Placing{Remote: remote(false)}, want: "pg 7000 10.1.0.1,10.1.0.2"},
		{name: "a provider not shared", links: consume(&contract.ConsumeLink{From: "backup", Deployment: "dbs"}), o: Placing{Remote: remote(false)},
			probs: []string{`properties.links.app.consumes.db: job app consumes link "db" of type database from "backup" of deployment dbs, and pgb.db as backup (database) there is not shared: add shared: true to its provides.db in dbs's manifest (it shares pg.db as primary (database))`}},
		{name: "nothing shared fits", links: consume(&contract.ConsumeLink{From: "nope", Deployment: "dbs"}), o: Placing{Remote: remote(false)},
			probs: []string{`job app consumes link "db" of type database from "nope" of deployment dbs, and no link it shares fits (it shares pg.db as primary (database))`}},
		{name: "several fit", links: consume(&contract.ConsumeLink{Deployment: "dbs"}), o: Placing{Remote: remote(true)},
			probs: []string{`job app consumes link "db" of type database from deployment dbs, and several of its shared links are of that type (pg.db as primary (database), pgb.db as backup (database)): name one with consumes.db.from`}},
		{name: "an unknown deployment", links: consume(&contract.ConsumeLink{From: "primary", Deployment: "dbz"}), o: Placing{Remote: remote(false)},
			probs: []string{`job app consumes link "db" of type database from "primary" of deployment dbz, and this engine has no cluster dbz (clusters sharing links: dbs)`}},
		{name: "no other deployment to read", links: consume(&contract.ConsumeLink{From: "primary", Deployment: "dbs"}), o: Placing{NoRemote: "links from another deployment need named clusters"},
			probs: []string{`job app consumes link "db" of type database from "primary" of deployment dbs, and links from another deployment need named clusters`}},
		{name: "its own cluster's name: local", comps: map[string][]string{"pg": {"10.0.0.5"}},
			links: consume(&contract.ConsumeLink{From: "db", Deployment: "web"}), o: Placing{Self: "web"}, want: "pg 5432 10.0.0.5"},
		{name: "its own deployment's name: local", comps: map[string][]string{"pg": {"10.0.0.5"}},
			links: consume(&contract.ConsumeLink{From: "db", Deployment: "remote"}), want: "pg 5432 10.0.0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comps := map[string][]string{"app": {"10.0.0.3"}}
			for k, v := range tc.comps {
				comps[k] = v
			}
			cfg := contract.Config{Components: comps, Properties: contract.Properties{Links: tc.links}}
			d, ps := NewDeploymentWith(rel, cfg, tc.o)
			var got []string
			for _, p := range ps {
				got = append(got, p.Path+": "+p.Reason)
			}
			if len(ps) != len(tc.probs) {
				t.Fatalf("%d problems, want %d:\n%s", len(ps), len(tc.probs), strings.Join(got, "\n"))
			}
			for i, w := range tc.probs {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d:\n%s\nlacks\n%s", i, got[i], w)
				}
				if ps[i].Component != "app" {
					t.Errorf("problem %d names component %q", i, ps[i].Component)
				}
			}
			if tc.want == "" {
				return
			}
			l := d.Spec("app", 0)["links"].(map[string]any)["db"].(map[string]any)
			insts := toMaps(l["instances"])
			var addrs []string
			for _, in := range insts {
				addrs = append(addrs, in["address"].(string))
			}
			props := l["properties"].(map[string]any)
			if g := insts[0]["name"].(string) + " " + fmtAny(props["port"]) + " " + strings.Join(addrs, ","); g != tc.want {
				t.Errorf("linked to %q, want %q", g, tc.want)
			}
		})
	}
}

// A remote link gives what a local one would: each instance's index, id
// (of the providing deployment), az and address, and the shared
// properties; a secret among them is named for redaction, and a
// provider not shared gives nothing of its own.
func TestRemoteLinkInstancesAndSecrets(t *testing.T) {
	rel := load(t, remoteRelease())
	cfg := contract.Config{Components: map[string][]string{"pg": {"10.1.0.1", "10.1.0.2"}, "pgb": {"10.1.0.3"}},
		Properties: contract.Properties{Deployment: "dbs", AZs: map[string][]string{"z2": {"10.1.0.2"}},
			Jobs:  map[string]any{"pg": map[string]any{"admin": map[string]any{"password": "s3cret-pw"}}, "pgb": map[string]any{"port": 6543}},
			Links: map[string]contract.JobLinks{"pg": {Provides: map[string]*contract.ProvideLink{"db": {Shared: true}}}}}}
	b, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	shared := b.SharedProviders([]string{"s3cret-pw"})
	if len(shared) != 2 || shared[1].Job != "pgb" || shared[1].Shared || shared[1].Instances != nil || shared[1].Properties != nil {
		t.Fatalf("a provider not shared gives more than its name: %+v", shared)
	}
	if !slices.Equal(shared[0].Secrets, []string{"s3cret-pw"}) {
		t.Errorf("secrets of the shared link: %v", shared[0].Secrets)
	}
	cfgA := contract.Config{Components: map[string][]string{"app": {"10.0.0.3"}}, Properties: contract.Properties{Deployment: "web",
		Links: map[string]contract.JobLinks{"app": {Consumes: map[string]*contract.ConsumeLink{"db": {Deployment: "dbs"}}}}}}
	a, ps := NewDeploymentWith(rel, cfgA, Placing{Remote: func(string) ([]RemoteProvider, error) { return shared, nil }})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	l := a.Spec("app", 0)["links"].(map[string]any)["db"].(map[string]any)
	want := []map[string]any{
		{"name": "pg", "index": 0.0, "id": InstanceID("dbs", "pg", 0), "az": "z1", "address": "10.1.0.1", "bootstrap": true},
		{"name": "pg", "index": 1.0, "id": InstanceID("dbs", "pg", 1), "az": "z2", "address": "10.1.0.2", "bootstrap": false},
	}
	if got := toMaps(l["instances"]); !reflect.DeepEqual(got, want) {
		t.Errorf("instances\n%v\nwant\n%v", got, want)
	}
	if props := l["properties"]; !reflect.DeepEqual(props, map[string]any{"port": 5432.0, "admin": map[string]any{"password": "s3cret-pw"}}) {
		t.Errorf("properties %v", props)
	}
	if s := a.RemoteSecrets(); !slices.Equal(s, []string{"s3cret-pw"}) {
		t.Errorf("the consumer's redactions: %v", s)
	}
	// The link's job is the provider's: the consumer waits on none of its
	// own jobs for it.
	if w := a.linkProviders("app"); len(w) != 0 {
		t.Errorf("app waits on %v", w)
	}
}

func toMaps(v any) []map[string]any {
	var out []map[string]any
	switch t := v.(type) {
	case []map[string]any:
		return t
	case []any:
		for _, x := range t {
			out = append(out, x.(map[string]any))
		}
	}
	return out
}
