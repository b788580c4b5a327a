package sched

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// What moves the running deployment: a step event applied, the ready steps
// dispatched, and its end.

func (s *Scheduler) onEvent(m jetstream.Msg) {
	var ev contract.StepEvent
	if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.V > contract.Version {
		s.log.Warn("dropping unreadable step event", "subject", m.Subject())
		_ = m.Term()
		return
	}
	ctx := context.Background()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.ID != ev.Deployment || s.cur.State != contract.DeployRunning {
		if s.cur == nil || s.cur.ID != ev.Deployment {
			if id, err := currentID(ctx, s.res); err == nil && id == ev.Deployment {
				// The current deployment, not (yet) driven here: keep its
				// event for whoever drives or resumes it. Planners share
				// the consumer, so the driver gets it back soon.
				_ = m.NakWithDelay(200 * time.Millisecond)
				return
			}
		}
		_ = m.Ack()
		return
	}
	if _, ok := s.cur.index[ev.ID]; !ok && ev.Final {
		// A step the installer could not read names at most its node: the
		// node runs one step at a time, so it is that node's active step.
		ev.ID = s.cur.activeOn(ev.Node)
	}
	now := time.Now()
	s.seen[ev.ID], s.progress = now, now
	if s.cur.apply(ev) {
		s.dirty = true
	}
	s.pending = append(s.pending, m)
	s.advanceLocked(ctx)
}

// advanceLocked dispatches every step that may run now, and finishes the
// deployment when nothing is left to run.
func (s *Scheduler) advanceLocked(ctx context.Context) {
	rec := s.cur
	if rec == nil || !rec.live() {
		return
	}
	if rec.State == contract.DeployPending {
		rec.State = contract.DeployRunning
		s.dirty = true
	}
	// A step that could not be queued failed: skip what comes after it and
	// give its node's next step a turn.
	for again := true; again; {
		again = false
		if rec.skipBlocked() {
			s.dirty = true
		}
		ready := rec.ready()
		errs := s.dispatchManyLocked(ctx, ready)
		down := false
		for i, id := range ready {
			st := rec.step(id)
			if err := errs[i]; err != nil {
				if s.storeDown(err) {
					// Queued once the store answers (watchStoreLocked).
					s.requeue, down = true, true
					continue
				}
				s.log.Error("dispatch step", "step", id, "err", err)
				st.State, st.Error = contract.StateFailed, "could not queue the step: "+err.Error()
				again = true
			}
			s.dirty = true
		}
		if down {
			break
		}
	}
	s.batchEventsLocked(ctx)
	if !rec.pendingWork() {
		s.concludeLocked(ctx, "")
	}
}

func (s *Scheduler) concludeLocked(ctx context.Context, reason string) {
	rec := s.cur
	now := time.Now().UTC()
	s.batchEventsLocked(ctx)
	// The record as it stands, stored before its end on the revision this
	// scheduler holds: refused, another took the deployment over and ends
	// it (saveLocked lets go of it); stored, a scheduler that takes it
	// over from now on starts from it and places what this one places (a
	// placement merged twice is merged once). An unavailable store writes
	// it later, with the end.
	if err := s.saveLocked(ctx); err != nil && s.cur != rec {
		return
	}
	if reason == "" {
		reason = rec.haltReason()
	}
	failed := rec.conclude(reason, now)
	s.dirty = true
	// The placement, the current mark, the lock and the finished event:
	// what the store refuses now is written once it answers. The placement
	// goes before the record, which a restart reads as finished.
	s.unfinished = &unfinished{placement: rec, compact: rec, mark: true, lock: true, event: &contract.DeploymentEvent{
		V: contract.Version, ID: rec.ID, State: rec.State, Changed: rec.Changed, Time: now, Error: rec.Error}}
	s.placeLocked(ctx, s.unfinished)
	s.flushLocked(ctx)
	if s.cur != rec {
		return // taken over while it ended: the new driver ends it
	}
	s.endLocked(ctx)
	s.log.Info("deployment finished", "id", rec.ID, "state", rec.State, "changed", rec.Changed, "failed", failed)
	s.hooks.Ended(rec)
}

// placeLocked stores where components run once u's deployment ended: the
// stored placement updated with what it placed and removed, and beside it
// what it left half installed (partialAfter). Nothing is written while the
// stored one cannot be read, or the update would start from nothing and
// forget every instance it did not touch: an unavailable store is tried
// again on the next tick, holding the deploy lock so no deployment plans
// from the old placement meanwhile; a placement that does not decode is
// left for an operator, and the next deployment refuses to plan from it,
// saying so.
func (s *Scheduler) placeLocked(ctx context.Context, u *unfinished) {
	if u.placement == nil {
		return
	}
	for _, m := range []struct {
		key   string
		after func(map[string][]string) map[string][]string
	}{{keyPartial, u.placement.partialAfter}, {keyPlacement, u.placement.placementAfter}} {
		err := s.mergeNodeMap(ctx, m.key, m.after)
		if err != nil && bus.Unavailable(err) {
			return
		}
		if err != nil {
			s.log.Error("store "+m.key+": the stored one is kept as it is", "id", u.placement.ID, "err", err)
		}
	}
	u.placement = nil
}

// mergeNodeMap writes after(the stored map) under key, on the revision it
// was read at: one stored meanwhile is read again and merged into.
func (s *Scheduler) mergeNodeMap(ctx context.Context, key string, after func(map[string][]string) map[string][]string) error {
	var err error
	for try := 1; ; try++ {
		var prev map[string][]string
		var rev uint64
		if prev, rev, err = loadNodeMap(ctx, s.res, key); err == nil {
			var b []byte
			if b, err = json.Marshal(after(prev)); err == nil {
				_, err = bus.PutAt(ctx, s.res.Scheduler, key, b, rev)
			}
		}
		if !bus.IsConflict(err) || try == 3 {
			return err
		}
	}
}
