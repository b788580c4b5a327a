package monitor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Status carries auto-heal's verdict on DOWN instances: the one it gave up
// on says "failing", and the meltdown guard shows on every DOWN entry. The
// heal service is stood in for by an endpoint answering its state.
func TestStatusCarriesHealVerdict(t *testing.T) {
	e := newEnv(t)
	// Nodes that nothing reads: both instances are DOWN.
	cfg := contract.Config{Components: map[string][]string{"web": {"127.0.78.1", "127.0.78.2"}}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	reasons := func() map[string]string {
		code, body := e.ask(t, subject.MonitorStatus(), nil)
		var st []contract.StatusEntry
		if code != 200 || json.Unmarshal(body, &st) != nil || len(st) != 2 {
			t.Fatalf("status: %d %s", code, body)
		}
		out := map[string]string{}
		for _, s := range st {
			if s.Status != "DOWN" {
				t.Fatalf("an instance on a node nothing reads: %+v", s)
			}
			out[s.Ip] = s.Reason
		}
		return out
	}
	for ip, r := range reasons() {
		if strings.Contains(r, "auto-heal") {
			t.Fatalf("%s without a heal service: %q", ip, r)
		}
	}

	state := contract.HealState{Enabled: true,
		Meltdown:  contract.Meltdown{Active: true, Down: 2, Instances: 2, Reason: "2 of 2 instances down"},
		Instances: []contract.HealedInstance{{Component: "web", IP: "127.0.78.1", State: contract.HealFailing, Reason: "restart did not bring it back"}}}
	svc, err := micro.AddService(e.nc, micro.Config{Name: "heal", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	if err := svc.AddEndpoint("heal-get", micro.HandlerFunc(func(r micro.Request) { _ = r.RespondJSON(state) }),
		micro.WithEndpointSubject(subject.HealGet())); err != nil {
		t.Fatal(err)
	}
	got := reasons()
	if r := got["127.0.78.1"]; !strings.HasPrefix(r, "failing: auto-heal gave up: restart did not bring it back") || !strings.Contains(r, "meltdown guard: 2 of 2") {
		t.Fatalf("the instance auto-heal gave up on: %q", r)
	}
	if r := got["127.0.78.2"]; strings.Contains(r, "failing") || !strings.Contains(r, "meltdown guard: 2 of 2") {
		t.Fatalf("another DOWN instance under the meltdown guard: %q", r)
	}
}
