package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifestInterpolate(t *testing.T) {
	dir := t.TempDir()
	put := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m := put("m.yml", "name: ((name))\ninstance_groups:\n- name: web\n  instances: 1\n  jobs:\n  - {name: web, release: r, properties: {password: ((pw)), port: ((port))}}\n")
	ops := put("scale.yml", "- {type: replace, path: /instance_groups/name=web/instances, value: 3}\n")
	vars := put("vars.yml", "name: from-file\nport: 8080\n")

	r := cli(t, "manifest", "interpolate", m, "-o", ops, "-l", vars, "-v", "name=from-flag", "--vars-file", vars)
	if r.code != exitOK {
		t.Fatalf("interpolate: %+v", r)
	}
	for _, want := range []string{"name: from-flag", "instances: 3", "port: 8080", "password: ((pw))"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warning: no value for 1 variable(s): pw") {
		t.Errorf("no warning naming pw: %q", r.stderr)
	}

	r = cli(t, "manifest", "interpolate", m, "--var-errs", "-l", vars)
	if r.code != exitFailed || !strings.Contains(r.stderr, "no value for 1 variable(s): pw") || r.stdout != "" {
		t.Errorf("--var-errs with pw missing: %+v", r)
	}

	r = cli(t, "manifest", "interpolate", m, "-o", ops, "-v", "pw=x", "-l", vars, "--path", "/instance_groups/name=web/instances")
	if r.code != exitOK || strings.TrimSpace(r.stdout) != "3" {
		t.Errorf("--path: %+v", r)
	}

	bad := put("bad.yml", "- {type: replace, path: /instance_groups/name=db/instances, value: 1}\n")
	r = cli(t, "manifest", "interpolate", m, "-o", bad)
	if r.code != exitFailed || !strings.Contains(r.stderr, "bad.yml: operation 1 (replace /instance_groups/name=db/instances): no item matches name=db") {
		t.Errorf("a failing op: %+v", r)
	}
	r = cli(t, "manifest", "interpolate", filepath.Join(dir, "absent.yml"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "absent.yml: no such file") {
		t.Errorf("a missing file: %+v", r)
	}
	for _, args := range [][]string{{"manifest"}, {"manifest", "deploy"}, {"manifest", "interpolate"}, {"manifest", "interpolate", m, "extra"}} {
		if r := cli(t, args...); r.code != 2 || !strings.Contains(r.stderr, "usage: deployment-engine manifest interpolate") {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

// --vars-store generates what the manifest declares and nothing gives,
// once: a second run reads the same values back.
func TestManifestVarsStore(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yml")
	if err := os.WriteFile(m, []byte("name: x\nproperties: {pw: ((pw)), given: ((given)), cert: ((tls.certificate))}\nvariables:\n- {name: pw, type: password}\n- {name: given, type: password}\n- {name: ca, type: certificate, options: {is_ca: true, common_name: ca}}\n- {name: tls, type: certificate, options: {ca: ca, common_name: x.internal}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "creds.yml")
	first := cli(t, "manifest", "interpolate", m, "--vars-store", store, "-v", "given=mine", "--var-errs")
	if first.code != exitOK || !strings.Contains(first.stdout, "given: mine") || !strings.Contains(first.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("first run: %+v", first)
	}
	st, err := os.Stat(store)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("store: %v %v", st, err)
	}
	held, _ := os.ReadFile(store)
	if strings.Contains(string(held), "mine") || !strings.Contains(string(held), "pw: ") || !strings.Contains(string(held), "tls:") {
		t.Errorf("the store holds what it should not or lacks what it should:\n%s", held)
	}
	second := cli(t, "manifest", "interpolate", m, "--vars-store", store, "-v", "given=mine", "--var-errs")
	if second.code != exitOK || second.stdout != first.stdout {
		t.Errorf("the second run differs:\n%s\n---\n%s", first.stdout, second.stdout)
	}
}

// manifest config prints the config of catalog bosh that deploys the
// manifest, and refuses what it cannot deploy by name.
func TestManifestConfig(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yml")
	if err := os.WriteFile(m, []byte(`name: shop
releases: [{name: dummy, version: latest}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
instance_groups:
- name: web
  instances: 2
  networks: [{name: default, static_ips: [10.0.0.5, 10.0.0.6]}]
  jobs: [{name: dummy, release: dummy, properties: {password: ((pw))}}]
variables: [{name: pw, type: password}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "creds.yml")
	r := cli(t, "manifest", "config", m, "--vars-store", store, "--home", "10.0.0.1", "--key", "/root/.ssh/id")
	if r.code != exitOK {
		t.Fatalf("manifest config: %+v", r)
	}
	var cfg struct {
		Components map[string][]string `json:"components"`
		Properties map[string]any      `json:"properties"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if strings.Join(cfg.Components["dummy"], ",") != "10.0.0.5,10.0.0.6" || cfg.Properties["catalog"] != "bosh" || cfg.Properties["release"] != "dummy" ||
		cfg.Properties["home"] != "10.0.0.1" || cfg.Properties["domain"] != "shop" {
		t.Errorf("config: %s", r.stdout)
	}
	if pw, _ := cfg.Properties["jobs"].(map[string]any)["dummy"].(map[string]any)["password"].(string); len(pw) != 20 {
		t.Errorf("the generated password did not reach the job: %q", pw)
	}
	if !strings.Contains(r.stderr, "warning: stemcells are not installed") {
		t.Errorf("no stemcell warning: %q", r.stderr)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{m, "--vars-store", store}, "--home is needed"},
		{[]string{m, "--home", "10.0.0.1"}, "no value for 1 variable(s): pw"},
	} {
		r := cli(t, append([]string{"manifest", "config"}, tc.args...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, tc.err) || r.stdout != "" {
			t.Errorf("%q: %+v, want %q", tc.args, r, tc.err)
		}
	}
}
