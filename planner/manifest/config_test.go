package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// v2 is a manifest in BOSH's v2 schema with the machines as static IPs.
const v2 = `
name: redis
releases: [{name: redis, version: 15.2.0}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 2, canary_watch_time: 1000-30000, update_watch_time: 5000}
instance_groups:
- name: redis
  instances: 3
  azs: [z1, z2]
  networks: [{name: default, static_ips: ["10.244.0.2 - 10.244.0.3", 10.244.0.9]}]
  persistent_disk: 1024
  update: {max_in_flight: 50%}
  jobs:
  - name: redis-server
    release: redis
    properties: {port: 6379, password: pw, tls: {enabled: false}}
    provides: {redis: {as: primary, shared: true}, conn: {as: plain}}
    custom_provider_definitions: [{name: conn, type: address, properties: [port]}]
- name: sentinel
  instances: 1
  networks: [{name: default, static_ips: [10.244.0.10]}]
  jobs:
  - {name: redis-sentinel, release: redis, properties: {quorum: 2}, consumes: {redis: {from: primary, network: default, deployment: redis}, tls: nil, metrics: ~}}
- name: smoke-tests
  lifecycle: errand
  instances: 1
  networks: [{name: default, static_ips: [10.244.0.11]}]
  jobs: [{name: smoke, release: redis}]
`

// v1 is nise_bosh's schema: jobs with templates, global properties.
const v1 = `
name: cf
release: {name: cf, version: 194}
networks: [{name: default}]
properties:
  domain: cf.local
  nats: {user: nats, password: pw, port: 4222}
jobs:
- name: nats
  template: nats
  templates: [{name: nats}]
  instances: 1
  networks: [{name: default, static_ips: [10.0.0.2]}]
- name: router
  templates: [{name: gorouter}, {name: metron_agent}]
  instances: 2
  networks: [{name: default, static_ips: [10.0.0.3, 10.0.0.4]}]
  properties: {nats: {port: 4223}}
`

func TestToConfig(t *testing.T) {
	for _, tc := range []struct{ name, manifest, golden string }{{"v2", v2, "v2.config.json"}, {"v1", v1, "v1.config.json"}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warn, err := ToConfig(mustDecode(t, tc.manifest), Target{Home: "10.244.0.1", Key: "/root/.ssh/id_ed25519"})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(struct {
				Config   any      `json:"config"`
				Warnings []string `json:"warnings"`
			}{cfg, warn}, "", "  ")
			golden := filepath.Join("testdata", tc.golden)
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(want)) != string(got) {
				t.Fatalf("got\n%s\nwant (UPDATE_GOLDEN=1 rewrites it)\n%s", got, want)
			}
		})
	}
}

func TestToConfigErrors(t *testing.T) {
	cases := []struct{ name, manifest, err string }{
		{"not a map", `[1]`, "a manifest is a YAML map"},
		{"no groups", `{name: x}`, "neither instance_groups (v2) nor jobs (v1)"},
		{"a variable left", `{name: x, instance_groups: [{name: a, instances: 0, jobs: [{name: j, release: r, properties: {p: ((pw))}}]}]}`, "variables without a value: pw"},
		{"an unknown lifecycle", `{name: x, releases: [{name: r}], instance_groups: [{name: web, lifecycle: daemon, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r}]}]}`,
			"instance group web: lifecycle is service or errand"},
		{"an addon without jobs", `{name: x, addons: [{name: a}], instance_groups: []}`, `addon "a": no jobs`},
		{"an addon by team", `{name: x, addons: [{name: a, jobs: [{name: s, release: r}], include: {teams: [ops]}}], instance_groups: []}`,
			`addon "a": include.teams: the engine places addons by deployments, instance_groups, jobs, azs, networks, stemcell and lifecycle`},
		{"an addon by a stemcell without an os", `{name: x, addons: [{name: a, jobs: [{name: s, release: r}], include: {stemcell: [{name: bosh-warden}]}}], instance_groups: []}`,
			`addon "a": include.stemcell[0]: {os: NAME}`},
		{"an addon's job in the group already", `{name: x, releases: [{name: r}], addons: [{name: a, jobs: [{name: j, release: r}]}], instance_groups: [{name: web, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r}]}]}`,
			"instance group web: an addon's job j is a job of the group already"},
		{"fewer IPs than instances", `{name: x, releases: [{name: r}], instance_groups: [{name: web, instances: 2, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r}]}]}`,
			"instance group web: 2 instances and 1 static IPs"},
		{"an IP in two groups", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r}]}, {name: b, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: k, release: r}]}]}`,
			"instance group b: 10.0.0.1 is a static IP of a too"},
		{"an undeclared release", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: s}]}]}`,
			"release s: jobs come from it and releases does not declare it"},
		{"a bad range", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: ["10.0.0.9 - 10.0.0.1"]}], jobs: [{name: j, release: r}]}]}`,
			"a range runs upward"},
		{"not an IP", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [web1]}], jobs: [{name: j, release: r}]}]}`,
			`static_ips "web1": not an IP address`},
		{"a bad update", `{name: x, update: {max_in_flight: 0}, instance_groups: []}`, "update: max_in_flight"},
		{"a bad watch time", `{name: x, update: {canary_watch_time: "30000-1000"}, instance_groups: []}`, "update: canary_watch_time"},
		{"nothing placed", `{name: x, releases: [{name: r}], instance_groups: []}`, "no instance group places a job"},
		{"a link's deployment not a name", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: {from: db, deployment: [other]}}}]}]}`,
			`instance group a: job j: consumes.db: deployment names the deployment (the engine's cluster) that provides the link`},
		{"a manual link", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: {instances: [{address: 10.0.0.9}]}}}]}]}`,
			`consumes.db: manual links (instances) are not supported yet`},
		{"a consumed link as a string", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: primary}}]}]}`,
			`consumes.db is a string: give nil (not consumed) or {from: PROVIDER}`},
		{"an unknown consumes key", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: {form: x}}}]}]}`,
			`consumes.db: unknown key "form"`},
		{"an empty from", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: {from: ''}}}]}]}`,
			`consumes.db: from names a provider`},
		{"a provided link nil", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, provides: {db: nil}}]}]}`,
			`provides.db is a string: give {as: ALIAS, shared: BOOL}`},
		{"shared as a string", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, provides: {db: {shared: yes-please}}}]}]}`,
			`provides.db: shared is true or false`},
		{"a custom provider without a type", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, custom_provider_definitions: [{name: c}]}]}]}`,
			`job j: custom_provider_definitions[0]: a custom provider needs a name and a type`},
		{"a custom provider sharing a map", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, custom_provider_definitions: [{name: c, type: t, properties: [{a: 1}]}]}]}]}`,
			`custom_provider_definitions[0]: properties is a list of the job's property names`},
		{"custom providers as a map", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, custom_provider_definitions: {name: c}}]}]}`,
			`custom_provider_definitions is a map, not a list`},
		{"consumes as a list", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: [db]}]}]}`,
			`job j: consumes is a list, not a map`},
		{"one job, two wirings", `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: {from: p}}}]}, {name: b, instances: 1, networks: [{name: d, static_ips: [10.0.0.2]}], jobs: [{name: j, release: r}]}]}`,
			"job j has other consumes or provides in instance group b than in a"},
	}
	for _, c := range cases {
		if _, _, err := ToConfig(mustDecode(t, c.manifest), Target{}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.err)
		}
	}
}

// A job whose only wiring is a custom provider keeps it.
func TestToConfigCustomProviderAlone(t *testing.T) {
	cfg, _, err := ToConfig(mustDecode(t, `{name: x, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}],
  jobs: [{name: j, release: r, custom_provider_definitions: [{name: c, type: t, properties: [p]}]}]}]}`), Target{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Properties.Links["j"].Custom; len(got) != 1 || got[0].Name != "c" || got[0].Type != "t" || len(got[0].Properties) != 1 {
		t.Errorf("links %+v", cfg.Properties.Links)
	}
}

// Addons place their jobs on the instance groups their rules select, as
// BOSH does: every group without rules; include and exclude by group,
// job, zone, network, deployment and lifecycle, each kind of criterion
// ANDed with the others, its entries ORed.
func TestToConfigAddons(t *testing.T) {
	const groups = `releases: [{name: r}]
instance_groups:
- {name: web, instances: 1, azs: [z1], stemcell: default, networks: [{name: front, static_ips: [10.0.0.1]}], jobs: [{name: web, release: r}]}
- {name: db, instances: 1, azs: [z2], stemcell: windows, networks: [{name: back, static_ips: [10.0.0.2]}], jobs: [{name: db, release: r}]}
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}, {alias: windows, os: windows2019, version: latest}]
`
	for _, tc := range []struct {
		name, rules string
		want        []string
	}{
		{"no rules", ``, []string{"10.0.0.1", "10.0.0.2"}},
		{"include a group", `include: {instance_groups: [web]}`, []string{"10.0.0.1"}},
		{"exclude a job", `exclude: {jobs: [{name: db, release: r}]}`, []string{"10.0.0.1"}},
		{"include a zone", `include: {azs: [z2]}`, []string{"10.0.0.2"}},
		{"include a network", `include: {networks: [front, other]}`, []string{"10.0.0.1"}},
		{"include this deployment and a job", `include: {deployments: [x], jobs: [{name: db}]}`, []string{"10.0.0.2"}},
		{"include another deployment", `include: {deployments: [y]}`, nil},
		{"errands only", `include: {lifecycle: errand}`, nil},
		{"include a stemcell's OS", `include: {stemcell: [{os: ubuntu-jammy}]}`, []string{"10.0.0.1"}},
		{"exclude a stemcell's OS", `exclude: {stemcell: [{os: ubuntu-jammy}, {os: ubuntu-noble}]}`, []string{"10.0.0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := "name: x\naddons:\n- name: logs\n  jobs: [{name: forwarder, release: r, properties: {to: syslog}}]\n"
			if tc.rules != "" {
				m += "  " + tc.rules + "\n"
			}
			cfg, _, err := ToConfig(mustDecode(t, m+groups), Target{Home: "10.0.0.9", Key: "/k"})
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Components["forwarder"]; !slices.Equal(got, tc.want) {
				t.Errorf("the addon's job on %v, want %v", got, tc.want)
			}
			if tc.want != nil && !strings.Contains(fmt.Sprint(cfg.Properties.Jobs["forwarder"]), "syslog") {
				t.Errorf("the addon's job's properties: %v", cfg.Properties.Jobs["forwarder"])
			}
			if !slices.Equal(cfg.Components["web"], []string{"10.0.0.1"}) {
				t.Errorf("web on %v", cfg.Components["web"])
			}
		})
	}
}

// Whatever YAML a manifest holds, its conversion answers a config or an
// error: it never panics.
func FuzzToConfig(f *testing.F) {
	f.Add(v2)
	f.Add(v1)
	f.Add("name: x\naddons: [{name: a, jobs: [{name: s, release: r}], include: {azs: [z1], jobs: [{name: j}]}, exclude: {lifecycle: errand}}]\n" +
		"releases: [{name: r}]\ninstance_groups: [{name: g, instances: 1, azs: [z1], persistent_disk: 5, networks: [{name: n, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r}]}]\n")
	f.Fuzz(func(t *testing.T, yml string) {
		doc, err := decode(File{Name: "fuzz", Data: []byte(yml)})
		if err != nil {
			return
		}
		_, _, _ = ToConfig(doc, Target{Home: "10.0.0.9", Key: "/k"})
	})
}

// Jobs of several releases go side by side: the first release the
// manifest declares names the config's release, the others follow in
// properties.releases, each with its version unless latest.
func TestToConfigSeveralReleases(t *testing.T) {
	m := `{name: x, releases: [{name: app, version: 3}, {name: unused, version: 1}, {name: bpm, version: latest}, {name: redis, version: 2}],
instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: redis-server, release: redis}, {name: bpm, release: bpm}, {name: web, release: app}]}]}`
	cfg, _, err := ToConfig(mustDecode(t, m), Target{Home: "10.0.0.9", Key: "/k"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Properties.Release != "app/3" || !slices.Equal(cfg.Properties.Releases, []string{"bpm", "redis/2"}) {
		t.Fatalf("release %q, releases %q", cfg.Properties.Release, cfg.Properties.Releases)
	}
	for _, job := range []string{"redis-server", "bpm", "web"} {
		if !slices.Equal(cfg.Components[job], []string{"10.0.0.1"}) {
			t.Errorf("job %s on %v", job, cfg.Components[job])
		}
	}
}

// v1's older template: a job's name, or a list of names, as nise_bosh
// and cf-release's manifests wrote it; anything else is named.
func TestToConfigV1Template(t *testing.T) {
	m := `{name: cf, release: {name: cf, version: 194}, jobs: [
{name: database, template: postgres, instances: 1, networks: [{name: default, static_ips: [10.0.0.2]}]},
{name: api, template: [cloud_controller_ng, metron_agent], instances: 1, networks: [{name: default, static_ips: [10.0.0.3]}]}]}`
	cfg, _, err := ToConfig(mustDecode(t, m), Target{Home: "10.0.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.Components); got != "map[cloud_controller_ng:[10.0.0.3] metron_agent:[10.0.0.3] postgres:[10.0.0.2]]" {
		t.Errorf("components %s", got)
	}
	bad := `{name: cf, release: {name: cf}, jobs: [{name: database, template: [{x: 1}], instances: 1, networks: [{name: default, static_ips: [10.0.0.2]}]}]}`
	if _, _, err := ToConfig(mustDecode(t, bad), Target{}); err == nil || !strings.Contains(err.Error(), "instance group database: template[0] is a map, not a job's name") {
		t.Errorf("a template of a map: %v", err)
	}
}
