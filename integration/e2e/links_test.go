package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/contract"
)

// simpleLinkRelease is shaped as the BOSH project's links test release:
// two jobs provide a link of one type (database, backup_database), and
// api_server consumes both, so only explicit wiring tells them apart.
func simpleLinkRelease() []byte {
	provider := func(name, link string) releasetest.Job {
		return releasetest.Job{Name: name,
			Spec: fmt.Sprintf("---\nname: %s\ntemplates: {db.conf.erb: config/db.conf}\npackages: []\n"+
				"provides: [{name: %s, type: db, properties: [port, db_scheme]}]\n"+
				"properties:\n  port: {default: 5432}\n  db_scheme: {default: postgres}\n", name, link),
			Templates: map[string]string{"db.conf.erb": "port=<%= p('port') %>\n"}}
	}
	return releasetest.Build(releasetest.Release{Name: "simple-link", Version: "1", Jobs: []releasetest.Job{
		provider("database", "db"),
		provider("backup_database", "backup_db"),
		{Name: "api_server", Spec: "---\nname: api_server\ntemplates: {api.conf.erb: config/api.conf}\npackages: []\n" +
			"consumes:\n- {name: db, type: db}\n- {name: backup_db, type: db}\n- {name: metrics, type: db}\n",
			Templates: map[string]string{"api.conf.erb": `db=<%= link('db').address %>:<%= link('db').p('port') %> <%= link('db').p('db_scheme') %>
backup=<%= link('backup_db').address %>:<%= link('backup_db').p('port') %> <%= link('backup_db').p('db_scheme') %>
<% if_link('metrics') do |m| %>metrics=<%= m.address %><% end.else do %>metrics=none<% end %>
`}},
	}})
}

// linksManifest places database, backup_database and api_server on three
// machines, api_server wired to both by their aliases and to no metrics.
func linksManifest(consumes string) string {
	return fmt.Sprintf(`
name: e2e-links
releases: [{name: simple-link, version: "1"}]
stemcells: [{alias: default, os: ubuntu-noble, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: database
  instances: 1
  azs: [z1]
  networks: [{name: default, static_ips: [%s]}]
  jobs:
  - {name: database, release: simple-link, provides: {db: {as: primary_db}}, properties: {port: 5433}}
- name: backup
  instances: 1
  azs: [z1]
  networks: [{name: default, static_ips: [%s]}]
  jobs:
  - {name: backup_database, release: simple-link, provides: {backup_db: {as: backup, shared: true}}, properties: {port: 6543, db_scheme: mysql}}
- name: api
  instances: 1
  azs: [z1]
  networks: [{name: default, static_ips: [%s]}]
  jobs:
  - {name: api_server, release: simple-link, consumes: %s}
`, ips(0)[0], ips(1)[0], ips(2)[0], consumes)
}

// A v2 manifest with explicit links and aliases: api_server's config
// lists both providers' addresses and properties, a link set to nil is
// not consumed, a second deploy changes nothing; without the wiring the
// two providers of one type are named and nothing is deployed.
func TestManifestExplicitLinks(t *testing.T) {
	e := engine(t)
	defer resetBosh(t, "database", "backup_database", "api_server")
	upload(t, e, simpleLinkRelease(), 201)
	cc := fmt.Sprintf("home: %s\nssh: {user: root, key: %s}\nazs:\n- {name: z1, machines: [%s, %s, %s]}\n",
		bed.Home, bed.KeyPath, ips(0)[0], ips(1)[0], ips(2)[0])
	if code, out := e.Do("PUT", "/deployment-engine/cloud-config", cc); code != 200 {
		t.Fatalf("cloud config: %d %s", code, out)
	}

	code, out := e.Do("POST", "/deployment-engine/manifest", map[string]any{"manifest": linksManifest("{metrics: nil}")})
	if code == 202 || !strings.Contains(string(out), `consumes link \"db\" of type db, and several links provide one (backup_database.backup_db as backup, database.db as primary_db)`) {
		t.Fatalf("implicit links with two providers of a type: %d %s", code, out)
	}

	body := map[string]any{"manifest": linksManifest("{db: {from: primary_db}, backup_db: {from: backup}, metrics: nil}")}
	deployed := func() contract.Deployment {
		t.Helper()
		code, out := e.Do("POST", "/deployment-engine/manifest", body)
		var started contract.ManifestDeployed
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("manifest deploy: %d %s", code, out)
		}
		return wait(t, e, started.ID, 10*time.Minute)
	}
	d := deployed()
	if d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	want := fmt.Sprintf("db=%s:5433 postgres\nbackup=%s:6543 mysql\nmetrics=none\n", ips(0)[0], ips(1)[0])
	if got := inNode(t, 2, "cat /var/vcap/jobs/api_server/config/api.conf"); got != want {
		t.Errorf("api_server's config:\n%s\nwant\n%s", got, want)
	}
	if d = deployed(); d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("second deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}
	linksFromAnotherCluster(t, e)
}

// appManifest places api_server in cluster e2e-app on the fourth machine,
// its links taken from the default cluster's deployment e2e-links.
func appManifest(consumes string) string {
	return fmt.Sprintf(`
name: e2e-app
releases: [{name: simple-link, version: "1"}]
stemcells: [{alias: default, os: ubuntu-noble, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: api
  instances: 1
  azs: [z1]
  networks: [{name: default, static_ips: [%s]}]
  jobs:
  - {name: api_server, release: simple-link, consumes: %s}
`, ips(3)[0], consumes)
}

// Links from another deployment: cluster e2e-app's api_server takes the
// link e2e-links shares (backup, shared: true) with deployment:
// e2e-links; its config on its node lists that provider's address and
// properties, a second deploy changes nothing, and a provider e2e-links
// does not share is refused, saying to share it.
func linksFromAnotherCluster(t *testing.T, e *harness.Engine) {
	t.Helper()
	if code, out := e.Do("POST", "/deployment-engine/clusters", map[string]any{"name": "e2e-app"}); code != 201 {
		t.Fatalf("make cluster e2e-app: %d %s", code, out)
	}
	C := "/deployment-engine/clusters/e2e-app"
	cc := fmt.Sprintf("home: %s\nssh: {user: root, key: %s}\nazs:\n- {name: z1, machines: [%s]}\n", bed.Home, bed.KeyPath, ips(3)[0])
	if code, out := e.Do("PUT", C+"/cloud-config", cc); code != 200 {
		t.Fatalf("e2e-app's cloud config: %d %s", code, out)
	}
	code, out := e.Do("POST", C+"/manifest", map[string]any{"manifest": appManifest("{db: {from: primary_db, deployment: e2e-links}, backup_db: {from: backup, deployment: e2e-links}, metrics: nil}")})
	if code == 202 || !strings.Contains(string(out), `database.db as primary_db (db) there is not shared: add shared: true to its provides.db in e2e-links's manifest (it shares backup_database.backup_db as backup (db))`) {
		t.Fatalf("a link from a provider not shared: %d %s", code, out)
	}
	body := map[string]any{"manifest": appManifest("{db: {from: backup, deployment: e2e-links}, backup_db: {from: backup, deployment: e2e-links}, metrics: nil}")}
	deployed := func() contract.Deployment {
		t.Helper()
		code, out := e.Do("POST", C+"/manifest", body)
		var started contract.ManifestDeployed
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("e2e-app's manifest deploy: %d %s", code, out)
		}
		return waitAll(t, e, map[string]string{C: started.ID}, 10*time.Minute)[C]
	}
	d := deployed()
	if d.State != "succeeded" {
		t.Fatalf("e2e-app's deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	want := fmt.Sprintf("db=%[1]s:6543 mysql\nbackup=%[1]s:6543 mysql\nmetrics=none\n", ips(1)[0])
	if got := inNode(t, 3, "cat /var/vcap/jobs/api_server/config/api.conf"); got != want {
		t.Errorf("e2e-app's api_server config:\n%s\nwant\n%s", got, want)
	}
	if d = deployed(); d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("e2e-app's second deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}
}
