package bosh

import (
	"context"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// sideRelease is a second release: a job colocated with linked's, which
// says which release it is and needs a package of its own and the base
// package linked also has, byte for byte.
func sideRelease() releasetest.Release {
	base := linkedRelease().Packages[0]
	return releasetest.Release{Name: "side", Version: "7",
		Jobs: []releasetest.Job{{Name: "sidecar", Spec: `---
name: sidecar
templates:
  conf.erb: config/conf
packages: [tool, base]
properties: {}
`, Monit: "check process sidecar\n  with pidfile /var/vcap/sys/run/sidecar/pid\n  start program \"/bin/true\"\n  stop program \"/bin/true\"\n",
			Templates: map[string]string{"conf.erb": "release=<%= spec.release.name %>/<%= spec.release.version %> deployment=<%= spec.deployment %>\n"}}},
		Packages: []releasetest.Package{base, {Name: "tool", Files: map[string]string{"packaging": "echo tool > ${BOSH_INSTALL_TARGET}/tool\n"}}},
	}
}

// Jobs of two releases on one node: each renders its own release in
// spec.release, and each package is fetched from the release it comes
// from; base, the same package in both, is linked's.
func TestTwoReleasesSideBySide(t *testing.T) {
	needRuby(t)
	linked, side := load(t, linkedRelease()), load(t, sideRelease())
	rel, err := release.Merge(linked, side)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1"}, "sidecar": {"10.0.0.1"}}, nil, nil)
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	in := PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string {
			from := rel.PackageFrom(p.Name)
			return "http://home/releases/" + release.PackageURLPath(from.Name, from.Version, p.Name)
		}}
	plan, err := MakePlan(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	compiles := map[string]string{} // job → its compile step's script
	conf := ""
	for _, s := range plan.Steps {
		if s.Spec.Action == "compile" {
			compiles[s.Spec.Component] = s.Spec.Script
		}
		if s.Spec.Component == "sidecar" && s.Spec.Action == "apply" {
			for _, f := range s.Spec.Files {
				if strings.HasSuffix(f.Path, "/config/conf") {
					conf = string(f.Content)
				}
			}
		}
	}
	if conf != "release=side/7 deployment=linked\n" {
		t.Errorf("sidecar's config %q", conf)
	}
	// sidecar's step compiles base and tool, each from its own release;
	// db's compiles base too, on the node where it is found compiled.
	for url, want := range map[string]bool{"http://home/releases/linked/3/packages/base.tgz": true, "http://home/releases/side/7/packages/tool.tgz": true,
		"http://home/releases/side/7/packages/base.tgz": false} {
		if got := strings.Contains(compiles["sidecar"], url); got != want {
			t.Errorf("sidecar's compile fetches %s: %v, want %v", url, got, want)
		}
	}
	if !strings.Contains(compiles["db"], "http://home/releases/linked/3/packages/base.tgz") {
		t.Errorf("db's compile:\n%s", compiles["db"])
	}
	// A manifest's name is spec.deployment, as BOSH gives it.
	named := cfg
	named.Properties.Deployment = "shop-prod"
	dn, _ := NewDeployment(rel, named)
	if got := dn.Spec("sidecar", 0)["deployment"]; got != "shop-prod" {
		t.Errorf("spec.deployment %v, want the config's deployment", got)
	}
	// A job the merged releases lack is named with every release.
	cfg.Components["nope"] = []string{"10.0.0.1"}
	if _, ps := NewDeployment(rel, cfg); len(ps) != 1 || !strings.Contains(ps[0].Reason, `release linked/3, side/7 has no job "nope"`) {
		t.Errorf("problems %v", ps)
	}
}
