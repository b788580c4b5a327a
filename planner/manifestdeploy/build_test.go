package manifestdeploy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/cloudconfig"
	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

const simple = `
name: simple
releases: [{name: sec, version: 1}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: db
  instances: 2
  azs: [z1, z2]
  networks: [{name: private}]
  jobs:
  - name: db
    release: sec
    properties:
      admin: {user: ((admin_user)), password: ((admin_pw))}
      url: "postgres://admin:((admin_pw))@db"
variables:
- {name: admin_user, type: password}
- {name: admin_pw, type: password}
`

func cloud() contract.CloudConfig {
	return contract.CloudConfig{Home: "10.0.0.1", SSH: contract.CloudSSH{User: "root", Key: "/etc/de/keys/root"},
		AZs: []contract.CloudAZ{
			{Name: "z1", Machines: []contract.CloudMachine{{IP: "10.0.0.5"}, {IP: "10.0.0.6"}}},
			{Name: "z2", Machines: []contract.CloudMachine{{IP: "10.0.0.7"}, {IP: "10.0.0.8", User: "admin"}}},
		}}
}

// A manifest becomes a config on the cloud config's machines: its
// variables generated, the places they went marked secret, each instance
// in its zone; a second build with what the first kept generates nothing
// and keeps every machine.
func TestBuild(t *testing.T) {
	res, err := Build(contract.ManifestDeploy{Manifest: simple}, cloud(), Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "simple" || !reflect.DeepEqual(res.Generated, []string{"admin_user", "admin_pw"}) {
		t.Fatalf("name %q, generated %v", res.Name, res.Generated)
	}
	want := cloudconfig.Placement{"db": {"10.0.0.5", "10.0.0.7"}}
	if !reflect.DeepEqual(res.Placement, want) {
		t.Fatalf("placement %v", res.Placement)
	}
	cfg := res.Config
	if !reflect.DeepEqual(cfg.Components["db"], []string{"10.0.0.5", "10.0.0.7"}) || cfg.Properties.Key != "/etc/de/keys/root" ||
		cfg.Properties.Home != "10.0.0.1" || cfg.Properties.Release != "sec/1" {
		t.Fatalf("config %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Properties.AZs, map[string][]string{"z1": {"10.0.0.5"}, "z2": {"10.0.0.7"}}) {
		t.Fatalf("zones %v", cfg.Properties.AZs)
	}
	if !reflect.DeepEqual(cfg.Properties.SecretProperties, []string{"jobs.db.admin.password", "jobs.db.admin.user", "jobs.db.url"}) {
		t.Fatalf("secret places %v", cfg.Properties.SecretProperties)
	}
	pw := res.Kept["admin_pw"].(string)
	red, _ := json.Marshal(cfg.Redact())
	if strings.Contains(string(red), pw) || strings.Contains(string(red), res.Kept["admin_user"].(string)) {
		t.Fatalf("the redacted config holds a generated value: %s", red)
	}

	// Deployed again: the same values, the same machines.
	stored := cfg
	again, err := Build(contract.ManifestDeploy{Manifest: simple}, cloud(), Prior{Vars: res.Kept, Declared: res.Declared, Placement: res.Placement}, stored)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Generated) != 0 || !reflect.DeepEqual(again.Config, cfg) || !reflect.DeepEqual(again.Kept, res.Kept) {
		t.Fatalf("a second deploy changed something: generated %v", again.Generated)
	}

	// A given value wins over the kept one, which stays kept.
	given, err := Build(contract.ManifestDeploy{Manifest: simple, Vars: map[string]any{"admin_pw": "given-pw-1"}}, cloud(), Prior{Vars: res.Kept, Declared: res.Declared, Placement: res.Placement}, stored)
	if err != nil {
		t.Fatal(err)
	}
	if got := given.Config.Properties.Jobs["db"].(map[string]any)["url"]; got != "postgres://admin:given-pw-1@db" || given.Kept["admin_pw"] != pw {
		t.Fatalf("given value: %v, kept %v", got, given.Kept["admin_pw"])
	}
}

// A kept machine that left the stored config is free again: the
// instance may move; one still there stays.
func TestBuildKeepsOnlyStoredMachines(t *testing.T) {
	prev := cloudconfig.Placement{"db": {"10.0.0.6", "10.0.0.7"}}
	stored := contract.Config{Components: map[string][]string{"db": {"10.0.0.7"}}}
	res, err := Build(contract.ManifestDeploy{Manifest: simple}, cloud(), Prior{Placement: prev}, stored)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Placement["db"], []string{"10.0.0.5", "10.0.0.7"}) {
		t.Fatalf("placement %v", res.Placement)
	}
}

func TestBuildRefused(t *testing.T) {
	noKey := cloud()
	noKey.SSH.Key = ""
	for _, tc := range []struct {
		name string
		in   contract.ManifestDeploy
		cc   contract.CloudConfig
		err  string
	}{
		{"no name", contract.ManifestDeploy{Manifest: "instance_groups: []"}, cloud(), "no name"},
		{"not a map", contract.ManifestDeploy{Manifest: "- 1"}, cloud(), "a YAML map"},
		{"missing variable", contract.ManifestDeploy{Manifest: strings.Replace(simple, "((admin_user))", "((nobody))", 1)}, cloud(), "variables without a value: nobody"},
		{"full zone", contract.ManifestDeploy{Manifest: strings.Replace(simple, "instances: 2\n  azs: [z1, z2]", "instances: 3\n  azs: [z1]", 1)}, cloud(),
			"instance group db: instance 2 finds no free machine in zone(s) z1"},
		{"static IP of no machine", contract.ManifestDeploy{Manifest: strings.Replace(simple, "networks: [{name: private}]", "networks: [{name: private, static_ips: [10.0.0.5, 10.0.0.99]}]", 1)}, cloud(),
			"static IP 10.0.0.99 is no machine of the cloud config"},
		{"no key", contract.ManifestDeploy{Manifest: simple}, noKey, "no ssh key"},
		{"bad ops", contract.ManifestDeploy{Manifest: simple, Ops: []string{"- type: replace\n  path: /nope/x\n  value: 1\n"}}, cloud(), "ops[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.in, tc.cc, Prior{}, contract.Config{})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want …%s…", err, tc.err)
			}
		})
	}
}

// Values given as JSON read as YAML would: a whole number is a count.
func TestBuildGivenNumbers(t *testing.T) {
	m := strings.Replace(simple, "instances: 2", "instances: ((n))", 1)
	res, err := Build(contract.ManifestDeploy{Manifest: m, Vars: map[string]any{"n": float64(1)}}, cloud(), Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Placement["db"]) != 1 {
		t.Fatalf("placement %v", res.Placement)
	}
}

// A v1 manifest (jobs with templates, global properties) is placed the
// same way; a variable in its global properties is marked there.
func TestBuildV1(t *testing.T) {
	const v1 = `
name: old
release: {name: sec, version: 1}
jobs:
- name: db
  instances: 1
  networks: [{name: default}]
  templates: [{name: db}]
properties:
  admin: {user: admin, pass: ((pw))}
variables:
- {name: pw, type: password}
`
	res, err := Build(contract.ManifestDeploy{Manifest: v1}, cloud(), Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Config.Components["db"], []string{"10.0.0.5"}) ||
		!reflect.DeepEqual(res.Config.Properties.SecretProperties, []string{"global.admin.pass"}) {
		t.Fatalf("config %+v", res.Config)
	}
	red, _ := json.Marshal(res.Config.Redact())
	if strings.Contains(string(red), res.Kept["pw"].(string)) || !strings.Contains(string(red), `"user":"admin"`) {
		t.Fatalf("redacted: %s", red)
	}
}

const certs = `
name: tls
releases: [{name: sec, version: 1}]
instance_groups:
- name: db
  instances: 1
  azs: [z1]
  networks: [{name: private}]
  jobs:
  - name: db
    release: sec
    properties: {ca: ((db_ca.certificate)), cert: ((db_tls.certificate)), key: ((db_tls.private_key)), pw: ((pw))}
variables:
- {name: db_ca, type: certificate, options: {is_ca: true, common_name: db-ca}}
- {name: db_tls, type: certificate, options: {ca: db_ca, common_name: db, alternative_names: [ALT]}}
- {name: pw, type: password}
`

// A CA marked to be generated anew is, and so is the certificate it
// signs, which verifies against the new CA; the password stays. A
// certificate whose options changed keeps its value, with a warning that
// says how to have it generated anew; a marked name the manifest does not
// declare stays marked.
func TestBuildRegenerates(t *testing.T) {
	m := strings.ReplaceAll(certs, "ALT", "db.internal")
	first, err := Build(contract.ManifestDeploy{Manifest: m}, cloud(), Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Declared["db_tls"]; got.Type != "certificate" || got.CA != "db_ca" || got.Generated.IsZero() {
		t.Fatalf("db_tls declared %+v", got)
	}
	stored := first.Config
	prior := Prior{Vars: first.Kept, Declared: first.Declared, Placement: first.Placement, Regenerate: []string{"db_ca", "gone"}}
	again, err := Build(contract.ManifestDeploy{Manifest: m}, cloud(), prior, stored)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Regenerated, []string{"db_ca", "db_tls"}) || again.Kept["pw"] != first.Kept["pw"] {
		t.Fatalf("regenerated %v; pw kept %v", again.Regenerated, again.Kept["pw"] == first.Kept["pw"])
	}
	pemOf := func(v manifest.Vars, n string) string { return v[n].(map[string]any)["certificate"].(string) }
	if pemOf(again.Kept, "db_ca") == pemOf(first.Kept, "db_ca") || pemOf(again.Kept, "db_tls") == pemOf(first.Kept, "db_tls") {
		t.Fatal("the CA or its certificate kept its value")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(pemOf(again.Kept, "db_ca")))
	block, _ := pem.Decode([]byte(pemOf(again.Kept, "db_tls")))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "db.internal"}); err != nil {
		t.Errorf("the new db_tls does not verify against the new db_ca: %v", err)
	}
	if w := strings.Join(again.Warnings, "\n"); !strings.Contains(w, "gone is marked") {
		t.Errorf("no warning of the marked name not declared: %s", w)
	}
	if p := again.pending([]string{"db_ca", "gone"}); !reflect.DeepEqual(p, []string{"gone"}) {
		t.Errorf("still marked %v, want [gone]", p)
	}

	changed := strings.ReplaceAll(certs, "ALT", "db.example")
	prior = Prior{Vars: again.Kept, Declared: again.Declared, Placement: again.Placement}
	third, err := Build(contract.ManifestDeploy{Manifest: changed}, cloud(), prior, stored)
	if err != nil {
		t.Fatal(err)
	}
	if pemOf(third.Kept, "db_tls") != pemOf(again.Kept, "db_tls") || len(third.Generated) != 0 {
		t.Fatalf("changed options generated %v", third.Generated)
	}
	if w := strings.Join(third.Warnings, "\n"); !strings.Contains(w, "variable db_tls: its type or options changed") || !strings.Contains(w, "regenerate db_tls") || strings.Contains(w, "db_ca:") {
		t.Errorf("warnings of the changed options: %s", w)
	}
}

// A group's persistent disk goes on each of its machines: the device the
// cloud config names for one, a directory on the other.
func TestBuildPersistentDisks(t *testing.T) {
	cc := cloud()
	cc.Disks = map[string]string{"10.0.0.5": "/dev/vdb"}
	m := strings.Replace(simple, "  networks: [{name: private}]\n", "  networks: [{name: private}]\n  persistent_disk: 512\n", 1)
	res, err := Build(contract.ManifestDeploy{Manifest: m}, cc, Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]contract.PersistentDisk{"10.0.0.5": {SizeMB: 512, Device: "/dev/vdb"}, "10.0.0.7": {SizeMB: 512}}
	if got := res.Config.Properties.PersistentDisks; !reflect.DeepEqual(got, want) {
		t.Errorf("persistent disks %+v, want %+v", got, want)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "persistent_disk") {
			t.Errorf("a warning about the disk: %s", w)
		}
	}
}

// A machine with a key of its own (root still) is logged in to with it:
// the config names it in node_keys, placed or not, and the others keep
// the cloud config's key.
func TestBuildMachineKey(t *testing.T) {
	cc := cloud()
	cc.AZs[1].Machines[1] = contract.CloudMachine{IP: "10.0.0.8", User: "root", Key: "/etc/de/keys/z2"}
	// Not placed, and still named: a machine no longer placed is logged
	// in to with its key to remove what it ran.
	cc.AZs[0].Machines = append(cc.AZs[0].Machines, contract.CloudMachine{IP: "10.0.0.9", Key: "/etc/de/keys/z1-spare"})
	in := contract.ManifestDeploy{Manifest: strings.Replace(simple, "networks: [{name: private}]", "networks: [{name: private, static_ips: [10.0.0.5, 10.0.0.8]}]", 1)}
	res, err := Build(in, cc, Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Config.Properties; p.Key != "/etc/de/keys/root" || len(p.NodeKeys) != 2 || p.NodeKeys["10.0.0.8"] != "/etc/de/keys/z2" ||
		p.NodeKeys["10.0.0.9"] != "/etc/de/keys/z1-spare" {
		t.Fatalf("key %q, node keys %v", p.Key, p.NodeKeys)
	}
	if a := res.Config.Properties.NodeAuth(); a.KeyFor("10.0.0.8") != "/etc/de/keys/z2" || a.KeyFor("10.0.0.5") != "/etc/de/keys/root" {
		t.Fatalf("the nodes' keys: %+v", a)
	}
}

// A machine given a user other than root is logged in to as that user
// (node_users, placed or not), with its own key or the cloud config's; a
// cloud config whose ssh.user is not root names every machine so.
func TestBuildMachineUser(t *testing.T) {
	in := contract.ManifestDeploy{Manifest: strings.Replace(simple, "networks: [{name: private}]", "networks: [{name: private, static_ips: [10.0.0.5, 10.0.0.8]}]", 1)}
	res, err := Build(in, cloud(), Prior{}, contract.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Config.Properties.NodeAuth()
	if len(a.Users) != 1 || a.UserFor("10.0.0.8") != "admin" || a.UserFor("10.0.0.5") != "root" || a.KeyFor("10.0.0.8") != "/etc/de/keys/root" {
		t.Fatalf("the nodes' logins: %+v", a)
	}
	cc := cloud()
	cc.SSH.User = "ops"
	if res, err = Build(in, cc, Prior{}, contract.Config{}); err != nil {
		t.Fatal(err)
	}
	if u := res.Config.Properties.NodeUsers; len(u) != 4 || u["10.0.0.5"] != "ops" || u["10.0.0.7"] != "ops" || u["10.0.0.8"] != "admin" {
		t.Fatalf("with ssh.user ops, node users %v", u)
	}
}
