package sched

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// A store written before DE_SCHEDULER kept the scheduler's keys beside the
// records in DE_DEPLOYMENTS. A scheduler started on it moves them and
// finishes the deployment that was running; the bucket then holds records
// only.
func TestSchedulerMovesLegacyBookkeeping(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	rec := diamond("d-old")
	rec.State = contract.DeployRunning
	old := contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: "d-older", State: contract.DeploySucceeded}}
	put := func(key string, v any) {
		t.Helper()
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Res.Deployments.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	put("d-old", rec)
	put("d-old-specs", specDoc{Specs: rec.specs, Prios: rec.prios})
	put("d-older", old)
	put("placement", map[string][]string{"10.0.0.9": {"z"}})
	if _, err := b.Res.Deployments.Put(ctx, "current", []byte("d-old")); err != nil {
		t.Fatal(err)
	}

	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	s := testScheduler(t, b)
	defer s.Stop()
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if d := waitFinished(t, s, "d-old"); d.State != contract.DeploySucceeded {
		t.Fatalf("resumed deployment: %s %q", d.State, d.Error)
	}
	if len(w.ran) != 6 {
		t.Errorf("%d steps ran, want 6", len(w.ran))
	}
	ids, err := DeploymentIDs(ctx, b.Res)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if want := []string{"d-old", "d-older"}; !slices.Equal(ids, want) {
		t.Errorf("%s holds %v, want %v", bus.KVDeployments, ids, want)
	}
	if _, err := b.Res.Scheduler.Get(ctx, stepsKey("d-old")); err != nil {
		t.Errorf("steps not moved: %v", err)
	}
	pl, err := LoadPlacement(ctx, b.Res)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pl["10.0.0.9"], []string{"z"}) || len(pl["10.0.0.1"]) != 0 {
		// The diamond places nothing: the old placement is kept as it was.
		t.Errorf("placement %v", pl)
	}
	if id, err := currentID(ctx, b.Res); err != nil || id != "" {
		t.Errorf("current %q %v after the end", id, err)
	}
}

// A mark of a current deployment that the store does not hold (a backup
// restored without it) is forgotten: the engine starts.
func TestSchedulerForgetsMissingCurrent(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	if _, err := b.Res.Scheduler.Put(ctx, keyCurrent, []byte("d-gone")); err != nil {
		t.Fatal(err)
	}
	s := testScheduler(t, b)
	defer s.Stop()
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := currentID(ctx, b.Res); err != nil || id != "" {
		t.Errorf("current %q %v", id, err)
	}
	if _, ok := s.Running(); ok {
		t.Error("a deployment runs")
	}
}

func TestDeploymentIDsOfAnEmptyStore(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ids, err := DeploymentIDs(context.Background(), b.Res)
	if err != nil || len(ids) != 0 {
		t.Fatalf("ids %v err %v", ids, err)
	}
}

// Steps stored before a step carried its claim get it back when read: a
// deployment resumed across the upgrade still claims its nodes.
func TestLoadRecordClaimsStoredPrepare(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	rec := diamond("d-claim")
	prep := contract.Step{V: 1, Deployment: "d-claim", ID: "10.0.0.1/_node/prepare", Node: "10.0.0.1", Component: steps.NodeComponent, Action: "prepare"}
	rec.specs[prep.ID] = prep
	if err := storeRecord(ctx, b.Res, rec, "test"); err != nil {
		t.Fatal(err)
	}
	if err := storeSteps(ctx, b.Res, rec); err != nil {
		t.Fatal(err)
	}
	got, err := loadRecord(ctx, b.Res, "d-claim")
	if err != nil {
		t.Fatal(err)
	}
	if !got.specs[prep.ID].Claim {
		t.Error("the stored prepare step does not claim its node")
	}
	for id, sp := range got.specs {
		if id != prep.ID && sp.Claim {
			t.Errorf("%s claims its node", id)
		}
	}
}
