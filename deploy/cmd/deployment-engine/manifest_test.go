package main

import (
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
