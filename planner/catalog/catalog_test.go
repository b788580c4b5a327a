package catalog

import (
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/deployment-engine/engine/services/contract"
)

var update = flag.Bool("update", false, "rewrite golden files and SHA256SUMS")

// The SHA256SUMS shipped with each catalog match its files: a stale one
// would make every deploy answer 500.
func TestSumsCurrent(t *testing.T) {
	for _, name := range Names() {
		dir := filepath.Join("catalogs", name)
		want, err := Sums(os.DirFS(dir))
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(filepath.Join(dir, SumsFile), want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, _ := os.ReadFile(filepath.Join(dir, SumsFile))
		if string(got) != string(want) {
			t.Errorf("%s/%s is stale: run go test ./catalog -run TestSumsCurrent -update", dir, SumsFile)
		}
	}
}

func TestEmbeddedLoad(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "cloudfoundry,starter" {
		t.Fatalf("Names() = %s", got)
	}
	cf, err := Load("cloudfoundry", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Components) != 14 {
		t.Fatalf("cloudfoundry has %d components", len(cf.Components))
	}
	// SPEC's table.
	table := map[string]struct {
		rule           Rule
		cpu, ram, disk int
	}{
		"haproxy": {One, 1, 1024, 5120}, "nats": {OneOrMore, 1, 1024, 5120}, "nfs_server": {One, 1, 1024, 20480},
		"database": {One, 1, 1024, 13312}, "cloud_controller_ng": {OneOrMore, 1, 4096, 13312}, "etcd": {One, 1, 1024, 5120},
		"uaa": {OneOrMore, 1, 1024, 5120}, "login": {OneOrMore, 1, 1024, 5120}, "hm9000": {OneOrMore, 1, 1024, 5120},
		"loggregator": {One, 1, 2048, 10240}, "collector": {OneOrMore, 1, 1024, 5120}, "syslog_aggregator": {One, 1, 1024, 5120},
		"gorouter": {OneOrMore, 1, 2048, 10240}, "dea": {OneOrMore, 2, 4096, 35840},
	}
	for name, want := range table {
		c := cf.Components[name]
		if c == nil || c.Instances != want.rule || c.Min.CPU != want.cpu || c.Min.RAMMB != want.ram || c.Min.DiskMB != want.disk {
			t.Errorf("%s: %+v %+v, want %+v", name, c, c.Min, want)
		}
	}
	pos := map[string]int{}
	for i, n := range cf.Order {
		pos[n] = i
	}
	for _, first := range []string{"nats", "database", "nfs_server", "etcd"} {
		for _, later := range []string{"cloud_controller_ng", "gorouter", "dea", "haproxy"} {
			if pos[first] > pos[later] {
				t.Errorf("%s comes after %s", first, later)
			}
		}
	}
	if _, err := Load("starter", ""); err != nil {
		t.Fatal(err)
	}
}

func manualConfig(t *testing.T, release string) contract.Config {
	b, err := os.ReadFile("testdata/manual.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg contract.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Properties.Release = release
	return cfg
}

// Everything the cloudfoundry catalog renders, for every release, against
// golden files.
func TestCloudFoundryGolden(t *testing.T) {
	cf, err := Load("cloudfoundry", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"v160", "v170", "v194"} {
		cfg := manualConfig(t, rel)
		if ps := cf.Validate(cfg); len(ps) != 0 {
			t.Fatalf("%s: %+v", rel, ps)
		}
		var out strings.Builder
		for _, name := range cf.Order {
			for i, ip := range cfg.Components[name] {
				r, err := cf.Render(Input{Config: cfg, Node: ip, Index: i, Component: name, Engine: "e-test"})
				if err != nil {
					t.Fatal(err)
				}
				out.WriteString("### " + name + " " + ip + "\n")
				for _, f := range r.Files {
					out.WriteString("--- file " + f.Path + " " + f.Mode.String() + "\n" + string(f.Content))
				}
				out.WriteString("--- install\n" + r.Install + "--- monit\n" + r.Monit + "--- reload\n" + r.Reload)
			}
		}
		golden := filepath.Join("testdata", "golden", "cloudfoundry-"+rel+".txt")
		if *update {
			_ = os.MkdirAll(filepath.Dir(golden), 0o755)
			if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if out.String() != string(want) {
			t.Errorf("%s renders differently from %s (run with -update if the change is intended)", rel, golden)
		}
		if strings.Contains(out.String(), "123456") || strings.Contains(out.String(), "password: password") {
			t.Errorf("%s: a secret reached a rendered file", rel)
		}
	}
}

func TestStarterRender(t *testing.T) {
	st, err := Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := contract.Config{Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3", "10.9.0.4"}, "nats": {"10.9.0.3", "10.9.0.5"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "secret-root", Catalog: "starter"}}
	r, err := st.Render(Input{Config: cfg, Node: "10.9.0.2", Component: "haproxy"})
	if err != nil {
		t.Fatal(err)
	}
	hc := string(r.Files[0].Content)
	for _, want := range []string{"server web0 10.9.0.3:8080", "server web1 10.9.0.4:8080", "bind 10.9.0.2:80"} {
		if !strings.Contains(hc, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, hc)
		}
	}
	r, err = st.Render(Input{Config: cfg, Node: "10.9.0.5", Index: 1, Component: "nats"})
	if err != nil {
		t.Fatal(err)
	}
	nc := string(r.Files[0].Content)
	if !strings.Contains(nc, "nats-route://10.9.0.3:6222") || strings.Contains(nc, "nats-route://10.9.0.5") {
		t.Errorf("nats routes wrong:\n%s", nc)
	}
	if st.Components["haproxy"].ReconfigureOn[0] != "web" {
		t.Error("haproxy must reconfigure on web")
	}
}

func TestValidateRules(t *testing.T) {
	cf, _ := Load("cloudfoundry", "")
	cfg := manualConfig(t, "v999")
	cfg.Components["haproxy"] = []string{"10.10.101.181", "10.10.101.182"}
	cfg.Components["bogus"] = []string{"10.10.101.1"}
	ps := cf.Validate(cfg)
	want := map[string]string{"components.haproxy": "exactly one", "components.bogus": "unknown component", "properties.release": "one of"}
	for path, reason := range want {
		found := false
		for _, p := range ps {
			found = found || (p.Path == path && strings.Contains(p.Reason, reason))
		}
		if !found {
			t.Errorf("no problem %s %q in %+v", path, reason, ps)
		}
	}
}

func mapFS(catalogJSON string, templates ...string) fstest.MapFS {
	m := fstest.MapFS{"catalog.json": {Data: []byte(catalogJSON)}}
	for _, tpl := range templates {
		m["templates/"+tpl] = &fstest.MapFile{Data: []byte("echo " + tpl + "\n")}
	}
	return m
}

func TestLoadRefusesBadCatalogs(t *testing.T) {
	const head = `{"name":"t","default":{"cpu":1,"ram_mb":1,"disk_mb":1},"components":`
	tests := []struct {
		name, json string
		tpls       []string
		want       string
	}{
		{"unknown dependency", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m","requires":["zz"]}}}`, []string{"i", "m"}, `unknown dependency "zz"`},
		{"cycle", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m","requires":["b"]},"b":{"instances":"one","process":"b","install":"i","monit":"m","requires":["a"]}}}`, []string{"i", "m"}, "cycle: a → b → a"},
		{"missing template", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"nope"}}}`, []string{"i"}, "missing template templates/nope"},
		{"bad minimum", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m","min":{"cpu":0,"ram_mb":1,"disk_mb":1}}}}`, []string{"i", "m"}, "cpu 0"},
		{"bad rule", head + `{"a":{"instances":"two","process":"a","install":"i","monit":"m"}}}`, []string{"i", "m"}, "instances must be"},
		{"duplicate file", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m","files":[{"path":"/x","template":"i"},{"path":"/x","template":"i"}]}}}`, []string{"i", "m"}, "listed twice"},
		{"unknown field", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m","colour":"red"}}}`, []string{"i", "m"}, "unknown field"},
		{"template syntax", head + `{"a":{"instances":"one","process":"a","install":"i","monit":"m"}}}`, nil, "missing template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFS(mapFS(tt.json, tt.tpls...), "t")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestVerifyCatchesTampering(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "starter"), mustSub(t, "catalogs/starter")); err != nil {
		t.Fatal(err)
	}
	c, err := Load("starter", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "starter", "templates", "haproxy.cfg")
	if err := os.WriteFile(f, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err == nil || !strings.Contains(err.Error(), "templates/haproxy.cfg was changed") {
		t.Fatalf("Verify after tampering: %v", err)
	}
	if _, err := Load("starter", dir); err == nil {
		t.Fatal("a tampered catalog with SHA256SUMS loaded")
	}
}

func mustSub(t *testing.T, dir string) fs.FS {
	return os.DirFS(dir)
}

func FuzzLoad(f *testing.F) {
	b, _ := os.ReadFile("catalogs/starter/catalog.json")
	f.Add(b)
	f.Add([]byte(`{"name":"t","default":{"cpu":1,"ram_mb":1,"disk_mb":1},"components":{"a":{"instances":"one","process":"a","install":"i","monit":"i"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := fstest.MapFS{"catalog.json": {Data: b}, "templates/i": {Data: []byte("x {{.Node}}")}}
		c, err := LoadFS(m, "t")
		if err != nil {
			return
		}
		// Accepted: it must be whole.
		if len(c.Order) != len(c.Components) {
			t.Fatalf("order %v misses components", c.Order)
		}
		for _, comp := range c.Components {
			if comp.Min == nil || comp.Min.CPU < 1 || (comp.Instances != One && comp.Instances != OneOrMore) {
				t.Fatalf("accepted bad component %+v", comp)
			}
			for _, r := range comp.Requires {
				if c.Components[r] == nil {
					t.Fatalf("accepted unknown dependency %s", r)
				}
			}
		}
	})
}
