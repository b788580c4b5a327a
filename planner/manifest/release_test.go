package manifest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// shop is a release of two jobs: db provides a link app consumes.
func shop(t *testing.T) *release.Release {
	t.Helper()
	monit := func(j string) string {
		return "check process " + j + "\n  with pidfile /var/vcap/sys/run/" + j + "/pid\n  start program \"/var/vcap/jobs/" + j + "/bin/ctl start\"\n  stop program \"/var/vcap/jobs/" + j + "/bin/ctl stop\"\n"
	}
	r := releasetest.Release{Name: "shop", Version: "7", Jobs: []releasetest.Job{
		{Name: "db", Spec: "---\nname: db\ntemplates: {ctl.erb: bin/ctl}\npackages: []\nprovides: [{name: db, type: database}]\nproperties:\n  port: {default: 5432}\n  admin.password: {}\n",
			Monit: monit("db"), Templates: map[string]string{"ctl.erb": "#!/bin/bash\n"}},
		{Name: "app", Spec: "---\nname: app\ntemplates: {ctl.erb: bin/ctl}\npackages: []\nconsumes: [{name: db, type: database}]\nproperties:\n  greeting: {default: hello}\n  admin.password: {}\n",
			Monit: monit("app"), Templates: map[string]string{"ctl.erb": "#!/bin/bash\n"}},
	}}
	s, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := s.Import(context.Background(), bytes.NewReader(releasetest.Build(r)))
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// The config a manifest becomes is one the bosh path takes without a
// problem, and each job reads what the manifest gave it: v2's per-job
// properties, v1's global ones (undeclared ones unread) under its own.
func TestConfigDeploysTheRelease(t *testing.T) {
	rel := shop(t)
	for _, tc := range []struct{ name, manifest, want string }{
		{"v2", `
name: shop
releases: [{name: shop, version: 7}]
instance_groups:
- {name: db, instances: 1, networks: [{name: n, static_ips: [10.0.0.2]}], jobs: [{name: db, release: shop, properties: {admin: {password: pw}}}]}
- {name: app, instances: 2, azs: [z1, z2], networks: [{name: n, static_ips: [10.0.0.3, 10.0.0.4]}], jobs: [{name: app, release: shop, properties: {greeting: hi, admin: {password: pw}}}]}
`, "app@10.0.0.3 map[admin:map[password:pw] greeting:hi]; app@10.0.0.4 map[admin:map[password:pw] greeting:hi]; db@10.0.0.2 map[admin:map[password:pw] port:5432]"},
		{"v2, a job in two groups with other properties", `
name: shop
releases: [{name: shop, version: 7}]
instance_groups:
- {name: db, instances: 1, networks: [{name: n, static_ips: [10.0.0.2]}], jobs: [{name: db, release: shop, properties: {admin: {password: pw}}}]}
- {name: app, instances: 1, networks: [{name: n, static_ips: [10.0.0.3]}], jobs: [{name: app, release: shop, properties: {greeting: hi, admin: {password: pw}}}]}
- {name: other, instances: 1, networks: [{name: n, static_ips: [10.0.0.5]}], jobs: [{name: app, release: shop, properties: {admin: {password: other-pw}}}]}
`, "app@10.0.0.3 map[admin:map[password:pw] greeting:hi]; app@10.0.0.5 map[admin:map[password:other-pw] greeting:hello]; db@10.0.0.2 map[admin:map[password:pw] port:5432]"},
		{"v1", `
name: shop
release: {name: shop, version: 7}
properties: {admin: {password: global-pw}, port: 6000, unread: {by: anyone}}
jobs:
- {name: db, templates: [{name: db}], instances: 1, networks: [{name: n, static_ips: [10.0.0.2]}]}
- {name: app, templates: [{name: app}], instances: 1, networks: [{name: n, static_ips: [10.0.0.3]}], properties: {greeting: hi}}
`, "app@10.0.0.3 map[admin:map[password:global-pw] greeting:hi]; db@10.0.0.2 map[admin:map[password:global-pw] port:6000]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := ToConfig(mustDecode(t, tc.manifest), Target{Home: "10.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Properties.Release != "shop/7" {
				t.Errorf("release %q", cfg.Properties.Release)
			}
			d, problems := bosh.NewDeployment(rel, cfg)
			if len(problems) > 0 {
				t.Fatalf("the bosh path refuses the config: %v", problems)
			}
			var each []string
			for _, job := range []string{"app", "db"} {
				for _, ip := range d.Jobs[job] {
					each = append(each, fmt.Sprintf("%s@%s %v", job, ip, d.Properties(job, ip)))
				}
			}
			got := strings.Join(each, "; ")
			if got != tc.want {
				t.Errorf("properties\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
