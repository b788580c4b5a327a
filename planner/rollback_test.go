package planner

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A rollback whose deployment cannot begin (another planner holds the
// deploy lock) puts the stored config back: the config rolled back to
// stays with no deployment, and the next deploy deploys what was stored.
func TestRollbackThatCannotBeginPutsTheConfigBack(t *testing.T) {
	s := startStopBed(t)
	s.answer()
	s.lastGood(t) // goldenStarter, deployed
	ctx := context.Background()
	stored := goldenStarter()
	stored.Components["web"] = []string{"10.9.0.3"}
	if err := bus.StoreConfig(ctx, s.b.Res.Config, stored); err != nil {
		t.Fatal(err)
	}
	held, _ := json.Marshal(map[string]any{"deployment": "d-elsewhere", "holder": "planner-other", "expires": time.Now().Add(time.Hour).UTC()})
	if _, err := s.b.Res.Scheduler.Put(ctx, "lock", held); err != nil {
		t.Fatal(err)
	}
	s.startPlanner(t)
	t.Cleanup(s.p.Stop)
	rep, err := kit.Request(ctx, s.b.NC, subject.DeployRollback(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Code != 409 || !strings.Contains(string(rep.Body), "planner-other") {
		t.Fatalf("rollback while another planner holds the lock: %d %s", rep.Code, rep.Body)
	}
	got, err := bus.LoadConfig(ctx, s.b.Res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if web := got.Components["web"]; len(web) != 1 || web[0] != "10.9.0.3" {
		t.Errorf("the stored config after a rollback that did not begin places web on %v, want the config stored before it (%v)", web, stored.Components["web"])
	}
}
