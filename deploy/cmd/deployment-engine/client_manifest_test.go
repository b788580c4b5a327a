package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// dummyManifest places the dummy release's dummy job; its instances and
// a property come from variables.
const dummyManifest = `
name: simple
releases: [{name: dummy, version: 0.2-dev}]
instance_groups:
- name: dummy
  instances: ((n))
  azs: [z1]
  networks: [{name: default}]
  jobs: [{name: dummy_with_properties, release: dummy, properties: {dummy_with_properties: {echo_value: ((motd_pw))}}}]
variables:
- {name: motd_pw, type: password}
`

// sshKeyFile writes an SSH private key to a file of its own.
func sshKeyFile(t *testing.T) string {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cloud-config update and print against the real engine, and manifest
// deploy: refused before a cloud config, its files (-o, -l, -v) sent and
// read by the engine, checked on its nodes unless --check=false, then
// stored and refused only by its loopback nodes that no SSH reaches (the
// engine contacts nothing else).
func TestCLIManifestDeploy(t *testing.T) {
	startEngine(t)
	if r := cli(t, "release", "upload", "../../../planner/release/testdata/dummy-release.tgz"); r.code != exitOK {
		t.Fatalf("upload: %+v", r)
	}
	man := writeFile(t, dummyManifest)
	three := writeFile(t, "n: 3\n")
	if r := cli(t, "manifest", "deploy", man, "-l", three); r.code != exitFailed || !strings.Contains(r.stderr, "cloud-config update") {
		t.Fatalf("before a cloud config: %+v", r)
	}
	if r := cli(t, "cloud-config"); r.code != exitFailed || !strings.Contains(r.stderr, "cloud-config update FILE") {
		t.Fatalf("no cloud config to print: %+v", r)
	}
	if r := cli(t, "cloud-config", "update", writeFile(t, "home: 127.0.0.1\nazs: [{name: z1, extra: 1}]\n")); r.code != exitFailed ||
		!strings.Contains(r.stderr, "azs[0].extra: unknown key") || !strings.Contains(r.stderr, "HTTP 400") {
		t.Fatalf("a bad cloud config: %+v", r)
	}
	cc := "home: 127.0.0.1\nssh: {user: root, key: " + sshKeyFile(t) + "}\nazs:\n- name: z1\n  machines: [127.0.0.2, 127.0.0.3]\n"
	if r := cli(t, "cloud-config", "update", writeFile(t, cc)); r.code != exitOK || !strings.Contains(r.stdout, "cloud config stored: 2 machines in 1 zones") {
		t.Fatalf("update: %+v", r)
	}
	if r := cli(t, "cloud-config"); r.code != exitOK || !strings.Contains(r.stdout, "- name: z1\n  machines: [127.0.0.2, 127.0.0.3]") {
		t.Fatalf("print: %+v", r)
	}
	if r := cli(t, "cloud-config", "--json"); r.code != exitOK || !strings.Contains(r.stdout, `"ip": "127.0.0.3"`) {
		t.Fatalf("print --json: %+v", r)
	}
	// -l gives instances: 3 machines wanted of z1's 2.
	if r := cli(t, "manifest", "deploy", man, "-l", three); r.code != exitFailed || !strings.Contains(r.stderr, "instance 2 finds no free machine in zone(s) z1") {
		t.Fatalf("a full zone: %+v", r)
	}
	// The ops file is applied: its variable has no value; -v gives it.
	ops := writeFile(t, "- type: replace\n  path: /instance_groups/name=dummy/jobs/name=dummy_with_properties/properties/dummy_with_properties/echo_value\n  value: ((extra))\n")
	if r := cli(t, "manifest", "deploy", man, "-l", three, "-o", ops); r.code != exitFailed || !strings.Contains(r.stderr, "variables without a value: extra") {
		t.Fatalf("an ops file's variable: %+v", r)
	}
	two := writeFile(t, "n: 2\n")
	// Checked first, as config set checks: no SSH answers on loopback.
	r := cli(t, "manifest", "deploy", man, "-l", two, "-o", ops, "-v", "extra=given-extra-1")
	if r.code != exitFailed || !strings.Contains(r.stderr, "config rejected") || !strings.Contains(r.stderr, "127.0.0.2") {
		t.Fatalf("deploy, checked: %+v", r)
	}
	r = cli(t, "manifest", "deploy", man, "-l", two, "-o", ops, "-v", "extra=given-extra-1", "--check=false")
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot reach every node") ||
		!strings.Contains(r.stderr, "manifest simple: deploying into the default cluster (no cluster is named simple") {
		t.Fatalf("deploy: %+v", r)
	}
	r = cli(t, "config", "get")
	if r.code != exitOK || !strings.Contains(r.stdout, `"dummy_with_properties": [`) || !strings.Contains(r.stdout, `"127.0.0.3"`) ||
		!strings.Contains(r.stdout, `"echo_value": "<redacted>"`) || strings.Contains(r.stdout, "given-extra-1") {
		t.Fatalf("the stored config: %+v", r)
	}
	// The manifest's instances, by group and index; no node answers.
	words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	r = cli(t, "instances")
	if out := words(r.stdout); r.code != exitUnhealthy || !strings.Contains(out, "dummy/0 failing z1 127.0.0.2 dummy/1 failing z1 127.0.0.3") {
		t.Fatalf("instances: %+v", r)
	}
	if r := cli(t, "instances", "--ps"); r.code != exitUnhealthy || !strings.Contains(words(r.stdout), "dummy/0 - failing z1 127.0.0.2 ~ dummy_with_properties DOWN") {
		t.Fatalf("instances --ps: %+v", r)
	}
	// The variable the engine generated, listed without its value, and
	// marked to be generated anew.
	if r := cli(t, "manifest", "variables"); r.code != exitOK || !strings.Contains(r.stdout, "motd_pw") || !strings.Contains(r.stdout, "keeps it") {
		t.Fatalf("variables: %+v", r)
	}
	if r := cli(t, "manifest", "variables", "regenerate", "nope"); r.code != exitFailed || !strings.Contains(r.stderr, "HTTP 404") || !strings.Contains(r.stderr, "it generated motd_pw") {
		t.Fatalf("regenerate an unknown variable: %+v", r)
	}
	if r := cli(t, "manifest", "variables", "regenerate", "motd_pw"); r.code != exitOK || !strings.Contains(r.stdout, "motd_pw of manifest simple is generated anew at the next manifest deploy") {
		t.Fatalf("regenerate: %+v", r)
	}
	if r := cli(t, "manifest", "variables", "--json"); r.code != exitOK || !strings.Contains(r.stdout, `"regenerate": true`) {
		t.Fatalf("variables --json: %+v", r)
	}
	// Once a cluster has the manifest's name, the manifest goes there
	// (which has no cloud config yet); a named cluster takes no manifest
	// of another name.
	if r := cli(t, "clusters", "create", "simple"); r.code != exitOK {
		t.Fatalf("clusters create: %+v", r)
	}
	r = cli(t, "manifest", "deploy", man, "-l", two, "-o", ops, "-v", "extra=given-extra-1")
	if r.code != exitFailed || !strings.Contains(r.stderr, "manifest simple: deploying into cluster simple, of its name") || !strings.Contains(r.stderr, "cloud-config update") {
		t.Fatalf("deploy into the cluster of its name: %+v", r)
	}
	if r := cli(t, "cloud-config", "update", writeFile(t, cc), "--cluster", "simple"); r.code != exitOK {
		t.Fatalf("the named cluster's cloud config: %+v", r)
	}
	rename := writeFile(t, "- {type: replace, path: /name, value: other}\n")
	r = cli(t, "manifest", "deploy", man, "-l", two, "-o", ops, "-o", rename, "-v", "extra=given-extra-1", "--cluster", "simple")
	if r.code != exitFailed || !strings.Contains(r.stderr, `it is named "other" and this is cluster "simple"`) || !strings.Contains(r.stderr, "HTTP 400") {
		t.Fatalf("another manifest into cluster simple: %+v", r)
	}
	for _, args := range [][]string{{"manifest", "deploy"}, {"manifest", "deploy", man, man}, {"cloud-config", "update"}, {"cloud-config", "x"},
		{"manifest", "variables", "x"}, {"manifest", "variables", "regenerate"}, {"instances", "x"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
}
