package manifestdeploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

// realCases are deployment manifests from public BOSH repositories, kept
// under testdata/real with their licence and source (SOURCE), each with
// some of its own ops files. Each is built as `manifest deploy` builds it
// on a cloud config of three zones; its outcome — the config, or the
// refusal naming what the engine cannot express — is held in
// testdata/real/NAME.outcome (UPDATE_GOLDEN=1 rewrites them).
var realCases = []struct {
	name, dir, manifest string
	ops, varFiles       []string
	vars                map[string]any
}{
	{name: "cf-deployment", dir: "cf-deployment", manifest: "cf-deployment.yml",
		vars: map[string]any{"system_domain": "sys.example.test"}},
	{name: "cf-deployment-ops", dir: "cf-deployment", manifest: "cf-deployment.yml",
		ops:  []string{"operations/rename-network-and-deployment.yml", "operations/scale-to-one-az.yml", "operations/use-postgres.yml", "operations/use-haproxy.yml"},
		vars: map[string]any{"system_domain": "sys.example.test", "deployment_name": "cf-one", "network_name": "private", "haproxy_private_ip": "10.0.1.30"}},
	{name: "concourse", dir: "concourse", manifest: "concourse.yml", varFiles: []string{"versions.yml", "../concourse.vars.yml"},
		ops: []string{"operations/basic-auth.yml", "operations/static-web.yml"}},
	{name: "postgres", dir: "postgres", manifest: "postgres.yml",
		ops:  []string{"operations/add_static_ips.yml", "operations/use_ssl.yml", "operations/set_properties.yml"},
		vars: map[string]any{"postgres_host_or_ip": "10.0.1.20"}},
	{name: "redis", dir: "redis", manifest: "redis.yml"},
	{name: "redis-sentinel", dir: "redis", manifest: "redis.yml", ops: []string{"operators/use-sentinel-addresses.yml"}},
}

// realCloud is three zones of 24 machines; the manifests' static
// IPs are among z1's.
func realCloud() contract.CloudConfig {
	cc := contract.CloudConfig{Home: "10.0.0.1", SSH: contract.CloudSSH{User: "root", Key: "/etc/de/keys/root"}}
	for z := 1; z <= 3; z++ {
		az := contract.CloudAZ{Name: fmt.Sprintf("z%d", z)}
		for i := range 24 {
			az.Machines = append(az.Machines, contract.CloudMachine{IP: fmt.Sprintf("10.0.%d.%d", z, 20+i)})
		}
		cc.AZs = append(cc.AZs, az)
	}
	return cc
}

func TestRealManifests(t *testing.T) {
	for _, c := range realCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // a manifest of many certificates takes seconds to generate
			dir := filepath.Join("testdata", "real", c.dir)
			read := func(name string) []byte {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if _, err := os.Stat(filepath.Join(dir, "LICENSE")); err != nil {
				t.Fatalf("%s is kept without its licence", dir)
			}
			in := contract.ManifestDeploy{Manifest: string(read(c.manifest)), Vars: map[string]any{}}
			for _, o := range c.ops {
				in.Ops = append(in.Ops, string(read(o)))
			}
			for _, f := range c.varFiles {
				vars := manifest.Vars{}
				if err := vars.Load(manifest.File{Name: f, Data: read(f)}); err != nil {
					t.Fatal(err)
				}
				for k, v := range vars {
					in.Vars[k] = v
				}
			}
			for k, v := range c.vars {
				in.Vars[k] = v
			}
			res, err := Build(in, realCloud(), Prior{}, contract.Config{})
			got := outcome(res, err)
			golden := filepath.Join("testdata", "real", c.name+".outcome")
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got\n%s\nwant (UPDATE_GOLDEN=1 rewrites it)\n%s", got, want)
			}
			// No generated value is in the outcome, whatever it says.
			for name, v := range res.Kept {
				if s, ok := v.(string); ok && len(s) > 8 && strings.Contains(got, s) {
					t.Errorf("the outcome shows the value of %s", name)
				}
			}
		})
	}
}

// outcome is what a build of a manifest came to, in words that do not
// change from run to run: the refusal, or each job's machines, the
// release, the secret places; the warnings and the generated variables'
// names either way.
func outcome(res Result, err error) string {
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "refused: %v\n", err)
	} else {
		cfg := res.Config
		fmt.Fprintf(&b, "name: %s\nrelease: %s\nreleases: %s\n", res.Name, cfg.Properties.Release, strings.Join(cfg.Properties.Releases, " "))
		for _, comp := range contract.SortedKeys(cfg.Components) {
			fmt.Fprintf(&b, "job %s: %s\n", comp, strings.Join(cfg.Components[comp], " "))
		}
		fmt.Fprintf(&b, "secret places: %s\n", strings.Join(cfg.Properties.SecretProperties, " "))
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	gen := slices.Clone(res.Generated)
	slices.Sort(gen)
	fmt.Fprintf(&b, "generated %d: %s\n", len(gen), strings.Join(gen, " "))
	return b.String()
}
