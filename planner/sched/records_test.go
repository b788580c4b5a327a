package sched

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// A record is written whole once, then as the changes of each write:
// what changed and nothing else, read back into the same record.
func TestRecordStoresChanges(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	rec := diamond("d-changes")
	if err := storeRecord(ctx, b.Res, rec, "w1"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	rec.State = contract.DeployRunning
	rec.Steps[2].State, rec.Steps[2].Started = contract.StateRunning, &now
	rec.Dispatches, rec.Queued = map[string]int{rec.Steps[2].ID: 1}, map[string]uint64{rec.Steps[2].ID: 7}
	if err := storeRecord(ctx, b.Res, rec, "w1"); err != nil {
		t.Fatal(err)
	}
	e, err := b.Res.Deployments.Get(ctx, changeKey("d-changes", 1))
	if err != nil {
		t.Fatal(err)
	}
	var c change
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Steps) != 1 || c.Steps[0].I != 2 || c.Steps[0].Queued != 7 || c.State != contract.DeployRunning || c.Writer != "w1" {
		t.Fatalf("change 1: %s", e.Value())
	}
	// Nothing changed: the write is a change with no step (a fence).
	if err := storeRecord(ctx, b.Res, rec, "w1"); err != nil {
		t.Fatal(err)
	}
	c = change{}
	if e, err = b.Res.Deployments.Get(ctx, changeKey("d-changes", 2)); err != nil || json.Unmarshal(e.Value(), &c) != nil || len(c.Steps) != 0 {
		t.Fatalf("change 2: %v %s", err, e.Value())
	}
	got, err := readRecord(ctx, b.Res, "d-changes")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rec.Deployment)
	have, _ := json.Marshal(got.Deployment)
	if string(want) != string(have) || got.seq != 2 || got.Queued[rec.Steps[2].ID] != 7 {
		t.Fatalf("read back (seq %d):\n%s\nwant\n%s", got.seq, have, want)
	}
	// Another writer on the same change number is refused.
	stale, err := readRecord(ctx, b.Res, "d-changes")
	if err != nil {
		t.Fatal(err)
	}
	if err := storeRecord(ctx, b.Res, got, "w2"); err != nil {
		t.Fatal(err)
	}
	stale.Steps[0].State = contract.StateFailed
	if err := storeRecord(ctx, b.Res, stale, "w1"); !bus.IsConflict(err) {
		t.Fatalf("a write on a change another stored: %v", err)
	}
}

// A record an older engine stored whole (testdata/record-whole.json, a
// deployment left running) still reads, and resumes: what it had done is
// not done again, and it ends stored as changes compacted back whole.
func TestWholeRecordReadsAndResumes(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	const id = "d-20250101-000000-0001"
	golden, err := os.ReadFile("testdata/record-whole.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Res.Deployments.Put(ctx, id, golden); err != nil {
		t.Fatal(err)
	}
	if err := storeSteps(ctx, b.Res, diamond(id)); err != nil {
		t.Fatal(err)
	}
	if err := markCurrent(ctx, b.Res, id); err != nil {
		t.Fatal(err)
	}
	s := testScheduler(t, b)
	d, err := s.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != contract.DeployRunning || d.Steps[0].State != contract.StateSucceeded || d.Steps[3].After[1] != "10.0.0.1/b/install" {
		t.Fatalf("the whole record reads as %+v", d)
	}
	w := startWorker(t, b, nil)
	defer w.cc.Stop()
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	d = waitFinished(t, s, id)
	if d.State != contract.DeploySucceeded || d.Changed != 6 {
		t.Fatalf("resumed: %s changed %d", d.State, d.Changed)
	}
	if w.ran["10.0.0.1/a/install"] != 0 || len(w.ran) != 5 {
		t.Errorf("ran %v: want the 5 steps not done", w.ran)
	}
	s.Stop()
	rec, err := readRecord(ctx, b.Res, id)
	if err != nil || rec.Changes || rec.State != contract.DeploySucceeded {
		t.Fatalf("stored after its end: %v changes=%v", err, rec.Changes)
	}
}

// A scheduler stopped mid-deployment leaves its record as a base and
// changes; another, started on the store after a restart, resumes it
// from them and finishes it, no step run twice. Its end is compacted, its
// changes purged, and a change a stale driver would still write refused.
func TestResumeFromChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := bustest.Start(t, bus.ServerOptions{DataDir: dir})
	w1 := startWorker(t, b, map[string]bool{})
	s := testScheduler(t, b)
	if err := s.Begin(ctx, diamond("d-part")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		d, err := s.Snapshot(ctx, "d-part")
		if err == nil && d.Steps[0].State == contract.StateSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first step did not end: %+v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Stop()
	time.Sleep(300 * time.Millisecond) // w1 ends the chains it took
	w1.cc.Stop()
	w1.mu.Lock()
	ran := map[string]int{}
	for id, n := range w1.ran {
		ran[id] = n
	}
	w1.mu.Unlock()
	if _, err := b.Res.Deployments.Get(ctx, changeKey("d-part", 1)); err != nil {
		t.Fatalf("no change stored: %v", err)
	}
	b.NC.Close()
	b.Srv.Stop()

	b = bustest.Start(t, bus.ServerOptions{DataDir: dir})
	w2 := startWorker(t, b, nil)
	defer w2.cc.Stop()
	s = testScheduler(t, b)
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if d := waitFinished(t, s, "d-part"); d.State != contract.DeploySucceeded || d.Changed != 6 {
		t.Fatalf("resumed: %s changed %d", d.State, d.Changed)
	}
	s.Stop() // waits for the purge
	for id, n := range w2.ran {
		ran[id] += n
	}
	for _, st := range diamond("x").Steps {
		if ran[st.ID] != 1 {
			t.Errorf("%s ran %d times", st.ID, ran[st.ID])
		}
	}
	rec, err := readRecord(ctx, b.Res, "d-part")
	if err != nil || rec.Changes {
		t.Fatalf("not compacted: %v", err)
	}
	if _, err := b.Res.Deployments.Get(ctx, changeKey("d-part", 1)); !bus.IsNotFound(err) {
		t.Errorf("change 1 not purged: %v", err)
	}
	if _, err := b.Res.Deployments.Update(ctx, changeKey("d-part", 1), []byte(`{"seq":1}`), 0); !bus.IsConflict(err) {
		t.Errorf("a stale change written after the purge: %v", err)
	}
	ids, err := DeploymentIDs(ctx, b.Res)
	if err != nil || len(ids) != 1 || ids[0] != "d-part" {
		t.Errorf("ids %v %v", ids, err)
	}
}

// Once a record's base is stored, a flush writes what changed in it and
// not the record again: the bytes the bucket takes grow with the steps
// that changed, not with the deployment's size.
func TestRecordWritesPerStep(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	// Every write reaches the subscription before the PONG of a flush
	// that follows it: what is pending then is what was written.
	sub, err := b.NC.SubscribeSync("$KV." + bus.KVDeployments + ".>")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	wrote := func(rec *Record) int {
		t.Helper()
		if err := storeRecord(ctx, b.Res, rec, "w"); err != nil {
			t.Fatal(err)
		}
		if err := b.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		msgs, size, err := sub.Pending()
		if err != nil || msgs != 1 {
			t.Fatalf("a store made %d writes (%v), want 1", msgs, err)
		}
		if _, err := sub.NextMsg(time.Second); err != nil {
			t.Fatal(err)
		}
		return size
	}
	rec := bigRecord("d-per-step", 300, 7) // 2,100 steps
	base := wrote(rec)
	if base < 200_000 {
		t.Fatalf("the base of 2,100 steps took %d bytes: the counter does not count", base)
	}
	now := time.Now().UTC()
	for _, n := range []int{1, 10, 100} {
		for i := 0; i < n; i++ {
			st := &rec.Steps[(i*37)%len(rec.Steps)]
			st.State, st.Attempt, st.Started = contract.StateRunning, st.Attempt+1, &now
		}
		if got, most := wrote(rec), 200+250*n; got > most {
			t.Errorf("%d steps changed: %d bytes written (the base is %d), want at most %d", n, got, base, most)
		}
	}
	got, err := readRecord(ctx, b.Res, "d-per-step")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rec.Deployment)
	have, _ := json.Marshal(got.Deployment)
	if string(want) != string(have) {
		t.Error("the record read back is not the one written")
	}
}
