package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// apiClusters are named clusters whose handlers are real APIs of their
// own cluster, on one bus with no service behind it: a command that gets
// past a cluster's API answers 503.
type apiClusters struct {
	mu       sync.Mutex
	t        *testing.T
	o        Options
	handlers map[string]http.Handler
}

func (c *apiClusters) List(context.Context) ([]contract.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []contract.Cluster{{Name: contract.DefaultCluster}}
	for _, n := range []string{"prod", "qa", "stage"} {
		if c.handlers[n] != nil {
			out = append(out, contract.Cluster{Name: n})
		}
	}
	return out, nil
}

func (c *apiClusters) Create(_ context.Context, name, by string) (contract.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handlers[name] != nil || name == contract.DefaultCluster {
		return contract.Cluster{}, ErrClusterExists
	}
	o := c.o
	o.Cluster = name
	h, err := New(o)
	if err != nil {
		return contract.Cluster{}, err
	}
	c.handlers[name] = h
	return contract.Cluster{Name: name, By: by}, nil
}

// Delete forgets a cluster at once, as the engine does one that placed
// nothing.
func (c *apiClusters) Delete(_ context.Context, name, _ string) (kit.Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handlers[name] == nil {
		return kit.Reply{}, ErrNoCluster
	}
	delete(c.handlers, name)
	return kit.Reply{Code: http.StatusOK, Body: []byte(`{"v": 1, "id": ""}`)}, nil
}

func (c *apiClusters) Handler(name string) (http.Handler, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.handlers[name]
	return h, ok
}

// A cluster's routes are its own API's, which holds a token to its reach
// for that cluster; the list of clusters shows what a token reaches; a
// cluster is made by an admin alone.
func TestClusterRoutesReach(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	tokens := &tokenTable{m: map[string]Grant{
		prodTok:  {Name: "prod-ci", Role: RoleDeploy, Clusters: []string{"prod"}},
		writeTok: {Name: "alice", Role: RoleDeploy},
	}}
	o := Options{NC: b.NC, Token: adminTok, Tokens: tokens}
	cl := &apiClusters{t: t, o: o, handlers: map[string]http.Handler{}}
	for _, n := range []string{"prod", "stage"} {
		if _, err := cl.Create(context.Background(), n, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	o.Clusters = cl
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	names := func(body []byte) string {
		var cs []contract.Cluster
		if err := json.Unmarshal(body, &cs); err != nil {
			t.Fatalf("clusters: %s", body)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return strings.Join(out, " ")
	}

	for _, c := range []struct {
		method, path, body, tok string
		code                    int
		has                     string
	}{
		// The list holds what the token reaches.
		{"GET", "/clusters", "", adminTok, 200, ""},
		{"GET", "/clusters", "", prodTok, 200, ""},
		{"GET", "/clusters/stage", "", prodTok, 403, "acts on cluster stage; token prod-ci reaches only prod"},
		// A cluster's routes go to its API, which checks the reach for it.
		{"GET", "/clusters/stage/status", "", prodTok, 403, "acts on cluster stage; token prod-ci reaches only prod"},
		{"POST", "/clusters/stage/deploy", "{}", prodTok, 403, "acts on cluster stage"},
		{"GET", "/clusters/stage/deployments/d-1/events", "", prodTok, 403, "acts on cluster stage"},
		{"GET", "/clusters/stage/logs/follow?component=web", "", prodTok, 403, "acts on cluster stage"},
		{"GET", "/clusters/prod/config", "", prodTok, 503, ""},
		{"POST", "/clusters/prod/deploy", "{}", prodTok, 503, ""},
		// The default cluster's own routes, by its name too.
		{"GET", "/clusters/default/config", "", adminTok, 503, ""},
		{"GET", "/clusters/default/config", "", prodTok, 403, "acts on cluster default"},
		{"GET", "/config", "", prodTok, 403, "acts on cluster default"},
		// No such cluster: 404 to a token, 401 to no token.
		{"GET", "/clusters/nope/status", "", adminTok, 404, "lists them, POST there makes one"},
		{"GET", "/clusters/nope/status", "", "", 401, "missing or wrong API token"},
		{"GET", "/clusters/prod/status", "", "", 401, "missing or wrong API token"},
		{"GET", "/clusters/nope", "", adminTok, 404, "lists them, POST there makes one"},
		// Made by an admin only, with a good name, once.
		{"POST", "/clusters", `{"name": "qa"}`, writeTok, 403, "needs the admin role"},
		{"POST", "/clusters", `{"name": "Bad_Name"}`, adminTok, 400, "is not a cluster name"},
		{"POST", "/clusters", `{"name": "qa", "x": 1}`, adminTok, 400, "want {"},
		{"POST", "/clusters", `{"name": "qa"}`, adminTok, 201, ""},
		{"POST", "/clusters", `{"name": "qa"}`, adminTok, 409, "cluster qa exists"},
		{"POST", "/clusters", `{"name": "default"}`, adminTok, 409, "cluster default exists"},
		{"GET", "/clusters/qa/heal", "", adminTok, 503, ""},
		// Deleted by an admin only; never the default one.
		{"DELETE", "/clusters/qa", "", prodTok, 403, "needs the admin role"},
		{"DELETE", "/clusters/default", "", adminTok, 400, "the default cluster is not deleted"},
		{"DELETE", "/clusters/nope", "", adminTok, 404, "lists them, POST there makes one"},
		{"DELETE", "/clusters/qa", "", adminTok, 200, ""},
		{"GET", "/clusters/qa/heal", "", adminTok, 404, "lists them, POST there makes one"},
	} {
		var hdr []string
		if c.tok != "" {
			hdr = auth(c.tok)
		}
		resp, body := do(t, c.method, ts.URL+prefix+c.path, c.body, hdr...)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.has) {
			t.Errorf("%s %s (%s): %d %s, want %d %q", c.method, c.path, c.tok, resp.StatusCode, body, c.code, c.has)
		}
	}
	if _, body := do(t, "GET", ts.URL+prefix+"/clusters", "", auth(adminTok)...); names(body) != "default prod stage" {
		t.Errorf("the admin's clusters: %s", names(body))
	}
	if _, body := do(t, "GET", ts.URL+prefix+"/clusters", "", auth(prodTok)...); names(body) != "prod" {
		t.Errorf("prod-ci's clusters: %s", names(body))
	}

	// The audit says the cluster of each change, as its cluster's API
	// recorded it (here all on one bus).
	want := map[string]bool{"prod": false, "stage": false}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, body := do(t, "GET", ts.URL+prefix+"/audit?actor=prod-ci", "", auth(adminTok)...)
		var got []contract.AuditEntry
		_ = json.Unmarshal(body, &got)
		for _, e := range got {
			if e.Action == contract.AuditDeploy {
				want[e.Cluster] = true
			}
		}
		if want["prod"] && want["stage"] {
			break
		}
	}
	if !want["prod"] || !want["stage"] {
		t.Errorf("audit entries of prod-ci's deploys by cluster: %v", want)
	}
}
