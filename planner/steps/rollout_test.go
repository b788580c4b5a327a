package steps

import (
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

func TestBatchesOf(t *testing.T) {
	ips := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		canaries int
		inFlight string
		want     [][]string
	}{
		{1, "1", [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}},
		{1, "2", [][]string{{"a"}, {"b", "c"}, {"d", "e"}}},
		{2, "40%", [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
		{0, "100%", [][]string{{"a", "b", "c", "d", "e"}}},
		{0, "10%", [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}}, // never below 1
		{9, "1", [][]string{{"a", "b", "c", "d", "e"}}},
	}
	for _, tt := range tests {
		got, err := BatchesOf(ips, Settings{canaries: tt.canaries, inFlight: tt.inFlight}, len(ips))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("canaries %d, max_in_flight %s: %v %v, want %v", tt.canaries, tt.inFlight, got, err, tt.want)
		}
	}
	if _, err := BatchesOf(ips, Settings{inFlight: "0"}, 5); err == nil {
		t.Error("max_in_flight 0 taken")
	}
}

func TestSettingsLevels(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := starterConfig()
	two, three := 2, 3
	yes := true
	if s := SettingsFor(cat, cfg, "web", contract.UpdateSettings{}); s.canaries != 1 || s.inFlight != "1" || s.canaryLow != 1000 || s.canary != 30000 || s.autoRevert {
		t.Errorf("catalog's settings: %+v", s)
	}
	cfg.Properties.Update = &contract.UpdateConfig{UpdateSettings: contract.UpdateSettings{Canaries: &two, AutoRevert: &yes, UpdateWatchTime: "500-2000"},
		Components: map[string]contract.UpdateSettings{"web": {MaxInFlight: "50%"}}}
	s := SettingsFor(cat, cfg, "web", contract.UpdateSettings{})
	if s.canaries != 2 || s.inFlight != "50%" || !s.autoRevert || s.updateLow != 500 || s.update != 2000 {
		t.Errorf("config over catalog: %+v", s)
	}
	if s := SettingsFor(cat, cfg, "web", contract.UpdateSettings{Canaries: &three, MaxInFlight: "1"}); s.canaries != 3 || s.inFlight != "1" {
		t.Errorf("query over config: %+v", s)
	}
	if s := SettingsFor(cat, cfg, "redis", contract.UpdateSettings{}); s.canaries != 2 || s.inFlight != "1" {
		t.Errorf("global config and defaults for a component without its own: %+v", s)
	}
}

// A change to every running web instance: the canary alone, then one at a
// time, each out of haproxy before its upload and back after its watch;
// an unchanged instance is left out.
func TestRolloutDAG(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := starterConfig()
	cfg.Components["web"] = []string{"10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"web", "redis"}, "10.9.0.4": {"web"}, "10.9.0.5": {"web"}, "10.9.0.6": {"web"}}
	in := Builder{Config: cfg, Catalog: cat, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.9.0.1:50000/mirror/", Previous: previous}
	steps, err := in.CatalogSteps()
	if err != nil {
		t.Fatal(err)
	}
	// 10.9.0.6 holds every step's hash already: unchanged.
	markers := map[string]map[string]string{"10.9.0.6": {}, "10.9.0.3": {}, "10.9.0.4": {}, "10.9.0.5": {}}
	for _, s := range steps {
		if s.Spec.Node == "10.9.0.6" {
			markers["10.9.0.6"][nodefs.MarkerName(s.Spec.Key)] = s.Spec.Hash
		}
	}
	steps, batches, err := in.RolloutSteps(steps, markers, contract.UpdateSettings{})
	if err != nil {
		t.Fatal(err)
	}
	var nodes [][]string
	var web []contract.Batch
	for _, b := range batches {
		if b.Component == "web" {
			nodes, web = append(nodes, b.Nodes), append(web, b)
		}
	}
	if want := [][]string{{"10.9.0.3"}, {"10.9.0.4"}, {"10.9.0.5"}}; !reflect.DeepEqual(nodes, want) || !web[0].Canary || web[1].Canary {
		t.Fatalf("batches of web %+v, want %v with the first a canary", web, want)
	}
	byID := map[string]*Step{}
	for _, s := range steps {
		byID[s.Spec.ID] = s
	}
	waits := func(id, after string) bool {
		s := byID[id]
		return s != nil && slices.Contains(s.After, after)
	}
	checks := []struct{ step, after string }{
		{"10.9.0.3/web/upload", "10.9.0.2/haproxy/drain-web-10.9.0.3"},
		{"10.9.0.3/web/watch", "10.9.0.3/web/start"},
		{"10.9.0.2/haproxy/ready-web-10.9.0.3", "10.9.0.3/web/watch"},
		{"10.9.0.2/haproxy/drain-web-10.9.0.4", "10.9.0.2/haproxy/ready-web-10.9.0.3"},
		{"10.9.0.2/haproxy/drain-web-10.9.0.5", "10.9.0.2/haproxy/ready-web-10.9.0.4"},
	}
	for _, c := range checks {
		if !waits(c.step, c.after) {
			t.Errorf("%s does not wait for %s", c.step, c.after)
		}
	}
	if byID["10.9.0.2/haproxy/drain-web-10.9.0.6"] != nil || byID["10.9.0.6/web/watch"] != nil {
		t.Error("an unchanged instance is rolled out")
	}
	if w := byID["10.9.0.3/web/watch"].Spec.Script; !strings.Contains(w, "low=1000 high=30000") || !strings.Contains(w, "/dev/tcp/10.9.0.3/8080") {
		t.Errorf("watch script:\n%s", w)
	}
	for _, s := range []string{"10.9.0.2/haproxy/drain-web-10.9.0.3", "10.9.0.2/haproxy/ready-web-10.9.0.3", "10.9.0.3/web/watch"} {
		if out, err := exec.Command("bash", "-n", "-c", byID[s].Spec.Script).CombinedOutput(); err != nil {
			t.Errorf("%s is no valid bash: %v %s", s, err, out)
		}
	}

}
