package bosh

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// cfRelease is cf-release at a version as its real release index
// (releases/cf-<v>.yml) and its jobs' specs (their packages) describe it.
func cfRelease(t *testing.T, v string) *release.Release {
	t.Helper()
	b, err := os.ReadFile("testdata/cf/cf-" + v + ".yml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.ParseManifest(b)
	if err != nil {
		t.Fatalf("cf-%s.yml: %v", v, err)
	}
	b, err = os.ReadFile("testdata/cf/cf-" + v + "-specs.yml")
	if err != nil {
		t.Fatal(err)
	}
	var specs map[string]struct {
		Packages []string `yaml:"packages"`
	}
	if err := yaml.Unmarshal(b, &specs); err != nil {
		t.Fatal(err)
	}
	rel := &release.Release{Manifest: *m, Specs: map[string]*release.Job{}}
	for _, j := range m.Jobs {
		s, ok := specs[j.Name]
		if !ok {
			t.Fatalf("cf-%s: no spec for job %s", v, j.Name)
		}
		for _, p := range s.Packages {
			if _, ok := rel.Package(p); !ok {
				t.Fatalf("cf-%s: job %s needs package %s, which the index lacks", v, j.Name, p)
			}
		}
		rel.Specs[j.Name] = &release.Job{Name: j.Name, Version: j.Version, Packages: s.Packages, Properties: map[string]release.Property{}}
	}
	return rel
}

// manualConfig is the cloudfoundry catalog and the manual's example config.
func manualConfig(t *testing.T) (*catalog.Catalog, contract.Config) {
	t.Helper()
	cat, err := catalog.Load("cloudfoundry", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../validate/testdata/manual.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg contract.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return cat, cfg
}

// The plan of the manual's example config for cf-release v160, v170 and
// v194: which packages (compiled in this order) and which jobs each node
// gets, and which components a version has no job for.
func TestCloudFoundryGoldenPlans(t *testing.T) {
	cat, cfg := manualConfig(t)
	for _, v := range []string{"160", "170", "194"} {
		t.Run("v"+v, func(t *testing.T) {
			rel := cfRelease(t, v)
			if rel.Name != "cf" || rel.Version != v {
				t.Fatalf("index names %s/%s", rel.Name, rel.Version)
			}
			d, ps := NewMappedDeployment(rel, cfg, func(comp string) string { return cat.Job("v"+v, comp) })
			var out strings.Builder
			fmt.Fprintf(&out, "# the manual's example config on cf-release v%s: per node, packages in compile order, then jobs\n", v)
			for _, ip := range cfg.Nodes() {
				order, _, err := d.NodePackages(ip)
				if err != nil {
					t.Fatal(err)
				}
				var jobs, pkgs []string
				for _, j := range d.NodeJobs(ip) {
					jobs = append(jobs, d.CompOf(j)+"="+j)
				}
				for _, p := range order {
					pkgs = append(pkgs, p.Name)
				}
				fmt.Fprintf(&out, "%s\n  packages: %s\n  jobs: %s\n", ip, strings.Join(pkgs, ", "), strings.Join(jobs, ", "))
			}
			for _, p := range ps {
				fmt.Fprintf(&out, "problem: %s: %s\n", p.Path, p.Reason)
			}
			golden(t, "cf-"+v+".plan", out.String())
		})
	}
}

// The manual's example config goes the v1 manifest's way too: the
// nise_bosh manifest the cloudfoundry catalog renders for it, read as a
// BOSH v1 manifest (planner/manifest), places the same jobs with the
// same packages, in the same compile order, on every node as the golden
// plans, and names the same job the release lacks.
func TestCloudFoundryManifestGivesTheGoldenPlans(t *testing.T) {
	cat, cfg := manualConfig(t)
	// Per node, its packages and its jobs by the release's names.
	plan := func(d *Deployment, ps []contract.Problem) string {
		var out strings.Builder
		for _, ip := range cfg.Nodes() {
			order, _, err := d.NodePackages(ip)
			if err != nil {
				t.Fatal(err)
			}
			var pkgs []string
			for _, p := range order {
				pkgs = append(pkgs, p.Name)
			}
			fmt.Fprintf(&out, "%s\n  packages: %s\n  jobs: %s\n", ip, strings.Join(pkgs, ", "), strings.Join(d.NodeJobs(ip), ", "))
		}
		for _, p := range ps {
			fmt.Fprintf(&out, "problem: %s\n", p.Reason)
		}
		return out.String()
	}
	for _, v := range []string{"160", "170", "194"} {
		t.Run("v"+v, func(t *testing.T) {
			rel := cfRelease(t, v)
			golden := plan(NewMappedDeployment(rel, cfg, func(comp string) string { return cat.Job("v"+v, comp) }))

			c := cfg
			c.Properties.Release = "v" + v
			r, err := cat.Render(catalog.Input{Config: c, Node: cfg.Components["database"][0], Component: "database"})
			if err != nil {
				t.Fatal(err)
			}
			var rendered []byte
			for _, f := range r.Files {
				if strings.HasSuffix(f.Path, "/manifest.yml") {
					rendered = f.Content
				}
			}
			var doc any
			if err := yaml.Unmarshal(rendered, &doc); err != nil || doc == nil {
				t.Fatalf("the rendered manifest: %v", err)
			}
			fromManifest, _, err := manifest.ToConfig(doc, manifest.Target{Home: cfg.Properties.Home})
			if err != nil {
				t.Fatal(err)
			}
			if fromManifest.Properties.Release != "cf/"+v {
				t.Errorf("the manifest's release: %q", fromManifest.Properties.Release)
			}
			got := plan(NewDeployment(rel, fromManifest))
			if got != golden {
				t.Errorf("through the v1 manifest:\n%s\nthe golden plan's:\n%s", got, golden)
			}
		})
	}
}
