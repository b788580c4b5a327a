package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// linkedRelease has a database job providing a link (db, shared by the
// test) beside one that provides the same type (replica), and an app
// whose config file lists what its db link gives.
func linkedRelease() releasetest.Release {
	return releasetest.Release{Name: "linked", Version: "1", Jobs: []releasetest.Job{
		{Name: "db", Spec: "name: db\ntemplates: {}\nprovides:\n- {name: db, type: database, properties: [port, admin.password]}\nproperties:\n  port: {default: 5432}\n  admin.password: {}\n"},
		{Name: "replica", Spec: "name: replica\ntemplates: {}\nprovides:\n- {name: db, type: database, properties: [port]}\nproperties:\n  port: {default: 5433}\n"},
		{Name: "app", Spec: "name: app\ntemplates:\n  app.conf.erb: config/app.conf\nconsumes:\n- {name: db, type: database}\n",
			Templates: map[string]string{"app.conf.erb": "db=<%= link('db').address %>:<%= link('db').p('port') %>\n" +
				"<% link('db').instances.each do |i| %>instance=<%= i.address %> <%= i.az %> <%= i.index %>\n<% end %>" +
				"password=<%= link('db').p('admin.password') %>\n"}},
	}}
}

const linkSecret = "LinkPw-4hx"

// Two clusters on one embedded JetStream: dbs shares its db job's link;
// the default cluster's app consumes it with deployment: dbs. The app's
// plan shows dbs's addresses and properties (its secret redacted) as of
// dbs's last successful deployment, a later one of dbs reaches it at its
// next plan, and a provider dbs does not share is refused.
func TestLinksFromAnotherCluster(t *testing.T) {
	needRuby(t)
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	ncB, err := b.Srv.ConnectCluster("dbs", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ncB.Close)
	resB, err := bus.Declare(ctx, ncB)
	if err != nil {
		t.Fatal(err)
	}
	store, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Import(ctx, bytes.NewReader(releasetest.Build(linkedRelease()))); err != nil {
		t.Fatal(err)
	}
	pB := testPlanner(t, &bustest.Bus{Srv: b.Srv, NC: ncB, Res: resB})
	t.Cleanup(pB.sched.Stop)
	pB.o.Releases, pB.o.Cluster = store, "dbs"
	pA := testPlanner(t, b)
	t.Cleanup(pA.sched.Stop)
	pA.o.Releases, pA.o.Port = store, 50000
	pA.o.SharedLinks = func(ctx context.Context, dep string) ([]bosh.RemoteProvider, error) {
		if dep != "dbs" {
			return nil, errors.New("this engine has no cluster " + dep)
		}
		return pB.SharedProviders(ctx)
	}

	// dbs: its last successful deployment shares db (as primary) and not
	// replica; a deployment of it that failed since is not what it shares.
	dbs := func(port int, ip string) contract.Config {
		return contract.Config{Components: map[string][]string{"db": {ip, "10.1.0.2"}, "replica": {"10.1.0.3"}},
			Properties: contract.Properties{Domain: "dbs.local", Home: "10.1.0.100", Root: "pw", Catalog: BoshCatalog, Release: "linked/1", Deployment: "dbs",
				AZs:  map[string][]string{"z2": {"10.1.0.2"}},
				Jobs: map[string]any{"db": map[string]any{"port": port, "admin": map[string]any{"password": linkSecret}}},
				Links: map[string]contract.JobLinks{"db": {Provides: map[string]*contract.ProvideLink{"db": {As: "primary", Shared: true}}},
					"replica": {Provides: map[string]*contract.ProvideLink{"db": {As: "standby"}}}}}}
	}
	deployed := func(id, state string, cfg contract.Config) {
		t.Helper()
		rec, _ := json.Marshal(sched.Record{Deployment: contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: state, Created: time.Now()}}})
		if _, err := resB.Deployments.Put(ctx, id, rec); err != nil {
			t.Fatal(err)
		}
		doc, err := bus.EncodeConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resB.Scheduler.Put(ctx, configKey(id), doc); err != nil {
			t.Fatal(err)
		}
	}
	app := func(from string) contract.Config {
		return contract.Config{Components: map[string][]string{"app": {"10.0.0.1"}},
			Properties: contract.Properties{Domain: "a.local", Home: "10.0.0.100", Root: "pw", Catalog: BoshCatalog, Release: "linked/1",
				Links: map[string]contract.JobLinks{"app": {Consumes: map[string]*contract.ConsumeLink{"db": {From: from, Deployment: "dbs"}}}}}}
	}
	if err := bus.StoreConfig(ctx, b.Res.Config, app("primary")); err != nil {
		t.Fatal(err)
	}

	// Before dbs deployed anything, there is nothing to take.
	if _, err := pA.previewOf(ctx, nil); err == nil || !strings.Contains(err.Error(), "nothing deployed yet") {
		t.Fatalf("a plan before dbs deployed: %v", err)
	}
	deployed("d-20000101-000001-000001", contract.DeploySucceeded, dbs(6000, "10.1.0.1"))
	deployed("d-20000101-000002-000001", contract.DeployFailed, dbs(6666, "10.1.0.9"))
	plan := func() string {
		t.Helper()
		p, err := pA.previewOf(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(p)
		if strings.Contains(string(out), linkSecret) {
			t.Errorf("the plan shows dbs's secret:\n%s", out)
		}
		return string(out)
	}
	out := plan()
	for _, want := range []string{`+db=10.1.0.1:6000\n`, `+instance=10.1.0.1 z1 0\n`, `+instance=10.1.0.2 z2 1\n`, `+password=\u003credacted\u003e\n`} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %s:\n%s", want, out)
		}
	}
	// A later deploy of dbs reaches app's next plan.
	deployed("d-20000101-000003-000001", contract.DeploySucceeded, dbs(6001, "10.1.0.4"))
	if out := plan(); !strings.Contains(out, `+db=10.1.0.4:6001\n`) {
		t.Errorf("the plan after dbs's next deploy:\n%s", out)
	}

	// A provider dbs does not share, and a cluster the engine lacks.
	for _, tc := range []struct {
		cfg  contract.Config
		want string
	}{
		{app("standby"), `job app consumes link \"db\" of type database from \"standby\" of deployment dbs, and replica.db as standby (database) there is not shared: add shared: true to its provides.db in dbs's manifest (it shares db.db as primary (database))`},
		{func() contract.Config {
			c := app("primary")
			c.Properties.Links["app"].Consumes["db"].Deployment = "dbz"
			return c
		}(),
			`job app consumes link \"db\" of type database from \"primary\" of deployment dbz, and this engine has no cluster dbz`},
	} {
		body, _ := json.Marshal(tc.cfg)
		_, err := pA.previewOf(ctx, body)
		got, _ := json.Marshal(err)
		if err == nil || !strings.Contains(string(got), tc.want) {
			t.Errorf("plan of %s: %v %s\nwant %s", body, err, got, tc.want)
		}
	}

	// An engine that holds no other cluster refuses the link, saying why.
	pA.o.SharedLinks = nil
	_, err = pA.previewOf(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "need the engine run whole on its embedded NATS") {
		t.Errorf("a plan without other clusters: %v", err)
	}
}
