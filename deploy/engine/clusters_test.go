package engine

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A named cluster is made through the API, holds its own config apart
// from the default cluster's, keeps its machines to itself, is labelled
// in the metrics, and is there again, config and all, when the engine
// starts again on its data dir.
func TestNamedClusters(t *testing.T) {
	dir := t.TempDir()
	base, stop := engineUnderTest(t, dir)
	E := base + "/deployment-engine"
	cfg := func(ip string) string {
		return `{"components": {"web": ["` + ip + `"]}, "properties": {"catalog": "starter", "domain": "t.local", "home": "127.0.0.1", "root": "pw", "checkdisk": 0, "adduser": 0}}`
	}
	clusters := func() map[string]contract.Cluster {
		t.Helper()
		code, body, _ := do(t, "GET", E+"/clusters", "", true)
		var cs []contract.Cluster
		if code != 200 || json.Unmarshal(body, &cs) != nil {
			t.Fatalf("clusters: %d %s", code, body)
		}
		out := map[string]contract.Cluster{}
		for _, c := range cs {
			out[c.Name] = c
		}
		return out
	}

	if code, body, _ := do(t, "POST", E+"/clusters", `{"name": "prod"}`, true); code != 201 {
		t.Fatalf("make prod: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", E+"/clusters/prod/config?check=0", cfg("127.0.0.2"), true); code != 201 {
		t.Fatalf("prod's config: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", E+"/clusters/prod/config", "", true); code != 200 || !strings.Contains(string(body), "127.0.0.2") {
		t.Fatalf("prod's config: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", E+"/config", "", true); code != 404 {
		t.Fatalf("the default cluster's config, none posted: %d %s", code, body)
	}
	// A machine belongs to one cluster.
	code, body, _ := do(t, "POST", E+"/config?check=0", cfg("127.0.0.2"), true)
	if code != 400 || !strings.Contains(string(body), "node 127.0.0.2 belongs to cluster prod") {
		t.Fatalf("the default cluster taking prod's node: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", E+"/config?check=0", cfg("127.0.0.3"), true); code != 201 {
		t.Fatalf("the default cluster's config: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", E+"/clusters/prod/config?check=0", cfg("127.0.0.3"), true); code != 400 || !strings.Contains(string(body), "belongs to cluster default") {
		t.Fatalf("prod taking the default cluster's node: %d %s", code, body)
	}
	// Each cluster's audit is its own, and says whose it is.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body, _ := do(t, "GET", E+"/clusters/prod/audit?action=config", "", true)
		var entries []contract.AuditEntry
		_ = json.Unmarshal(body, &entries)
		ok := len(entries) == 2 // the config stored, and the one refused
		for _, e := range entries {
			ok = ok && e.Cluster == "prod"
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prod's audit: %s", body)
		}
	}
	got := clusters()
	if len(got) != 2 || strings.Join(got["prod"].Nodes, ",") != "127.0.0.2" || strings.Join(got["default"].Nodes, ",") != "127.0.0.3" ||
		got["prod"].Catalog != "starter" || got["prod"].By != contract.ActorAdmin || got["prod"].Created.IsZero() {
		t.Fatalf("clusters: %+v", got)
	}
	if code, body, _ := do(t, "POST", E+"/clusters", `{"name": "prod"}`, true); code != 409 {
		t.Fatalf("prod made twice: %d %s", code, body)
	}
	// A cluster's own routes list the clusters too.
	if code, body, _ := do(t, "GET", E+"/clusters/prod/clusters", "", true); code != 200 || !strings.Contains(string(body), `"name":"prod"`) {
		t.Fatalf("the clusters, through prod's routes: %d %s", code, body)
	}
	// Each cluster's services are labelled with it.
	_, metrics, _ := do(t, "GET", base+"/metrics", "", false)
	for _, c := range []string{"default", "prod"} {
		if !strings.Contains(string(metrics), `cluster="`+c+`"`) {
			t.Errorf("no series of cluster %s in /metrics", c)
		}
	}

	stop()
	base, stop = engineUnderTest(t, dir)
	defer stop()
	E = base + "/deployment-engine"
	if code, body, _ := do(t, "GET", E+"/clusters/prod/config", "", true); code != 200 || !strings.Contains(string(body), "127.0.0.2") {
		t.Fatalf("prod's config after a restart: %d %s", code, body)
	}
	if got := clusters(); strings.Join(got["prod"].Nodes, ",") != "127.0.0.2" {
		t.Fatalf("clusters after a restart: %+v", got)
	}
	if code, body, _ := do(t, "POST", E+"/config?check=0", cfg("127.0.0.2"), true); code != 400 {
		t.Fatalf("the default cluster taking prod's node after a restart: %d %s", code, body)
	}
	// A cluster that placed nothing is forgotten at once, and its nodes
	// are free.
	if code, body, _ := do(t, "DELETE", E+"/clusters/prod", "", true); code != 200 {
		t.Fatalf("delete prod: %d %s", code, body)
	}
	if got := clusters(); len(got) != 1 {
		t.Fatalf("clusters after prod's delete: %+v", got)
	}
	if code, body, _ := do(t, "GET", E+"/clusters/prod/config", "", true); code != 404 {
		t.Fatalf("prod's config after its delete: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", E+"/config?check=0", cfg("127.0.0.2"), true); code != 201 {
		t.Fatalf("the default cluster taking a deleted cluster's node: %d %s", code, body)
	}
	if code, body, _ := do(t, "DELETE", E+"/clusters/default", "", true); code != 400 {
		t.Fatalf("delete the default cluster: %d %s", code, body)
	}
	// Made again under its name, it runs, its series with it.
	if code, body, _ := do(t, "POST", E+"/clusters", `{"name": "prod"}`, true); code != 201 {
		t.Fatalf("make prod again: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", E+"/clusters/prod/config", "", true); code != 404 {
		t.Fatalf("prod's config, made again: %d %s", code, body)
	}
	if _, metrics, _ := do(t, "GET", base+"/metrics", "", false); !strings.Contains(string(metrics), `cluster="prod"`) {
		t.Errorf("no series of prod made again in /metrics")
	}
}

// A data dir an engine from before clusters wrote (kept under testdata:
// two configs stored, made by the engine at 75722e4) opens as the default
// cluster, with its config, its audit, and its node held against a named
// cluster.
func TestDataDirBeforeClusters(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("tar", "xzf", "testdata/datadir-before-clusters.tar.gz", "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v %s", err, out)
	}
	base, stop := engineUnderTest(t, dir)
	defer stop()
	E := base + "/deployment-engine"
	if code, body, _ := do(t, "GET", E+"/config", "", true); code != 200 || !strings.Contains(string(body), `"127.0.0.3"`) || !strings.Contains(string(body), "old.local") {
		t.Fatalf("the config of before: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", E+"/clusters/default/config", "", true); code != 200 || !strings.Contains(string(body), "old.local") {
		t.Fatalf("the config of before, as the default cluster's: %d %s", code, body)
	}
	if code, body, _ := do(t, "GET", E+"/audit?action=config", "", true); code != 200 || strings.Count(string(body), `"action":"config"`) != 2 {
		t.Fatalf("the audit of before: %d %s", code, body)
	}
	code, body, _ := do(t, "GET", E+"/clusters", "", true)
	var cs []contract.Cluster
	if code != 200 || json.Unmarshal(body, &cs) != nil || len(cs) != 1 || cs[0].Name != "default" || strings.Join(cs[0].Nodes, ",") != "127.0.0.2,127.0.0.3" {
		t.Fatalf("clusters: %d %s", code, body)
	}
	if code, body, _ := do(t, "POST", E+"/clusters", `{"name": "prod"}`, true); code != 201 {
		t.Fatalf("make prod: %d %s", code, body)
	}
	cfg := `{"components": {"web": ["127.0.0.3"]}, "properties": {"catalog": "starter", "domain": "t.local", "home": "127.0.0.1", "root": "pw", "checkdisk": 0, "adduser": 0}}`
	if code, body, _ := do(t, "POST", E+"/clusters/prod/config?check=0", cfg, true); code != 400 || !strings.Contains(string(body), "belongs to cluster default") {
		t.Fatalf("prod taking the node of before: %d %s", code, body)
	}
}
