package steps

import (
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
)

// A web node going into maintenance is taken out of the running haproxy
// (its drain, not about the node, so that its maintenance does not hold
// it); coming back, it is watched healthy, then put back. A node whose
// components no balancer balances has no steps, nor has a balancer that
// is not running yet.
func TestMaintenanceSteps(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := starterConfig()
	cfg.Components["web"] = []string{"10.9.0.3", "10.9.0.4"}
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"web", "redis"}, "10.9.0.4": {"web"}}
	in := Builder{Config: cfg, Catalog: cat, Engine: "e-1", ID: "d-m", MirrorURL: "http://10.9.0.1:50000/mirror/", Previous: previous}
	type got struct{ ID, For string }
	list := func(ip string, out bool) []got {
		t.Helper()
		steps, err := in.MaintenanceSteps(ip, out)
		if err != nil {
			t.Fatal(err)
		}
		var l []got
		for _, s := range steps {
			l = append(l, got{s.Spec.ID, s.For})
		}
		return l
	}
	if l, want := list("10.9.0.4", true), []got{{"10.9.0.2/haproxy/drain-web-10.9.0.4", ""}}; !reflect.DeepEqual(l, want) {
		t.Errorf("into maintenance: %+v, want %+v", l, want)
	}
	back, err := in.MaintenanceSteps("10.9.0.4", false)
	if err != nil || len(back) != 2 || back[0].Spec.ID != "10.9.0.4/web/watch" || back[1].Spec.ID != "10.9.0.2/haproxy/ready-web-10.9.0.4" ||
		!reflect.DeepEqual(back[1].After, []string{back[0].Spec.ID}) || len(back[0].After) != 0 {
		t.Fatalf("out of maintenance: %+v %v", back, err)
	}
	if l := list("10.9.0.2", true); len(l) != 0 {
		t.Errorf("the balancer's own node: %+v", l)
	}
	in.Previous = map[string][]string{"10.9.0.4": {"web"}}
	if l := list("10.9.0.4", true); len(l) != 0 {
		t.Errorf("no balancer running yet: %+v", l)
	}
}
