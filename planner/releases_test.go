package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/planner/validate"
	"github.com/deployment-engine/engine/services/contract"
)

// A cloudfoundry config runs on the release path once cf-release of its
// version is uploaded: its components become the version's jobs and the
// catalog's manifest their properties.
func TestCloudFoundryOnTheReleasePath(t *testing.T) {
	cat, err := catalog.Load("cloudfoundry", "")
	if err != nil {
		t.Fatal(err)
	}
	store, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &Planner{o: Options{Catalogs: map[string]*catalog.Catalog{"cloudfoundry": cat}, Releases: store}}
	cfg := contract.Config{Components: map[string][]string{"nats": {"10.0.0.2", "10.0.0.3"}, "database": {"10.0.0.4"}},
		Properties: contract.Properties{Domain: "cf.local", Home: "10.0.0.1", Root: "pw", Release: "v170"}}
	if rel, err := p.releaseFor(cfg); rel != nil || err != nil {
		t.Fatalf("before any upload: %v %v", rel, err)
	}
	cf := releasetest.Release{Name: "cf", Version: "170", Jobs: []releasetest.Job{
		{Name: "nats", Spec: "name: nats\ntemplates: {}\nproperties:\n  nats.machines: {}\n  nats.port: {}\n", Monit: ""},
		{Name: "postgres", Spec: "name: postgres\ntemplates: {}\nproperties:\n  ccdb.port: {}\n", Monit: ""},
	}}
	if _, _, err := store.Import(context.Background(), bytes.NewReader(releasetest.Build(cf))); err != nil {
		t.Fatal(err)
	}
	rel, err := p.releaseFor(cfg)
	if err != nil || rel == nil {
		t.Fatalf("after upload: %v %v", rel, err)
	}
	d, ps, err := p.deploymentFor(context.Background(), cfg, rel, "e-1", "")
	if err != nil || len(ps) > 0 {
		t.Fatalf("%v %v", err, ps)
	}
	if d.Jobs["postgres"] == nil || d.CompOf("postgres") != "database" {
		t.Errorf("database is not cf-release's postgres job: %v", d.Jobs)
	}
	nats := d.Properties("nats", d.Jobs["nats"][0])["nats"].(map[string]any)
	if !reflect.DeepEqual(nats["machines"], []any{"10.0.0.2", "10.0.0.3"}) || nats["port"] != 4222 {
		t.Errorf("nats properties from the manifest: %v", nats)
	}
	if port := d.Properties("postgres", d.Jobs["postgres"][0])["ccdb"].(map[string]any)["port"]; port != 5524 {
		t.Errorf("ccdb.port %v", port)
	}
}

// A BOSH job whose name has a hyphen (36 of cf-deployment's 83 jobs do)
// passes config validation as its upload did, and plans.
func TestHyphenatedJobName(t *testing.T) {
	needRuby(t)
	p := &Planner{o: Options{Catalogs: map[string]*catalog.Catalog{}, Releases: dummyStore(t)}}
	body, _ := json.Marshal(contract.Config{Components: map[string][]string{"multi-monit-dummy": {"10.0.0.2"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.0.0.1", Root: "pw", Catalog: BoshCatalog, Release: "dummy"}})
	cfg, ps := validate.Config(body, p.catalogsIn(context.Background()))
	if len(ps) > 0 {
		t.Fatalf("refused: %+v", ps)
	}
	rel, err := p.releaseFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.releaseSteps(context.Background(), steps.Builder{Config: cfg}, rel)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range out {
		found = found || s.Spec.ID == "10.0.0.2/multi-monit-dummy/start"
	}
	if !found {
		t.Errorf("no start step for multi-monit-dummy")
	}
}
