package steps

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

func starterPlan(t *testing.T, cfg contract.Config, previous map[string][]string) map[string]*Step {
	t.Helper()
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Builder{Config: cfg, Catalog: cat, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.9.0.1:50000/mirror/", Previous: previous}.CatalogSteps()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Step{}
	for _, s := range steps {
		if out[s.Spec.ID] != nil {
			t.Fatalf("step %s planned twice", s.Spec.ID)
		}
		out[s.Spec.ID] = s
	}
	return out
}

func starterConfig() contract.Config {
	return contract.Config{
		Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3", "10.9.0.4"}, "redis": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: "starter", Adduser: contract.F(1), User: "vcap", Password: "secret-pw"},
	}
}

func TestPlanOrder(t *testing.T) {
	steps := starterPlan(t, starterConfig(), nil)
	has := func(id, after string) bool {
		for _, a := range steps[id].After {
			if a == after {
				return true
			}
		}
		return false
	}
	checks := []struct{ step, after string }{
		{"10.9.0.2/_node/adduser", "10.9.0.2/_node/prepare"},
		{"10.9.0.2/_node/mirror", "10.9.0.2/_node/adduser"},
		{"10.9.0.2/haproxy/upload", "10.9.0.2/_node/mirror"},
		{"10.9.0.2/haproxy/install", "10.9.0.3/web/start"}, // haproxy requires every web
		{"10.9.0.2/haproxy/install", "10.9.0.4/web/start"},
		{"10.9.0.3/web/start", "10.9.0.3/web/register"},
	}
	for _, c := range checks {
		if steps[c.step] == nil || !has(c.step, c.after) {
			t.Errorf("%s does not wait for %s", c.step, c.after)
		}
	}
	for id, s := range steps {
		if strings.Contains(s.Spec.Script, "secret-pw") {
			t.Errorf("step %s carries a secret in its script", id)
		}
		for _, f := range s.Spec.Files {
			if strings.Contains(string(f.Content), "secret-pw") || strings.Contains(string(f.Content), "pw\n") {
				t.Errorf("step %s carries a secret in %s", id, f.Path)
			}
		}
	}
	if env := steps["10.9.0.2/_node/adduser"].Spec.SecretEnv; len(env) != 1 || env[0] != "password" {
		t.Errorf("adduser must ask for the password by name, got %v", env)
	}
}

// Planning the same config twice gives the same hashes: a second deploy
// finds every step done.
func TestPlanStable(t *testing.T) {
	a := starterPlan(t, starterConfig(), nil)
	b := starterPlan(t, starterConfig(), nil)
	for id, s := range a {
		if b[id].Spec.Hash != s.Spec.Hash {
			t.Errorf("%s hashes differently on a second plan", id)
		}
	}
	// A new web instance changes haproxy's files, so haproxy starts again
	// (its reload), but not web 0's.
	cfg := starterConfig()
	cfg.Components["web"] = append(cfg.Components["web"], "10.9.0.5")
	c := starterPlan(t, cfg, nil)
	if c["10.9.0.2/haproxy/start"].Spec.Hash == a["10.9.0.2/haproxy/start"].Spec.Hash {
		t.Error("haproxy does not notice a new web instance")
	}
	if c["10.9.0.3/web/start"].Spec.Hash != a["10.9.0.3/web/start"].Spec.Hash {
		t.Error("web 0 would restart for a new web instance")
	}
}

func TestPlanScaleIn(t *testing.T) {
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"redis", "web"}, "10.9.0.4": {"web"}, "10.9.0.5": {"web"}}
	steps := starterPlan(t, starterConfig(), previous)
	rm := steps["10.9.0.5/web/remove"]
	if rm == nil {
		t.Fatal("no remove step for the web instance that left")
	}
	found := false
	for _, a := range rm.After {
		found = found || a == "10.9.0.2/haproxy/start"
	}
	if !found {
		t.Error("web leaves before haproxy stops sending it requests")
	}
	if steps["10.9.0.4/web/remove"] != nil {
		t.Error("removes an instance the config keeps")
	}
}

// Each node's prepare step claims the node for the engine; no other step
// does.
func TestPlanClaimsEachNodeOnce(t *testing.T) {
	claims := map[string]int{}
	for id, s := range starterPlan(t, starterConfig(), nil) {
		if s.Spec.Claim {
			claims[s.Spec.Node]++
			if s.Spec.Action != "prepare" || s.Spec.Engine != "e-1" {
				t.Errorf("%s claims its node for %q", id, s.Spec.Engine)
			}
		}
	}
	for _, ip := range starterConfig().Nodes() {
		if claims[ip] != 1 {
			t.Errorf("%s claimed %d times", ip, claims[ip])
		}
	}
}

// An instance a deployment reached without starting it (its install or
// start failed) is removed when the config drops it, as a placed one is;
// one the config still places is left to its deployment.
func TestPlanRemovesHalfInstalled(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"redis", "web"}}
	partial := map[string][]string{"10.9.0.4": {"web"}, "10.9.0.6": {"web"}}
	planned, err := Builder{Config: starterConfig(), Catalog: cat, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.9.0.1:50000/mirror/",
		Previous: previous, Partial: partial}.CatalogSteps()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range planned {
		ids[s.Spec.ID] = true
	}
	if !ids["10.9.0.6/web/remove"] {
		t.Error("no remove step for the half-installed web instance the config dropped")
	}
	if ids["10.9.0.4/web/remove"] || !ids["10.9.0.4/web/start"] {
		t.Error("the half-installed instance the config keeps is removed, or not installed again")
	}
}
